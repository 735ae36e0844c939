//! Literals mean what they mean in T-SQL and Dataverse, whether a filter is sent to the service
//! or evaluated locally: a GUID written in upper case, in braces or without hyphens is the same
//! GUID; a number with a decimal point is an exact decimal. And the engine options that come
//! from connection properties: `Readonly` and `MaxRows`.

use crate::common;

use common::{Recorder, rows, start};
use d365_sql::datafusion::scalar::ScalarValue;
use d365_sql::{DmlOptions, EngineOptions, SqlError};

async fn count(engine: &d365_sql::SqlEngine, sql: &str) -> String {
    let got = rows(&engine.collect(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")));
    got[0][0].clone()
}

/// The forms a GUID is written in by people and tools: as Dataverse stores it, upper case (the
/// Dynamics UI), in braces (.NET's `ToString("B")`), without hyphens (`uuid.hex`).
fn forms(guid: &str) -> Vec<String> {
    let upper = guid.to_ascii_uppercase();
    vec![guid.to_string(), upper.clone(), format!("{{{upper}}}"), format!("{{{guid}}}"), guid.replace('-', "")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guids_in_any_written_form_find_their_rows_pushed_or_local() {
    let env = start(300).await;
    let pushed = env.engine(true, None).await;
    let local = env.engine(false, None).await;
    let ids = rows(&pushed.collect("SELECT accountid FROM account ORDER BY accountid LIMIT 2").await.unwrap());
    let (a, b) = (ids[0][0].clone(), ids[1][0].clone());
    let contact = rows(
        &pushed
            .collect("SELECT parentcustomerid, count(*) FROM contact WHERE parentcustomeridtype = 'account' GROUP BY parentcustomerid ORDER BY parentcustomerid LIMIT 1")
            .await
            .unwrap(),
    );
    let (parent, contacts) = (contact[0][0].clone(), contact[0][1].clone());

    for engine in [&pushed, &local] {
        for form in forms(&a) {
            assert_eq!(
                count(engine, &format!("SELECT count(*) FROM account WHERE accountid = '{form}'")).await,
                "1",
                "{form}"
            );
            assert_eq!(
                count(engine, &format!("SELECT count(*) FROM account WHERE '{form}' = accountid")).await,
                "1",
                "{form}"
            );
            assert_eq!(
                count(engine, &format!("SELECT count(*) FROM account WHERE accountid <> '{form}'")).await,
                "299",
                "{form}"
            );
            assert_eq!(
                count(
                    engine,
                    &format!("SELECT count(*) FROM account a WHERE a.accountid IN ('{form}', '{}')", b.to_uppercase())
                )
                .await,
                "2",
                "{form}"
            );
        }
        for form in forms(&parent) {
            // A lookup column, through an alias and a subquery's projection.
            let sql =
                format!("SELECT count(*) FROM (SELECT parentcustomerid AS p FROM contact c) s WHERE s.p = '{form}'");
            assert_eq!(count(engine, &sql).await, contacts, "{sql}");
            let sql = format!(
                "SELECT count(*) FROM contact c JOIN account a ON c.parentcustomerid = a.accountid WHERE a.accountid = '{form}'"
            );
            assert_eq!(count(engine, &sql).await, contacts, "{sql}");
        }
        // Bound as a parameter, as the Python package and `executemany` bind them.
        let df = engine
            .sql_with_params(
                "SELECT count(*) FROM account WHERE accountid = $1",
                &[ScalarValue::Utf8(Some(a.to_uppercase()))],
            )
            .await
            .unwrap();
        assert_eq!(rows(&df.collect().await.unwrap())[0][0], "1");
    }

    // Sent to the service in the form it stores, never read whole.
    let rec = Recorder::attach(pushed.client());
    pushed.collect(&format!("SELECT name FROM account WHERE accountid = '{{{}}}'", a.to_uppercase())).await.unwrap();
    let sent: Vec<String> = rec.take().into_iter().map(|e| e.path).collect();
    assert!(sent.iter().any(|p| p.contains(&format!("accountid%20eq%20{a}"))), "{sent:?}");

    // A text column is text: a GUID-shaped name in upper case matches only itself.
    let client = env.client(None);
    let name = a.to_uppercase();
    env.create(&client, "accounts", serde_json::json!({ "name": name })).await;
    for engine in [&pushed, &local] {
        assert_eq!(count(engine, &format!("SELECT count(*) FROM account WHERE name = '{name}'")).await, "1");
        assert_eq!(count(engine, &format!("SELECT count(*) FROM account WHERE name = '{a}'")).await, "0");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimal_literals_are_exact_and_sent_to_the_service() {
    let env = start(300).await;
    let pushed = env.engine(true, None).await;
    let local = env.engine(false, None).await;
    // Revenues have four decimals (money); take one with cents that no binary float holds
    // exactly (its last digit is not 5 or 0), as `5591638.16` was read as a float before.
    let all = rows(&pushed.collect("SELECT accountid, revenue FROM account WHERE revenue IS NOT NULL").await.unwrap());
    let (id, revenue) = all
        .iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .find(|(_, r)| {
            let t = r.trim_end_matches('0');
            t.contains('.') && !t.ends_with('.') && !t.ends_with('5')
        })
        .expect("a revenue with cents");
    let literal = revenue.trim_end_matches('0').trim_end_matches('.').to_string();

    for engine in [&pushed, &local] {
        let sql = format!("SELECT accountid FROM account WHERE revenue = {literal}");
        let got = rows(&engine.collect(&sql).await.unwrap());
        assert!(got.iter().any(|r| r[0] == id), "{sql}: {got:?}");
        let sql = format!("SELECT count(*) FROM account WHERE revenue IN ({literal}, 0.01) AND accountid = '{id}'");
        assert_eq!(count(engine, &sql).await, "1", "{sql}");
    }
    let rec = Recorder::attach(pushed.client());
    pushed.collect(&format!("SELECT accountid FROM account WHERE revenue = {literal}")).await.unwrap();
    let sent: Vec<String> = rec.take().into_iter().map(|e| e.path).collect();
    assert!(sent.iter().any(|p| p.contains("revenue%20eq%20")), "the filter goes to the service: {sent:?}");

    // Arithmetic stays decimal: revenue * 1.1 is exact to the last digit.
    let got =
        rows(&pushed.collect(&format!("SELECT revenue * 1.1 FROM account WHERE accountid = '{id}'")).await.unwrap());
    let (whole, frac) = revenue.split_once('.').expect("a decimal point");
    let scaled: i128 = format!("{whole}{frac}").parse::<i128>().unwrap() * 11;
    let digits = frac.len() + 1;
    let text = scaled.to_string();
    let expected = format!("{}.{}", &text[..text.len() - digits], &text[text.len() - digits..]);
    assert_eq!(got[0][0], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_engines_refuse_writes_and_max_rows_caps_plain_queries() {
    let env = start(300).await;
    let engine = env
        .engine_with(EngineOptions { read_only: true, max_rows: Some(7), parallel_scan: false, ..Default::default() })
        .await;
    let rec = Recorder::attach(engine.client());
    let err = engine
        .execute_dml(
            "UPDATE account SET name = 'x' WHERE accountnumber = 'ACC-0000001'",
            &DmlOptions::default(),
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SqlError::ReadOnly), "{err:?}");
    assert!(err.is_user_error());
    assert!(err.to_string().contains("Readonly=true"), "{err}");
    assert!(rec.take().is_empty(), "nothing is sent for a refused write");
    let dry = DmlOptions { dry_run: true, ..Default::default() };
    let outcome = engine.execute_dml("INSERT INTO account (name) VALUES ('dry')", &dry, |_| {}).await.unwrap();
    assert_eq!(outcome.planned.len(), 1);

    // MaxRows: a plain query stops at 7 rows; an aggregate and DISTINCT are whole.
    use futures::TryStreamExt;
    let streamed: Vec<_> = engine.stream("SELECT name FROM account").await.unwrap().try_collect().await.unwrap();
    assert_eq!(rows(&streamed).len(), 7);
    let limited: Vec<_> = engine.stream("SELECT name FROM account LIMIT 3").await.unwrap().try_collect().await.unwrap();
    assert_eq!(rows(&limited).len(), 3);
    let groups: Vec<_> = engine
        .stream("SELECT accountnumber, count(*) FROM account GROUP BY accountnumber")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows(&groups).len(), 300);
    let distinct: Vec<_> =
        engine.stream("SELECT DISTINCT accountnumber FROM account").await.unwrap().try_collect().await.unwrap();
    assert_eq!(rows(&distinct).len(), 300);
}
