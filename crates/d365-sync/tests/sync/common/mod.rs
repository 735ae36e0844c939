//! Shared by the end-to-end tests: an emulator over HTTPS, clients of the integration app
//! with tokens minted by client credentials (re-minted after a 401), ground truth read from
//! the emulator's own SQLite, and a checksum of exported rows.
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use d365_auth::StaticTokenProvider;
use d365_client::{AccessToken, AuthError, ClientOptions, DataverseClient, ManualClock, RetryConfig, TokenProvider};
use d365_emulator::webapi::faults::FaultSettings;
use d365_emulator::{Emulator, EmulatorOptions};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

/// The fault rates of issue 5.
pub const FAULTS: &str = "429=0.02,503=0.01,reset=0.01,truncate=0.005";

pub struct Env {
    pub emu: Emulator,
    pub ca_pem: Vec<u8>,
    pub minter: Arc<Minter>,
}

pub async fn start(rows: usize, faults: Option<&str>, latency: Duration) -> Env {
    let faults = match faults {
        Some(f) => FaultSettings::parse(f, 5).expect("fault settings"),
        None => FaultSettings::default(),
    };
    let emu = Emulator::start(EmulatorOptions { rows, faults, latency, ..Default::default() })
        .await
        .expect("emulator starts");
    let ca_pem = std::fs::read(&emu.ready().ca_pem).expect("CA file");
    let minter = Arc::new(Minter::new(&emu, &ca_pem));
    Env { emu, ca_pem, minter }
}

impl Env {
    pub fn options(&self) -> ClientOptions {
        ClientOptions {
            extra_ca_pem: Some(self.ca_pem.clone()),
            retry: RetryConfig { max_retries: 15, ..RetryConfig::default() },
            ..ClientOptions::new(self.emu.ready().org_url.clone())
        }
    }

    /// A client whose retry waits run on a manual clock (no real sleeping for Retry-After).
    pub fn client(&self) -> (DataverseClient, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let options = ClientOptions { clock: clock.clone(), ..self.options() };
        (DataverseClient::new(options, self.minter.clone()).expect("client"), clock)
    }

    /// Runs SQL on the emulator's store.
    pub fn sql(&self, sql: &str) {
        self.emu.state().store.with_conn(|c| c.execute_batch(sql)).expect("store").expect("sql runs");
    }

    /// (id, name) of every account, from the emulator's store.
    pub fn accounts(&self) -> Vec<(String, String)> {
        self.emu
            .state()
            .store
            .with_conn(|c| {
                let mut st = c.prepare("SELECT accountid, coalesce(name, '') FROM account")?;
                let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .expect("store")
            .expect("query")
    }
}

/// Count and order-independent checksum of (id, name) pairs; panics on a duplicate id.
pub fn checksum<'a>(rows: impl IntoIterator<Item = (&'a str, &'a str)>) -> (usize, u64) {
    let mut seen = HashSet::new();
    let mut sum = 0u64;
    for (id, name) in rows {
        let id = id.to_ascii_lowercase();
        assert!(seen.insert(id.clone()), "row {id} arrived twice");
        // FNV-1a of "id|name", added up (order does not matter).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in id.bytes().chain(*b"|").chain(name.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        sum = sum.wrapping_add(h);
    }
    (seen.len(), sum)
}

pub fn row_pair(row: &Map<String, Value>) -> (&str, &str) {
    (row["accountid"].as_str().expect("accountid"), row.get("name").and_then(Value::as_str).unwrap_or(""))
}

/// Mints tokens of the integration app by client credentials; mints again after a 401 (e.g.
/// once the emulator clock moved past the token's expiry).
#[derive(Debug)]
pub struct Minter {
    http: reqwest::Client,
    url: String,
    form: Vec<(String, String)>,
    current: Mutex<Option<AccessToken>>,
}

impl Minter {
    fn new(emu: &Emulator, ca_pem: &[u8]) -> Self {
        let ready = emu.ready();
        let app = ready.app("integration").expect("integration app");
        let ca = reqwest::Certificate::from_pem(ca_pem).expect("CA");
        Self {
            http: reqwest::Client::builder().tls_certs_only([ca]).build().expect("http"),
            url: format!("{}/{}/oauth2/v2.0/token", ready.authority, ready.tenant_id),
            form: vec![
                ("grant_type".into(), "client_credentials".into()),
                ("client_id".into(), app.client_id.clone()),
                ("client_secret".into(), app.client_secret.clone().expect("secret")),
                ("scope".into(), format!("{}/.default", ready.org_url)),
            ],
            current: Mutex::new(None),
        }
    }

