//! The retry policy against the emulator's seeded fault injection (429, 503, connection resets
//! mid-body, truncated bodies): reads return every row exactly once, idempotent upserts land,
//! and no test waits for real (a manual clock).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use d365_client::{
    ClientError, ClientOptions, DataverseClient, ManualClock, Query, RecordKey, RetryConfig, UpsertMode,
};
use d365_emulator::webapi::faults::FaultSettings;
use d365_emulator::{Emulator, EmulatorOptions};
use futures::StreamExt;
use serde_json::json;

use crate::common::Env;

async fn start_with_faults(rows: usize, faults: &str) -> Env {
    let faults = FaultSettings::parse(faults, 42).unwrap();
    let emu = Emulator::start(EmulatorOptions { rows, faults, ..Default::default() }).await.expect("emulator starts");
    let ca_pem = std::fs::read(&emu.ready().ca_pem).unwrap();
    let ca = reqwest::Certificate::from_pem(&ca_pem).unwrap();
    let http = reqwest::Client::builder().tls_certs_only([ca]).build().unwrap();
    Env { emu, ca_pem, http }
}

async fn faulty_client(env: &Env) -> (DataverseClient, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let options = ClientOptions {
        clock: clock.clone(),
        retry: RetryConfig { max_retries: 12, ..RetryConfig::default() },
        ..env.options()
    };
    (env.client_with(options).await, clock)
}

#[tokio::test]
async fn paging_survives_throttling_resets_and_truncated_bodies() {
    let env = start_with_faults(6_000, "429=0.1,503=0.1,reset=0.1,truncate=0.1").await;
    let (client, clock) = faulty_client(&env).await;
    let mut stream = client.page_stream(&Query::new("accounts").select(["accountid"]).max_page_size(250)).unwrap();
    let mut ids = HashSet::new();
    let mut pages = 0;
    while let Some(page) = stream.next().await {
        let page = page.unwrap_or_else(|e| panic!("page {}: {e}", pages + 1));
        pages += 1;
        for row in page.rows {
            assert!(ids.insert(row["accountid"].as_str().unwrap().to_string()), "a row arrived twice");
        }
    }
    assert_eq!((ids.len(), pages), (6_000, 24));
    let stats = client.request_log().stats();
    assert!(stats.retries > 0 && stats.throttled > 0, "{stats:?}");
    assert_eq!(stats.get, 24 + stats.retries);
    // Every 429 asked for one second, and that is what was waited (on the manual clock).
    assert_eq!(stats.throttle_wait, Duration::from_secs(stats.throttled));
    assert!(clock.sleeps().contains(&Duration::from_secs(1)));
    let injected: u64 = env.emu.state().faults.injected().iter().sum();
    assert!(injected >= stats.retries, "{injected} faults injected, {} retries", stats.retries);
}

#[tokio::test]
async fn idempotent_upserts_land_and_creates_report_unknown_outcomes() {
    let env = start_with_faults(5, "429=0.1,503=0.1,reset=0.1,truncate=0.1").await;
    let (client, _clock) = faulty_client(&env).await;
    // Upserts by alternate key are repeated safely: each contact exists exactly once.
    for i in 0..30 {
        let key = RecordKey::alternate("emailaddress1", format!("upsert{i}@example.com"));
        client
            .upsert("contacts", &key, &json!({"lastname": format!("U{i}")}), UpsertMode::CreateOrUpdate)
            .await
            .unwrap();
    }
    let q = Query::new("contacts").select(["emailaddress1"]).filter("startswith(emailaddress1,'upsert')");
    let rows = client.page_stream(&q).unwrap().collect_rows().await.unwrap();
    assert_eq!(rows.len(), 30);

    // Creates are never repeated after a lost answer: each one either returns an id or says
    // its outcome is unknown, and at most one record exists per attempt.
    let (mut ok, mut unknown) = (0, 0);
    for i in 0..30 {
        match client.create("contacts", &json!({"lastname": format!("create-{i}")})).await {
            Ok(_) => ok += 1,
            Err(ClientError::WriteOutcomeUnknown { .. }) => unknown += 1,
            Err(e) => panic!("create {i}: {e}"),
        }
    }
    let q = Query::new("contacts").select(["lastname"]).filter("startswith(lastname,'create-')");
    let rows = client.page_stream(&q).unwrap().collect_rows().await.unwrap();
    let names: HashSet<String> = rows.iter().map(|r| r["lastname"].as_str().unwrap().to_string()).collect();
    assert_eq!(names.len(), rows.len(), "no create was applied twice");
    assert!(rows.len() >= ok && rows.len() <= ok + unknown, "{} rows, {ok} ok, {unknown} unknown", rows.len());
    assert!(unknown > 0, "the fault rates make some outcomes unknown");
}
