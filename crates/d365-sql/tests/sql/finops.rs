//! Finance & Operations through the SQL engine, against the emulator's F&O environment:
//! company scoping, typed columns, the F&O filter dialect (pushed and local results agree), and
//! the key-range read, exact while rows are inserted.

use std::sync::Arc;
use std::time::Duration;

use d365_auth::{AccessToken, StaticTokenProvider};
use d365_client::{ApiRequest, ClientOptions, DataverseClient, FinOpsSettings, KeyField, KeyKind, Query, Service};
use d365_emulator::config::INTEGRATION_APP;
use d365_emulator::{Emulator, EmulatorOptions};
use d365_sql::{EngineOptions, SqlEngine};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::common::rows;

async fn start(rows: usize) -> Emulator {
    // The Dataverse side stays small: only the F&O store is seeded at `rows`.
    Emulator::start(EmulatorOptions { rows: 50, fno_rows: Some(rows), ..Default::default() })
        .await
        .expect("emulator starts")
}

/// A client of the emulator's online F&O environment as the integration app.
fn client(emu: &Emulator, cross_company: bool) -> DataverseClient {
    let fno = emu.fno();
    let token = emu.app_token_for(INTEGRATION_APP, &fno.org_url, Duration::from_secs(3600)).expect("seeded app");
    let mut o = ClientOptions::new(fno.org_url.clone());
    o.extra_ca_pem = Some(std::fs::read(&emu.ready().ca_pem).expect("CA file"));
    o.service = Service::FinOps(FinOpsSettings { cross_company });
    DataverseClient::new(o, Arc::new(StaticTokenProvider::new(AccessToken::new(token, None)))).expect("client")
}

async fn engine(emu: &Emulator, cross_company: bool, pushdown: bool, parallel: bool) -> SqlEngine {
    let options = EngineOptions { pushdown, parallel_scan: parallel, ..Default::default() };
    SqlEngine::new(client(emu, cross_company), options).await.expect("engine")
}

