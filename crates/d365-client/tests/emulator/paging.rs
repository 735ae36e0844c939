//! The page stream: every row exactly once through `@odata.nextLink`, the page size on every
//! request, limits that stop early, annotations.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use d365_client::{FORMATTED_VALUE, LOOKUP_LOGICAL_NAME, Query, RequestEvent};
use futures::StreamExt;

use crate::common::start;

fn record_paths(client: &d365_client::DataverseClient) -> Arc<Mutex<Vec<String>>> {
    let paths = Arc::new(Mutex::new(Vec::new()));
    let p2 = paths.clone();
    client.request_log().set_hook(Some(Arc::new(move |e: &RequestEvent| p2.lock().unwrap().push(e.path.clone()))));
    paths
}

#[tokio::test]
async fn twelve_thousand_accounts_in_three_pages_each_row_once() {
    let env = start(12_000).await;
    let client = env.client().await;
    let paths = record_paths(&client);
    let query = Query::new("accounts").select(["accountid", "name"]).max_page_size(5000).count(true);
    let mut stream = client.page_stream(&query).unwrap();
    let mut ids = HashSet::new();
    let mut pages = Vec::new();
    while let Some(page) = stream.next().await {
        let page = page.unwrap();
        for row in &page.rows {
            assert!(ids.insert(row["accountid"].as_str().unwrap().to_string()), "row repeated: {row:?}");
        }
        pages.push((page.rows.len(), page.next_link.clone(), page.count));
    }
    assert_eq!(ids.len(), 12_000);
    assert_eq!(pages.iter().map(|p| p.0).collect::<Vec<_>>(), vec![5000, 5000, 2000]);
    assert_eq!(pages[0].2, Some(5000), "@odata.count is capped at 5000");
    assert!(pages[2].1.is_none());
    let paths = paths.lock().unwrap().clone();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert_eq!(paths[0], "/api/data/v9.2/accounts?$select=accountid,name&$count=true");
    // Each later request is the previous page's nextLink, exactly.
    for i in 1..3 {
        let link = url::Url::parse(pages[i - 1].1.as_deref().unwrap()).unwrap();
        assert_eq!(link.as_str(), pages[i - 1].1.as_deref().unwrap(), "the link needs no re-encoding");
        assert_eq!(paths[i], format!("{}?{}", link.path(), link.query().unwrap()));
        assert!(paths[i].contains("$skiptoken="), "{}", paths[i]);
    }
    assert_eq!(client.request_log().stats().get, 3);
}

#[tokio::test]
async fn the_page_size_is_sent_with_every_page_and_limits_stop_early() {
    let env = start(12_000).await;
    let client = env.client().await;
    // Pages of 4000: were the Prefer header missing on a later page, it would hold 5000 rows.
    let sizes: Vec<usize> = client
        .page_stream(&Query::new("accounts").select(["name"]).max_page_size(4000))
        .unwrap()
        .map(|p| p.unwrap().rows.len())
        .collect()
        .await;
    assert_eq!(sizes, vec![4000, 4000, 4000]);

    // A limit past one page reads exactly the pages it needs.
    let log = client.request_log();
    let s = log.stats();
    let rows = client
        .page_stream(&Query::new("accounts").select(["name"]).max_page_size(5000))
        .unwrap()
        .stop_after(5001)
        .collect_rows()
        .await
        .unwrap();
    assert_eq!(rows.len(), 5001);
    assert_eq!(log.stats().since(&s).requests, 2);

    // A small top goes into the URL as $top (no page-size preference) and reads one page.
    let s = log.stats();
    let q = Query::new("accounts").select(["name"]).order_by("name", false).top(10);
    let plan = client.plan(&q).unwrap();
    assert!(plan.url.as_str().ends_with("accounts?$select=name&$orderby=name%20asc&$top=10"), "{}", plan.url);
    assert_eq!(plan.prefer, None);
    let rows = client.page_stream(&q).unwrap().collect_rows().await.unwrap();
    assert_eq!(rows.len(), 10);
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_ascii_lowercase());
    assert_eq!(names, sorted);
    assert_eq!(log.stats().since(&s).requests, 1);

    // While the consumer holds page 1, exactly one page is fetched ahead (memory stays flat);
    // dropping the stream stops it.
    let s = log.stats();
    let mut stream = client.page_stream(&Query::new("accounts").select(["name"]).max_page_size(1000)).unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.rows.len(), 1000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(log.stats().since(&s).requests, 2, "one page prefetched, no more");
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(log.stats().since(&s).requests, 2, "nothing read after the stream was dropped");
}

#[tokio::test]
async fn raw_pages_and_annotations() {
    let env = start(30).await;
    let client = env.client().await;
    let q = Query::new("contacts")
        .select(["fullname", "_parentcustomerid_value", "statecode"])
        .annotations([FORMATTED_VALUE, LOOKUP_LOGICAL_NAME])
        .max_page_size(4);
    let rows = client.page_stream(&q).unwrap().collect_rows().await.unwrap();
    assert_eq!(rows.len(), 15);
    let active = rows.iter().find(|r| r["statecode"] == 0).unwrap();
    assert_eq!(active["statecode@OData.Community.Display.V1.FormattedValue"], "Active");
    let with_parent = rows.iter().find(|r| !r["_parentcustomerid_value"].is_null()).expect("a contact with a parent");
    let target = with_parent["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"].as_str().unwrap();
    assert!(target == "account" || target == "contact", "{target}");

    // Raw bodies: rows are counted, the limit cuts inside a page.
    let mut raw = client.page_stream(&q).unwrap().raw().stop_after(6);
    let mut counts = Vec::new();
    while let Some(page) = raw.next().await {
        let page = page.unwrap();
        let body: serde_json::Value = serde_json::from_slice(page.raw.as_ref().unwrap()).unwrap();
        assert_eq!(body["value"].as_array().unwrap().len(), 4);
        assert!(page.rows.is_empty());
        counts.push(page.row_count);
    }
    assert_eq!(counts, vec![4, 2]);
}
