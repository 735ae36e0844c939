//! Joins along lookups computed by the service: one FetchXML query with a `link-entity`, paged
//! with paging cookies, giving the same rows as the join computed locally from both tables.

use crate::common;

use common::{Recorder, rows, start};
use d365_sql::EngineOptions;
use serde_json::json;

/// Accounts whose names differ only in case, each with a contact: the service compares text
/// without regard to case, SQL with it.
async fn seed_case_variants(env: &common::Env) {
    let admin = env.client(None);
    for (i, name) in ["Zeta Corp", "zeta corp", "ZETA CORP"].iter().enumerate() {
        let id = format!("00000000-0000-4000-8000-0000000000{i:02}");
        env.create(&admin, "accounts", json!({"accountid": id, "name": name, "numberofemployees": 7})).await;
        env.create(
            &admin,
            "contacts",
            json!({"firstname": "Case", "lastname": format!("Variant {i}"),
                   "parentcustomerid_account@odata.bind": format!("/accounts({id})")}),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_along_lookups_run_as_fetchxml_and_agree_with_local_joins() {
    let env = start(800).await;
    seed_case_variants(&env).await;
    // 170-row pages: the FetchXML reads follow several paging cookies.
    let pushed = env.engine(true, Some(170)).await;
    let local = env.engine(false, Some(170)).await;
    let rec = Recorder::attach(pushed.client());
    let job = rows(&local.collect("SELECT jobtitle FROM contact WHERE jobtitle IS NOT NULL LIMIT 1").await.unwrap());
    let job = &job[0][0];
    let queries = [
        // A filter on the linked table; money and choice labels of both.
        "SELECT c.fullname, c.statecodename, a.name, a.revenue, a.statecodename FROM contact c \
         JOIN account a ON c.parentcustomerid = a.accountid WHERE a.revenue > 40000000"
            .to_string(),
        // LEFT: contacts whose customer is a contact (or none) keep NULL account columns; a
        // text filter on the root re-checked locally; lookup names.
        format!(
            "SELECT c.fullname, c.parentcustomerid, c.parentcustomeridname, c.parentcustomeridtype, a.name, \
             a.accountnumber FROM contact c LEFT JOIN account a ON c.parentcustomerid = a.accountid \
             WHERE c.jobtitle = '{job}'"
        ),
        // The lookup's table named second, a LIKE the service answers case-insensitively.
        "SELECT a.name, c.fullname FROM account a JOIN contact c ON c.parentcustomerid = a.accountid \
         WHERE a.name LIKE 'Zeta%'"
            .to_string(),
        // account → its primary contact, a date filter on the contact.
        "SELECT a.name, p.fullname, p.birthdate, p.emailaddress1 FROM account a JOIN contact p \
         ON a.primarycontactid = p.contactid WHERE p.birthdate < DATE '1970-01-01'"
            .to_string(),
        // A self-join, LEFT, with a range on the root.
        "SELECT a.name, parent.name, parent.numberofemployees FROM account a LEFT JOIN account parent \
         ON a.parentaccountid = parent.accountid WHERE a.numberofemployees BETWEEN 1000 AND 20000"
            .to_string(),
        // Filters on both sides, IN lists, an aggregate over the joined rows.
        "SELECT a.statecode, COUNT(*), SUM(a.revenue), MAX(c.annualincome) FROM contact c \
         JOIN account a ON c.parentcustomerid = a.accountid \
         WHERE c.statecode IN (0, 1) AND a.numberofemployees > 25000 GROUP BY a.statecode"
            .to_string(),
        // A sort and limit over the joined rows (the order is total: e-mail addresses are unique,
        // and the seeded variants without one have distinct names).
        "SELECT c.emailaddress1, c.fullname, a.name FROM contact c JOIN account a ON c.parentcustomerid = a.accountid \
         WHERE a.numberofemployees < 10000 ORDER BY c.emailaddress1, c.fullname LIMIT 20"
            .to_string(),
        // One-to-many, keeping accounts without contacts: the joined rows, then the accounts no
        // contact points to (`not any`).
        "SELECT a.name, a.numberofemployees, c.fullname, c.emailaddress1 FROM account a \
         LEFT JOIN contact c ON c.parentcustomerid = a.accountid WHERE a.numberofemployees > 40000"
            .to_string(),
        // The same with a condition on the contacts in ON (kept accounts whose contacts all fail it).
        "SELECT a.name, c.fullname, c.statecodename FROM account a LEFT JOIN contact c \
         ON c.parentcustomerid = a.accountid AND c.statecode = 1 WHERE a.numberofemployees > 30000"
            .to_string(),
        // Three tables: the contact's account, and that account's primary contact (a link under
        // the link), the third one outer.
        "SELECT c.fullname, a.name, p.fullname, p.emailaddress1 FROM contact c \
         JOIN account a ON c.parentcustomerid = a.accountid \
         LEFT JOIN contact p ON a.primarycontactid = p.contactid WHERE a.numberofemployees > 35000"
            .to_string(),
        // Three tables where the third holds the lookup to the first two's root: the joined pair
        // hangs under it.
        "SELECT a.name, parent.name, c.fullname FROM account a \
         JOIN account parent ON a.parentaccountid = parent.accountid \
         JOIN contact c ON c.parentcustomerid = a.accountid WHERE parent.numberofemployees > 20000"
            .to_string(),
    ];
    let mut fetch_pages = 0;
    for sql in &queries {
        rec.take();
        let mut a = rows(&pushed.collect(sql).await.unwrap_or_else(|e| panic!("pushed: {sql}: {e}")));
        let events = rec.take();
        let mut b = rows(&local.collect(sql).await.unwrap_or_else(|e| panic!("local: {sql}: {e}")));
        if !sql.contains("ORDER BY") {
            a.sort();
            b.sort();
        }
        if a != b {
            let only_pushed: Vec<_> = a.iter().filter(|r| !b.contains(r)).take(5).collect();
            let only_local: Vec<_> = b.iter().filter(|r| !a.contains(r)).take(5).collect();
            panic!(
                "{sql}: {} rows pushed, {} local; only pushed: {only_pushed:?}; only local: {only_local:?}",
                a.len(),
                b.len()
            );
        }
        assert!(!a.is_empty(), "{sql}");
        let paths: Vec<&str> = events.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.iter().all(|p| p.contains("fetchXml=")), "{sql}: a request besides FetchXML: {paths:?}");
        assert!(paths.iter().all(|p| p.contains("link-entity")), "{paths:?}");
        fetch_pages = fetch_pages.max(paths.len());
    }
    assert!(fetch_pages >= 2, "no FetchXML read followed a paging cookie");
    // The LIKE kept only the case-sensitive match, and the LEFT join its NULLs.
    let zeta = rows(&pushed.collect(&queries[2]).await.unwrap());
    assert_eq!(zeta, vec![vec!["Zeta Corp".to_string(), "Case Variant 0".to_string()]]);
    let left = rows(&pushed.collect(&queries[1]).await.unwrap());
    assert!(left.iter().any(|r| r[4] == "NULL") && left.iter().any(|r| r[4] != "NULL"), "{left:?}");
    // The one-to-many LEFT joins kept accounts without (matching) contacts, in a second chain.
    for q in [&queries[7], &queries[8]] {
        let left = rows(&pushed.collect(q).await.unwrap());
        assert!(left.iter().any(|r| r[2] == "NULL") && left.iter().any(|r| r[2] != "NULL"), "{q}: {left:?}");
        let text = pushed.explain(q).await.unwrap();
        assert!(text.contains("not+any") || text.contains("not%20any"), "{text}");
    }
    // Three tables are one FetchXML query with two link-entities.
    for q in [&queries[9], &queries[10]] {
        rec.take();
        pushed.collect(q).await.unwrap();
        let events = rec.take();
        assert!(events.iter().all(|e| e.path.matches("link-entity").count() >= 4), "{q}: {events:?}");
    }

    // Only the joined rows travel: far fewer bytes than the two tables.
    rec.take();
    pushed.collect(&queries[2]).await.unwrap();
    let pushed_bytes: u64 = rec.take().iter().map(|e| e.bytes_received).sum();
    let r = Recorder::attach(local.client());
    local.collect(&queries[2]).await.unwrap();
    let local_bytes: u64 = r.take().iter().map(|e| e.bytes_received).sum();
    assert!(pushed_bytes * 20 < local_bytes, "{pushed_bytes} bytes pushed against {local_bytes} local");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_that_fetchxml_cannot_express_stay_local_and_say_why() {
    let env = start(300).await;
    let pushed = env.engine(true, None).await;
    let local = env.engine(false, None).await;
    let text = pushed
        .explain(
            "SELECT c.fullname, a.name FROM contact c JOIN account a ON c.parentcustomerid = a.accountid \
             WHERE a.name LIKE 'A%' AND c.statecode = 0",
        )
        .await
        .unwrap();
    assert!(text.contains("DataverseLinkJoinExec") && text.contains("link-entity"), "{text}");
    assert!(text.contains("fetchXml=%3Cfetch") && text.contains("computed by the service"), "{text}");
    for (sql, why) in [
        (
            // One-to-many, keeping accounts without contacts, where the contacts are joined to
            // their own accounts first: the `not any` link holds one table.
            "SELECT a.name, c.fullname FROM account a LEFT JOIN (SELECT c.fullname, c.parentcustomerid FROM contact c \
             JOIN account x ON c.parentcustomerid = x.accountid WHERE x.numberofemployees > 100) c \
             ON c.parentcustomerid = a.accountid WHERE a.numberofemployees > 45000",
            "optional side",
        ),
        ("SELECT a.name, c.fullname FROM contact c JOIN account a ON c.parentcustomerid = a.accountid", "neither"),
        (
            "SELECT a.name, c.fullname FROM contact c JOIN account a ON c.parentcustomerid = a.accountid \
             AND c.fullname <> a.name WHERE a.numberofemployees > 45000",
            "besides key equality",
        ),
        (
            // A text filter re-checked locally on the optional side of an outer join.
            "SELECT c.fullname, a.name FROM contact c LEFT JOIN (SELECT * FROM account WHERE name LIKE 'B%') a \
             ON c.parentcustomerid = a.accountid",
            "optional side",
        ),
    ] {
        let text = pushed.explain(sql).await.unwrap();
        assert!(text.contains("HashJoinExec"), "{sql}: {text}");
        assert!(text.contains("Joins computed locally") && text.contains(why), "{sql}: {text}");
        let mut a = rows(&pushed.collect(sql).await.unwrap());
        let mut b = rows(&local.collect(sql).await.unwrap());
        a.sort();
        b.sort();
        assert_eq!(a, b, "{sql}");
    }
    let off = env.engine_with(EngineOptions { join_pushdown: false, ..Default::default() }).await;
    let text = off
        .explain(
            "SELECT c.fullname FROM contact c JOIN account a ON c.parentcustomerid = a.accountid WHERE a.revenue > 1",
        )
        .await
        .unwrap();
    assert!(!text.contains("fetchXml"), "{text}");
}