async fn query(engine: &SqlEngine, sql: &str) -> Vec<Vec<String>> {
    let batches = engine.collect(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows(&batches)
}

#[tokio::test]
async fn companies_are_scoped_unless_cross_company_and_columns_are_typed() {
    let emu = start(200).await;
    let one = engine(&emu, false, true, true).await;
    assert_eq!(query(&one, "SELECT DISTINCT dataAreaId FROM CustomersV3").await, vec![vec!["usmf".to_string()]]);
    let all = engine(&emu, true, true, true).await;
    let companies = query(&all, "SELECT DISTINCT dataAreaId FROM CustomersV3 ORDER BY 1").await;
    assert_eq!(companies.concat(), ["demf", "gbsi", "usmf", "usrt"]);
    // Company scoping applies to key-range reads too: totals per company match a filtered count.
    let per_company = query(&all, "SELECT count(*) FROM CustomersV3 WHERE dataAreaId = 'usrt'").await;
    let scoped = query(&all, "SELECT count(*) FROM CustomersV3 GROUP BY dataAreaId HAVING dataAreaId = 'usrt'").await;
    assert_eq!(per_company, scoped);
    // Types: exact decimals, dates, UTC instants, enums by member name.
    let batches = all
        .collect("SELECT CreditLimit, CreatedDateTime, OnHoldStatus FROM CustomersV3 LIMIT 1")
        .await
        .expect("typed query");
    let schema = batches[0].schema();
    assert_eq!(schema.field(0).data_type().to_string(), "Decimal128(38, 16)");
    assert!(schema.field(1).data_type().to_string().starts_with("Timestamp(µs"), "{}", schema.field(1).data_type());
    let dates = query(&all, "SELECT min(RequestedShippingDate) >= DATE '2024-01-01' FROM SalesOrderHeadersV2").await;
    assert_eq!(dates, vec![vec!["true".to_string()]]);
    let enums = query(&all, "SELECT DISTINCT OnHoldStatus FROM CustomersV3 ORDER BY 1").await.concat();
    assert!(enums.iter().all(|e| ["All", "Invoice", "No"].contains(&e.as_str())), "{enums:?}");
    emu.shutdown().await;
}

#[tokio::test]
async fn pushed_and_local_filters_agree_on_finance_and_operations() {
    let emu = start(400).await;
    let pushed = engine(&emu, true, true, false).await;
    let pushed_parallel = engine(&emu, true, true, true).await;
    let local = engine(&emu, true, false, false).await;
    let cases = [
        "SELECT CustomerAccount, dataAreaId FROM CustomersV3 WHERE OnHoldStatus = 'All'",
        "SELECT CustomerAccount, dataAreaId FROM CustomersV3 WHERE OnHoldStatus <> 'No' AND dataAreaId = 'usmf'",
        "SELECT CustomerAccount, dataAreaId FROM CustomersV3 WHERE OnHoldStatus IN ('All', 'Invoice')",
        "SELECT CustomerAccount, dataAreaId FROM CustomersV3 WHERE OnHoldStatus = 'all'",
        "SELECT CustomerAccount, dataAreaId FROM CustomersV3 WHERE dataAreaId IN ('usrt', 'demf') AND CreditLimit > 50000",
        "SELECT CustomerAccount, dataAreaId FROM CustomersV3 WHERE CustomerAccount LIKE 'US-01%'",
        "SELECT CustomerAccount, dataAreaId FROM CustomersV3 WHERE OrganizationName LIKE '%foods 1%'",
        "SELECT CustomerAccount, dataAreaId FROM CustomersV3 WHERE OrganizationName LIKE '%Foods 1%'",
        "SELECT CustomerAccount, dataAreaId FROM CustomersV3 WHERE CustomerAccount = 'us-001'",
        "SELECT CustomerAccount, dataAreaId FROM CustomersV3 WHERE CreditLimit BETWEEN 20000 AND 40000 OR CustomerGroupId = '90'",
        "SELECT CustomerAccount, dataAreaId FROM CustomersV3 WHERE NOT (CreditLimit >= 30000) AND IsSalesTaxIncludedInPrice = 'Yes'",
        "SELECT CustomerAccount, dataAreaId FROM CustomersV3 WHERE ModifiedDateTime >= TIMESTAMP '2024-06-01 00:00:00'",
        "SELECT SalesOrderNumber, dataAreaId FROM SalesOrderHeadersV2 WHERE RequestedShippingDate = DATE '2024-03-15'",
        "SELECT SalesOrderNumber, dataAreaId FROM SalesOrderHeadersV2 WHERE RequestedShippingDate BETWEEN DATE '2024-03-01' AND DATE '2024-03-31' AND SalesOrderStatus IN ('Invoiced', 'Delivered')",
        "SELECT InventoryLotId, dataAreaId FROM SalesOrderLines WHERE LineAmount > 1000.5 AND SalesOrderLineStatus <> 'Canceled'",
        "SELECT InventoryLotId FROM SalesOrderLines WHERE LineNumber = 2 AND dataAreaId = 'usmf' ORDER BY InventoryLotId DESC LIMIT 7",
        "SELECT PersonnelNumber FROM Workers WHERE Gender = 'Female' AND BirthDate < DATE '1990-01-01'",
    ];
    let mut checked = 0;
    for sql in cases {
        let mut want = query(&local, sql).await;
        let mut got = query(&pushed, sql).await;
        let mut got_parallel = query(&pushed_parallel, sql).await;
        if !sql.contains("ORDER BY") {
            want.sort();
            got.sort();
            got_parallel.sort();
        }
        assert_eq!(got, want, "pushed vs local: {sql}");
        assert_eq!(got_parallel, want, "pushed in parallel vs local: {sql}");
        checked += usize::from(!want.is_empty());
    }
    assert!(checked >= 12, "most cases should match rows ({checked} did)");
    emu.shutdown().await;
}

fn customer_keys() -> Vec<KeyField> {
    vec![
        KeyField { name: "dataAreaId".into(), kind: KeyKind::Text },
        KeyField { name: "CustomerAccount".into(), kind: KeyKind::Text },
    ]
}

/// Creates customers `{prefix}{i}` in `company` (keys that sort among the seeded ones).
async fn insert_customers(client: &DataverseClient, company: &str, prefix: &str, n: usize) {
    for i in 0..n {
        let body = json!({
            "dataAreaId": company,
            "CustomerAccount": format!("{prefix}{i:03}"),
            "OrganizationName": "Inserted during the read",
            "CustomerGroupId": "10",
        });
        let req = ApiRequest::new(reqwest::Method::POST, client.url("CustomersV3").unwrap()).json(&body).unwrap();
        client.send(&req).await.unwrap_or_else(|e| panic!("insert {prefix}{i}: {e}"));
    }
}

fn keys_of(body: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).expect("page JSON");
    v["value"]
        .as_array()
        .expect("value array")
        .iter()
        .map(|r| format!("{}|{}", r["dataAreaId"].as_str().unwrap_or(""), r["CustomerAccount"].as_str().unwrap_or("")))
        .collect()
}

