//! `d365 emulator`: start the local emulator, print how to reach it, serve until Ctrl-C.
//! `--check` instead walks the seed guides' validation steps against it over HTTPS, as any
//! external client would, and exits.

use anyhow::{Context, bail};
use clap::Args;
use d365_emulator::{Emulator, EmulatorOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Per-row cost added with `--latency-ms` unless `--latency-per-row-us` says otherwise.
const DEFAULT_ROW_COST_US: u64 = 20;

/// Options of `d365 emulator`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  d365 emulator                              in-memory, 50 accounts, random port
  d365 emulator --port 8443 --rows 100000    fixed port, more data
  d365 emulator --data crm.sqlite            keep data (and CA, keys) across restarts
  d365 emulator --ready-file emu.json        write URLs, apps and users as JSON for scripts
  d365 emulator --check                      start, run the validation steps, exit
  d365 emulator --latency-ms 50 --limits requests=6000,window=300,concurrent=52 --dop-hint 8
  d365 emulator --app-users 3 --limits requests=600,window=60   three more application users, tight limits
  d365 emulator --faults 429=0.02,503=0.01,reset=0.01,truncate=0.005 --fault-seed 7")]
pub struct EmulatorArgs {
    /// TCP port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// SQLite file that keeps the data across restarts (default: in memory).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Directory for the CA, keys and app certificates (default: beside --data, or temporary).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Accounts to seed; contacts, opportunities, leads and widgets get proportional counts.
    #[arg(long, default_value_t = 50)]
    rows: usize,
    /// TOML file with the tenant, apps, users and environment settings.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    token_lifetime: u64,
    /// Fixed delay added to every Web API request, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    latency_ms: u64,
    /// Extra delay per row returned or written, in microseconds (default: 20 when --latency-ms
    /// is set, so large pages cost more like on a remote server; else 0).
    #[arg(long, value_name = "US")]
    latency_per_row_us: Option<u64>,
    /// Service-protection limits per user: requests and execution seconds per window, window
    /// seconds, concurrent requests (defaults: requests=6000,window=300,exec-seconds=1200,concurrent=52).
    #[arg(long, value_name = "LIST", value_parser = parse_limits)]
    limits: Option<d365_emulator::webapi::limits::LimitSettings>,
    /// The x-ms-dop-hint to advertise (default: 8, or the --config value).
    #[arg(long, value_name = "N")]
    dop_hint: Option<u32>,
    /// Inject faults with these probabilities, e.g. 429=0.02,503=0.01,reset=0.01,truncate=0.005,slow=0.01.
    #[arg(long, value_name = "LIST")]
    faults: Option<String>,
    /// Seed of the fault generator (same seed, same faults for the same request order).
    #[arg(long, default_value_t = 1, value_name = "N")]
    fault_seed: u64,
    /// Extra application users worker-1 ... worker-N (client secrets in the ready output), each
    /// with its own service-protection budget: for scaled-out exports (d365 plan --help).
    #[arg(long, value_name = "N", default_value_t = 0)]
    app_users: usize,
    /// Sign this user in automatically on the sign-in and device-code pages (for scripts and tests).
    #[arg(long, value_name = "USER")]
    auto_approve: Option<String>,
    /// Write the connection facts as JSON to this file once ready.
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
    /// Start, run the seed guides' validation steps over HTTPS (token, WhoAmI, CRUD, 403), exit.
    #[arg(long)]
    check: bool,
    /// Log every request.
    #[arg(long)]
    verbose: bool,
}

pub async fn run(args: EmulatorArgs) -> anyhow::Result<ExitCode> {
    let filter = if args.verbose { "info,d365_emulator=info" } else { "warn" };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()))
        .with_writer(std::io::stderr)
        .try_init();
    let faults = match &args.faults {
        Some(text) => d365_emulator::webapi::faults::FaultSettings::parse(text, args.fault_seed)
            .map_err(|e| anyhow::anyhow!("--faults {text}: {e}"))?,
        None => Default::default(),
    };
    let options = EmulatorOptions {
        port: args.port,
        data: args.data.clone(),
        state_dir: args.state_dir.clone(),
        rows: args.rows,
        config: args.config.clone(),
        token_lifetime: Duration::from_secs(args.token_lifetime),
        latency: Duration::from_millis(args.latency_ms),
        latency_per_row: Duration::from_micros(args.latency_per_row_us.unwrap_or(if args.latency_ms > 0 {
            DEFAULT_ROW_COST_US
        } else {
            0
        })),
        auto_approve: args.auto_approve.clone(),
        verbose: args.verbose,
        limits: args.limits.unwrap_or_default(),
        faults,
        dop_hint: args.dop_hint,
        app_users: args.app_users,
        ..EmulatorOptions::default()
    };
    let started = Instant::now();
    let emu = Emulator::start(options).await.context("the emulator could not start")?;
    let ready = emu.ready().clone();
    if let Some(path) = &args.ready_file {
        let json = serde_json::to_string_pretty(&ready)?;
        write_private(path, json.as_bytes())
            .with_context(|| format!("cannot write the ready file {}", path.display()))?;
    }
    if args.check {
        note!("emulator started in {:.1} s ({} accounts)", started.elapsed().as_secs_f64(), args.rows);
        let ok = check(&ready).await;
        emu.shutdown().await;
        return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(crate::EXIT_SERVICE) });
    }
    say!("{}", ready.render());
    say!("Started in {:.1} s. Press Ctrl-C to stop.", started.elapsed().as_secs_f64());
    stop_signal().await?;
    note!("stopping…");
    emu.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Waits for Ctrl-C or, on Unix, SIGTERM (what `kill`, shell traps and service managers
/// send), so the emulator shuts down and removes its temporary files either way.
async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot listen for Ctrl-C")?,
            _ = term.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("cannot listen for Ctrl-C")
    }
}

