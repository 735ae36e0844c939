//! An Azurite Blob server (Microsoft's Azure Storage emulator, a real HTTP server installed
//! from npm by `scripts/test-all.sh` into `.tools/`) for the `az://` tests of `d365-sync`.
//!
//! Without Azurite the tests skip with a message, unless `D365_AZURE_TEST=require` (set by
//! `scripts/test-all.sh`, which installs it), where they fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's well-known development account and its key (public, the same in every
/// installation: <https://learn.microsoft.com/azure/storage/common/storage-use-azurite>).
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// An Azurite Blob server on a free port with its data in a temporary directory, stopped
/// when dropped.
pub struct Azurite {
    child: Child,
    pub port: u16,
    _data: tempfile::TempDir,
}

fn binary() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("D365_AZURITE").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/node_modules/.bin/azurite-blob")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

impl Azurite {
    pub fn start() -> Option<Self> {
        let Some(bin) = binary() else {
            assert!(
                std::env::var("D365_AZURE_TEST").as_deref() != Ok("require"),
                "D365_AZURE_TEST=require but azurite-blob was not found (.tools/node_modules/.bin or D365_AZURITE)"
            );
            eprintln!("SKIPPED: no Azurite (npm install --prefix .tools azurite)");
            return None;
        };
        let data = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--silent", "--disableTelemetry"])
            .arg("--location")
            .arg(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite starts");
        let azurite = Self { child, port, _data: data };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "azurite did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(azurite)
    }

    /// `object_store` settings for this server: the development account over plain HTTP.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("azure_storage_account_name", ACCOUNT.to_string()),
            ("azure_storage_account_key", KEY.to_string()),
            ("azure_storage_endpoint", format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)),
            ("azure_allow_http", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Creates a container: one shared-key signed PUT (Azurite starts with none, and
    /// `object_store` has no call for it).
    pub async fn create_container(&self, name: &str) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let version = "2021-08-06";
        // VERB, eleven empty standard headers, the x-ms-* headers, the resource (the account
        // twice: once for the signature, once in Azurite's path-style URL).
        let to_sign = format!(
            "PUT\n{}x-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container",
            "\n".repeat(11)
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &b64.decode(KEY).unwrap());
        let signature = b64.encode(ring::hmac::sign(&key, to_sign.as_bytes()));
        let url = format!("http://127.0.0.1:{}/{ACCOUNT}/{name}?restype=container", self.port);
        let r = reqwest::Client::new()
            .put(url)
            .header("x-ms-date", date)
            .header("x-ms-version", version)
            .header("Authorization", format!("SharedKey {ACCOUNT}:{signature}"))
            .header("Content-Length", "0")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "container {name}: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
