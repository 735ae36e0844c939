//! Shared helpers of the CLI tests: an in-process emulator over HTTPS, connection strings for
//! it, and the built `d365` binary run with an isolated environment (its own HOME, config
//! directory and token key; nothing inherited but PATH) and a time limit.
#![allow(dead_code)]

#[path = "../../../../d365-sync/tests/sync/common/source.rs"]
pub mod source;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use d365_emulator::{Emulator, EmulatorOptions};

pub const SECRET: &str = "emu~integration~secret~0001";
pub const INTEGRATION: &str = "3c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e01";
pub const DESKTOP: &str = "3c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e03";
pub const SALES: &str = "sales@contoso.onmicrosoft.com";
pub const SALES_PASSWORD: &str = "Sales#Pass1";
pub const ADMIN: &str = "admin@contoso.onmicrosoft.com";
/// The Salesperson user's systemuserid.
pub const SALES_SYSTEMUSER: &str = "4026be43-6b69-4111-8f65-78e7d1620f02";
/// A 32-byte token-store key in base64 (tests only).
pub const STORE_KEY: &str = "ZDM2NS10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE=";
/// How long one `d365` run may take before the test fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(120);

/// An emulator and a scratch directory (config dir, settings files).
pub struct Env {
    pub emu: Emulator,
    pub dir: tempfile::TempDir,
}

pub async fn start_with(options: EmulatorOptions) -> Env {
    let emu = Emulator::start(options).await.expect("the emulator starts");
    Env { emu, dir: tempfile::tempdir().expect("a temporary directory") }
}

/// An emulator with a few rows and no auto-approve.
pub async fn start() -> Env {
    start_with(EmulatorOptions { rows: 20, ..Default::default() }).await
}

/// An emulator that signs `user` in on the sign-in and device-code pages by itself.
pub async fn start_auto(user: &str) -> Env {
    start_with(EmulatorOptions { rows: 20, auto_approve: Some(user.into()), ..Default::default() }).await
}

/// What a `d365` run printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// Asserts stdout + stderr contain `needle`.
    pub fn expect_output(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "output lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts neither stdout nor stderr contains `secret`.
    pub fn expect_no(&self, secret: &str) -> &Self {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "output shows {secret:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl Env {
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

    /// The integration app with its client secret (least privilege).
    pub fn secret_connection(&self, secret: &str) -> String {
        format!(
            "{}AuthScheme=AzureServicePrincipal;AzureTenant={};OAuthClientId={INTEGRATION};OAuthClientSecret={secret}",
            self.base(),
            self.emu.ready().tenant_id
        )
    }

    /// The public desktop app signing a user in, tokens in `settings`.
    pub fn desktop_connection(&self, settings: &Path) -> String {
        format!(
            "{}AuthScheme=AzureAD;InitiateOAuth=GETANDREFRESH;OAuthClientId={DESKTOP};CallbackURL=http://localhost;\
             OAuthSettingsLocation={}",
            self.base(),
            settings.display()
        )
    }

    /// (lower-case contactid, lastname or '') of the emulator's contacts, sorted: what a copy
    /// of `contact` must hold.
    pub fn contacts(&self) -> Vec<(String, String)> {
        source::contacts(&self.emu)
    }

    /// A path in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A `d365` command with the isolated environment and `connection` in `D365_CONNECTION`.
    pub fn d365(&self, connection: Option<&str>, args: &[&str]) -> D365 {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_d365"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("D365_CONFIG_DIR", self.path("config"))
            .env("D365_TOKEN_KEY", STORE_KEY)
            // a sign-in these tests do not expect fails at once instead of waiting for a browser
            .env("D365_BROWSER", "/nonexistent/d365-test-no-browser")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(c) = connection {
            cmd.env("D365_CONNECTION", c);
        }
        D365 { cmd }
    }
}

/// A `d365` command about to run.
pub struct D365 {
    pub cmd: tokio::process::Command,
}

impl D365 {
    /// Runs the command in `dir`.
    pub fn current_dir(mut self, dir: &std::path::Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    /// Runs it to completion (at most [`RUN_LIMIT`]).
    pub async fn run(mut self) -> Run {
        let child = self.cmd.spawn().expect("the d365 binary starts");
        let out = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("d365 did not finish within {RUN_LIMIT:?}"))
            .expect("d365 output");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// An HTTPS client trusting the emulator's CA, not following redirects.
pub fn http(env: &Env) -> reqwest::Client {
    let pem = std::fs::read(&env.emu.ready().ca_pem).expect("the CA file");
    let ca = reqwest::Certificate::from_pem(&pem).expect("the CA parses");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("an HTTPS client")
}

/// (contactid, lastname or '') of the Delta table `contact` under `location`, sorted, read back
/// through `deltalake`; empty when no version was committed.
pub async fn delta_contacts(location: &d365_sync::DeltaLocation) -> Vec<(String, String)> {
    use d365_sync::deltalake::arrow::array::{Array, StringArray};
    use d365_sync::deltalake::arrow::compute::cast;
    use d365_sync::deltalake::arrow::datatypes::DataType;
    use d365_sync::deltalake::datafusion::prelude::SessionContext;

    let table = location.open(&location.table_url("contact")).await.unwrap();
    if table.version().is_none() {
        return Vec::new();
    }
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).unwrap();
    ctx.register_table("t", table.table_provider().await.unwrap()).unwrap();
    let sql = "SELECT contactid, coalesce(lastname, '') FROM t ORDER BY 1, 2";
    let mut rows = Vec::new();
    for b in ctx.sql(sql).await.unwrap().collect().await.unwrap() {
        let text = |i: usize| cast(b.column(i), &DataType::Utf8).unwrap();
        let (ids, names) = (text(0), text(1));
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        let names = names.as_any().downcast_ref::<StringArray>().unwrap();
        rows.extend((0..ids.len()).map(|i| (ids.value(i).to_string(), names.value(i).to_string())));
    }
    rows
}