fn parse_limits(text: &str) -> Result<d365_emulator::webapi::limits::LimitSettings, String> {
    d365_emulator::webapi::limits::LimitSettings::parse(text)
}

/// The seed guides' validation steps, as an external client would run them.
async fn check(ready: &d365_emulator::ReadyInfo) -> bool {
    let mut ok = true;
    let mut step = |name: &str, r: anyhow::Result<String>| match r {
        Ok(detail) => say!("  ok    {name:<52} {detail}"),
        Err(e) => {
            ok = false;
            say!("  FAIL  {name:<52} {e:#}");
        }
    };
    let http = match client(ready) {
        Ok(c) => c,
        Err(e) => {
            step("trust the emulator CA", Err(e));
            return false;
        }
    };
    let scope = format!("{}/.default", ready.org_url);
    let token = crate::emulator_fno_check::entra_token(&http, ready, "integration", &scope).await;
    let token = match token {
        Ok(t) => {
            step("token by client credentials (secret)", Ok("access token issued".into()));
            t
        }
        Err(e) => {
            step("token by client credentials (secret)", Err(e));
            return false;
        }
    };
    let api = |p: &str| format!("{}/{p}", ready.webapi);
    let who = async {
        let r = http.get(api("WhoAmI")).bearer_auth(&token).send().await?.error_for_status()?;
        let b: serde_json::Value = r.json().await?;
        Ok(format!("UserId {}", b["UserId"].as_str().unwrap_or("?")))
    }
    .await;
    step("WhoAmI", who);
    let crud = async {
        let r = http
            .post(api("contacts"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"firstname": "Check", "lastname": "Contact"}))
            .send()
            .await?;
        if r.status() != 204 {
            bail!("create answered {}", r.status());
        }
        let entity =
            r.headers().get("OData-EntityId").and_then(|v| v.to_str().ok()).context("no OData-EntityId")?.to_string();
        http.patch(&entity)
            .bearer_auth(&token)
            .json(&serde_json::json!({"jobtitle": "Tester"}))
            .send()
            .await?
            .error_for_status()?;
        http.get(&entity).bearer_auth(&token).send().await?.error_for_status()?;
        http.delete(&entity).bearer_auth(&token).send().await?.error_for_status()?;
        Ok("create, read, update, delete".to_string())
    }
    .await;
    step("CRUD on a permitted table (contacts)", crud);
    let forbidden = async {
        let r = http
            .post(api("new_widgets"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"new_name": "nope"}))
            .send()
            .await?;
        if r.status() != 403 {
            bail!("expected 403, got {}", r.status());
        }
        let b: serde_json::Value = r.json().await?;
        Ok(format!("403 {}", b["error"]["code"].as_str().unwrap_or("?")))
    }
    .await;
    step("least privilege: create on new_widgets", forbidden);
    let paging = async {
        let started = Instant::now();
        let mut url = api("accounts?$select=name,revenue");
        let (mut rows, mut pages) = (0usize, 0usize);
        loop {
            let r = http
                .get(&url)
                .bearer_auth(&token)
                .header("Prefer", "odata.maxpagesize=5000")
                .send()
                .await?
                .error_for_status()?;
            let b: serde_json::Value = r.json().await?;
            rows += b["value"].as_array().map(Vec::len).unwrap_or(0);
            pages += 1;
            match b["@odata.nextLink"].as_str() {
                Some(n) => url = n.to_string(),
                None => break,
            }
        }
        Ok(format!("{rows} rows in {pages} pages, {:.0} ms", started.elapsed().as_secs_f64() * 1000.0))
    }
    .await;
    step("read all accounts following @odata.nextLink", paging);
    let query = async {
        let url = api("accounts?$select=name&$filter=statecode eq 0 and contains(name,'a')&$orderby=name&$top=3\
             &$expand=primarycontactid($select=fullname)");
        let r = http.get(&url).bearer_auth(&token).send().await?.error_for_status()?;
        let b: serde_json::Value = r.json().await?;
        let n = b["value"].as_array().map(Vec::len).unwrap_or(0);
        let r = http
            .get(api("accounts?$apply=groupby((statecode),aggregate($count as count))"))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?;
        let g: serde_json::Value = r.json().await?;
        let groups = g["value"].as_array().map(Vec::len).unwrap_or(0);
        Ok(format!("$filter+$expand: {n} rows; $apply groupby: {groups} groups"))
    }
    .await;
    step("query options ($filter, $orderby, $expand, $apply)", query);
    crate::emulator_fno_check::check(&http, ready, &mut step).await;
    ok
}

fn client(ready: &d365_emulator::ReadyInfo) -> anyhow::Result<reqwest::Client> {
    let pem = std::fs::read(&ready.ca_pem).with_context(|| format!("cannot read {}", ready.ca_pem.display()))?;
    let ca = reqwest::Certificate::from_pem(&pem)?;
    Ok(reqwest::Client::builder().tls_certs_only([ca]).timeout(Duration::from_secs(60)).build()?)
}

/// Writes `bytes` to `path` readable by its owner only (the ready file holds the test apps'
/// client secrets), replacing the file in one rename so a reader never sees half of it.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    written.and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
