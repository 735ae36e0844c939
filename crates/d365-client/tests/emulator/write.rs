//! Bulk writes against the emulator: every operation read back, bisection down to the bad rows,
//! optimistic concurrency, atomic writes, tables without bulk messages, privileges.

use std::collections::{HashMap, HashSet};

use d365_client::{
    BulkMode, DataverseClient, EntityInfo, Query, RecordKey, WriteOp, WriteOptions, WriteProgress, WriteReport,
    WriteRow,
};
use futures::stream;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::common::{admin_client, start};

pub async fn entity(client: &DataverseClient, logical: &str) -> EntityInfo {
    client.fetch_entities().await.unwrap().into_iter().find(|e| e.logical_name == logical).expect("table")
}

pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object").clone()
}

pub async fn run(
    client: &DataverseClient,
    table: &EntityInfo,
    op: WriteOp,
    rows: Vec<WriteRow>,
    options: &WriteOptions,
) -> Result<WriteReport, d365_client::WriteError> {
    client.write(table, op, stream::iter(rows), options, |_p: &WriteProgress| {}).await
}

pub async fn read_all(client: &DataverseClient, query: Query) -> Vec<Map<String, Value>> {
    client.page_stream(&query).unwrap().collect_rows().await.unwrap()
}

fn opts(chunk: usize) -> WriteOptions {
    WriteOptions { chunk_size: chunk, max_parallel: Some(4), ..Default::default() }
}