#[tokio::test]
async fn key_range_reads_are_exact_while_rows_are_inserted_and_skip_paging_is_not() {
    let emu = start(100_000).await;
    let c = client(&emu, true);
    let q = Query::new("CustomersV3").select(["dataAreaId", "CustomerAccount"]);
    let total: usize = {
        let body = c.get_json("CustomersV3/$count?cross-company=true").await;
        match body {
            Ok(Value::Number(n)) => n.as_u64().unwrap() as usize,
            other => panic!("count: {other:?}"),
        }
    };
    assert_eq!(total, 100_000);

    // The service's own paging ($skip offsets): rows inserted before the offset after the
    // first page (keys `DE-0000A…` sort first) shift the rest, and rows of the first page
    // come again.
    let mut pages = c.page_stream(&q).unwrap().raw();
    let first = pages.next().await.unwrap().unwrap();
    let mut seen = keys_of(first.raw.as_ref().unwrap());
    insert_customers(&c, "demf", "DE-0000A", 40).await;
    while let Some(p) = pages.next().await {
        seen.extend(keys_of(p.unwrap().raw.as_ref().unwrap()));
    }
    let distinct: std::collections::HashSet<&String> = seen.iter().collect();
    assert!(distinct.len() < seen.len(), "offset paging returned no row twice: the test did not race");

    // The key-range read, with the same interleaving: every row exactly once.
    let mut scan = c.keyset_scan(&q, customer_keys(), 1);
    let first = scan.next().await.unwrap().unwrap();
    let mut seen = keys_of(&first.body);
    insert_customers(&c, "demf", "DE-0000B", 40).await;
    while let Some(p) = scan.next().await {
        seen.extend(keys_of(&p.unwrap().body));
    }
    let distinct: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "a row came twice");
    assert!(seen.contains(&"usmf|US-001".to_string()) && seen.contains(&"gbsi|GB-001".to_string()));
    // every row present before the read, plus those of the first batch of inserts (committed
    // before it started); the second batch sorts before the first page's end, so it is not read
    assert_eq!(seen.len(), total + 40, "rows lost or added");

    // In parallel, with inserts running at the same time.
    let before = total + 80;
    let inserting = {
        let c = c.clone();
        tokio::spawn(async move { insert_customers(&c, "usmf", "US-5X", 60).await })
    };
    let scan = c.keyset_scan(&q, customer_keys(), 4);
    let pages: Vec<_> = scan.collect().await;
    inserting.await.unwrap();
    let mut seen = Vec::new();
    for p in pages {
        seen.extend(keys_of(&p.unwrap().body));
    }
    let distinct: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "a row came twice in the parallel read");
    let new = seen.iter().filter(|k| k.starts_with("usmf|US-5X")).count();
    assert_eq!(seen.len() - new, before, "a row present before the read was lost");
    emu.shutdown().await;
}

