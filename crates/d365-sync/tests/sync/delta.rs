//! `sync` and `export` into Delta Lake tables in a local directory: a full load in one commit;
//! inserts, updates and deletes merged exactly; a state-only commit when nothing changed; a
//! new Dataverse column added to the table; an expired token reloads; a sync that dies at any
//! page and runs again ends with exactly the source's rows; soft deletes; table exports.
//! (Read back here through `deltalake`'s own reader; the Python tests read the same tables
//! with the independent `deltalake` package.)

use crate::common;

use std::time::Duration;

use d365_client::RecordKey;
use d365_emulator::NewColumn;
use d365_sync::deltalake::datafusion::prelude::SessionContext;
use d365_sync::{
    DeltaLocation, DeltaTarget, ExportOptions, Format, SyncKind, SyncOptions, export, parse_destination, sync, sync_to,
};
use serde_json::json;

use common::dies::{Dies, change_contacts, seeded};
use common::start;

fn uuid(s: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(s).unwrap()
}

/// The rows of `sql` over the Delta table at `url` (registered as `t`), as text.
pub(crate) async fn query(location: &DeltaLocation, url: &url::Url, sql: &str) -> Vec<Vec<String>> {
    use d365_sync::deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
    let table = location.open(url).await.unwrap();
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).unwrap();
    ctx.register_table("t", table.table_provider().await.unwrap()).unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut rows = Vec::new();
    let options = FormatOptions::default().with_null("NULL");
    for b in batches {
        let formatters: Vec<_> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for i in 0..b.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    rows
}

/// (contactid, lastname) of the Delta copy, sorted like `Env::contacts`.
async fn delta_contacts(location: &DeltaLocation, filter: &str) -> Vec<(String, String)> {
    let url = location.table_url("contact");
    query(location, &url, &format!("SELECT contactid, coalesce(lastname, '') FROM t {filter} ORDER BY 1, 2"))
        .await
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
}

