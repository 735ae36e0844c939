//! Evidence from the client's request log (and the scan's row counters) that projection,
//! filters, limits and top-n reach the service.

use crate::common;

use std::sync::Arc;

use common::{Recorder, rows, start};
use d365_sql::datafusion::physical_plan::{ExecutionPlan, collect};
use d365_sql::scan::DataverseScanExec;

fn decoded(path: &str) -> String {
    let mut out = String::new();
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&path[i + 1..i + 3], 16)
        {
            out.push(b as char);
            i += 3;
            continue;
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

fn find_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<&DataverseScanExec> {
    if let Some(s) = plan.downcast_ref::<DataverseScanExec>() {
        return Some(s);
    }
    plan.children().into_iter().find_map(find_scan)
}

/// Runs `sql`, returning its rows and the number of rows the scan received from the service.
async fn run(engine: &d365_sql::SqlEngine, sql: &str) -> (Vec<Vec<String>>, usize) {
    let df = engine.sql(sql).await.unwrap();
    let task = df.task_ctx();
    let plan = df.create_physical_plan().await.unwrap();
    let batches = collect(plan.clone(), Arc::new(task)).await.unwrap();
    let scan = find_scan(&plan).expect("a Dataverse scan");
    let received = scan.metrics().and_then(|m| m.output_rows()).unwrap_or(0);
    (rows(&batches), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_projection_and_top_n_are_sent_to_the_service() {
    let env = start(6000).await;
    let engine = env.engine(true, None).await;
    let local = env.engine(false, None).await;
    let rec = Recorder::attach(engine.client());

    // A selective filter: only the matching rows travel.
    let want = rows(&local.collect("SELECT accountid FROM account WHERE numberofemployees = 4242").await.unwrap());
    rec.take();
    let (got, received) = run(&engine, "SELECT accountid FROM account WHERE numberofemployees = 4242").await;
    assert_eq!(got.len(), want.len());
    assert_eq!(received, want.len(), "rows received = rows matched");
    let events = rec.take();
    assert_eq!(events.len(), 1, "one page");
    let path = decoded(&events[0].path);
    assert!(path.contains("$filter=numberofemployees eq 4242"), "{path}");
    assert!(path.contains("$select=accountid&") || path.ends_with("$select=accountid"), "{path}");

    // A projection asks for those columns only (and the key).
    rec.take();
    let (got, _) = run(&engine, "SELECT name, revenue FROM account WHERE statecode = 1 AND revenue > 1000000").await;
    assert!(!got.is_empty());
    let path = decoded(&rec.take()[0].path);
    assert!(path.contains("$select=accountid,name,revenue&"), "{path}");
    assert!(path.contains("$filter=(statecode eq 1 and revenue gt 1000000.0000)"), "{path}");

    // Virtual columns ask for the annotations they need, and nothing else.
    rec.take();
    let (got, _) = run(
        &engine,
        "SELECT parentaccountidname, statecodename FROM account WHERE parentaccountid IS NOT NULL LIMIT 5",
    )
    .await;
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|r| r[0] != "NULL" && (r[1] == "Active" || r[1] == "Inactive")), "{got:?}");
    let path = decoded(&rec.take()[0].path);
    assert!(path.contains("$select=accountid,_parentaccountid_value,statecode&"), "{path}");
    assert!(path.contains("$top=5"), "{path}");

    // ORDER BY … LIMIT 10 over 6,000 rows reads one page of 10 rows.
    let sql = "SELECT name, revenue FROM account ORDER BY revenue DESC LIMIT 10";
    let want = rows(&local.collect(sql).await.unwrap());
    rec.take();
    let (got, received) = run(&engine, sql).await;
    assert_eq!(got, want);
    assert_eq!(received, 10);
    let events = rec.take();
    assert_eq!(events.len(), 1, "{events:?}");
    let path = decoded(&events[0].path);
    assert!(path.contains("$orderby=revenue desc&$top=10"), "{path}");

    // An exact filter with a limit: $top.
    rec.take();
    let (got, received) = run(&engine, "SELECT name FROM account WHERE statecode = 0 LIMIT 7").await;
    assert_eq!((got.len(), received), (7, 7));
    assert!(decoded(&rec.take()[0].path).contains("$top=7"));

    // A text filter is sent (as a superset) and re-checked locally: same answer as local.
    let sql = "SELECT accountnumber FROM account WHERE accountnumber = 'acc-0000042'";
    rec.take();
    let (got, received) = run(&engine, sql).await;
    assert!(got.is_empty(), "case-sensitive in SQL: {got:?}");
    assert_eq!(received, 1, "the service matched case-insensitively");
    assert!(decoded(&rec.take()[0].path).contains("$filter=accountnumber eq 'acc-0000042'"));
    let (got, _) = run(&engine, "SELECT accountnumber FROM account WHERE accountnumber LIKE 'ACC-000004%'").await;
    assert_eq!(got.len(), 10);

    // Nothing is sent while planning or explaining.
    rec.take();
    let text =
        engine.explain("SELECT name FROM account WHERE revenue > 1e6 ORDER BY revenue DESC LIMIT 3").await.unwrap();
    assert!(rec.take().is_empty(), "explain sends no request");
    assert!(text.contains("DataverseScanExec"), "{text}");
    assert!(text.contains("Web API requests:"), "{text}");
    assert!(text.contains("$orderby=revenue%20desc&$top=3"), "{text}");
    assert!(text.contains("$filter=revenue%20gt%201000000.0000"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_stream_and_limits_stop_paging() {
    let env = start(1200).await;
    let engine = env.engine(true, Some(100)).await;
    let rec = Recorder::attach(engine.client());
    // A full scan follows every nextLink: 12 pages of 100.
    let (got, received) = run(&engine, "SELECT accountid FROM account").await;
    assert_eq!((got.len(), received), (1200, 1200));
    let events = rec.take();
    assert_eq!(events.len(), 12);
    assert!(events[1].path.contains("skiptoken"), "{}", events[1].path);
    // A limit larger than a page: pages until the limit, no more (the stream reads at most
    // one page ahead).
    let (got, _) = run(&engine, "SELECT accountid FROM account WHERE statecode IN (0, 1) LIMIT 250").await;
    assert_eq!(got.len(), 250);
    let n = rec.take().len();
    assert!((3..=4).contains(&n), "{n} requests");
    // A local limit (unpushable filter) stops the stream too.
    let (got, _) = run(&engine, "SELECT name FROM account WHERE lower(name) <> 'x' LIMIT 5").await;
    assert_eq!(got.len(), 5);
    let n = rec.take().len();
    assert!(n <= 2, "{n} requests");
}

/// Whole-table scans read `createdon` ranges concurrently: the same rows as one nextLink chain
/// (every row once), requests carrying range filters; a scan under a LIMIT stays one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_table_scans_read_createdon_ranges_in_parallel() {
    let env = start(3000).await;
    let options = d365_sql::EngineOptions { page_size: Some(200), ..Default::default() };
    assert!(options.parallel_scan, "on by default");
    let parallel = env.engine_with(options).await;
    let sequential = env.engine(true, Some(200)).await;
    let rec = Recorder::attach(parallel.client());
    let sql = "SELECT accountid, name, revenue, createdon FROM account WHERE statecode = 0";
    let (mut got, received) = run(&parallel, sql).await;
    let (mut want, _) = run(&sequential, sql).await;
    assert!(want.len() > 1000, "{}", want.len());
    assert_eq!(received, got.len(), "rows received = rows returned (exact filter)");
    got.sort();
    want.sort();
    assert_eq!(got, want, "the same rows, each once");
    let events = rec.take();
    let ranges = events.iter().filter(|e| decoded(&e.path).contains("createdon ge ")).count();
    assert!(ranges >= 2, "range requests: {:?}", events.iter().map(|e| decoded(&e.path)).collect::<Vec<_>>());
    assert!(events.iter().all(|e| decoded(&e.path).contains("statecode eq 0")), "the filter goes with every request");

    // explain says so
    let text = parallel.explain(sql).await.unwrap();
    assert!(text.contains("partitioned_on=createdon") && text.contains("read in parallel"), "{text}");

    // a local aggregate (max of text: not pushed) reads everything: still parallel; under a
    // local LIMIT: one chain
    let text = parallel.explain("SELECT max(name) FROM account").await.unwrap();
    assert!(text.contains("partitioned_on=createdon"), "{text}");
    let text = parallel.explain("SELECT name FROM account WHERE lower(name) <> 'x' LIMIT 5").await.unwrap();
    assert!(!text.contains("partitioned_on"), "{text}");
    let (got, _) = run(&parallel, "SELECT name FROM account WHERE lower(name) <> 'x' LIMIT 5").await;
    assert_eq!(got.len(), 5);
    let n = rec.take().len();
    assert!(n <= 2, "{n} requests");
}
