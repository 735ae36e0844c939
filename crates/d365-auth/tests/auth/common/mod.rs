//! Shared helpers of the end-to-end tests: an in-process emulator over HTTPS, connection
//! strings pointing at it, an isolated environment (config dir, store key), and a test
//! "browser" that follows the sign-in redirects to the loopback listener.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use d365_auth::clock::{Clock, ManualClock};
use d365_auth::options::{BrowserOpener, DeviceCodePrompt};
use d365_auth::{ConnectionConfig, Environment, Interactive, ProviderOptions};
use d365_emulator::{Emulator, EmulatorOptions};

pub const SECRET: &str = "emu~integration~secret~0001";
pub const EXPIRED_SECRET: &str = "emu~integration~expired~0000";
pub const INTEGRATION: &str = "3c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e01";
pub const CERTIFICATE: &str = "3c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e02";
pub const DESKTOP: &str = "3c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e03";
pub const UNCONSENTED: &str = "3c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e04";
pub const SALES: &str = "sales@contoso.onmicrosoft.com";
pub const ADMIN: &str = "admin@contoso.onmicrosoft.com";
pub const SALES_SYSTEMUSER: &str = "4026be43-6b69-4111-8f65-78e7d1620f02";
/// A 32-byte store key in base64.
pub const STORE_KEY: &str = "ZDM2NS10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE=";

pub struct Env {
    pub emu: Emulator,
    pub dir: tempfile::TempDir,
    pub clock: ManualClock,
    pub http: reqwest::Client,
}

pub async fn start_with(options: EmulatorOptions) -> Env {
    let emu = Emulator::start(EmulatorOptions { rows: 0, ..options }).await.expect("emulator starts");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&emu.ready().ca_pem).unwrap()).unwrap();
    let http =
        reqwest::Client::builder().tls_certs_only([ca]).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Env { emu, dir: tempfile::tempdir().unwrap(), clock: ManualClock::new(), http }
}

pub async fn start() -> Env {
    start_with(EmulatorOptions::default()).await
}

pub async fn start_auto(user: &str) -> Env {
    start_with(EmulatorOptions { auto_approve: Some(user.into()), ..Default::default() }).await
}

impl Env {
    pub fn tenant(&self) -> String {
        self.emu.ready().tenant_id.clone()
    }

    pub fn org(&self) -> String {
        self.emu.ready().org_url.clone()
    }

    /// `OrganizationUrl`, `AzureAuthorityHost` and `SSLServerCert` for this emulator.
    pub fn base(&self) -> String {
        let r = self.emu.ready();
        format!(
            "OrganizationUrl={};AzureAuthorityHost={};SSLServerCert={};",
            r.org_url,
            r.authority,
            r.ca_pem.display()
        )
    }

    /// The environment: only a config dir and a store key (nothing from the process).
    pub fn environment(&self) -> Environment {
        Environment::empty()
            .with("D365_CONFIG_DIR", self.dir.path().join("config").to_str().unwrap())
            .with("D365_TOKEN_KEY", STORE_KEY)
    }

    pub fn config(&self, rest: &str) -> ConnectionConfig {
        ConnectionConfig::parse(&format!("{}{rest}", self.base()), &self.environment()).expect("connection string")
    }

    pub fn options(&self) -> ProviderOptions {
        ProviderOptions::new(self.environment())
            .with_clock(Arc::new(self.clock.clone()))
            .with_interactive(Interactive::Never)
    }

    /// Moves both our clock and the emulator's.
    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
        self.emu.state().clock.advance(secs as i64);
    }

    /// `WhoAmI` with `token`: the UserId, or the HTTP status as an error.
    pub async fn whoami(&self, token: &str) -> Result<String, u16> {
        let r = self.http.get(format!("{}/WhoAmI", self.emu.ready().webapi)).bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        if status != 200 {
            return Err(status);
        }
        let v: serde_json::Value = r.json().await.unwrap();
        Ok(v["UserId"].as_str().unwrap().to_string())
    }

    /// GETs `url` without following redirects; the `Location` of the 302.
    pub async fn location(&self, url: &str) -> url::Url {
        let r = self.http.get(url).send().await.unwrap();
        let status = r.status();
        let loc = r.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        let text = r.text().await.unwrap_or_default();
        url::Url::parse(&loc.unwrap_or_else(|| panic!("no redirect ({status}): {text}"))).unwrap()
    }

    /// A test browser: GETs the sign-in URL and follows redirects (to the loopback listener).
    /// `rewrite` may change the URL first. Fails with the page text when the sign-in page
    /// answers an error instead of redirecting. Counts its uses in `opened`.
    pub fn browser(&self, opened: Arc<AtomicUsize>, rewrite: fn(String) -> String) -> BrowserOpener {
        let ca = std::fs::read(&self.emu.ready().ca_pem).unwrap();
        Arc::new(move |url: String| {
            opened.fetch_add(1, Ordering::SeqCst);
            let ca = ca.clone();
            Box::pin(async move {
                let ca = reqwest::Certificate::from_pem(&ca).map_err(|e| e.to_string())?;
                let client =
                    reqwest::Client::builder().tls_certs_only([ca]).no_proxy().build().map_err(|e| e.to_string())?;
                let r = client.get(rewrite(url)).send().await.map_err(|e| e.to_string())?;
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                if status.is_success() { Ok(()) } else { Err(format!("the sign-in page answered {status}: {text}")) }
            })
        })
    }
}

/// Options for a browser sign-in through the test browser.
pub fn browser_options(env: &Env, opened: Arc<AtomicUsize>) -> ProviderOptions {
    let mut o = env.options().with_interactive(Interactive::Browser).with_browser(env.browser(opened, |u| u));
    o.on_sign_in_url = Arc::new(|_| {});
    o.sign_in_timeout = Duration::from_secs(20);
    o
}

/// A sink that records device-code prompts.
pub fn prompts() -> (Arc<std::sync::Mutex<Vec<DeviceCodePrompt>>>, d365_auth::options::DeviceCodeSink) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    (seen, Arc::new(move |p: &DeviceCodePrompt| s.lock().unwrap().push(p.clone())))
}

/// The code of an auto-approved authorize request for `client` redirected to `redirect`.
pub async fn auto_code(env: &Env, authorize_url: &str) -> String {
    let loc = env.location(authorize_url).await;
    loc.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {loc}"))
}

/// A clock whose sleeps move both our clock and the emulator's (and really wait a little).
#[derive(Debug, Clone)]
pub struct BothClocks {
    pub ours: ManualClock,
    pub emulator: d365_emulator::Clock,
}

impl Clock for BothClocks {
    fn now(&self) -> time::OffsetDateTime {
        self.ours.now()
    }

    fn sleep(&self, d: Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        self.ours.advance(d);
        self.emulator.advance(d.as_secs() as i64);
        Box::pin(tokio::time::sleep(Duration::from_millis(20)))
    }
}