fn commits(dir: &std::path::Path, table: &str) -> usize {
    std::fs::read_dir(dir.join(table).join("_delta_log"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".json"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_into_delta_is_typed_merges_exactly_the_changes_and_reloads_after_an_expired_token() {
    let env = start(2_000, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let dir = tempfile::tempdir().unwrap();
    let to = format!("delta+file://{}", dir.path().display());
    let location = DeltaLocation::parse(&to).unwrap();
    let mut options =
        SyncOptions::new(vec!["contact".into(), "account".into()], parse_destination(&to, "--to").unwrap());
    options.page_size = Some(300);

    let first = sync(&client, &options).await.expect("first sync");
    assert!(first.destination.starts_with("delta+file://"), "{}", first.destination);
    let t = &first.tables[0];
    assert_eq!((t.kind, t.rows, t.upserted), (SyncKind::Full, 1_000, 1_000), "{t}");
    assert_eq!(delta_contacts(&location, "").await, env.contacts());
    // One commit per table for the whole load.
    assert_eq!(commits(dir.path(), "contact"), 1);

    // Typed like the SQL engine: exact money, UTC instants, choice codes with labels, lookup
    // names.
    let account = location.open(&location.table_url("account")).await.unwrap();
    let schema = account.snapshot().unwrap().schema();
    for (col, ty) in [
        ("accountid", "string"),
        ("revenue", "decimal(38,4)"),
        ("createdon", "timestamp"),
        ("statecode", "integer"),
        ("statecodename", "string"),
        ("owneridname", "string"),
    ] {
        let f = schema.field(col).unwrap_or_else(|| panic!("no column {col}"));
        assert_eq!(f.data_type().to_string(), ty, "{col}");
    }
    let url = location.table_url("account");
    let total = query(&location, &url, "SELECT CAST(coalesce(sum(revenue), 0) AS VARCHAR) FROM t").await;
    let source_total: String = env
        .emu
        .state()
        .store
        .with_conn(|c| {
            c.query_row(
                "SELECT printf('%d.%04d', s / 10000, s % 10000) FROM (SELECT coalesce(sum(revenue), 0) AS s FROM account)",
                [],
                |r| r.get(0),
            )
        })
        .unwrap()
        .unwrap();
    assert_eq!(total[0][0], source_total);

    // Changes in Dataverse: 3 inserts, 2 updates (one row twice), 2 deletes.
    let before = env.contacts();
    for i in 0..3 {
        client.create("contacts", &json!({"lastname": format!("New {i}")})).await.unwrap();
    }
    for (id, _) in &before[0..2] {
        client.update("contacts", &RecordKey::Id(uuid(id)), &json!({"lastname": "Renamed"}), None).await.unwrap();
    }
    client.update("contacts", &RecordKey::Id(uuid(&before[0].0)), &json!({"lastname": "Twice"}), None).await.unwrap();
    for (id, _) in &before[2..4] {
        client.delete("contacts", &RecordKey::Id(uuid(id)), None).await.unwrap();
    }
    let second = sync(&client, &options).await.expect("delta sync");
    let t = &second.tables[0];
    assert_eq!((t.kind, t.upserted, t.deleted, t.rows), (SyncKind::Delta, 5, 2, 1_001), "{t}");
    let copy = delta_contacts(&location, "").await;
    assert_eq!(copy, env.contacts());
    assert!(copy.contains(&(before[0].0.clone(), "Twice".into())));
    // The whole delta is one merge commit.
    assert_eq!(commits(dir.path(), "contact"), 2);

    // Nothing changed: nothing applied, the new token saved in a state-only commit.
    let third = sync(&client, &options).await.expect("empty delta");
    assert_eq!((third.tables[0].kind, third.tables[0].upserted, third.tables[0].deleted), (SyncKind::Delta, 0, 0));
    assert_eq!(commits(dir.path(), "contact"), 3);
    assert_eq!(delta_contacts(&location, "").await, env.contacts());

    // Eight days later the token has expired (7 days kept): a full reload in one commit.
    client.delete("contacts", &RecordKey::Id(uuid(&before[4].0)), None).await.unwrap();
    env.emu.state().clock.advance(8 * 86_400);
    let fourth = sync(&client, &options).await.expect("reload");
    let t = &fourth.tables[0];
    assert_eq!((t.kind, t.rows), (SyncKind::Full, 1_000), "{t}");
    assert!(t.warnings.iter().any(|w| w.contains("refused") && w.contains("expired")), "{:?}", t.warnings);
    assert_eq!(delta_contacts(&location, "").await, env.contacts());
    let fifth = sync(&client, &options).await.expect("delta after reload");
    assert_eq!(fifth.tables[0].kind, SyncKind::Delta);
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_sync_that_dies_at_any_page_and_runs_again_ends_with_exactly_the_source() {
    let env = start(1_200, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let dir = tempfile::tempdir().unwrap();
    let location = DeltaLocation::parse(&format!("delta+file://{}", dir.path().display())).unwrap();
    let mut options = SyncOptions::new(vec!["contact".into()], std::path::Path::new("unused"));
    options.page_size = Some(100);
    let mut next = seeded(0x2545_f491);
    for round in 0..5 {
        if round > 0 {
            change_contacts(&env, &client, round, 30, 25, 300).await;
        }
        // Merges every 40 changes, so a death can fall between two merges of one delta.
        let pages = next(8);
        let mut dying = Dies { inner: DeltaTarget::new(location.clone(), false).with_flush_rows(40), pages };
        let died = sync_to(&client, &options, &mut dying).await;
        drop(dying);
        let mut target = DeltaTarget::new(location.clone(), false).with_flush_rows(40);
        let report = sync_to(&client, &options, &mut target).await.expect("the re-run completes");
        assert_eq!(
            delta_contacts(&location, "").await,
            env.contacts(),
            "round {round}: died after {pages} pages ({:?}), then {}",
            died.err(),
            report.tables[0]
        );
    }
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_deletes_new_columns_and_watermarks_in_delta() {
    let env = start(400, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let dir = tempfile::tempdir().unwrap();
    let to = format!("delta:{}", dir.path().join("soft").display());
    let location = DeltaLocation::parse(&to).unwrap();
    let mut options = SyncOptions::new(vec!["contact".into()], parse_destination(&to, "--to").unwrap());
    options.soft_delete = true;
    sync(&client, &options).await.expect("first sync");
    let before = env.contacts();
    client.delete("contacts", &RecordKey::Id(uuid(&before[0].0)), None).await.unwrap();

    // A customizer adds a money column; one contact gets a value.
    env.emu.add_column("contact", NewColumn::money("new_Bonus", "Bonus")).await.expect("column created");
    let id = before[1].0.clone();
    client.update("contacts", &RecordKey::Id(uuid(&id)), &json!({"new_bonus": 1234.5678}), None).await.unwrap();

    let t = sync(&client, &options).await.expect("delta").tables.remove(0);
    assert_eq!((t.deleted, t.upserted, t.rows), (1, 1, 199), "{t}");
    assert_eq!(delta_contacts(&location, "WHERE _d365_deleted IS NULL").await, env.contacts());
    let url = location.table_url("contact");
    let stamped = query(
        &location,
        &url,
        &format!("SELECT count(*) FROM t WHERE _d365_deleted IS NOT NULL AND contactid = '{}'", before[0].0),
    )
    .await;
    assert_eq!(stamped, vec![vec!["1".to_string()]]);
    let bonus =
        query(&location, &url, "SELECT contactid, CAST(new_bonus AS VARCHAR) FROM t WHERE new_bonus IS NOT NULL").await;
    assert_eq!(bonus, vec![vec![id.clone(), "1234.5678".to_string()]]);

    // A reload with soft deletes keeps the deleted row, stamped, beside the source's rows.
    env.emu.state().clock.advance(8 * 86_400);
    let t = sync(&client, &options).await.expect("reload").tables.remove(0);
    assert_eq!((t.kind, t.rows), (SyncKind::Full, 199), "{t}");
    assert_eq!(delta_contacts(&location, "WHERE _d365_deleted IS NULL").await, env.contacts());
    let all = query(&location, &url, "SELECT count(*) FROM t").await;
    assert_eq!(all, vec![vec!["200".to_string()]]);

    // Without change tracking: the modifiedon watermark, merged the same way.
    let plain = format!("delta:{}", dir.path().join("plain").display());
    let plain_location = DeltaLocation::parse(&plain).unwrap();
    let mut options = SyncOptions::new(vec!["contact".into()], parse_destination(&plain, "--to").unwrap());
    options.change_tracking = false;
    let t = sync(&client, &options).await.expect("watermark load").tables.remove(0);
    assert_eq!((t.kind, t.rows), (SyncKind::Full, 199), "{t}");
    env.emu.state().clock.advance(60);
    client.update("contacts", &RecordKey::Id(uuid(&id)), &json!({"lastname": "Watermarked"}), None).await.unwrap();
    let t = sync(&client, &options).await.expect("watermark delta").tables.remove(0);
    assert_eq!(t.kind, SyncKind::Watermark, "{t}");
    assert_eq!(delta_contacts(&plain_location, "").await, env.contacts());
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_exports_to_a_delta_table_in_one_commit_and_again_as_an_overwrite() {
    let env = start(1_500, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let dir = tempfile::tempdir().unwrap();
    let table_dir = dir.path().join("lake").join("accounts");
    let mut options = ExportOptions::new("account", format!("delta+file://{}", table_dir.display()));
    options.page_size = Some(200);
    options.staging_dir = Some(dir.path().join("staging"));
    let summary = export(&client, &options).await.expect("export");
    assert_eq!((summary.rows, summary.format), (1_500, Format::Delta), "{summary}");
    let location = DeltaLocation::parse(&format!("delta+file://{}", table_dir.display())).unwrap();
    let url = location.url().clone();
    let ids = query(&location, &url, "SELECT accountid, coalesce(name, '') FROM t ORDER BY 1, 2").await;
    let ids: Vec<(String, String)> = ids.into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    let mut source = env.accounts();
    source.sort();
    assert_eq!(ids, source);

    // `--format delta` with a plain directory: the same table, overwritten in one more commit.
    let mut again = ExportOptions::new("account", &table_dir);
    again.format = Format::Delta;
    again.select = vec!["accountid".into(), "name".into()];
    again.staging_dir = Some(dir.path().join("staging"));
    let summary = export(&client, &again).await.expect("export again");
    assert_eq!(summary.rows, 1_500);
    assert_eq!(std::fs::read_dir(table_dir.join("_delta_log")).unwrap().count(), 2);
    let n = query(&location, &url, "SELECT count(*), count(revenue) FROM t").await;
    // The columns not exported this time stay in the schema, null.
    assert_eq!(n, vec![vec!["1500".to_string(), "0".to_string()]]);
    env.emu.shutdown().await;
}