#[tokio::test]
async fn create_update_upsert_delete_read_back() {
    let env = start(20).await;
    let client = env.client().await;
    let contacts = entity(&client, "contact").await;
    let accounts = read_all(&client, Query::new("accounts").select(["accountid"]).top(2)).await;
    let account = accounts[0]["accountid"].as_str().unwrap().to_string();

    // Create: lookups through @odata.bind, nulls, a chosen id; bulk messages in chunks of 100.
    let chosen = Uuid::new_v4();
    let rows: Vec<WriteRow> = (0..450u64)
        .map(|i| {
            let mut v = obj(json!({
                "lastname": format!("W{i:04}"),
                "emailaddress1": format!("w{i}@write.test"),
                "jobtitle": if i % 3 == 0 { Value::Null } else { json!("Engineer") },
                "annualincome": i as f64 * 10.5,
            }));
            if i % 2 == 0 {
                v.insert("parentcustomerid_account@odata.bind".into(), json!(format!("/accounts({account})")));
            }
            let row = WriteRow::new(i, v);
            if i == 7 { row.with_key(chosen) } else { row }
        })
        .collect();
    let progress = std::sync::Mutex::new(Vec::new());
    let report = client
        .write(&contacts, WriteOp::Create, stream::iter(rows), &opts(100), |p: &WriteProgress| {
            progress.lock().unwrap().push(*p)
        })
        .await
        .unwrap();
    assert_eq!((report.rows, report.written, report.failed.len()), (450, 450, 0), "{report}");
    assert_eq!(report.mode, BulkMode::BulkMessages);
    assert_eq!(report.chunks, 5);
    // One availability probe and five CreateMultiple requests.
    assert_eq!(report.requests, 6, "{report}");
    let seen = progress.lock().unwrap().clone();
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.last().unwrap().written, 450);
    assert!(seen.windows(2).all(|w| w[0].written <= w[1].written));

    let q = Query::new("contacts")
        .select(["contactid", "lastname", "jobtitle", "annualincome", "_parentcustomerid_value"])
        .filter("endswith(emailaddress1,'@write.test')");
    let back = read_all(&client, q.clone()).await;
    assert_eq!(back.len(), 450);
    let by_name: HashMap<String, &Map<String, Value>> =
        back.iter().map(|r| (r["lastname"].as_str().unwrap().to_string(), r)).collect();
    assert_eq!(by_name.len(), 450);
    assert_eq!(by_name["W0007"]["contactid"], json!(chosen.to_string()));
    assert_eq!(by_name["W0003"]["jobtitle"], Value::Null);
    assert_eq!(by_name["W0004"]["jobtitle"], "Engineer");
    assert_eq!(by_name["W0004"]["_parentcustomerid_value"], json!(account));
    assert_eq!(by_name["W0005"]["_parentcustomerid_value"], Value::Null);
    assert_eq!(by_name["W0010"]["annualincome"].as_f64(), Some(105.0));

    // Update by id (UpdateMultiple): set a value, clear the lookup.
    let rows: Vec<WriteRow> = back
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = Uuid::parse_str(r["contactid"].as_str().unwrap()).unwrap();
            WriteRow::new(i as u64, obj(json!({"jobtitle": "Updated", "parentcustomerid_account@odata.bind": null})))
                .with_key(id)
        })
        .collect();
    let report = run(&client, &contacts, WriteOp::Update, rows, &opts(200)).await.unwrap();
    assert_eq!((report.written, report.mode), (450, BulkMode::BulkMessages), "{report}");
    let back = read_all(&client, q.clone()).await;
    assert!(back.iter().all(|r| r["jobtitle"] == "Updated" && r["_parentcustomerid_value"].is_null()));

    // Upsert by alternate key: 200 existing (updated) and 100 new (created).
    let rows: Vec<WriteRow> = (250..550u64)
        .map(|i| {
            WriteRow::new(i, obj(json!({"lastname": format!("U{i:04}")})))
                .with_key(RecordKey::alternate("emailaddress1", format!("w{i}@write.test")))
        })
        .collect();
    let report = run(&client, &contacts, WriteOp::Upsert, rows, &opts(100)).await.unwrap();
    assert_eq!((report.written, report.mode), (300, BulkMode::BulkMessages), "{report}");
    let back = read_all(&client, q.clone()).await;
    assert_eq!(back.len(), 550);
    let names: HashSet<String> = back.iter().map(|r| r["lastname"].as_str().unwrap().to_string()).collect();
    assert!(names.contains("W0249") && names.contains("U0250") && names.contains("U0549") && !names.contains("W0250"));

    // Delete by id: $batch (DeleteMultiple is for elastic tables only).
    let rows: Vec<WriteRow> = back
        .iter()
        .enumerate()
        .map(|(i, r)| {
            WriteRow::new(i as u64, Map::new()).with_key(Uuid::parse_str(r["contactid"].as_str().unwrap()).unwrap())
        })
        .collect();
    let report = run(&client, &contacts, WriteOp::Delete, rows, &opts(200)).await.unwrap();
    assert_eq!((report.written, report.mode, report.requests), (550, BulkMode::Batch, 3), "{report}");
    assert!(read_all(&client, q).await.is_empty());

    // Deleting them again: every row reported (404), none written.
    let report =
        run(&client, &contacts, WriteOp::Delete, vec![WriteRow::new(0, Map::new()).with_key(chosen)], &opts(10))
            .await
            .unwrap();
    assert_eq!(report.written, 0);
    assert_eq!(report.failed[0].status, Some(404));
    assert_eq!(report.failed[0].code, "0x80040217");
}

#[tokio::test]
async fn a_table_the_app_may_not_write_stops_the_write() {
    let env = start(5).await;
    let client = env.client().await;
    let accounts = entity(&client, "account").await;
    let rows: Vec<WriteRow> = (0..250u64).map(|i| WriteRow::new(i, obj(json!({"name": format!("N{i}")})))).collect();
    let err = run(&client, &accounts, WriteOp::Create, rows, &opts(100)).await.unwrap_err();
    assert!(err.error.is_forbidden(), "{}", err.error);
    assert!(err.error.to_string().contains("prvCreate"), "{}", err.error);
    let r = &err.report;
    assert_eq!(r.written, 0);
    // Every row read is accounted for: failed or not attempted.
    assert_eq!(r.failed.len() + r.not_attempted.len(), r.rows as usize, "{r}");
    let q = Query::new("accounts").select(["name"]).filter("startswith(name,'N')");
    let admin = admin_client(&env, env.options());
    assert!(read_all(&admin, q).await.iter().all(|row| !row["name"].as_str().unwrap().starts_with("N1")));
}

