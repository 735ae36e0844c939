//! Aggregate pushdown against the emulator: the service computes partial states with
//! `$apply`, past its 50,000-row limit and its 5,000-group cap by `createdon` ranges, and the
//! results equal the same queries computed locally from every row.

use crate::common;

use common::{Recorder, rows, start};
use d365_sql::EngineOptions;

/// Runs `sql` with and without aggregate pushdown; returns both results (sorted) and the
/// requests the pushed run sent.
async fn both(env: &common::Env, sql: &str) -> (Vec<Vec<String>>, Vec<Vec<String>>, Vec<d365_client::RequestEvent>) {
    let pushed = env.engine_with(EngineOptions { page_size: Some(5000), ..Default::default() }).await;
    let local =
        env.engine_with(EngineOptions { page_size: Some(5000), aggregate_pushdown: false, ..Default::default() }).await;
    let rec = Recorder::attach(pushed.client());
    let mut a = rows(&pushed.collect(sql).await.unwrap_or_else(|e| panic!("pushed: {sql}: {e}")));
    let events = rec.take();
    let mut b = rows(&local.collect(sql).await.unwrap_or_else(|e| panic!("local: {sql}: {e}")));
    a.sort();
    b.sort();
    (a, b, events)
}

/// The requests probing the `createdon` span (`$top` on the column alone).
fn span_probes(events: &[d365_client::RequestEvent]) -> usize {
    events.iter().filter(|e| e.path.contains("$select=createdon&") && e.path.contains("$top=")).count()
}

/// The requests to the `accounts` entity set (not metadata).
fn account_requests(events: &[d365_client::RequestEvent]) -> usize {
    events.iter().filter(|e| e.path.contains("/accounts?")).count()
}

