//! Write-back through SQL against the in-process emulator: every statement kind read back
//! (lookups, nulls, every column type of `new_widget`), UPDATE/DELETE whose WHERE reaches the
//! service as `$filter`, upsert and MERGE by the alternate key `account.accountnumber`, per-row
//! errors naming row and column while the other rows land, atomic writes, optimistic
//! concurrency (412 reported, not overwritten), dry runs that send no write, and the 403 of a
//! table the app may not write.

use crate::common;

use std::sync::Arc;

use common::{Env, Recorder, rows, start};
use d365_auth::{AccessToken, StaticTokenProvider};
use d365_client::{ClientOptions, DataverseClient, WriteOp, WriteOptions};
use d365_emulator::config::INTEGRATION_APP;
use d365_sql::{DmlOptions, DmlOutcome, EngineOptions, SqlEngine, SqlError};

fn decoded(path: &str) -> String {
    let mut out = Vec::new();
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&path[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn dml(engine: &SqlEngine, sql: &str) -> DmlOutcome {
    dml_with(engine, sql, DmlOptions::default()).await
}

async fn dml_with(engine: &SqlEngine, sql: &str, options: DmlOptions) -> DmlOutcome {
    let out = engine.execute_dml(sql, &options, |_| {}).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert!(out.stopped.is_none(), "{sql}: stopped: {:?}", out.stopped);
    out
}

async fn query(engine: &SqlEngine, sql: &str) -> Vec<Vec<String>> {
    rows(&engine.collect(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")))
}

async fn one(engine: &SqlEngine, sql: &str) -> String {
    let r = query(engine, sql).await;
    assert_eq!(r.len(), 1, "{sql}: {r:?}");
    r[0][0].clone()
}

/// An engine signed in as the least-privilege integration app (accounts read-only).
async fn integration_engine(env: &Env) -> SqlEngine {
    let token = env.emu.app_token(INTEGRATION_APP, std::time::Duration::from_secs(3600)).expect("seeded app");
    let ready = env.emu.ready();
    let mut o = ClientOptions::new(ready.org_url.clone());
    o.extra_ca_pem = Some(std::fs::read(&ready.ca_pem).unwrap());
    let client = DataverseClient::new(o, Arc::new(StaticTokenProvider::new(AccessToken::new(token, None)))).unwrap();
    SqlEngine::new(client, EngineOptions::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_values_writes_every_column_type_lookups_and_nulls() {
    let env = start(40).await;
    let engine = env.engine(true, None).await;
    let account = one(&engine, "SELECT accountid FROM account WHERE accountnumber = 'ACC-0000001'").await;
    let contact = one(&engine, "SELECT contactid FROM contact ORDER BY contactid LIMIT 1").await;
    let sql = format!(
        "INSERT INTO new_widget (new_name, new_description, new_quantity, new_serialnumber, new_weight, new_ratio, \
         new_price, new_isactive, new_lastinspectedon, new_shipdate, new_externalid, new_accountid, new_customerid, \
         new_customeridtype, new_category, new_tags) VALUES \
         ('w-all', 'long text', 42, 9000000000, 12.3456, 0.5, 19.99, true, '2024-02-29T10:30:00+02:00', DATE '2024-03-01', \
          '0F8FAD5B-D9CB-469F-A165-70867728950E', '{account}', '{contact}', 'contact', 100000001, '100000000,100000003'), \
         ('w-nulls', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), \
         ('w-account', 'x', '7', '8', '1.5', 2, 3, 'no', '2024-01-02', '2024-01-03', NULL, NULL, '{account}', 'account', 100000000, 100000002)"
    );
    let out = dml(&engine, &sql).await;
    assert_eq!((out.op, out.report.rows, out.report.written), (WriteOp::Create, 3, 3), "{:?}", out.report);
    assert!(out.report.failed.is_empty());

    let got = query(
        &engine,
        "SELECT new_name, new_description, new_quantity, new_serialnumber, new_weight, new_ratio, new_price, \
         new_isactive, new_lastinspectedon, new_shipdate, new_externalid, new_accountid, new_customerid, \
         new_customeridtype, new_category, new_tags \
         FROM new_widget WHERE new_name IN ('w-all', 'w-nulls', 'w-account') ORDER BY new_name",
    )
    .await;
    assert_eq!(got.len(), 3, "{got:?}");
    let all = &got[1];
    assert_eq!(all[0..8], ["w-all", "long text", "42", "9000000000", "12.3456", "0.5", "19.9900", "true"], "{all:?}");
    assert!(all[8].starts_with("2024-02-29T08:30:00"), "{all:?}");
    assert_eq!(all[9], "2024-03-01");
    assert_eq!(all[10], "0f8fad5b-d9cb-469f-a165-70867728950e");
    assert_eq!((all[11].as_str(), all[12].as_str(), all[13].as_str()), (account.as_str(), contact.as_str(), "contact"));
    assert_eq!((all[14].as_str(), all[15].as_str()), ("100000001", "100000000,100000003"));
    let nulls = &got[2];
    assert!(nulls[1..].iter().all(|v| v == "NULL"), "{nulls:?}");
    let acc = &got[0];
    assert_eq!(acc[2..8], ["7", "8", "1.5000", "2.0", "3.0000", "false"], "{acc:?}");
    assert!(acc[8].starts_with("2024-01-02T00:00:00"), "{acc:?}");
    assert_eq!((acc[12].as_str(), acc[13].as_str(), acc[15].as_str()), (account.as_str(), "account", "100000002"));

    // NULL clears on update, lookups included.
    let out =
        dml(&engine, "UPDATE new_widget SET new_accountid = NULL, new_quantity = NULL WHERE new_name = 'w-all'").await;
    assert_eq!(out.report.written, 1);
    let r =
        query(&engine, "SELECT new_accountid, new_quantity, new_price FROM new_widget WHERE new_name = 'w-all'").await;
    assert_eq!(r, [["NULL", "NULL", "19.9900"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_select_from_a_local_file_and_from_another_table() {
    let env = start(40).await;
    let engine = env.engine(true, None).await;
    let account = one(&engine, "SELECT accountid FROM account WHERE accountnumber = 'ACC-0000002'").await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("people.csv");
    std::fs::write(
        &csv,
        format!("first,last,parent,birthday\nAda,Lovelace,{account},1815-12-10\nAlan,Turing,,1912-06-23\n"),
    )
    .unwrap();
    engine.register_file("people", &csv).await.unwrap();
    // A plain SELECT sees the file too.
    assert_eq!(one(&engine, "SELECT count(*) FROM people").await, "2");
    let out = dml(
        &engine,
        "INSERT INTO contact (firstname, lastname, parentcustomerid, parentcustomeridtype, birthdate) \
         SELECT first, upper(last), parent, CASE WHEN parent IS NULL THEN NULL ELSE 'account' END, birthday FROM people",
    )
    .await;
    assert_eq!(out.report.written, 2, "{:?}", out.report.failed);
    let got = query(
        &engine,
        "SELECT firstname, lastname, parentcustomerid, parentcustomeridtype, birthdate FROM contact \
         WHERE lastname IN ('LOVELACE', 'TURING') ORDER BY lastname",
    )
    .await;
    assert_eq!(
        got,
        [
            vec!["Ada", "LOVELACE", account.as_str(), "account", "1815-12-10"],
            vec!["Alan", "TURING", "NULL", "NULL", "1912-06-23"]
        ]
    );

    // From another Dataverse table, with the column names of the SELECT.
    let out = dml(
        &engine,
        "INSERT INTO contact SELECT name AS lastname, accountid AS parentcustomerid, 'account' AS parentcustomeridtype \
         FROM account WHERE accountnumber IN ('ACC-0000003', 'ACC-0000004')",
    )
    .await;
    assert_eq!(out.report.written, 2);
    let n = one(
        &engine,
        "SELECT count(*) FROM contact c JOIN account a ON c.parentcustomerid = a.accountid AND c.lastname = a.name \
         WHERE a.accountnumber IN ('ACC-0000003', 'ACC-0000004')",
    )
    .await;
    assert_eq!(n, "2");

    // NDJSON too; a local table cannot hide a Dataverse one.
    let nd = dir.path().join("more.ndjson");
    std::fs::write(&nd, "{\"n\":\"X1\"}\n{\"n\":\"X2\"}\n").unwrap();
    engine.register_file("more", &nd).await.unwrap();
    assert_eq!(one(&engine, "SELECT count(*) FROM more").await, "2");
    let e = engine.register_file("account", &nd).await.unwrap_err();
    assert!(e.to_string().contains("organisation has a table"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_delete_push_the_where_down_and_write_by_id() {
    let env = start(40).await;
    let engine = env.engine(true, None).await;
    let rec = Recorder::attach(engine.client());
    let out = dml(
        &engine,
        "UPDATE account SET name = name || ' (renamed)', revenue = revenue + 1, numberofemployees = 77 \
         WHERE accountnumber = 'ACC-0000005'",
    )
    .await;
    assert_eq!((out.op, out.report.written), (WriteOp::Update, 1));
    let events = rec.take();
    let get = events.iter().find(|e| e.method == "GET" && e.path.contains("accounts")).expect("a read");
    assert!(decoded(&get.path).contains("$filter=accountnumber eq 'ACC-0000005'"), "{}", decoded(&get.path));
    assert!(events.iter().any(|e| e.method != "GET"), "a write was sent");
    let got = query(&engine, "SELECT name, numberofemployees FROM account WHERE accountnumber = 'ACC-0000005'").await;
    assert!(got[0][0].ends_with(" (renamed)") && got[0][1] == "77", "{got:?}");

    // Several rows, by a range pushed down.
    let before = one(&engine, "SELECT count(*) FROM account WHERE numberofemployees >= 100000").await;
    let out = dml(&engine, "UPDATE account SET description = 'big' WHERE numberofemployees >= 100000").await;
    assert_eq!(out.report.written.to_string(), before);
    assert_eq!(one(&engine, "SELECT count(*) FROM account WHERE description = 'big'").await, before);

    rec.take();
    let out = dml(&engine, "DELETE FROM account WHERE accountnumber IN ('ACC-0000006', 'ACC-0000007')").await;
    assert_eq!((out.op, out.report.written), (WriteOp::Delete, 2));
    let get = rec.take().into_iter().find(|e| e.method == "GET").expect("a read");
    assert!(decoded(&get.path).contains("$filter="), "{}", decoded(&get.path));
    assert_eq!(
        one(&engine, "SELECT count(*) FROM account WHERE accountnumber IN ('ACC-0000006', 'ACC-0000007')").await,
        "0"
    );
    assert_eq!(one(&engine, "SELECT count(*) FROM account").await, "38");

    // Nothing matches: nothing sent.
    let out = dml(&engine, "DELETE FROM account WHERE accountnumber = 'nope'").await;
    assert_eq!((out.report.rows, out.report.written), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_and_merge_by_the_alternate_key() {
    let env = start(40).await;
    let engine = env.engine(true, None).await;
    let out = dml(
        &engine,
        "UPSERT INTO account (accountnumber, name, revenue) VALUES ('ACC-0000008', 'upserted', 5), ('NEW-0001', 'created', 6)",
    )
    .await;
    assert_eq!((out.op, out.report.written), (WriteOp::Upsert, 2), "{:?}", out.report.failed);
    let got = query(
        &engine,
        "SELECT accountnumber, name, revenue FROM account WHERE accountnumber IN ('ACC-0000008', 'NEW-0001') ORDER BY accountnumber",
    )
    .await;
    assert_eq!(got, [["ACC-0000008", "upserted", "5.0000"], ["NEW-0001", "created", "6.0000"]]);
    assert_eq!(one(&engine, "SELECT count(*) FROM account").await, "41");

    // UPSERT without a key column: the keys are listed.
    let e = engine
        .execute_dml("UPSERT INTO account (name) VALUES ('x')", &DmlOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("accountnumber") && e.to_string().contains("accountid"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("staging.csv");
    std::fs::write(&csv, "num,title\nACC-0000009,merged\nNEW-0002,merged new\n").unwrap();
    engine.register_file("staging", &csv).await.unwrap();
    let out = dml(
        &engine,
        "MERGE INTO account t USING staging s ON (t.accountnumber = s.num) \
         WHEN MATCHED THEN UPDATE SET name = s.title \
         WHEN NOT MATCHED THEN INSERT (accountnumber, name) VALUES (s.num, s.title)",
    )
    .await;
    assert_eq!((out.op, out.report.written), (WriteOp::Upsert, 2));
    let got = query(
        &engine,
        "SELECT accountnumber, name FROM account WHERE accountnumber IN ('ACC-0000009', 'NEW-0002') ORDER BY accountnumber",
    )
    .await;
    assert_eq!(got, [["ACC-0000009", "merged"], ["NEW-0002", "merged new"]]);

    // Only WHEN MATCHED: the row without a record is skipped, not an error.
    std::fs::write(&csv, "num,title\nACC-0000010,matched only\nNEW-0404,nobody\n").unwrap();
    let out = dml(
        &engine,
        "MERGE INTO account t USING staging s ON (t.accountnumber = s.num) WHEN MATCHED THEN UPDATE SET name = s.title",
    )
    .await;
    assert_eq!((out.op, out.report.written, out.skipped), (WriteOp::Update, 1, 1), "{:?}", out.report.failed);
    assert!(out.report.failed.is_empty());
    assert_eq!(one(&engine, "SELECT name FROM account WHERE accountnumber = 'ACC-0000010'").await, "matched only");
    assert_eq!(one(&engine, "SELECT count(*) FROM account WHERE accountnumber = 'NEW-0404'").await, "0");

    // ON must name a key.
    let e = engine
        .execute_dml(
            "MERGE INTO account t USING staging s ON (t.name = s.title) WHEN MATCHED THEN UPDATE SET name = s.title",
            &DmlOptions::default(),
            |_| {},
        )
        .await
        .unwrap_err();
    let m = e.to_string();
    assert!(m.contains("not a key of 'account'") && m.contains("accountnumber"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_fail_their_row_naming_row_and_column_and_the_rest_lands() {
    let env = start(40).await;
    let engine = env.engine(true, None).await;
    let out = dml(
        &engine,
        "INSERT INTO new_widget (new_name, new_quantity, new_externalid, new_shipdate) VALUES \
         ('ok-1', '1', NULL, NULL), ('bad-number', 'abc', NULL, NULL), ('bad-guid', '2', 'not-a-guid', NULL), \
         ('bad-date', 3, NULL, '2024-02-30x'), ('ok-2', 4, NULL, '2024-05-06')",
    )
    .await;
    assert_eq!((out.report.rows, out.report.written), (5, 2), "{:?}", out.report);
    let failed: Vec<(u64, Option<&str>)> = out.report.failed.iter().map(|e| (e.index, e.column.as_deref())).collect();
    assert_eq!(failed, [(2, Some("new_quantity")), (3, Some("new_externalid")), (4, Some("new_shipdate"))]);
    assert!(out.report.failed[0].message.contains("'abc'"), "{}", out.report.failed[0]);
    assert!(out.report.failed[1].message.contains("not a GUID"), "{}", out.report.failed[1]);
    assert_eq!(
        query(
            &engine,
            "SELECT new_name FROM new_widget WHERE new_name LIKE 'ok-%' OR new_name LIKE 'bad-%' ORDER BY new_name"
        )
        .await,
        [["ok-1"], ["ok-2"]]
    );

    // Duplicate alternate key: the service's error for that row, the other row lands.
    let out = dml(
        &engine,
        "INSERT INTO account (accountnumber, name) VALUES ('ACC-0000001', 'duplicate'), ('UNIQUE-0001', 'fine')",
    )
    .await;
    assert_eq!(out.report.written, 1);
    let e = &out.report.failed[0];
    assert_eq!((e.index, e.code.as_str()), (1, "0x80040237"), "{e}");
    assert_eq!(one(&engine, "SELECT count(*) FROM account WHERE accountnumber = 'UNIQUE-0001'").await, "1");

    // Required column set to NULL: the service refuses that row.
    let out = dml(
        &engine,
        "UPDATE account SET statecode = CASE WHEN accountnumber = 'ACC-0000011' THEN NULL ELSE 0 END \
         WHERE accountnumber IN ('ACC-0000011', 'ACC-0000012')",
    )
    .await;
    assert_eq!(out.report.written, 1, "{:?}", out.report.failed);
    assert_eq!(out.report.failed[0].column.as_deref(), Some("statecode"), "{}", out.report.failed[0]);

    // A system-required column left out: every row fails naming it, nothing is created.
    let out = dml(
        &engine,
        "INSERT INTO transactioncurrency (currencyname, currencysymbol) VALUES ('Krone', 'kr'), ('Zloty', 'zl')",
    )
    .await;
    assert_eq!((out.report.rows, out.report.written), (2, 0), "{:?}", out.report);
    let failed: Vec<(u64, Option<&str>)> = out.report.failed.iter().map(|e| (e.index, e.column.as_deref())).collect();
    assert_eq!(failed, [(1, Some("isocurrencycode")), (2, Some("isocurrencycode"))]);
    assert_eq!(one(&engine, "SELECT count(*) FROM transactioncurrency WHERE currencyname = 'Krone'").await, "0");

    // Statement errors: nothing is sent.
    let err = |sql: &'static str| {
        let engine = &engine;
        async move { engine.execute_dml(sql, &DmlOptions::default(), |_| {}).await.unwrap_err() }
    };
    let e = err("INSERT INTO account (name, revenu) VALUES ('x', 1)").await;
    assert!(matches!(&e, SqlError::UnknownColumn { suggestion: Some(s), .. } if s == "revenue"), "{e}");
    let e = err("UPDATE account SET parentaccountidname = 'x'").await;
    assert!(e.to_string().contains("read-only") && e.to_string().contains("parentaccountid"), "{e}");
    let e =
        err("INSERT INTO contact (lastname, parentcustomerid) VALUES ('x', '0f8fad5b-d9cb-469f-a165-70867728950e')")
            .await;
    assert!(e.to_string().contains("parentcustomeridtype"), "{e}");
    let e = err("INSERT INTO acount (name) VALUES ('x')").await;
    assert!(matches!(&e, SqlError::UnknownTable { suggestion: Some(s), .. } if s == "account"), "{e}");
    let e = err("INSERT INTO account VALUES ('x')").await;
    assert!(e.to_string().contains("column list"), "{e}");
    assert_eq!(one(&engine, "SELECT count(*) FROM account WHERE name = 'x'").await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_writes_all_or_nothing() {
    let env = start(20).await;
    let engine = env.engine(true, None).await;
    let atomic = DmlOptions { write: WriteOptions { atomic: true, ..Default::default() }, ..Default::default() };
    // A value that does not convert: nothing is sent.
    let out = engine
        .execute_dml(
            "INSERT INTO account (accountnumber, name, numberofemployees) VALUES ('AT-1', 'a', 1), ('AT-2', 'b', 'many')",
            &atomic,
            |_| {},
        )
        .await
        .unwrap();
    assert!(out.stopped.is_some());
    assert_eq!((out.report.written, out.report.failed.len(), out.report.not_attempted.as_slice()), (0, 1, &[1u64][..]));
    // A row the service refuses: the change set is rolled back.
    let out = engine
        .execute_dml(
            "INSERT INTO account (accountnumber, name) VALUES ('AT-3', 'c'), ('ACC-0000001', 'dup')",
            &atomic,
            |_| {},
        )
        .await
        .unwrap();
    assert!(out.stopped.is_some(), "{:?}", out.report);
    assert_eq!(out.report.written, 0);
    assert_eq!(one(&engine, "SELECT count(*) FROM account WHERE accountnumber LIKE 'AT-%'").await, "0");
    // And without a bad row, all of it.
    let out =
        dml_with(&engine, "INSERT INTO account (accountnumber, name) VALUES ('AT-5', 'e'), ('AT-6', 'f')", atomic)
            .await;
    assert_eq!(out.report.written, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimistic_update_reports_a_row_changed_since_it_was_read() {
    let env = start(20).await;
    let engine = env.engine(true, None).await;
    // When the statement's read has been answered, another writer changes one of its rows.
    let emu_state = env.emu.state().clone();
    let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = fired.clone();
    engine.client().request_log().set_hook(Some(Arc::new(move |e: &d365_client::RequestEvent| {
        if e.method == "GET" && e.path.contains("accounts") && !f.swap(true, std::sync::atomic::Ordering::SeqCst) {
            emu_state
                .store
                .with_conn(|c| {
                    c.execute_batch(
                        "UPDATE account SET name = 'changed elsewhere', versionnumber = versionnumber + 1000000 \
                         WHERE accountnumber = 'ACC-0000002'",
                    )
                })
                .unwrap()
                .unwrap();
        }
    })));
    let options = DmlOptions { write: WriteOptions { optimistic: true, ..Default::default() }, ..Default::default() };
    let out = engine
        .execute_dml(
            "UPDATE account SET name = 'mine' WHERE accountnumber IN ('ACC-0000001', 'ACC-0000002')",
            &options,
            |_| {},
        )
        .await
        .unwrap();
    assert!(fired.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(out.report.written, 1, "{:?}", out.report);
    assert_eq!(out.report.failed.len(), 1);
    assert_eq!(out.report.failed[0].status, Some(412), "{}", out.report.failed[0]);
    engine.client().request_log().set_hook(None);
    let got = query(
        &engine,
        "SELECT accountnumber, name FROM account WHERE accountnumber IN ('ACC-0000001', 'ACC-0000002') ORDER BY 1",
    )
    .await;
    assert_eq!(got, [["ACC-0000001", "mine"], ["ACC-0000002", "changed elsewhere"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_sends_no_write_and_shows_the_bodies() {
    let env = start(20).await;
    let engine = env.engine(true, None).await;
    let account = one(&engine, "SELECT accountid FROM account WHERE accountnumber = 'ACC-0000001'").await;
    let rec = Recorder::attach(engine.client());
    let dry = DmlOptions { dry_run: true, ..Default::default() };
    let out = dml_with(
        &engine,
        &format!("INSERT INTO account (name, revenue, parentaccountid) VALUES ('dry', 1.5, '{account}'), ('dry2', NULL, NULL)"),
        dry.clone(),
    )
    .await;
    assert_eq!(out.planned.len(), 2);
    let body = &out.planned[0].body;
    assert_eq!(body["name"], "dry");
    assert_eq!(body["revenue"], 1.5);
    assert_eq!(body["parentaccountid@odata.bind"], format!("/accounts({account})"));
    assert!(out.planned[1].body["parentaccountid@odata.bind"].is_null());
    let out = dml_with(&engine, "DELETE FROM account WHERE accountnumber = 'ACC-0000003'", dry).await;
    assert_eq!(out.planned.len(), 1);
    assert_eq!(out.planned[0].op, WriteOp::Delete);
    assert!(out.planned[0].key.is_some());
    assert!(rec.take().iter().all(|e| e.method == "GET"), "only reads");
    assert_eq!(
        one(&engine, "SELECT count(*) FROM account WHERE name LIKE 'dry%' OR accountnumber = 'ACC-0000003'").await,
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_the_app_may_not_write_stops_with_403() {
    let env = start(20).await;
    let engine = integration_engine(&env).await;
    let out = engine
        .execute_dml("INSERT INTO account (name) VALUES ('not allowed')", &DmlOptions::default(), |_| {})
        .await
        .unwrap();
    let Some(SqlError::Client(e)) = &out.stopped else { panic!("{:?}", out.stopped) };
    assert!(e.to_string().contains("403"), "{e}");
    assert_eq!(out.report.written, 0);
    // The app may write contacts.
    let out = dml(&engine, "INSERT INTO contact (lastname) VALUES ('allowed')").await;
    assert_eq!(out.report.written, 1);
}
