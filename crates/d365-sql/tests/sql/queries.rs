//! Joins, aggregates, CTEs and window functions give the answers computed by hand from raw Web
//! API rows; metadata tables; errors name the position or the nearest name.

use crate::common;

use std::collections::HashMap;

use common::{Recorder, rows, start};
use d365_client::Query;
use d365_sql::SqlError;
use d365_sql::values::parse_decimal;
use serde_json::{Map, Value};

async fn raw(client: &d365_client::DataverseClient, q: Query) -> Vec<Map<String, Value>> {
    client.page_stream(&q).unwrap().collect_rows().await.unwrap()
}

fn s(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| "NULL".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_aggregates_and_ctes_match_raw_rows() {
    let env = start(800).await;
    let engine = env.engine(true, Some(500)).await;
    let client = env.client(None);
    let accounts = raw(
        &client,
        Query::new("accounts").select(["accountid", "name", "statecode", "revenue", "_parentaccountid_value"]),
    )
    .await;
    let contacts = raw(&client, Query::new("contacts").select(["contactid", "_parentcustomerid_value"])).await;
    assert_eq!(accounts.len(), 800);

    // Aggregate: count and exact revenue sum per state.
    let mut want: HashMap<i64, (i64, i128)> = HashMap::new();
    for a in &accounts {
        let e = want.entry(a["statecode"].as_i64().unwrap()).or_default();
        e.0 += 1;
        if let Some(r) = a["revenue"].as_f64() {
            e.1 += parse_decimal(&r.to_string(), 4).unwrap();
        }
    }
    let got = rows(
        &engine
            .collect("SELECT statecode, COUNT(*) AS n, SUM(revenue) AS total FROM account GROUP BY statecode ORDER BY statecode")
            .await
            .unwrap(),
    );
    assert_eq!(got.len(), want.len());
    for r in &got {
        let (n, total) = want[&r[0].parse::<i64>().unwrap()];
        assert_eq!(r[1], n.to_string());
        assert_eq!(parse_decimal(&r[2], 4).unwrap(), total, "{r:?}");
    }

    // Join: contacts per account (parent customer), top 5 by count then name.
    let names: HashMap<String, String> = accounts.iter().map(|a| (s(&a["accountid"]), s(&a["name"]))).collect();
    let mut per: HashMap<String, i64> = HashMap::new();
    for c in &contacts {
        let p = s(&c["_parentcustomerid_value"]);
        if names.contains_key(&p) {
            *per.entry(p).or_default() += 1;
        }
    }
    let mut want: Vec<(String, i64)> = per.iter().map(|(id, n)| (names[id].clone(), *n)).collect();
    want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    want.truncate(5);
    let got = rows(
        &engine
            .collect(
                "SELECT a.name, COUNT(*) AS n FROM contact c JOIN account a ON c.parentcustomerid = a.accountid \
                 GROUP BY a.name ORDER BY n DESC, a.name LIMIT 5",
            )
            .await
            .unwrap(),
    );
    let got: Vec<(String, i64)> = got.iter().map(|r| (r[0].clone(), r[1].parse().unwrap())).collect();
    assert_eq!(got, want);

    // CTE + self-join: accounts with a parent, and the parent's name.
    let with_parent: Vec<(String, String)> = {
        let mut v: Vec<(String, String)> = accounts
            .iter()
            .filter(|a| a["_parentaccountid_value"].is_string())
            .map(|a| (s(&a["name"]), names[&s(&a["_parentaccountid_value"])].clone()))
            .collect();
        v.sort();
        v
    };
    let got = rows(
        &engine
            .collect(
                "WITH child AS (SELECT name, parentaccountid FROM account WHERE parentaccountid IS NOT NULL) \
                 SELECT child.name, p.name FROM child JOIN account p ON p.accountid = child.parentaccountid \
                 ORDER BY child.name, p.name",
            )
            .await
            .unwrap(),
    );
    let got: Vec<(String, String)> = got.into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(got, with_parent);
    // The virtual name column agrees with the join.
    let got = rows(
        &engine
            .collect("SELECT name, parentaccountidname FROM account WHERE parentaccountid IS NOT NULL ORDER BY name, parentaccountidname")
            .await
            .unwrap(),
    );
    let got: Vec<(String, String)> = got.into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(got, with_parent);

    // Window function: rank by revenue within state; rank 1 per state is the max revenue.
    let got = rows(
        &engine
            .collect(
                "SELECT statecode, revenue FROM (SELECT statecode, revenue, \
                 RANK() OVER (PARTITION BY statecode ORDER BY revenue DESC) AS r FROM account WHERE revenue IS NOT NULL) \
                 WHERE r = 1 ORDER BY statecode",
            )
            .await
            .unwrap(),
    );
    for r in &got {
        let state: i64 = r[0].parse().unwrap();
        let max = accounts
            .iter()
            .filter(|a| a["statecode"].as_i64() == Some(state))
            .filter_map(|a| a["revenue"].as_f64())
            .map(|f| parse_decimal(&f.to_string(), 4).unwrap())
            .max()
            .unwrap();
        assert_eq!(parse_decimal(&r[1], 4).unwrap(), max);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_tables_fetch_only_what_they_need() {
    let env = start(20).await;
    let engine = env.engine(true, None).await;
    let rec = Recorder::attach(engine.client());
    let got = rows(
        &engine.collect("SELECT logicalname, entitysetname FROM metadata.entity ORDER BY logicalname").await.unwrap(),
    );
    assert!(got.contains(&vec!["account".to_string(), "accounts".to_string()]), "{got:?}");
    assert!(rec.take().is_empty(), "the table list is already loaded");
    let got = rows(
        &engine
            .collect(
                "SELECT logicalname, attributetype, sqltype FROM metadata.attribute \
                 WHERE entitylogicalname = 'new_widget' ORDER BY logicalname",
            )
            .await
            .unwrap(),
    );
    let find = |n: &str| got.iter().find(|r| r[0] == n).cloned().unwrap_or_default();
    assert_eq!(find("new_price")[2], "Decimal128(38, 4)");
    assert_eq!(find("new_weight")[2], "Decimal128(38, 4)");
    assert_eq!(find("new_shipdate")[2], "Date32");
    assert!(find("new_lastinspectedon")[2].starts_with("Timestamp("), "{got:?}");
    assert!(find("new_lastinspectedon")[2].contains("UTC"), "{got:?}");
    let paths: Vec<String> = rec.take().into_iter().map(|e| e.path).collect();
    assert!(paths.iter().all(|p| p.contains("new_widget")), "only new_widget's metadata: {paths:?}");
    let got = rows(
        &engine
            .collect("SELECT schemaname, referencingattribute FROM metadata.relationship WHERE referencingentity = 'contact'")
            .await
            .unwrap(),
    );
    assert!(got.iter().any(|r| r[0] == "contact_customer_accounts" && r[1] == "parentcustomerid"), "{got:?}");
    assert!(engine.table_names().contains(&"new_widget".to_string()));
    let shape = engine.describe("NEW_Widget").await.unwrap();
    assert!(shape.column("new_customeridtype").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_position_or_the_nearest_name() {
    let env = start(20).await;
    let engine = env.engine(true, None).await;
    let err = engine.collect("SELEC name FROM account").await.unwrap_err();
    assert!(matches!(err, SqlError::Syntax { .. }), "{err:?}");
    assert!(err.to_string().contains("Line: 1, Column: 1"), "{err}");
    let err = engine.collect("SELECT name FROM account WHERE").await.unwrap_err();
    assert!(err.to_string().contains("at the end of the statement"), "{err}");

    let err = engine.collect("SELECT name FROM acount").await.unwrap_err();
    assert_eq!(err.to_string(), "unknown table 'acount' (did you mean 'account'?)");
    assert!(err.is_user_error());
    let err = engine.collect("SELECT * FROM metadata.atribute").await.unwrap_err();
    assert_eq!(err.to_string(), "unknown table 'metadata.atribute' (did you mean 'metadata.attribute'?)");

    let err = engine.collect("SELECT nme FROM account").await.unwrap_err();
    assert!(matches!(&err, SqlError::UnknownColumn { suggestion: Some(s), .. } if s == "name"), "{err:?}");
    assert_eq!(err.to_string().lines().count(), 1);
    let err = engine.collect("SELECT a.revenu FROM account a").await.unwrap_err();
    assert!(err.to_string().contains("did you mean 'revenue'"), "{err}");

    let err = engine.collect("DELETE FROM account").await.unwrap_err();
    assert!(err.is_user_error(), "{err:?}");
    // Table names are case-insensitive.
    let got = rows(&engine.collect("SELECT COUNT(*) FROM Account").await.unwrap());
    assert_eq!(got, vec![vec!["20".to_string()]]);
}
