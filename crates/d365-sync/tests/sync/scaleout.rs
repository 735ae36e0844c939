//! Planning and reading work units through the library: units sized by the counts the service
//! makes (exact per probed slice, below its 50,000-row aggregate limit), contiguous and open at
//! both ends, and every row read exactly once across the units.

use crate::common;

use std::time::Duration;

use d365_client::partition::Bounds;
use d365_sync::scaleout::{PlanOptions, plan, read_unit};
use futures::StreamExt;

use common::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_are_sized_by_service_counts_and_cover_every_row_once() {
    let env = start(20_000, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let mut options = PlanOptions::new(vec!["account".into()], "");
    options.unit_rows = 4_000;
    // Three slices of ~6,700 rows: more than one probe page (5,000), so the service counts them.
    options.probes = 3;
    let manifest = plan(&client, &options).await.expect("plan");
    assert_eq!(manifest.header.to, "", "a plan for reading only");
    let estimates: Vec<u64> = manifest.units.iter().map(|u| u.estimated_rows).collect();
    assert_eq!(estimates.iter().sum::<u64>(), 20_000, "{estimates:?}");
    assert!(estimates.iter().all(|&n| (2_000..=6_000).contains(&n)), "{estimates:?}");

    // Contiguous ranges, open at both ends.
    let mut next = None;
    for u in &manifest.units {
        let Bounds::Range { lo, hi } = u.bounds else { panic!("{:?}", u.bounds) };
        assert_eq!(lo, next, "{:?}", manifest.units);
        next = hi;
    }
    assert_eq!(next, None);

    // Every row exactly once, each unit about as many rows as estimated.
    let mut ids = Vec::new();
    for (u, want) in manifest.units.iter().zip(&estimates) {
        let (schema, mut batches) = read_unit(&client, &manifest, &u.id, None).await.expect("unit");
        let pk = schema.index_of("accountid").unwrap();
        let before = ids.len();
        while let Some(b) = batches.next().await {
            let b = b.expect("batch");
            let col = d365_sql::datafusion::arrow::compute::cast(
                b.column(pk),
                &d365_sql::datafusion::arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let col = col.as_any().downcast_ref::<d365_sql::datafusion::arrow::array::StringArray>().unwrap();
            ids.extend(col.iter().map(|v| v.unwrap().to_string()));
        }
        // Slices are counted exactly; a slice cut into units is shared out by time.
        let got = (ids.len() - before) as u64;
        assert!(got.abs_diff(*want) <= want / 5, "unit {}: {got} rows, {want} estimated", u.id);
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((n, ids.len()), (20_000, 20_000));

    // An unknown unit is named.
    let e = read_unit(&client, &manifest, "account-99999", None).await.err().unwrap().to_string();
    assert!(e.contains("no unit 'account-99999'"), "{e}");
    env.emu.shutdown().await;
}

/// Workers are typed by the plan's metadata snapshot: besides the pages of their units they
/// send one request (the column check), where fetching the metadata costs a dozen, all from
/// the application user's service-protection budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_spend_their_budget_on_pages_not_metadata() {
    use d365_sync::scaleout::{WorkerOptions, run_units};

    let env = start(6_000, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let lake = tempfile::tempdir().unwrap();
    let mut options = PlanOptions::new(vec!["account".into()], format!("delta:{}", lake.path().display()));
    options.unit_rows = 1_500;
    let manifest = plan(&client, &options).await.expect("plan");
    assert!(manifest.tables[0].metadata.is_some(), "the plan keeps the table's metadata");

    // Pages of 500 rows, one request at a time per unit: each unit costs ceil(rows / 500)
    // pages, or one more when its rows fill the last page exactly.
    let mut worker = WorkerOptions::new();
    worker.page_size = Some(500);
    worker.parallel = Some(1);
    let run = |manifest: d365_sync::scaleout::Manifest, worker: WorkerOptions| {
        let (client, _clock) = env.client();
        async move { run_units(&client, &manifest, &worker).await.expect("worker") }
    };
    let with_snapshot = run(manifest.clone(), worker.clone()).await;
    let pages: u64 = with_snapshot.units.iter().map(|u| u.rows.div_ceil(500)).sum();
    assert_eq!(with_snapshot.rows_read(), 6_000);
    let overhead = with_snapshot.requests - pages;
    assert!(overhead <= 1 + with_snapshot.units.len() as u64, "{with_snapshot}: {pages} pages");

    // A plan without the snapshot (an older manifest): each worker fetches the metadata.
    let mut older = manifest.clone();
    older.tables[0].metadata = None;
    worker.units = older.units.iter().map(|u| u.id.clone()).collect();
    let without = run(older, worker).await;
    assert!(without.requests >= with_snapshot.requests + 10, "{without} against {with_snapshot}");
    env.emu.shutdown().await;
}