#[tokio::test]
async fn bisection_reports_only_the_bad_rows() {
    let env = start(5).await;
    let client = env.client().await;
    let contacts = entity(&client, "contact").await;
    // An existing contact whose alternate key a new row repeats.
    client.create("contacts", &json!({"lastname": "Taken", "emailaddress1": "taken@bisect.test"})).await.unwrap();
    let missing = Uuid::new_v4();
    let bad: HashMap<u64, (Value, Option<&str>)> = HashMap::from([
        (13, (json!({"annualincome": "lots"}), Some("annualincome"))),
        (57, (json!({"nosuchcolumn": 1}), Some("nosuchcolumn"))),
        (101, (json!({"lastname": "x".repeat(80)}), Some("lastname"))),
        (
            102,
            (json!({"parentcustomerid_account@odata.bind": "/accounts(not-a-guid)"}), Some("parentcustomerid_account")),
        ),
        (150, (json!({"emailaddress1": "taken@bisect.test"}), Some("emailaddress1"))),
        (151, (json!({"parentcustomerid_account@odata.bind": format!("/accounts({missing})")}), None)),
        (199, (json!({"gendercode": 99}), Some("gendercode"))),
    ]);
    let rows: Vec<WriteRow> = (0..200u64)
        .map(|i| {
            let mut v = obj(json!({"lastname": format!("B{i:03}"), "jobtitle": "bisect"}));
            if let Some((extra, _)) = bad.get(&i) {
                for (k, x) in extra.as_object().unwrap() {
                    v.insert(k.clone(), x.clone());
                }
            }
            WriteRow::new(i, v)
        })
        .collect();
    let report = run(&client, &contacts, WriteOp::Create, rows, &opts(200)).await.unwrap();
    assert_eq!(report.mode, BulkMode::BulkMessages);
    assert_eq!(report.written, 193, "{report}");
    let failed: HashSet<u64> = report.failed.iter().map(|e| e.index).collect();
    assert_eq!(failed, bad.keys().copied().collect::<HashSet<u64>>(), "{:#?}", report.failed);
    for e in &report.failed {
        assert!(!e.code.is_empty() && e.status.is_some(), "{e}");
        assert_eq!(e.column.as_deref(), bad[&e.index].1, "{e}");
    }
    let dup = report.failed.iter().find(|e| e.index == 150).unwrap();
    assert_eq!((dup.status, dup.code.as_str()), (Some(412), "0x80040237"));
    assert_eq!(report.failed.iter().find(|e| e.index == 151).unwrap().status, Some(404));
    assert!(report.bisections >= 7, "{report}");
    let back = read_all(&client, Query::new("contacts").select(["lastname"]).filter("jobtitle eq 'bisect'")).await;
    assert_eq!(back.len(), 193);
}

#[tokio::test]
async fn tables_without_bulk_messages_fall_back_to_batch() {
    let env = start(5).await;
    let admin = admin_client(&env, env.options());
    let teams = entity(&admin, "team").await;
    let rows: Vec<WriteRow> = (0..30u64)
        .map(|i| {
            let name = if i == 4 { Value::Null } else { json!(format!("Team {i}")) };
            WriteRow::new(i, obj(json!({"name": name})))
        })
        .collect();
    let report = run(&admin, &teams, WriteOp::Create, rows, &opts(50)).await.unwrap();
    assert_eq!(report.mode, BulkMode::Batch, "{report}");
    assert_eq!((report.written, report.failed.len()), (29, 1), "{:#?}", report.failed.first());
    let e = &report.failed[0];
    assert_eq!((e.index, e.column.as_deref(), e.code.as_str()), (4, Some("name"), "0x80044331"), "{e}");
    let back = read_all(&admin, Query::new("teams").select(["name"]).filter("startswith(name,'Team ')")).await;
    assert_eq!(back.len(), 29);
    // Forcing bulk messages on such a table stops the write at the first refusal (no
    // fallback, no bisection: the refusal holds for every row).
    let forced = WriteOptions { mode: BulkMode::BulkMessages, max_parallel: Some(1), ..opts(10) };
    let rows: Vec<WriteRow> = (0..25u64).map(|i| WriteRow::new(i, obj(json!({"name": format!("T{i}")})))).collect();
    let err = run(&admin, &teams, WriteOp::Create, rows, &forced).await.unwrap_err();
    assert!(err.error.to_string().contains("does not support entities of type 'team'"), "{}", err.error);
    let r = &err.report;
    assert_eq!(r.written, 0);
    // The first chunk's rows are reported; the write stopped before reading the rest.
    assert_eq!((r.rows, r.failed.len(), r.not_attempted.len(), r.requests), (10, 10, 0, 1), "{r}");
}

