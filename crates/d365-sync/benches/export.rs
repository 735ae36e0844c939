//! Export benchmark against the emulator: sequential nextLink paging vs the parallel export,
//! and the ceiling the emulator's (default) service-protection limits allow.
//!
//! `cargo bench -p d365-sync --bench export -- [ROWS] [--latency-ms N] [--per-row-us N]
//! [--page-size N] [--parallel N] [--select a,b,c]` (defaults: 200,000 rows, 100 ms, 20 µs per
//! row as `d365 emulator --latency-ms` adds, 5000, adaptive, ten columns). The emulator runs in
//! this process with the default limits (6000 requests and 1200 s per 300 s, 52 concurrent).

use std::sync::Arc;
use std::time::{Duration, Instant};

use d365_client::{AccessToken, ClientOptions, DataverseClient};
use d365_sync::bench::{BenchOptions, Limits, run};

const DEFAULT_SELECT: &str =
    "accountid,name,accountnumber,revenue,numberofemployees,address1_city,telephone1,emailaddress1,statecode,createdon";

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(200_000);
    let latency_ms: u64 = arg(&args, "--latency-ms").unwrap_or(100);
    let per_row_us: u64 = arg(&args, "--per-row-us").unwrap_or(20);
    let page_size: u32 = arg(&args, "--page-size").unwrap_or(5000);
    let parallel: Option<usize> = arg(&args, "--parallel");
    let select: String = arg(&args, "--select").unwrap_or_else(|| DEFAULT_SELECT.to_string());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let t0 = Instant::now();
        let emu = d365_emulator::Emulator::start(d365_emulator::EmulatorOptions {
            rows,
            latency: Duration::from_millis(latency_ms),
            latency_per_row: Duration::from_micros(per_row_us),
            ..Default::default()
        })
        .await
        .expect("emulator starts");
        println!("emulator: {rows} accounts seeded in {:.1} s", t0.elapsed().as_secs_f64());
        let ready = emu.ready();
        let ca_pem = std::fs::read(&ready.ca_pem).expect("CA");
        let ca = reqwest::Certificate::from_pem(&ca_pem).expect("CA");
        let http = reqwest::Client::builder().tls_certs_only([ca]).build().expect("http");
        let app = ready.app("integration").expect("integration app");
        let tok: serde_json::Value = http
            .post(format!("{}/{}/oauth2/v2.0/token", ready.authority, ready.tenant_id))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", app.client_id.as_str()),
                ("client_secret", app.client_secret.as_deref().expect("secret")),
                ("scope", &format!("{}/.default", ready.org_url)),
            ])
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token body");
        let token = AccessToken::new(tok["access_token"].as_str().expect("token").to_string(), None);
        let options = ClientOptions { extra_ca_pem: Some(ca_pem), ..ClientOptions::new(ready.org_url.clone()) };
        let client =
            DataverseClient::new(options, Arc::new(d365_auth::StaticTokenProvider::new(token))).expect("client");
        let dir = tempfile::tempdir().expect("temp dir");
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
        .await
        .expect("benchmark");
        println!("emulator: --latency-ms {latency_ms}, {per_row_us} µs per row");
        print!("{report}");
        emu.shutdown().await;
    });
}
