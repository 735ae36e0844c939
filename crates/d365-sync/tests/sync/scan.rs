//! The partitioned parallel scan of d365-client against the emulator: every row exactly once
//! under injected faults (429, 503, resets, truncated bodies), with null and heavily tied
//! partition-column values, and ordered output on request.

use crate::common;

use std::time::Duration;

use d365_client::{Query, ScanOptions};
use futures::StreamExt;

use common::{FAULTS, checksum, row_pair, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_of_100k_rows_under_faults_delivers_every_row_once() {
    let env = start(100_000, Some(FAULTS), Duration::ZERO).await;
    // Nulls (a partition of their own) and 7,000+ rows on one second (more than a page: that
    // range cannot be split and is paged through).
    env.sql(
        "UPDATE account SET createdon = NULL WHERE rowid % 97 = 0;
         UPDATE account SET createdon = '2023-06-01T00:00:00Z' WHERE rowid % 13 = 0;",
    );
    let expected = env.accounts();
    let (client, clock) = env.client();
    let query = Query::new("accounts").select(["accountid", "name"]).max_page_size(1000);
    let options = ScanOptions::new("accountid");
    let plan = client.plan_scan(&query, &options).await.expect("plan");
    assert!(plan.partitions.iter().any(|p| p.bounds == d365_client::Bounds::Null), "{plan:?}");
    let mut scan = client.partitioned_scan(&query, plan, options).expect("scan");
    let progress = scan.progress();
    let mut rows = Vec::new();
    while let Some(page) = scan.next().await {
        let page = page.expect("page");
        for r in &page.rows {
            assert_eq!(r.len(), 3, "only the selected columns (and the etag): {r:?}");
        }
        rows.extend(page.rows);
    }
    let got = checksum(rows.iter().map(row_pair));
    let want = checksum(expected.iter().map(|(a, b)| (a.as_str(), b.as_str())));
    assert_eq!(got, want);
    assert_eq!(got.0, 100_000);
    let stats = client.request_log().stats();
    assert!(stats.retries > 0 && stats.throttled > 0, "faults were injected: {stats:?}");
    assert!(clock.sleeps().iter().all(|d| *d <= Duration::from_secs(60)));
    use std::sync::atomic::Ordering::Relaxed;
    assert!(progress.partitions.load(Relaxed) > 8, "ranges were split: {progress:?}");
    assert_eq!(progress.partitions.load(Relaxed), progress.partitions_done.load(Relaxed));
    assert!(progress.peak_concurrency.load(Relaxed) > 8, "concurrency grew past the DOP hint: {progress:?}");
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_scan_follows_the_partition_column() {
    let env = start(20_000, None, Duration::ZERO).await;
    env.sql("UPDATE account SET createdon = NULL WHERE rowid % 101 = 0;");
    let (client, _clock) = env.client();
    let query = Query::new("accounts").select(["name"]).max_page_size(500);
    let mut options = ScanOptions::new("accountid");
    options.ordered = true;
    options.parallel = Some(6);
    let plan = client.plan_scan(&query, &options).await.expect("plan");
    let mut scan = client.partitioned_scan(&query, plan, options).expect("scan");
    let mut last: Option<Option<i64>> = None;
    let mut n = 0;
    while let Some(page) = scan.next().await {
        let page = page.expect("page");
        // The partition column was added to place rows, and removed again.
        for r in &page.rows {
            assert!(!r.contains_key("createdon") && r.contains_key("name"));
        }
        n += page.rows.len();
        let bounds = page.partition.bounds;
        let key = match bounds {
            d365_client::Bounds::Null => None,
            d365_client::Bounds::Range { lo, .. } => Some(lo.unwrap_or(i64::MIN)),
            d365_client::Bounds::All => unreachable!("a partitioned plan"),
        };
        if let Some(prev) = last {
            assert!(prev <= key, "pages out of order: {prev:?} then {key:?}");
        }
        last = Some(key);
    }
    assert_eq!(n, 20_000);
    let peak = scan.progress().peak_concurrency.load(std::sync::atomic::Ordering::Relaxed);
    assert!(peak <= 6, "--parallel caps the concurrency: {peak}");
    env.emu.shutdown().await;
}

#[tokio::test]
async fn queries_that_cannot_be_partitioned_are_refused() {
    let env = start(10, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let options = ScanOptions::new("accountid");
    assert!(client.plan_scan(&Query::new("accounts").top(5), &options).await.is_err());
    // An empty result gives one open partition.
    let q = Query::new("accounts").filter("name eq 'no such account'");
    let plan = client.plan_scan(&q, &options).await.expect("plan");
    let rows: usize = client
        .partitioned_scan(&q, plan, options)
        .expect("scan")
        .map(|p| p.expect("page").rows.len())
        .fold(0, |a, b| async move { a + b })
        .await;
    assert_eq!(rows, 0);
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_scan_starts_at_the_concurrency_the_last_one_reached() {
    let env = start(20_000, None, Duration::from_millis(5)).await;
    let (client, _clock) = env.client();
    let hint = |c: &d365_client::DataverseClient| c.server_hints().dop_hint.expect("the emulator sends a DOP hint");
    let query = Query::new("accounts").select(["accountid"]).max_page_size(500);
    let options = ScanOptions::new("accountid");
    let plan = client.plan_scan(&query, &options).await.expect("plan");
    let mut scan = client.partitioned_scan(&query, plan, options.clone()).expect("scan");
    let progress = scan.progress();
    let mut n = 0;
    while let Some(page) = scan.next().await {
        n += page.expect("page").rows.len();
    }
    drop(scan);
    assert_eq!(n, 20_000);
    let peak = progress.peak_concurrency.load(std::sync::atomic::Ordering::Relaxed) as usize;
    let start = hint(&client) as usize;
    // Not throttled: the next work on this client starts where this one got to …
    let next = client.concurrency(None, 52).limit();
    assert!(next > start && next <= peak, "next {next}, hint {start}: {progress:?}");
    // … a fixed --parallel still wins, and a client told to forget starts at the hint again.
    assert_eq!(client.concurrency(Some(3), 52).limit(), 3);
    client.forget_learnt();
    assert_eq!(client.concurrency(None, 52).limit(), start);
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_adapts_down_when_the_service_throttles() {
    // The service allows 3 concurrent requests while its DOP hint says 8: the scan starts at 8,
    // gets 429s (Retry-After waited on the manual clock), halves, and still reads every row once.
    let limits = d365_emulator::webapi::limits::LimitSettings::parse("concurrent=3").unwrap();
    let env = common::start_with(d365_emulator::EmulatorOptions {
        rows: 20_000,
        limits,
        latency: Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let expected = env.accounts();
    let (client, clock) = env.client();
    let query = Query::new("accounts").select(["accountid", "name"]).max_page_size(500);
    let options = ScanOptions::new("accountid");
    let plan = client.plan_scan(&query, &options).await.expect("plan");
    let mut scan = client.partitioned_scan(&query, plan, options).expect("scan");
    let progress = scan.progress();
    let mut rows = Vec::new();
    while let Some(page) = scan.next().await {
        rows.extend(page.expect("page").rows);
    }
    assert_eq!(checksum(rows.iter().map(row_pair)), checksum(expected.iter().map(|(a, b)| (a.as_str(), b.as_str()))));
    let stats = client.request_log().stats();
    use std::sync::atomic::Ordering::Relaxed;
    assert!(stats.throttled > 0, "{stats:?}");
    assert!(progress.backoffs.load(Relaxed) > 0, "{progress:?}");
    assert!(progress.concurrency.load(Relaxed) < 8, "{progress:?}");
    assert!(clock.sleeps().contains(&Duration::from_secs(1)), "Retry-After was honoured on the manual clock");
    // Throttled within the service's window: the next work starts at the hint, not higher.
    drop(scan);
    assert_eq!(client.concurrency(None, 52).limit(), 8);
    env.emu.shutdown().await;
}