#[tokio::test]
async fn optimistic_writes_report_rows_changed_since_read() {
    let env = start(5).await;
    let client = env.client().await;
    let contacts = entity(&client, "contact").await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(client.create("contacts", &json!({"lastname": format!("O{i}")})).await.unwrap());
    }
    let mut etags = Vec::new();
    for id in &ids {
        etags.push(client.retrieve("contacts", &RecordKey::Id(*id), &["lastname"]).await.unwrap().etag.unwrap());
    }
    // Someone else changes three of them after they were read.
    for id in &ids[..3] {
        client.update("contacts", &RecordKey::Id(*id), &json!({"jobtitle": "theirs"}), None).await.unwrap();
    }
    let mut rows: Vec<WriteRow> = ids
        .iter()
        .zip(&etags)
        .enumerate()
        .map(|(i, (id, etag))| {
            WriteRow::new(i as u64, obj(json!({"jobtitle": "ours"}))).with_key(*id).with_etag(etag.clone())
        })
        .collect();
    rows.push(WriteRow::new(10, obj(json!({"jobtitle": "ours"}))).with_key(ids[9]));
    let options = WriteOptions { optimistic: true, ..opts(50) };
    let report = run(&client, &contacts, WriteOp::Update, rows, &options).await.unwrap();
    assert_eq!(report.mode, BulkMode::Batch);
    assert_eq!(report.written, 7, "{report}");
    let failed: Vec<(u64, Option<u16>)> = report.failed.iter().map(|e| (e.index, e.status)).collect();
    assert_eq!(failed, vec![(0, Some(412)), (1, Some(412)), (2, Some(412)), (10, None)]);
    assert!(report.failed[0].message.contains("doesn't match"), "{}", report.failed[0].message);
    for (i, id) in ids.iter().enumerate() {
        let r = client.retrieve("contacts", &RecordKey::Id(*id), &["jobtitle"]).await.unwrap();
        assert_eq!(r.fields["jobtitle"], if i < 3 { "theirs" } else { "ours" });
    }
    // Deletes with stale etags are refused the same way.
    let rows: Vec<WriteRow> = ids[..2]
        .iter()
        .enumerate()
        .map(|(i, id)| WriteRow::new(i as u64, Map::new()).with_key(*id).with_etag(etags[i].clone()))
        .collect();
    let report = run(&client, &contacts, WriteOp::Delete, rows, &options).await.unwrap();
    assert_eq!((report.written, report.failed.len()), (0, 2));
    // Bulk messages cannot carry etags: asking for both is refused before anything is sent.
    let bad = WriteOptions { mode: BulkMode::BulkMessages, ..options };
    let err = run(&client, &contacts, WriteOp::Update, vec![], &bad).await.unwrap_err();
    assert!(err.error.to_string().contains("ConcurrencyBehavior"), "{}", err.error);
}

