//! Finance & Operations entities synced by their modification-time watermark (no change
//! tracking over OData), into SQLite and Delta Lake with their composite keys; entities without
//! such a column are refused by name.

use std::sync::Arc;
use std::time::Duration;

use d365_auth::{AccessToken, StaticTokenProvider};
use d365_client::{ApiRequest, ClientOptions, DataverseClient, FinOpsSettings, Service};
use d365_emulator::config::INTEGRATION_APP;
use d365_emulator::{Emulator, EmulatorOptions};
use d365_sync::{DeltaLocation, SyncKind, SyncOptions, parse_destination, sync};
use serde_json::json;

fn client(emu: &Emulator) -> DataverseClient {
    let fno = emu.fno();
    let token = emu.app_token_for(INTEGRATION_APP, &fno.org_url, Duration::from_secs(3600)).expect("seeded app");
    let mut o = ClientOptions::new(fno.org_url.clone());
    o.extra_ca_pem = Some(std::fs::read(&emu.ready().ca_pem).expect("CA file"));
    o.service = Service::FinOps(FinOpsSettings { cross_company: true });
    DataverseClient::new(o, Arc::new(StaticTokenProvider::new(AccessToken::new(token, None)))).expect("client")
}

async fn send(c: &DataverseClient, method: reqwest::Method, path: &str, body: serde_json::Value) {
    let req = ApiRequest::new(method, c.url(path).unwrap()).json(&body).unwrap();
    c.send(&req).await.unwrap_or_else(|e| panic!("{path}: {e}"));
}