async fn dml(engine: &SqlEngine, sql: &str, options: d365_sql::DmlOptions) -> d365_sql::DmlOutcome {
    engine.execute_dml(sql, &options, |_| {}).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn writes_address_rows_by_composite_key_and_report_each_row() {
    let emu = start(200).await;
    let e = engine(&emu, true, true, true).await;
    let o = d365_sql::DmlOptions::default;

    // INSERT: key fields in the body; F&O's validation failures (HTTP 500) are row errors.
    let out = dml(
        &e,
        "INSERT INTO CustomersV3 (dataAreaId, CustomerAccount, OrganizationName, CustomerGroupId, OnHoldStatus, CreditLimit) \
         VALUES ('usrt', 'RT-NEW1', 'New One', '10', 'Invoice', 1234.5), \
                ('usmf', 'US-001', 'duplicate', '10', 'No', 1), \
                ('usmf', 'US-NEW2', 'bad group', 'ZZ', 'No', 1)",
        o(),
    )
    .await;
    assert_eq!(out.report.written, 1, "{:?}", out.report.failed);
    let failed: Vec<(u64, Option<u16>)> = out.report.failed.iter().map(|f| (f.index, f.status)).collect();
    assert_eq!(failed, [(2, Some(500)), (3, Some(500))]);
    assert!(out.report.failed[0].message.contains("already exists"), "{}", out.report.failed[0].message);
    assert!(out.report.failed[1].message.contains("'ZZ'"), "{}", out.report.failed[1].message);
    let row = query(&e, "SELECT OnHoldStatus, CreditLimit FROM CustomersV3 WHERE CustomerAccount = 'RT-NEW1'").await;
    assert_eq!(row, vec![vec!["Invoice".to_string(), "1234.5000000000000000".to_string()]]);

    // UPDATE by a filter: the rows' composite keys address the PATCHes (two companies, the same
    // account number in neither).
    let before = query(&e, "SELECT count(*) FROM CustomersV3 WHERE CustomerGroupId = '90'").await;
    let out = dml(
        &e,
        "UPDATE CustomersV3 SET CreditLimit = CreditLimit + 1, OnHoldStatus = 'All' WHERE CustomerGroupId = '90'",
        o(),
    )
    .await;
    assert_eq!(out.report.failed.len(), 0, "{:?}", out.report.failed);
    assert_eq!(vec![vec![out.report.written.to_string()]], before);
    let after =
        query(&e, "SELECT count(*) FROM CustomersV3 WHERE CustomerGroupId = '90' AND OnHoldStatus = 'All'").await;
    assert_eq!(after, before);
    // Key fields cannot change.
    let err = e
        .execute_dml("UPDATE CustomersV3 SET CustomerAccount = 'X' WHERE CustomerAccount = 'RT-NEW1'", &o(), |_| {})
        .await;
    assert!(err.unwrap_err().to_string().contains("key field"));

    // UPSERT by the key: an existing row is updated, a missing one created.
    let out = dml(
        &e,
        "UPSERT INTO CustomersV3 (dataAreaId, CustomerAccount, OrganizationName, CustomerGroupId) \
         VALUES ('usrt', 'RT-NEW1', 'Renamed', '10'), ('demf', 'DE-NEW9', 'Brand new', '20')",
        o(),
    )
    .await;
    assert_eq!((out.report.written, out.report.failed.len()), (2, 0), "{:?}", out.report.failed);
    let names = query(
        &e,
        "SELECT OrganizationName FROM CustomersV3 WHERE CustomerAccount IN ('RT-NEW1', 'DE-NEW9') ORDER BY 1",
    )
    .await;
    assert_eq!(names.concat(), ["Brand new", "Renamed"]);
    // An upsert without the whole key is refused before anything is sent.
    let err = e
        .execute_dml("UPSERT INTO CustomersV3 (CustomerAccount, OrganizationName) VALUES ('X', 'y')", &o(), |_| {})
        .await;
    assert!(err.unwrap_err().to_string().contains("(dataAreaId, CustomerAccount)"));

    // DELETE by a filter; a row with a date in its key-less filter.
    let out = dml(&e, "DELETE FROM CustomersV3 WHERE CustomerAccount IN ('RT-NEW1', 'DE-NEW9')", o()).await;
    assert_eq!(out.report.written, 2);
    assert_eq!(
        query(&e, "SELECT count(*) FROM CustomersV3 WHERE CustomerAccount IN ('RT-NEW1', 'DE-NEW9')").await,
        vec![vec!["0".to_string()]]
    );

    // Atomic: one change set; a failing row rolls back the others.
    let atomic =
        d365_sql::DmlOptions { write: d365_client::WriteOptions { atomic: true, ..Default::default() }, ..o() };
    let out = dml(
        &e,
        "INSERT INTO CustomersV3 (dataAreaId, CustomerAccount, OrganizationName, CustomerGroupId) \
         VALUES ('usmf', 'US-ATOM1', 'a', '10'), ('usmf', 'US-ATOM2', 'b', 'ZZ')",
        atomic,
    )
    .await;
    assert_eq!(out.report.written, 0);
    assert!(out.stopped.is_some());
    assert_eq!(
        query(&e, "SELECT count(*) FROM CustomersV3 WHERE CustomerAccount LIKE 'US-ATOM%'").await,
        vec![vec!["0".to_string()]]
    );

    // Dates are sent as F&O sends them (midday UTC) and read back as the same day.
    let out = dml(&e, "UPDATE SalesOrderHeadersV2 SET RequestedShippingDate = DATE '2025-02-28' WHERE SalesOrderNumber = 'US-SO000001' AND dataAreaId = 'usmf'", o()).await;
    assert_eq!(out.report.written, 1, "{:?}", out.report.failed);
    let d = query(&e, "SELECT RequestedShippingDate FROM SalesOrderHeadersV2 WHERE SalesOrderNumber = 'US-SO000001' AND dataAreaId = 'usmf'").await;
    assert_eq!(d, vec![vec!["2025-02-28".to_string()]]);
    emu.shutdown().await;
}

/// The retry policy's clock moving the emulator's: a wait for `Retry-After` passes at once,
/// and the emulator's service-protection window slides by as much.
struct EmulatorTime {
    state: d365_emulator::state::AppState,
    waits: std::sync::Mutex<Vec<Duration>>,
}

impl std::fmt::Debug for EmulatorTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorTime").finish_non_exhaustive()
    }
}

