//! Export benchmark against the emulator: sequential nextLink paging vs the parallel export,
//! and the ceiling the emulator's (default) service-protection limits allow.
//!
//! `cargo bench -p d365-sync --bench export -- [ROWS] [--latency-ms N] [--per-row-us N]
//! [--page-size N] [--parallel N] [--select a,b,c]` (defaults: 200,000 rows, 100 ms, 20 µs per
//! row as `d365 emulator --latency-ms` adds, 5000, adaptive, ten columns). The emulator runs in
//! a child process (this binary re-executed) with the default limits (6000 requests and 1200 s
//! per 300 s, 52 concurrent), so it does not share this process's runtime, as a real service
//! would not. `D365_BENCH_TIMELINE=1` prints every request's start and end on stderr.

use std::sync::Arc;
use std::time::{Duration, Instant};

use d365_client::{AccessToken, ClientOptions, DataverseClient};
use d365_sync::bench::{BenchOptions, Limits, run};

const DEFAULT_SELECT: &str =
    "accountid,name,accountnumber,revenue,numberofemployees,address1_city,telephone1,emailaddress1,statecode,createdon";
const CHILD: &str = "D365_SYNC_BENCH_EMULATOR";

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(200_000);
    let latency_ms: u64 = arg(&args, "--latency-ms").unwrap_or(100);
    let per_row_us: u64 = arg(&args, "--per-row-us").unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    if let Ok(ready_file) = std::env::var(CHILD) {
        rt.block_on(emulator(rows, latency_ms, per_row_us, &ready_file));
        return;
    }
    let page_size: u32 = arg(&args, "--page-size").unwrap_or(5000);
    let parallel: Option<usize> = arg(&args, "--parallel");
    let select: String = arg(&args, "--select").unwrap_or_else(|| DEFAULT_SELECT.to_string());
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("temp dir");
        let ready_file = dir.path().join("ready.json");
        let t0 = Instant::now();
        let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
            .args(std::env::args().skip(1))
            .env(CHILD, &ready_file)
            .spawn()
            .expect("emulator process starts");
        while !ready_file.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the emulator exited early: {status}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("emulator: {rows} accounts seeded in {:.1} s (separate process)", t0.elapsed().as_secs_f64());
        let ready: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready_file).unwrap()).unwrap();
        let s = |v: &serde_json::Value| v.as_str().expect("ready file field").to_string();
        let ca_pem = std::fs::read(s(&ready["ca_pem"])).expect("CA");
        let ca = reqwest::Certificate::from_pem(&ca_pem).expect("CA");
        let http = reqwest::Client::builder().tls_certs_only([ca]).build().expect("http");
        let app = ready["apps"].as_array().unwrap().iter().find(|a| a["client_secret"].is_string()).expect("app");
        let org = s(&ready["org_url"]);
        let tok: serde_json::Value = http
            .post(format!("{}/{}/oauth2/v2.0/token", s(&ready["authority"]), s(&ready["tenant_id"])))
            .form(&[
                ("grant_type", "client_credentials".to_string()),
                ("client_id", s(&app["client_id"])),
                ("client_secret", s(&app["client_secret"])),
                ("scope", format!("{org}/.default")),
            ])
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token body");
        let token = AccessToken::new(tok["access_token"].as_str().expect("token").to_string(), None);
        let options = ClientOptions { extra_ca_pem: Some(ca_pem), ..ClientOptions::new(org) };
        let client =
            DataverseClient::new(options, Arc::new(d365_auth::StaticTokenProvider::new(token))).expect("client");
        if std::env::var_os("D365_BENCH_TIMELINE").is_some() {
            let t0 = Instant::now();
            client.request_log().set_hook(Some(Arc::new(move |e: &d365_client::RequestEvent| {
                let end = t0.elapsed();
                let start = end.saturating_sub(e.duration);
                let path: String = e.path.chars().take(90).collect();
                eprintln!("{:>7} {:>7} {} {path}", start.as_millis(), end.as_millis(), e.status.unwrap_or(0));
            })));
        }
        let report = run(
            &client,
            BenchOptions {
                table: "account".into(),
                select: select.split(',').map(str::to_string).filter(|s| !s.is_empty()).collect(),
                page_size,
                parallel,
                limits: Limits::default(),
                work_dir: dir.path().to_path_buf(),
            },
        )
        .await;
        let _ = child.kill();
        let _ = child.wait();
        let report = report.expect("benchmark");
        let given: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
        println!("command: cargo bench -p d365-sync --bench export -- {}", given.join(" "));
        println!("emulator: --latency-ms {latency_ms}, {per_row_us} µs per row, default limits");
        print!("{report}");
    });
}

async fn emulator(rows: usize, latency_ms: u64, per_row_us: u64, ready_file: &str) {
    let emu = d365_emulator::Emulator::start(d365_emulator::EmulatorOptions {
        rows,
        latency: Duration::from_millis(latency_ms),
        latency_per_row: Duration::from_micros(per_row_us),
        ..Default::default()
    })
    .await
    .expect("emulator starts");
    let json = serde_json::to_string(emu.ready()).expect("ready info");
    std::fs::write(format!("{ready_file}.tmp"), json).expect("ready file");
    std::fs::rename(format!("{ready_file}.tmp"), ready_file).expect("ready file");
    // Serve until the parent kills this process.
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
