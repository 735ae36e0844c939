//! Start-up options of the emulator (the `d365 emulator` flags).

use std::path::PathBuf;
use std::time::Duration;

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// TCP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// SQLite file that keeps the Dataverse data across restarts; `None` keeps it in memory.
    pub data: Option<PathBuf>,
    /// Directory for the CA, keys and app certificates. `None`: `<data>.d` beside the data
    /// file, or a temporary directory removed when the emulator stops.
    pub state_dir: Option<PathBuf>,
    /// Number of accounts to seed (related tables get proportional row counts).
    pub rows: usize,
    /// TOML seed configuration.
    pub config: Option<PathBuf>,
    /// Lifetime of issued access tokens.
    pub token_lifetime: Duration,
    /// Clock tolerance when the Web API checks `exp`/`nbf` of a bearer token.
    pub token_clock_skew: Duration,
    /// Fixed delay added to every Web API request.
    pub latency: Duration,
    /// Extra delay per row returned or written.
    pub latency_per_row: Duration,
    /// Sign this user in automatically on the sign-in and device-code pages (tests only).
    pub auto_approve: Option<String>,
    /// Revoke a refresh token when it is redeemed (strict rotation).
    pub revoke_used_refresh_tokens: bool,
    /// Log every request.
    pub verbose: bool,
    /// Service-protection limits per user.
    pub limits: crate::webapi::limits::LimitSettings,
    /// Injected faults (none by default).
    pub faults: crate::webapi::faults::FaultSettings,
    /// `x-ms-dop-hint` override (else the configuration's value).
    pub dop_hint: Option<u32>,
    /// Extra application users `worker-1` … `worker-N` (confidential apps with a client secret
    /// and the Integration role), each with its own service-protection budget: for
    /// scaled-out exports with several application users (see [`Config::with_worker_apps`]).
    ///
    /// [`Config::with_worker_apps`]: crate::config::Config::with_worker_apps
    pub app_users: usize,
    /// Customers to seed in the Finance & Operations store (other F&O entities get
    /// proportional counts, see [`crate::fno::seed`]); `None`: the same as `rows`.
    pub fno_rows: Option<usize>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            port: 0,
            data: None,
            state_dir: None,
            rows: 50,
            config: None,
            token_lifetime: Duration::from_secs(3600),
            token_clock_skew: Duration::from_secs(300),
            latency: Duration::ZERO,
            latency_per_row: Duration::ZERO,
            auto_approve: None,
            revoke_used_refresh_tokens: true,
            verbose: false,
            limits: Default::default(),
            faults: Default::default(),
            dop_hint: None,
            app_users: 0,
            fno_rows: None,
        }
    }
}
