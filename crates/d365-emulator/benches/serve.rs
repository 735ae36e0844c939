//! Emulator load benchmark: seed time, page throughput and memory of a served table.
//!
//! `cargo bench -p d365-emulator --bench serve -- [ROWS]` (default 1,000,000). The emulator runs
//! in a child process (this binary re-executed), so its peak RSS is measured alone; this
//! process is the client: it gets a token by client credentials and pages through `accounts`
//! with `Prefer: odata.maxpagesize=5000`, following `@odata.nextLink`, over HTTPS.

use std::io::Read;
use std::time::{Duration, Instant};

const CHILD: &str = "D365_EMULATOR_BENCH_CHILD";

fn main() {
    let rows: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    if let Ok(ready_file) = std::env::var(CHILD) {
        child(rows, &ready_file);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(parent(rows));
}

fn child(rows: usize, ready_file: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let emu = d365_emulator::Emulator::start(d365_emulator::EmulatorOptions { rows, ..Default::default() })
            .await
            .expect("emulator starts");
        let json = serde_json::to_string(emu.ready()).expect("ready info serialises");
        std::fs::write(format!("{ready_file}.tmp"), json).expect("ready file");
        std::fs::rename(format!("{ready_file}.tmp"), ready_file).expect("ready file");
        // Serve until the parent kills us.
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
}

fn memchr_count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

fn next_link(body: &[u8]) -> Option<String> {
    let key = b"\"@odata.nextLink\":";
    let tail = &body[body.len().saturating_sub(4096)..];
    let at = tail.windows(key.len()).rposition(|w| w == key)?;
    let v: serde_json::Value = serde_json::from_slice(&tail[at + key.len()..tail.len() - 1]).ok()?;
    v.as_str().map(str::to_string)
}

fn status_kb(pid: u32, key: &str) -> u64 {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(format!("/proc/{pid}/status")) {
        let _ = f.read_to_string(&mut s);
    }
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the command: state=0, ..., utime=11, stime=12.
    (ticks(11) + ticks(12)) / 100.0
}

async fn parent(rows: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ready_file = dir.path().join("ready.json");
    let exe = std::env::current_exe().expect("own path");
    let started = Instant::now();
    let mut child =
        std::process::Command::new(exe).arg(rows.to_string()).env(CHILD, &ready_file).spawn().expect("child starts");
    let pid = child.id();
    while !ready_file.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("emulator exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seed = started.elapsed();
    let ready: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready_file).unwrap()).unwrap();
    let rss_after_seed = status_kb(pid, "VmRSS:");
    let seed_cpu = cpu_seconds(pid);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ready["ca_pem"].as_str().unwrap()).unwrap()).unwrap();
    let http = reqwest::Client::builder().tls_certs_only([ca]).build().unwrap();
    let app = ready["apps"].as_array().unwrap().iter().find(|a| a["client_secret"].is_string()).unwrap();
    let token_url =
        format!("{}/{}/oauth2/v2.0/token", ready["authority"].as_str().unwrap(), ready["tenant_id"].as_str().unwrap());
    let org = ready["org_url"].as_str().unwrap();
    let tok: serde_json::Value = http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app["client_id"].as_str().unwrap()),
            ("client_secret", app["client_secret"].as_str().unwrap()),
            ("scope", &format!("{org}/.default")),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().expect("token").to_string();
    let webapi = ready["webapi"].as_str().unwrap().to_string();

    println!(
        "emulator: {rows} accounts seeded (+ related tables), ready in {:.1} s wall, {seed_cpu:.1} s CPU, RSS {} MB (load average {})",
        seed.as_secs_f64(),
        rss_after_seed / 1024,
        load.split_whitespace().next().unwrap_or("?")
    );
    for (label, prefer) in [
        ("all columns", "odata.maxpagesize=5000".to_string()),
        ("all columns + annotations", "odata.maxpagesize=5000,odata.include-annotations=\"*\"".to_string()),
    ] {
        let cpu0 = cpu_seconds(pid);
        let t0 = Instant::now();
        let (mut n, mut pages, mut bytes) = (0usize, 0usize, 0usize);
        let mut url = format!("{webapi}/accounts");
        loop {
            let r = http.get(&url).bearer_auth(&token).header("Prefer", &prefer).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            let body = r.bytes().await.unwrap();
            bytes += body.len();
            // A light client, so the figure is the server's: count rows by their ETags and
            // take the next link from the end of the body (full parsing is in the test suite).
            n += memchr_count(&body, b"\"@odata.etag\"");
            pages += 1;
            match next_link(&body) {
                Some(next) => url = next,
                None => break,
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds(pid) - cpu0;
        assert_eq!(n, rows, "every account exactly once");
        println!(
            "paging accounts ({label}): {n} rows in {pages} pages, {:.1} s, {:.0} rows/s, {:.0} MB/s, emulator CPU {:.1} s ({:.1} µs/row)",
            secs,
            n as f64 / secs,
            bytes as f64 / secs / 1e6,
            cpu,
            cpu * 1e6 / n as f64
        );
    }
    println!("emulator peak RSS: {} MB (VmHWM)", status_kb(pid, "VmHWM:") / 1024);
    let _ = child.kill();
    let _ = child.wait();
}