    pub async fn mint(&self) -> Result<AccessToken, AuthError> {
        let r = self.http.post(&self.url).form(&self.form).send().await.map_err(|_| AuthError::GivenTokenRejected)?;
        let body: Value = r.json().await.map_err(|_| AuthError::GivenTokenRejected)?;
        let secret = body["access_token"].as_str().ok_or(AuthError::GivenTokenRejected)?;
        Ok(AccessToken::new(secret.to_string(), None))
    }
}

#[async_trait::async_trait]
impl TokenProvider for Minter {
    async fn token(&self) -> Result<AccessToken, AuthError> {
        let mut cur = self.current.lock().await;
        if let Some(t) = cur.as_ref() {
            return Ok(t.clone());
        }
        let t = self.mint().await?;
        *cur = Some(t.clone());
        Ok(t)
    }

    async fn refresh_after_rejection(&self, rejected: &AccessToken) -> Result<AccessToken, AuthError> {
        let mut cur = self.current.lock().await;
        if let Some(t) = cur.as_ref()
            && t.secret() != rejected.secret()
        {
            return Ok(t.clone());
        }
        let t = self.mint().await?;
        *cur = Some(t.clone());
        Ok(t)
    }

    fn flow_name(&self) -> &'static str {
        "test_client_credentials"
    }
}

impl Env {
    /// (id, lastname) of every contact, sorted, from the emulator's store.
    pub fn contacts(&self) -> Vec<(String, String)> {
        source::contacts(&self.emu)
    }
}

/// An emulator with these options (plus the CA and a token minter).
pub async fn start_with(options: EmulatorOptions) -> Env {
    let emu = Emulator::start(options).await.expect("emulator starts");
    let ca_pem = std::fs::read(&emu.ready().ca_pem).expect("CA file");
    let minter = Arc::new(Minter::new(&emu, &ca_pem));
    Env { emu, ca_pem, minter }
}
pub mod azurite;
pub mod dies;
pub mod moto;
pub mod postgres;
pub mod source;

/// A client of a child test process, from its JSON spec (`org_url`, `ca_pem`, `token`).
pub fn spec_client(spec: &Value) -> DataverseClient {
    let s = |k: &str| spec[k].as_str().expect(k).to_string();
    let options = ClientOptions {
        extra_ca_pem: Some(std::fs::read(s("ca_pem")).expect("CA")),
        clock: std::sync::Arc::new(ManualClock::new()),
        retry: RetryConfig { max_retries: 15, ..RetryConfig::default() },
        ..ClientOptions::new(s("org_url"))
    };
    let tokens = std::sync::Arc::new(StaticTokenProvider::new(AccessToken::new(s("token"), None)));
    DataverseClient::new(options, tokens).expect("client")
}

/// Runs this test binary's `entry` test in a child process with `spec` in the environment
/// variable `var`, waits until the export checkpoint at `checkpoint` covers `rows` rows, then
/// kills the child with SIGKILL (a child that ends or stalls first fails the test).
pub async fn run_child_and_kill(entry: &str, var: &str, spec: &Value, checkpoint: &std::path::Path, rows: u64) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([entry, "--exact", "--nocapture", "--test-threads=1"])
        .env(var, spec.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("child starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        assert!(std::time::Instant::now() < deadline, "the child made no progress");
        if let Ok(Some(c)) = d365_sync::Checkpoint::load(checkpoint)
            && c.rows() >= rows
        {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the child ended before it was killed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed: {status:?}");
}