#[tokio::test]
async fn atomic_writes_all_or_nothing() {
    let env = start(5).await;
    let client = env.client().await;
    let contacts = entity(&client, "contact").await;
    let atomic = WriteOptions { atomic: true, ..opts(200) };
    let rows = |n: u64, bad: Option<u64>, tag: &str| -> Vec<WriteRow> {
        (0..n)
            .map(|i| {
                let last = if Some(i) == bad { "x".repeat(80) } else { format!("A{i}") };
                WriteRow::new(i, obj(json!({"lastname": last, "jobtitle": tag})))
            })
            .collect()
    };
    let count = |tag: &'static str| {
        let client = client.clone();
        async move {
            read_all(&client, Query::new("contacts").select(["contactid"]).filter(format!("jobtitle eq '{tag}'")))
                .await
                .len()
        }
    };
    let err = run(&client, &contacts, WriteOp::Create, rows(50, Some(31), "atomic-bad"), &atomic).await.unwrap_err();
    assert_eq!(err.error.dataverse_code(), Some("0x80044331"), "{}", err.error);
    assert_eq!(count("atomic-bad").await, 0, "nothing was written");
    assert_eq!(err.report.written, 0);
    assert_eq!(err.report.failed.len(), 50);
    let culprit: Vec<&d365_client::RowError> = err.report.failed.iter().filter(|e| !e.code.is_empty()).collect();
    assert_eq!((culprit.len(), culprit[0].index, culprit[0].column.as_deref()), (1, 31, Some("lastname")));
    assert!(err.report.failed[0].message.contains("rolled back"));

    let report = run(&client, &contacts, WriteOp::Create, rows(1000, None, "atomic-ok"), &atomic).await.unwrap();
    assert_eq!((report.written, report.requests), (1000, 1), "{report}");
    assert_eq!(count("atomic-ok").await, 1000);

    let err = run(&client, &contacts, WriteOp::Create, rows(1001, None, "atomic-big"), &atomic).await.unwrap_err();
    assert!(err.error.to_string().contains("at most 1000 rows"), "{}", err.error);
    assert_eq!(err.report.requests, 0);
    assert_eq!(count("atomic-big").await, 0);
}

#[tokio::test]
async fn bypass_needs_the_privilege_and_impersonation_writes_as_the_user() {
    let env = start(5).await;
    let client = env.client().await;
    let contacts = entity(&client, "contact").await;
    let bypass = WriteOptions { bypass_plugins: true, ..opts(50) };
    let rows = |tag: &str| {
        (0..20u64).map(|i| WriteRow::new(i, obj(json!({"lastname": format!("P{i}"), "jobtitle": tag})))).collect()
    };
    let err = run(&client, &contacts, WriteOp::Create, rows("bypass-denied"), &bypass).await.unwrap_err();
    assert!(err.error.is_forbidden());
    assert!(err.error.to_string().contains("prvBypassCustomBusinessLogic"), "{}", err.error);
    assert_eq!(err.report.written, 0);

    let admin = admin_client(&env, env.options());
    let report = run(&admin, &contacts, WriteOp::Create, rows("bypass-ok"), &bypass).await.unwrap();
    assert_eq!(report.written, 20);
    let sales = env.emu.ready().users.iter().find(|u| u.username.starts_with("sales")).unwrap().systemuser_id.clone();
    let as_sales = WriteOptions { caller_id: Some(Uuid::parse_str(&sales).unwrap()), ..opts(50) };
    for mode in [BulkMode::BulkMessages, BulkMode::Batch, BulkMode::RowByRow] {
        let tag = format!("as-sales-{mode:?}");
        let report = run(&admin, &contacts, WriteOp::Create, rows(&tag), &WriteOptions { mode, ..as_sales.clone() })
            .await
            .unwrap();
        assert_eq!(report.written, 20, "{report}");
        let back = read_all(
            &admin,
            Query::new("contacts").select(["_createdby_value"]).filter(format!("jobtitle eq '{tag}'")),
        )
        .await;
        assert_eq!(back.len(), 20);
        assert!(back.iter().all(|r| r["_createdby_value"] == json!(sales)), "{mode:?}");
    }
}
