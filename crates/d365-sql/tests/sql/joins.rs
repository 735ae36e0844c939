//! Join keys pushed to the service: a selective join that is not sent as FetchXML (here: with
//! FetchXML joins turned off) reads the rows it joins, not the whole other table, and gives the
//! same rows as the join computed from every row.

use crate::common;

use common::{Recorder, rows, start};
use d365_sql::EngineOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selective_join_reads_only_the_rows_of_its_keys() {
    let env = start(3000).await;
    let pushed = env.engine_with(EngineOptions { join_pushdown: false, ..Default::default() }).await;
    let local = env.engine(false, None).await;
    let rec = Recorder::attach(pushed.client());
    // Three accounts that have contacts.
    let some = rows(
        &local
            .collect(
                "SELECT a.accountnumber FROM account a JOIN contact c ON c.parentcustomerid = a.accountid \
                 GROUP BY a.accountnumber ORDER BY a.accountnumber LIMIT 3",
            )
            .await
            .unwrap(),
    );
    let numbers: Vec<String> = some.iter().map(|r| format!("'{}'", r[0])).collect();
    assert_eq!(numbers.len(), 3);
    let selective = format!(
        "SELECT a.name, c.fullname FROM account a JOIN contact c ON c.parentcustomerid = a.accountid \
         WHERE a.accountnumber IN ({})",
        numbers.join(", ")
    );
    for sql in [
        // The filtered side first (the build side of the hash join) …
        selective.as_str(),
        // … the filtered table second: it still builds (the join is turned around) …
        "SELECT c.fullname, a.name FROM contact c JOIN account a ON c.parentcustomerid = a.accountid \
         WHERE a.revenue > 45000000",
        // … or a filter the service re-checks locally, and many keys (several requests).
        "SELECT a.name, c.fullname, c.emailaddress1 FROM account a JOIN contact c ON c.parentcustomerid = a.accountid \
         WHERE a.revenue > 40000000",
    ] {
        rec.take();
        let mut a = rows(&pushed.collect(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")));
        let events = rec.take();
        let mut b = rows(&local.collect(sql).await.unwrap());
        a.sort();
        b.sort();
        assert_eq!(a, b, "{sql}");
        assert!(!a.is_empty(), "{sql}");
        let contact_reads: Vec<&str> =
            events.iter().filter(|e| e.path.contains("/contacts?")).map(|e| e.path.as_str()).collect();
        assert!(!contact_reads.is_empty(), "{sql}");
        assert!(
            contact_reads.iter().all(|p| p.contains("_parentcustomerid_value%20eq%20")),
            "{sql}: a contact request without keys: {contact_reads:?}"
        );
        let received: u64 = events.iter().filter(|e| e.path.contains("/contacts?")).map(|e| e.bytes_received).sum();
        let all: u64 = {
            let r = Recorder::attach(local.client());
            local.collect("SELECT fullname, parentcustomerid, emailaddress1 FROM contact").await.unwrap();
            r.take().iter().filter(|e| e.path.contains("/contacts?")).map(|e| e.bytes_received).sum()
        };
        assert!(received * 4 < all, "{sql}: {received} bytes of contacts against {all} for the table");
    }
    let text = pushed
        .explain("SELECT a.name, c.fullname FROM account a JOIN contact c ON c.parentcustomerid = a.accountid WHERE a.accountnumber = 'ACC-0000010'")
        .await
        .unwrap();
    assert!(text.contains("join_keys=parentcustomerid") && text.contains("waits for the join's other side"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_build_side_reads_nothing_from_the_other_table() {
    let env = start(200).await;
    let pushed = env.engine_with(EngineOptions { join_pushdown: false, ..Default::default() }).await;
    let rec = Recorder::attach(pushed.client());
    let sql = "SELECT a.name, c.fullname FROM account a JOIN contact c ON c.parentcustomerid = a.accountid \
               WHERE a.accountnumber = 'no such number'";
    assert!(rows(&pushed.collect(sql).await.unwrap()).is_empty());
    let events = rec.take();
    assert!(
        !events.iter().any(|e| e.path.contains("/contacts?")),
        "{:?}",
        events.iter().map(|e| &e.path).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_option_reads_joined_tables_whole() {
    let env = start(200).await;
    let off =
        env.engine_with(EngineOptions { aggregate_pushdown: false, join_pushdown: false, ..Default::default() }).await;
    let text = off
        .explain("SELECT a.name, c.fullname FROM account a JOIN contact c ON c.parentcustomerid = a.accountid WHERE a.revenue > 1")
        .await
        .unwrap();
    assert!(!text.contains("join_keys") && !text.contains("fetchXml"), "{text}");
}
