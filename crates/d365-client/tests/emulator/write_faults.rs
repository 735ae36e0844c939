//! Bulk writes under injected faults (429, 503, connection resets after the write ran,
//! truncated answers): every row lands exactly once or is in the report, and the report holds
//! only rows that really failed. Waits run on a manual clock.

use std::collections::HashSet;
use std::sync::Arc;

use d365_client::{BulkMode, ClientOptions, ManualClock, Query, RetryConfig, WriteOp, WriteOptions, WriteRow};
use d365_emulator::webapi::faults::FaultSettings;
use d365_emulator::{Emulator, EmulatorOptions};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::common::Env;
use crate::write::{entity, obj, read_all, run};

async fn faulty(faults: &str) -> (Env, d365_client::DataverseClient, Arc<ManualClock>) {
    let faults = FaultSettings::parse(faults, 7).unwrap();
    let emu = Emulator::start(EmulatorOptions { rows: 5, faults, ..Default::default() }).await.expect("emulator");
    let ca_pem = std::fs::read(&emu.ready().ca_pem).unwrap();
    let ca = reqwest::Certificate::from_pem(&ca_pem).unwrap();
    let http = reqwest::Client::builder().tls_certs_only([ca]).build().unwrap();
    let env = Env { emu, ca_pem, http };
    let clock = Arc::new(ManualClock::new());
    let options = ClientOptions {
        clock: clock.clone(),
        retry: RetryConfig { max_retries: 12, ..RetryConfig::default() },
        ..env.options()
    };
    // The token request itself may draw no fault: faults apply to the Web API only.
    let client = env.client_with(options).await;
    (env, client, clock)
}

fn index_of(row: &Map<String, Value>) -> u64 {
    row["lastname"].as_str().unwrap()[1..].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_creates_survive_faults_exactly_once() {
    let (env, client, clock) = faulty("429=0.05,503=0.05,reset=0.08,truncate=0.03").await;
    let contacts = entity(&client, "contact").await;
    const N: u64 = 50_000;
    let bad: HashSet<u64> = [17, 4_999, 5_000, 23_456, 49_999].into_iter().collect();
    let rows = futures::stream::iter((0..N).map(|i| {
        let last = if bad.contains(&i) { format!("F{i:05}{}", "x".repeat(60)) } else { format!("F{i:05}") };
        WriteRow::new(i, obj(json!({"lastname": last, "jobtitle": "fault"})))
    }));
    let options = WriteOptions { chunk_size: 500, max_parallel: Some(8), ..Default::default() };
    let report = client.write(&contacts, WriteOp::Create, rows, &options, |_| {}).await.unwrap();
    println!("{report}");
    assert_eq!(report.mode, BulkMode::BulkMessages);
    assert_eq!(report.rows, N);
    assert_eq!(report.written, N - bad.len() as u64, "{report}");
    let failed: HashSet<u64> = report.failed.iter().map(|e| e.index).collect();
    assert_eq!(failed, bad, "only the really bad rows are reported: {:#?}", report.failed);
    assert!(report.failed.iter().all(|e| e.column.as_deref() == Some("lastname") && e.code == "0x80044331"));
    assert!(report.not_attempted.is_empty());
    // Faults happened, and some writes' outcomes had to be looked up.
    let [throttled, unavailable, _slow, reset, truncated] = env.emu.state().faults.injected();
    assert!(throttled > 0 && unavailable > 0 && reset > 0 && truncated > 0);
    assert!(report.retries > 0 && report.throttled > 0, "{report}");
    assert!(report.recovered > 0, "a reset after a committed chunk is settled by asking: {report}");
    assert!(clock.sleeps().contains(&std::time::Duration::from_secs(1)), "Retry-After waited on the manual clock");

    let back = read_all(&client, Query::new("contacts").select(["lastname"]).filter("jobtitle eq 'fault'")).await;
    let mut seen = HashSet::new();
    for row in &back {
        assert!(seen.insert(index_of(row)), "row {} was written twice", index_of(row));
    }
    assert_eq!(seen.len() as u64, N - bad.len() as u64);
    assert!(seen.is_disjoint(&bad));

    // Deleting 3,000 of them through $batch under the same faults: each is gone exactly once
    // or reported, and a delete whose answer was lost counts as done once the record is gone.
    let ids =
        read_all(&client, Query::new("contacts").select(["contactid"]).filter("jobtitle eq 'fault'").top(3_000)).await;
    let rows: Vec<WriteRow> = ids
        .iter()
        .enumerate()
        .map(|(i, r)| {
            WriteRow::new(i as u64, Map::new()).with_key(Uuid::parse_str(r["contactid"].as_str().unwrap()).unwrap())
        })
        .collect();
    let report = run(&client, &contacts, WriteOp::Delete, rows, &WriteOptions { chunk_size: 250, ..options.clone() })
        .await
        .unwrap();
    assert_eq!(
        (report.written, report.failed.len(), report.mode),
        (3_000, 0, BulkMode::Batch),
        "{report}: {:#?}",
        report.failed
    );
    let left = read_all(&client, Query::new("contacts").select(["contactid"]).filter("jobtitle eq 'fault'")).await;
    assert_eq!(left.len() as u64, N - bad.len() as u64 - 3_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_by_row_and_batch_creates_settle_lost_answers() {
    let (_env, client, _clock) = faulty("429=0.08,503=0.08,reset=0.08,truncate=0.04").await;
    let contacts = entity(&client, "contact").await;
    for (mode, tag) in [(BulkMode::RowByRow, "rbr"), (BulkMode::Batch, "batch")] {
        let rows: Vec<WriteRow> = (0..400u64)
            .map(|i| WriteRow::new(i, obj(json!({"lastname": format!("R{i:05}"), "jobtitle": tag}))))
            .collect();
        let options = WriteOptions { chunk_size: 50, max_parallel: Some(6), mode, ..Default::default() };
        let report = run(&client, &contacts, WriteOp::Create, rows, &options).await.unwrap();
        assert_eq!((report.written, report.failed.len()), (400, 0), "{mode:?}: {report}");
        let back =
            read_all(&client, Query::new("contacts").select(["lastname"]).filter(format!("jobtitle eq '{tag}'"))).await;
        let names: HashSet<u64> = back.iter().map(index_of).collect();
        assert_eq!((back.len(), names.len()), (400, 400), "{mode:?}: every row exactly once");
    }
}