impl d365_client::Clock for EmulatorTime {
    fn now(&self) -> std::time::Instant {
        std::time::Instant::now()
    }

    fn sleep(&self, d: Duration) -> d365_client::SleepFuture {
        self.state.clock.advance(d.as_secs_f64().ceil() as i64);
        self.waits.lock().unwrap().push(d);
        Box::pin(std::future::ready(()))
    }
}

#[tokio::test]
async fn throttled_reads_wait_as_told_and_stay_exact() {
    let limits = d365_emulator::webapi::limits::LimitSettings { requests: 4, window_secs: 60, ..Default::default() };
    let emu = Emulator::start(EmulatorOptions { rows: 50, fno_rows: Some(6_000), limits, ..Default::default() })
        .await
        .expect("emulator starts");
    let time = Arc::new(EmulatorTime { state: emu.state().clone(), waits: Default::default() });
    let fno = emu.fno();
    let token = emu.app_token_for(INTEGRATION_APP, &fno.org_url, Duration::from_secs(3600)).unwrap();
    let mut o = ClientOptions::new(fno.org_url.clone());
    o.extra_ca_pem = Some(std::fs::read(&emu.ready().ca_pem).unwrap());
    o.service = Service::FinOps(FinOpsSettings { cross_company: true });
    o.clock = time.clone();
    let c = DataverseClient::new(o, Arc::new(StaticTokenProvider::new(AccessToken::new(token, None)))).unwrap();
    let e = SqlEngine::new(c.clone(), EngineOptions::default()).await.unwrap();
    // Lines: 6,000 rows in several key ranges, more requests than the window allows.
    let got = query(&e, "SELECT count(*), count(DISTINCT dataAreaId || InventoryLotId) FROM SalesOrderLines").await;
    assert_eq!(got, vec![vec!["6000".to_string(), "6000".to_string()]]);
    let waits = time.waits.lock().unwrap().clone();
    assert!(!waits.is_empty(), "the read was never throttled: the test proves nothing");
    assert!(waits.iter().all(|w| *w >= Duration::from_secs(1)), "waits follow Retry-After (seconds): {waits:?}");
    assert!(c.request_log().stats().throttled > 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn count_star_is_the_services_count_and_the_rest_reads_rows() {
    let emu = start(3_000).await;
    let pushed = engine(&emu, true, true, true).await;
    let local = engine(&emu, true, false, false).await;
    let rec = crate::common::Recorder::attach(pushed.client());
    for sql in [
        "SELECT count(*) FROM CustomersV3",
        "SELECT count(*) FROM CustomersV3 WHERE OnHoldStatus <> 'All' AND CreditLimit > 50000",
        "SELECT count(*) AS n FROM SalesOrderLines WHERE LineAmount > 1000",
    ] {
        rec.take();
        assert_eq!(query(&pushed, sql).await, query(&local, sql).await, "{sql}");
        let data: Vec<String> = rec.take().into_iter().map(|e| e.path).filter(|p| p.contains("/data/")).collect();
        assert_eq!(data.len(), 1, "{sql}: one request, no rows read: {data:?}");
        assert!(data[0].contains("/$count"), "{data:?}");
    }
    let text = pushed.explain("SELECT count(*) FROM CustomersV3 WHERE OnHoldStatus = 'All'").await.unwrap();
    assert!(text.contains("FinOpsCountExec") && text.contains("/data/CustomersV3/$count?"), "{text}");
    // Anything else is computed from the rows, and says why.
    for sql in [
        "SELECT count(*), sum(CreditLimit) FROM CustomersV3",
        "SELECT dataAreaId, count(*) FROM CustomersV3 GROUP BY dataAreaId ORDER BY 1",
        // Text comparisons are case-insensitive on the service: re-checked on the rows.
        "SELECT count(*) FROM CustomersV3 WHERE OrganizationName LIKE '%Foods%'",
        "SELECT count(*) FROM CustomersV3 WHERE dataAreaId = 'usrt'",
        "SELECT count(DISTINCT CustomerGroupId) FROM CustomersV3",
    ] {
        assert_eq!(query(&pushed, sql).await, query(&local, sql).await, "{sql}");
    }
    let text = pushed.explain("SELECT count(*), sum(CreditLimit) FROM CustomersV3").await.unwrap();
    assert!(text.contains("Finance & Operations has no service-side aggregates"), "{text}");
    emu.shutdown().await;
}
