//! A moto S3 server (a real HTTP server from the project's Python environment) for the
//! object-store tests of `d365-sync` and of the CLI (included there by path).
//!
//! Without moto the tests skip with a message, unless `D365_S3_TEST=require` (set by
//! `scripts/test-all.sh`, which installs it), where they fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto S3 server on a free port, stopped when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
}

fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("D365_PYTHON").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p).args(["-c", "import moto.server"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    })
}

impl Moto {
    pub fn start() -> Option<Self> {
        let Some(python) = python() else {
            assert!(
                std::env::var("D365_S3_TEST").as_deref() != Ok("require"),
                "D365_S3_TEST=require but no Python with moto[server] was found (.venv or D365_PYTHON)"
            );
            eprintln!("SKIPPED: no Python with moto[server] (pip install 'moto[server]' in .venv)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto starts");
        let moto = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(moto)
    }

    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", format!("http://127.0.0.1:{}", self.port)),
            ("aws_allow_http", "true".into()),
            ("aws_access_key_id", "testing".into()),
            ("aws_secret_access_key", "testing".into()),
            ("aws_region", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub async fn create_bucket(&self, name: &str) {
        let r = reqwest::Client::new().put(format!("http://127.0.0.1:{}/{name}", self.port)).send().await.unwrap();
        assert!(r.status().is_success(), "bucket {name}: {}", r.status());
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