fn reads_rows(events: &[d365_client::RequestEvent]) -> usize {
    // Probes of the createdon span carry $top; a read of the rows does not.
    events.iter().filter(|e| e.path.contains("$select=") && !e.path.contains("$top=")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_past_the_record_limit_are_split_and_exact() {
    // 60,000 accounts: more than the 50,000 rows one aggregate request may cover.
    let env = start(60_000).await;
    for sql in [
        "SELECT statecodename, industrycodename, count(*), sum(revenue), avg(revenue), min(revenue), \
         max(numberofemployees), avg(numberofemployees), count(numberofemployees) \
         FROM account GROUP BY statecodename, industrycodename",
        "SELECT count(*), sum(numberofemployees), min(createdon), max(createdon) FROM account",
        "SELECT creditonhold, count(*) FROM account WHERE statecode = 0 AND revenue > 1000000 GROUP BY creditonhold",
        // DataFusion plans it as a grouping by industrycode (pushed), then a local count.
        "SELECT count(DISTINCT industrycode) FROM account",
    ] {
        let (pushed, local, events) = both(&env, sql).await;
        assert_eq!(pushed, local, "{sql}");
        assert!(!pushed.is_empty(), "{sql}");
        let applies: Vec<_> = events.iter().filter(|e| e.path.contains("$apply=")).collect();
        assert!(!applies.is_empty(), "{sql}: no $apply sent");
        assert_eq!(
            reads_rows(&events),
            0,
            "{sql}: rows were read: {:?}",
            events.iter().map(|e| &e.path).collect::<Vec<_>>()
        );
        if !sql.contains("WHERE") {
            // The whole table is refused (AggregateQueryRecordLimit), then read in ranges.
            assert!(applies.iter().any(|e| e.status == Some(400)), "{sql}: the limit was not hit");
            assert!(applies.iter().filter(|e| e.status == Some(200)).count() >= 2, "{sql}: not split");
            // The span was probed once, along with the first request, and the split used it.
            assert_eq!(span_probes(&events), 2, "{sql}");
        }
    }
    // Parts of dates: grouped by FetchXML (in UTC), split past the limit the same way.
    for sql in [
        "SELECT date_part('year', createdon) AS y, count(*), sum(revenue), avg(numberofemployees) \
         FROM account GROUP BY date_part('year', createdon)",
        "SELECT EXTRACT(MONTH FROM createdon) AS m, statecodename, count(*), max(revenue), min(createdon) \
         FROM account WHERE statecode = 0 GROUP BY EXTRACT(MONTH FROM createdon), statecodename",
    ] {
        let (pushed, local, events) = both(&env, sql).await;
        assert_eq!(pushed, local, "{sql}");
        assert!(pushed.len() > 1, "{sql}: {pushed:?}");
        let fetches: Vec<_> = events.iter().filter(|e| e.path.contains("fetchXml=")).collect();
        assert!(!fetches.is_empty() && fetches.iter().all(|e| e.path.contains("dategrouping")), "{sql}");
        if !sql.contains("WHERE") {
            assert!(fetches.iter().any(|e| e.status == Some(400)), "{sql}: the limit was not hit");
            assert!(fetches.iter().filter(|e| e.status == Some(200)).count() >= 2, "{sql}: not split");
        }
        assert_eq!(reads_rows(&events), 0, "{sql}: rows were read");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_parts_group_like_sql_with_nulls_and_empty_sums() {
    let env = start(400).await;
    let admin = env.client(None);
    // A group whose prices are all null: FetchXML sums it to 0, SQL to NULL.
    for day in ["2031-07-04", "2031-07-05"] {
        env.create(&admin, "new_widgets", serde_json::json!({"new_name": "no price", "new_shipdate": day})).await;
    }
    for sql in [
        "SELECT date_part('year', new_shipdate) AS y, count(*), sum(new_price), count(new_price), avg(new_quantity) \
         FROM new_widget GROUP BY date_part('year', new_shipdate)",
        "SELECT date_part('day', new_lastinspectedon), date_part('month', new_lastinspectedon), count(*), \
         sum(new_weight) FROM new_widget WHERE new_quantity > 10 GROUP BY 1, 2",
    ] {
        let (pushed, local, events) = both(&env, sql).await;
        assert_eq!(pushed, local, "{sql}");
        assert!(events.iter().any(|e| e.path.contains("fetchXml=")), "{sql}: not sent as FetchXML");
        assert_eq!(reads_rows(&events), 0, "{sql}: rows were read");
    }
    let sql = "SELECT date_part('year', new_shipdate), sum(new_price), count(*) FROM new_widget \
        WHERE new_shipdate > DATE '2031-01-01' GROUP BY 1";
    let (pushed, local, events) = both(&env, sql).await;
    assert_eq!(pushed, local);
    assert!(events.iter().any(|e| e.path.contains("fetchXml=")), "not sent as FetchXML");
    assert_eq!(pushed, vec![vec!["2031".to_string(), "NULL".to_string(), "2".to_string()]]);
    // Weeks and quarters differ between FetchXML and SQL: grouped locally.
    let on = env.engine_with(EngineOptions::default()).await;
    let text = on.explain("SELECT date_part('week', createdon), count(*) FROM account GROUP BY 1").await.unwrap();
    assert!(!text.contains("fetchXml") && text.contains("computed locally"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_groups_than_one_response_holds_are_split() {
    let env = start(6_000).await;
    // One group per account: 6,000 groups, more than the 5,000 one response returns.
    let sql = "SELECT accountid, count(*), sum(revenue) FROM account GROUP BY accountid";
    let (pushed, local, events) = both(&env, sql).await;
    assert_eq!(pushed.len(), local.len());
    assert_eq!(pushed, local);
    assert!(events.iter().filter(|e| e.path.contains("$apply=")).count() > 2, "not split");
    assert_eq!(reads_rows(&events), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_service_cannot_compute_stays_local() {
    let env = start(300).await;
    for sql in [
        // Text groups: the service would merge 'A' and 'a'.
        "SELECT name, count(*) FROM account GROUP BY name",
        // A filter the service evaluates case-insensitively: re-checked locally.
        "SELECT count(*) FROM account WHERE name = 'Contoso'",
        "SELECT max(name) FROM account",
        // Date-times cannot be grouped by $apply.
        "SELECT createdon, count(*) FROM account GROUP BY createdon",
    ] {
        let (pushed, local, events) = both(&env, sql).await;
        assert_eq!(pushed, local, "{sql}");
        assert!(!events.iter().any(|e| e.path.contains("$apply=")), "{sql}: pushed");
    }
    // --explain says why, also when a local filter stands between the scan and the aggregate.
    let engine = env.engine_with(EngineOptions::default()).await;
    let text = engine
        .explain("SELECT statecodename, count(*) FROM account WHERE name = 'Contoso' GROUP BY statecodename")
        .await
        .unwrap();
    assert!(text.contains("Aggregates computed locally"), "{text}");
    assert!(text.contains("account: part of the WHERE is evaluated locally (name@"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_apply_request_and_the_option_turns_it_off() {
    let env = start(50).await;
    let sql = "SELECT statecodename, count(*), sum(revenue) FROM account GROUP BY statecodename";
    let on = env.engine_with(EngineOptions::default()).await;
    let text = on.explain(sql).await.unwrap();
    assert!(text.contains("DataverseAggregateExec"), "{text}");
    assert!(
        text.contains("$apply=groupby((statecode),aggregate($count%20as%20c,revenue%20with%20sum%20as%20a0))"),
        "{text}"
    );
    let off = env.engine_with(EngineOptions { aggregate_pushdown: false, ..Default::default() }).await;
    let text = off.explain(sql).await.unwrap();
    assert!(!text.contains("$apply"), "{text}");
    assert!(text.contains("DataverseScanExec"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_too_dense_to_split_is_aggregated_locally() {
    let env = start(100).await;
    // 5,100 migrated accounts created "at the same second" (overriddencreatedon): one group per
    // account is more than one response holds, and no createdon range can divide them.
    let admin = env.client(None);
    let targets: Vec<serde_json::Value> = (0..5100)
        .map(|i| {
            serde_json::json!({"@odata.type": "Microsoft.Dynamics.CRM.account", "name": format!("Migrated {i}"),
                "revenue": i, "overriddencreatedon": "2015-06-01T12:00:00Z"})
        })
        .collect();
    for chunk in targets.chunks(1000) {
        let url = admin.url("accounts/Microsoft.Dynamics.CRM.CreateMultiple").unwrap();
        let req = d365_client::ApiRequest::new(reqwest::Method::POST, url)
            .json(&serde_json::json!({"Targets": chunk}))
            .unwrap();
        admin.send(&req).await.expect("CreateMultiple");
    }
    let sql = "SELECT accountid, count(*), sum(revenue) FROM account \
               WHERE createdon < '2016-01-01T00:00:00Z' GROUP BY accountid";
    let (pushed, local, events) = both(&env, sql).await;
    assert_eq!(pushed.len(), 5100);
    assert_eq!(pushed, local);
    assert!(events.iter().any(|e| e.path.contains("$apply=")), "tried at the service first");
    assert!(reads_rows(&events) > 0, "the dense second was read and aggregated locally");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_span_of_an_unfiltered_table_is_probed_with_the_first_request() {
    let env = start(300).await;
    // Unfiltered: the two probes go with the whole-table request (so a table past the limit
    // splits without waiting for them), and cost two small requests when it fits.
    let (pushed, local, events) =
        both(&env, "SELECT statecodename, count(*) FROM account GROUP BY statecodename").await;
    assert_eq!(pushed, local);
    assert_eq!(events.iter().filter(|e| e.path.contains("$apply=") && e.status == Some(200)).count(), 1);
    assert_eq!(span_probes(&events), 2, "{:?}", events.iter().map(|e| &e.path).collect::<Vec<_>>());
    assert_eq!(account_requests(&events), 3);
    // Once a run found that the table fits in one request, the same client skips the probes.
    let engine = env.engine_with(EngineOptions { page_size: Some(5000), ..Default::default() }).await;
    let rec = Recorder::attach(engine.client());
    for expected in [3, 1] {
        let again = rows(&engine.collect("SELECT count(*), max(revenue) FROM account").await.unwrap());
        assert_eq!(again.len(), 1);
        let events = rec.take();
        assert_eq!(account_requests(&events), expected, "{:?}", events.iter().map(|e| &e.path).collect::<Vec<_>>());
    }
    assert_eq!(engine.client().table_extent("accounts").map(|e| e.rows), Some(300));
    // Filtered: probing could read much of the table, so only the aggregate is sent.
    let (pushed, local, events) =
        both(&env, "SELECT statecodename, count(*) FROM account WHERE revenue > 1000 GROUP BY statecodename").await;
    assert_eq!(pushed, local);
    assert_eq!(span_probes(&events), 0);
    assert_eq!(account_requests(&events), 1, "{:?}", events.iter().map(|e| &e.path).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_aggregate_over_a_big_table_is_split_in_its_first_round() {
    let env = start(60_000).await;
    let options = EngineOptions { page_size: Some(5000), ..Default::default() };
    let pushed = env.engine_with(options.clone()).await;
    let local = env.engine_with(EngineOptions { aggregate_pushdown: false, ..options }).await;
    let rec = Recorder::attach(pushed.client());
    let sql = "SELECT statecodename, count(*), sum(revenue), max(createdon) FROM account GROUP BY statecodename";
    let limit_hits = |events: &[d365_client::RequestEvent]| events.iter().filter(|e| e.status == Some(400)).count();
    let paths = |events: &[d365_client::RequestEvent]| events.iter().map(|e| e.path.clone()).collect::<Vec<_>>();

    // First run: refused as a whole, then split; the table's size stays on the client.
    let first = rows(&pushed.collect(sql).await.expect("first run"));
    let events = rec.take();
    assert_eq!(limit_hits(&events), 1, "{:?}", paths(&events));
    let extent = pushed.client().table_extent("accounts").expect("the extent is remembered");
    assert_eq!(extent.rows, 60_000);
    assert!(extent.span.is_some());

    // Rows created since: past the remembered span, in its open last range.
    let admin = env.client(None);
    for i in 0..3 {
        env.create(&admin, "accounts", serde_json::json!({"name": format!("New {i}"), "revenue": 1000 + i})).await;
    }
    let second = rows(&pushed.collect(sql).await.expect("second run"));
    let events = rec.take();
    assert_eq!(limit_hits(&events), 0, "split from the start: {:?}", paths(&events));
    assert_eq!(span_probes(&events), 0, "no probe: {:?}", paths(&events));
    assert!(events.iter().filter(|e| e.path.contains("$apply=")).count() >= 3, "null part and two ranges");
    assert_eq!(reads_rows(&events), 0);
    let mut expected = rows(&local.collect(sql).await.expect("local"));
    expected.sort();
    let mut second_sorted = second.clone();
    second_sorted.sort();
    assert_eq!(second_sorted, expected, "the new rows are counted");
    assert_ne!(first, second);
    assert_eq!(pushed.client().table_extent("accounts").unwrap().rows, 60_003);

    // A stale memory whose span ends long before the rows: the open last range is refused,
    // probed again and split, and the answer stays exact.
    let (min, _) = extent.span.unwrap();
    let stale = d365_client::TableExtent { rows: 60_003, span: Some((min, min + 3600)) };
    pushed.client().remember_table_extent("accounts", Some(stale));
    let mut third = rows(&pushed.collect(sql).await.expect("third run"));
    third.sort();
    let events = rec.take();
    assert_eq!(third, expected);
    assert!(limit_hits(&events) >= 1, "the stale last range was refused: {:?}", paths(&events));
    assert_eq!(span_probes(&events), 2, "and probed again within its bounds: {:?}", paths(&events));
    assert_eq!(reads_rows(&events), 0);
    let widened = pushed.client().table_extent("accounts").unwrap();
    assert_eq!(widened.rows, 60_003);
    assert!(widened.span.unwrap().1 > min + 3600, "the span seen is remembered: {widened:?}");

    // A filtered aggregate neither uses nor changes the memory.
    let filtered = "SELECT count(*) FROM account WHERE revenue > 1000000";
    let _ = pushed.collect(filtered).await.expect("filtered");
    assert_eq!(pushed.client().table_extent("accounts"), Some(widened));
}
