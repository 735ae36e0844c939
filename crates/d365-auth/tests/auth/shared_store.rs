//! One settings file shared by two handles in one process and by two OS processes: when the
//! stored access token is stale, exactly one of them refreshes (the emulator revokes a refresh
//! token when it is used, so a second refresh with the same one would fail) and the other
//! reuses the new token.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use common::*;
use d365_auth::store_key::{KeySource, StoreKey};
use d365_auth::token_store::TokenStore;
use d365_auth::{ConnectionConfig, Environment, Interactive, ProviderOptions, provider_from_config};

const CHILD_CONN: &str = "D365_AUTH_TEST_CHILD_CONNECTION";
const CHILD_DIR: &str = "D365_AUTH_TEST_CHILD_CONFIG_DIR";

/// Signs in through the browser into `path`, then marks the stored access token stale.
async fn signed_in_then_stale(env: &Env, conn: &str, path: &std::path::Path) -> String {
    let cfg = env.config(conn);
    let t = provider_from_config(&cfg, &browser_options(env, Arc::new(AtomicUsize::new(0))))
        .unwrap()
        .token()
        .await
        .unwrap();
    let store = TokenStore::file(path.to_path_buf(), StoreKey::decode(STORE_KEY, KeySource::Explicit).unwrap());
    let mut guard = store.lock().await.unwrap();
    let mut data = guard.read().unwrap();
    for e in data.entries.values_mut() {
        e.expires_at = Some(env.clock.now_secs() - 10);
    }
    guard.write(&data).unwrap();
    t.secret().to_string()
}

trait NowSecs {
    fn now_secs(&self) -> i64;
}

impl NowSecs for d365_auth::clock::ManualClock {
    fn now_secs(&self) -> i64 {
        d365_auth::clock::Clock::now(self).unix_timestamp()
    }
}

/// A short fingerprint of a token (FNV-1a: enough to compare without printing the token).
fn sha(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

#[tokio::test]
async fn two_handles_in_one_process_refresh_once() {
    let env = start_auto(SALES).await;
    let path = env.dir.path().join("shared.bin");
    let conn = format!("OAuthClientId={DESKTOP};CallbackURL=http://localhost;OAuthSettingsLocation={}", path.display());
    let old = signed_in_then_stale(&env, &conn, &path).await;
    let cfg = env.config(&conn);
    let a = provider_from_config(&cfg, &env.options()).unwrap();
    let b = provider_from_config(&cfg, &env.options()).unwrap();
    let (ta, tb) =
        tokio::join!(tokio::spawn(async move { a.token().await }), tokio::spawn(async move { b.token().await }));
    let (ta, tb) = (ta.unwrap().unwrap(), tb.unwrap().unwrap());
    assert!(ta.same_token(&tb), "the second handle reused the first one's refresh");
    assert_ne!(ta.secret(), old);
    assert_eq!(env.whoami(ta.secret()).await.unwrap(), SALES_SYSTEMUSER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_settings_file() {
    let env = start_auto(SALES).await;
    let path = env.dir.path().join("shared.bin");
    let conn = format!("OAuthClientId={DESKTOP};CallbackURL=http://localhost;OAuthSettingsLocation={}", path.display());
    let old = signed_in_then_stale(&env, &conn, &path).await;
    let full = format!("{}{conn}", env.base());
    let exe = std::env::current_exe().unwrap();
    let dir = env.dir.path().join("config");
    let spawn = || {
        std::process::Command::new(&exe)
            .args([
                "--exact",
                "shared_store::child_process_gets_a_token",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_CONN, &full)
            .env(CHILD_DIR, &dir)
            .env("D365_TOKEN_KEY", STORE_KEY)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (c1, c2) = (spawn(), spawn());
    let outs = tokio::task::spawn_blocking(move || [c1.wait_with_output().unwrap(), c2.wait_with_output().unwrap()])
        .await
        .unwrap();
    let mut hashes = Vec::new();
    for o in &outs {
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "child failed: {out}\n{}", String::from_utf8_lossy(&o.stderr));
        let h = out
            .split("CHILD_TOKEN=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no token line: {out}"));
        hashes.push(h.trim().to_string());
    }
    assert_eq!(hashes[0], hashes[1], "both processes use the one refreshed token");
    assert_ne!(hashes[0], sha(&old));
}

/// Run by [`two_processes_share_one_settings_file`] in child processes; does nothing otherwise.
#[tokio::test]
#[ignore = "run as a child process by two_processes_share_one_settings_file"]
async fn child_process_gets_a_token() {
    let (Ok(conn), Ok(dir)) = (std::env::var(CHILD_CONN), std::env::var(CHILD_DIR)) else { return };
    let env = Environment::empty()
        .with("D365_CONFIG_DIR", dir)
        .with("D365_TOKEN_KEY", std::env::var("D365_TOKEN_KEY").unwrap());
    let cfg = ConnectionConfig::parse(&conn, &env).unwrap();
    let opts = ProviderOptions::new(env).with_interactive(Interactive::Never);
    let t = provider_from_config(&cfg, &opts).unwrap().token().await.unwrap();
    println!("CHILD_TOKEN={}", sha(t.secret()));
}