/// Changes two customers (in two companies) and adds one: what the next sync must bring.
async fn change(c: &DataverseClient, round: u32) {
    let patch = reqwest::Method::PATCH;
    send(
        c,
        patch.clone(),
        "CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')",
        json!({"OrganizationName": format!("Renamed {round}")}),
    )
    .await;
    send(c, patch, "CustomersV3(dataAreaId='usrt',CustomerAccount='RT-001')", json!({"CreditLimit": 4242.5})).await;
    let new = json!({"dataAreaId": "demf", "CustomerAccount": format!("DE-NEW{round}"), "OrganizationName": "New", "CustomerGroupId": "10"});
    send(c, reqwest::Method::POST, "CustomersV3", new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finops_entities_sync_by_their_watermark_with_composite_keys() {
    let emu = Emulator::start(EmulatorOptions { rows: 50, fno_rows: Some(3_000), ..Default::default() })
        .await
        .expect("emulator starts");
    let c = client(&emu);
    let dir = tempfile::tempdir().unwrap();
    let sqlite_dir = dir.path().join("copy");
    let delta_to = format!("delta+file://{}", dir.path().join("lake").display());
    for (round, to) in [(1, sqlite_dir.display().to_string()), (2, delta_to.clone())] {
        let options = SyncOptions::new(vec!["CustomersV3".into()], parse_destination(&to, "--to").unwrap());
        let first = sync(&c, &options).await.expect("first sync");
        let t = &first.tables[0];
        assert_eq!(t.kind, SyncKind::Full, "{t}");
        assert_eq!(t.rows, 3_000 + u64::from(round) - 1, "{t}");
        assert!(t.warnings.iter().any(|w| w.contains("ModifiedDateTime watermark")), "{:?}", t.warnings);

        change(&c, round).await;
        let second = sync(&c, &options).await.expect("second sync");
        let t = &second.tables[0];
        assert_eq!(t.kind, SyncKind::Watermark, "{t}");
        assert!((3..20).contains(&t.upserted), "only the changes are read again: {t}");
        assert_eq!(t.rows, 3_000 + u64::from(round), "{t}");
    }

    // SQLite: the rows as changed, one per (company, account).
    let db = rusqlite::Connection::open(sqlite_dir.join("d365.sqlite")).unwrap();
    let name: String = db
        .query_row(
            "SELECT organizationname FROM CustomersV3 WHERE dataareaid='usmf' AND customeraccount='US-001'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(name, "Renamed 1");
    let dups: i64 = db
        .query_row(
            "SELECT count(*) FROM (SELECT 1 FROM CustomersV3 GROUP BY dataareaid, customeraccount HAVING count(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dups, 0);

    // Delta: the same, merged on the composite key.
    let location = DeltaLocation::parse(&delta_to).unwrap();
    let url = location.table_url("CustomersV3");
    let rows = crate::delta::query(
        &location,
        &url,
        "SELECT organizationname, CAST(creditlimit AS VARCHAR) FROM t WHERE customeraccount IN ('US-001', 'RT-001') ORDER BY customeraccount",
    )
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1][0], "Renamed 2");
    assert!(rows[0][1].starts_with("4242.5"), "{rows:?}");
    let count = crate::delta::query(
        &location,
        &url,
        "SELECT count(*), count(DISTINCT dataareaid || '|' || customeraccount) FROM t",
    )
    .await;
    assert_eq!(count, vec![vec!["3002".to_string(), "3002".to_string()]]);

    // An entity without a modification time column cannot be synced incrementally.
    let options = SyncOptions::new(vec!["CustomerGroups".into()], sqlite_dir.as_path());
    let e = sync(&c, &options).await.unwrap_err().to_string();
    assert!(e.contains("'CustomerGroups'") && e.contains("d365 export CustomerGroups"), "{e}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finops_exports_are_read_by_key_ranges_into_every_format() {
    let emu = Emulator::start(EmulatorOptions { rows: 50, fno_rows: Some(12_000), ..Default::default() })
        .await
        .expect("emulator starts");
    let c = client(&emu);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("lines.csv");
    let mut options = d365_sync::ExportOptions::new("SalesOrderLines", csv.clone());
    options.format = d365_sync::Format::Csv;
    options.filter = Some("SalesOrderLineStatus ne Microsoft.Dynamics.DataEntities.SalesStatus'Canceled'".into());
    let summary = d365_sync::export(&c, &options).await.expect("export");
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let key_at = header.split(',').position(|h| h == "inventorylotid").expect("key column");
    let company_at = header.split(',').position(|h| h == "dataareaid").expect("company column");
    let keys: std::collections::HashSet<(String, String)> = lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (cells[company_at].to_string(), cells[key_at].to_string())
        })
        .collect();
    assert_eq!(keys.len() as u64, summary.rows, "every row once");
    assert!(summary.rows > 6_000 && summary.rows < 12_000, "the filter was applied: {}", summary.rows);
    // Read in parallel by key ranges (count, probes, pages), never the whole table in one go.
    assert!(summary.requests > 4, "{summary:?}");
    emu.shutdown().await;
}

/// The child of [`a_killed_finops_export_resumes_to_exactly_the_rows`].
const CHILD: &str = "D365_FINOPS_EXPORT_CHILD";

fn spec_client(spec: &serde_json::Value) -> DataverseClient {
    let s = |k: &str| spec[k].as_str().expect(k).to_string();
    let mut o = ClientOptions::new(s("org_url"));
    o.extra_ca_pem = Some(std::fs::read(s("ca_pem")).expect("CA"));
    o.service = Service::FinOps(FinOpsSettings { cross_company: true });
    DataverseClient::new(o, Arc::new(StaticTokenProvider::new(AccessToken::new(s("token"), None)))).expect("client")
}

fn spec_options(spec: &serde_json::Value) -> d365_sync::ExportOptions {
    let mut o = d365_sync::ExportOptions::new("CustomersV3", spec["output"].as_str().expect("output"));
    o.format = d365_sync::Format::Ndjson;
    o.select = vec!["dataAreaId".into(), "CustomerAccount".into()];
    o.parallel = Some(3);
    o
}

#[test]
fn child_finops_export_entry() {
    let Ok(spec) = std::env::var(CHILD) else { return };
    let spec: serde_json::Value = serde_json::from_str(&spec).expect("child spec");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        d365_sync::export(&spec_client(&spec), &spec_options(&spec)).await.expect("child export");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_finops_export_resumes_to_exactly_the_rows() {
    let rows = 150_000u64;
    let emu = Emulator::start(EmulatorOptions { rows: 50, fno_rows: Some(rows as usize), ..Default::default() })
        .await
        .expect("emulator starts");
    let fno = emu.fno().clone();
    let token = emu.app_token_for(INTEGRATION_APP, &fno.org_url, Duration::from_secs(3600)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("customers.ndjson");
    let spec = json!({"org_url": fno.org_url, "ca_pem": emu.ready().ca_pem, "token": token, "output": out});
    let ckpt_path = d365_sync::export::work_dir(&out).join("checkpoint.json");
    crate::common::run_child_and_kill("finops::child_finops_export_entry", CHILD, &spec, &ckpt_path, 20_000).await;
    assert!(!out.exists(), "no output before the export finished");
    let before = d365_sync::Checkpoint::load(&ckpt_path).unwrap().expect("checkpoint");
    assert!(!before.complete() && before.key_ranges.len() > 1, "{:?}", before.key_ranges);
    assert!(before.key_ranges.iter().any(|r| r.after.is_some() && !r.done), "a range was under way");

    let summary = d365_sync::export(&client(&emu), &spec_options(&spec)).await.expect("resumed export");
    assert!(summary.resumed_rows >= 20_000, "{summary}");
    assert_eq!(summary.rows, rows, "{summary}");
    let text = std::fs::read_to_string(&out).unwrap();
    let keys: std::collections::HashSet<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{}|{}", v["dataareaid"].as_str().unwrap(), v["customeraccount"].as_str().unwrap())
        })
        .collect();
    assert_eq!(keys.len() as u64, rows, "every row exactly once");
    assert_eq!(text.lines().count() as u64, rows);
    // Only the rest was read: at most one page per unfinished range again.
    let unfinished = before.key_ranges.iter().filter(|r| !r.done).count() as u64;
    let left = rows - before.rows();
    assert!(summary.requests <= left.div_ceil(5_000) + 2 * unfinished + summary.retries, "{summary}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finops_entities_land_in_postgresql_keyed_by_their_composite_key() {
    let Some(server) = crate::common::postgres::PgServer::start() else { return };
    let emu = Emulator::start(EmulatorOptions { rows: 50, fno_rows: Some(2_000), ..Default::default() })
        .await
        .expect("emulator starts");
    let c = client(&emu);
    let pg = server.client().await;
    // An export whose columns leave out the key: the key fields are exported too.
    let mut options = d365_sync::ExportOptions::new("CustomersV3", server.url("fo"));
    options.select = vec!["OrganizationName".into()];
    let summary = d365_sync::export(&c, &options).await.expect("export");
    assert_eq!(summary.rows, 2_000);
    let key: Vec<String> = pg
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = 'fo.\"CustomersV3\"'::regclass AND i.indisprimary ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(key, ["customeraccount", "dataareaid"]);
    // A sync by watermark into another schema: the changes merged on the composite key.
    let options = SyncOptions::new(vec!["CustomersV3".into()], parse_destination(&server.url("fs"), "--to").unwrap());
    sync(&c, &options).await.expect("first sync");
    change(&c, 7).await;
    let second = sync(&c, &options).await.expect("second sync");
    assert_eq!((second.tables[0].kind, second.tables[0].rows), (SyncKind::Watermark, 2_001));
    let name: String = pg
        .query_one(
            "SELECT organizationname FROM fs.\"CustomersV3\" WHERE dataareaid = 'usmf' AND customeraccount = 'US-001'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Renamed 7");
    emu.shutdown().await;
}

/// A scale-out plan of an F&O entity: units are ranges of its composite key (count and
/// probes, no `createdon`), two workers read them, one commit, and the sync continues by the
/// watermark the plan took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finops_entities_are_planned_by_key_ranges_and_committed_once() {
    use d365_sync::scaleout::{
        CommitOptions, PlanOptions, Shard, TrackingLine, WorkerOptions, commit, plan, run_units,
    };

    let emu = Emulator::start(EmulatorOptions { rows: 50, fno_rows: Some(3_000), ..Default::default() })
        .await
        .expect("emulator starts");
    let c = client(&emu);
    let dir = tempfile::tempdir().unwrap();
    let to = format!("delta+file://{}", dir.path().join("lake").display());
    let mut options = PlanOptions::new(vec!["CustomersV3".into()], to.clone());
    options.unit_rows = 800;
    options.credentials = 2;
    let manifest = plan(&c, &options).await.expect("plan");
    // 3,000 rows at 800 per unit: 4 units (a multiple of the 2 credentials), cut on the key.
    assert_eq!(manifest.units.len(), 4, "{:?}", manifest.units);
    assert_eq!(manifest.units.iter().map(|u| u.estimated_rows).sum::<u64>(), 3_000);
    let ranges: Vec<_> = manifest.units.iter().map(|u| u.keys.clone().expect("a key range")).collect();
    assert!(ranges[0].lo.is_none() && ranges[3].hi.is_none(), "{ranges:?}");
    for pair in ranges.windows(2) {
        assert_eq!(pair[0].hi, pair[1].lo, "contiguous: {ranges:?}");
        assert_eq!(pair[0].hi.as_ref().map(Vec::len), Some(2), "dataAreaId and CustomerAccount: {ranges:?}");
    }
    let TrackingLine::Watermark { watermark } = &manifest.tables[0].tracking else {
        panic!("no change tracking on F&O")
    };
    assert!(watermark.is_some(), "the ModifiedDateTime watermark is taken before the units are read");
    // The manifest round-trips with its key ranges.
    let path = dir.path().join("plan.jsonl");
    manifest.save(&path.display().to_string(), &[]).await.unwrap();
    let manifest = d365_sync::scaleout::Manifest::load(&path.display().to_string(), &[]).await.unwrap();
    assert_eq!(manifest.units[1].keys, Some(ranges[1].clone()));

    for index in 0..2 {
        let mut worker = WorkerOptions::new();
        worker.shard = Some(Shard { index, count: 2 });
        let report = run_units(&c, &manifest, &worker).await.expect("worker");
        assert_eq!(report.units.len(), 2, "{report}");
    }
    let committed = commit(&manifest, &CommitOptions::default()).await.expect("commit");
    assert_eq!(committed.tables[0].rows, 3_000, "{committed}");
    let location = DeltaLocation::parse(&to).unwrap();
    let url = location.table_url("CustomersV3");
    let count = "SELECT count(*), count(DISTINCT dataareaid || '|' || customeraccount) FROM t";
    assert_eq!(crate::delta::query(&location, &url, count).await, vec![vec!["3000".to_string(), "3000".to_string()]]);

    // The sync after the commit reads only what changed since the plan's watermark.
    change(&c, 1).await;
    let options = SyncOptions::new(vec!["CustomersV3".into()], parse_destination(&to, "--to").unwrap());
    let next = sync(&c, &options).await.expect("sync after the commit");
    let t = &next.tables[0];
    assert_eq!(t.kind, SyncKind::Watermark, "{t}");
    assert!((3..20).contains(&t.upserted), "only the changes are read again: {t}");
    assert_eq!(crate::delta::query(&location, &url, count).await, vec![vec!["3001".to_string(), "3001".to_string()]]);
    emu.shutdown().await;
}
