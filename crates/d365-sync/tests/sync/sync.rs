//! `sync` end to end against the emulator: a full sync, then inserts, updates and deletes in
//! the emulator, then a sync applies exactly those through change tracking; an expired delta
//! token (the emulator clock moved 8 days) falls back to a full re-sync; without change
//! tracking the modifiedon watermark picks up inserts and updates and says deletes are unseen.

use crate::common;

use std::path::Path;
use std::time::Duration;

use d365_client::RecordKey;
use d365_sync::{SyncKind, SyncOptions, sync};
use serde_json::json;

use common::start;

fn local_contacts(dir: &Path) -> Vec<(String, String)> {
    let c = rusqlite::Connection::open(dir.join(d365_sync::sync::DATABASE_FILE)).unwrap();
    let mut st = c.prepare("SELECT contactid, coalesce(lastname, '') FROM contact ORDER BY 1, 2").unwrap();
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).unwrap();
    rows.collect::<Result<Vec<_>, _>>().unwrap()
}

fn uuid(s: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_applies_exactly_the_changes_and_resyncs_after_an_expired_token() {
    let env = start(2_000, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let dir = tempfile::tempdir().unwrap();
    let mut options = SyncOptions::new(vec!["contact".into()], dir.path());
    options.page_size = Some(300);

    let first = sync(&client, &options).await.expect("first sync");
    let t = &first.tables[0];
    assert_eq!((t.kind, t.rows, t.upserted), (SyncKind::Full, 1_000, 1_000), "{t}");
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    assert_eq!(local_contacts(dir.path()), env.contacts());
    // The SQL engine's columns: choice labels beside codes, lookups by their logical name with
    // the related record's name, instants as RFC 3339 text.
    let db = rusqlite::Connection::open(dir.path().join(d365_sync::sync::DATABASE_FILE)).unwrap();
    let (unlabelled, owners, instant): (i64, i64, String) = db
        .query_row(
            "SELECT (SELECT count(*) FROM contact WHERE statecodename IS NULL), \
             (SELECT count(*) FROM contact WHERE ownerid IS NOT NULL AND owneridname IS NOT NULL), \
             (SELECT createdon FROM contact LIMIT 1)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((unlabelled, owners), (0, 1_000));
    assert!(instant.len() == 20 && instant.ends_with('Z'), "{instant}");

    // Changes in Dataverse: 3 inserts, 2 updates, 2 deletes.
    let before = env.contacts();
    for i in 0..3 {
        client.create("contacts", &json!({"lastname": format!("New {i}")})).await.unwrap();
    }
    for (id, _) in &before[0..2] {
        client.update("contacts", &RecordKey::Id(uuid(id)), &json!({"lastname": "Renamed"}), None).await.unwrap();
    }
    for (id, _) in &before[2..4] {
        client.delete("contacts", &RecordKey::Id(uuid(id)), None).await.unwrap();
    }
    let second = sync(&client, &options).await.expect("delta sync");
    let t = &second.tables[0];
    assert_eq!((t.kind, t.upserted, t.deleted, t.rows), (SyncKind::Delta, 5, 2, 1_001), "{t}");
    let local = local_contacts(dir.path());
    assert_eq!(local, env.contacts());
    assert_eq!(local.iter().filter(|(_, n)| n == "Renamed").count(), 2);

    // Nothing changed: nothing applied.
    let third = sync(&client, &options).await.expect("empty delta");
    assert_eq!((third.tables[0].kind, third.tables[0].upserted, third.tables[0].deleted), (SyncKind::Delta, 0, 0));

    // Eight days later the token has expired (7 days kept): a full re-sync, with a warning.
    client.delete("contacts", &RecordKey::Id(uuid(&before[4].0)), None).await.unwrap();
    env.emu.state().clock.advance(8 * 86_400);
    let fourth = sync(&client, &options).await.expect("re-sync");
    let t = &fourth.tables[0];
    assert_eq!((t.kind, t.rows), (SyncKind::Full, 1_000), "{t}");
    assert!(t.warnings.iter().any(|w| w.contains("refused") && w.contains("expired")), "{:?}", t.warnings);
    assert_eq!(local_contacts(dir.path()), env.contacts());
    // And the next run is incremental again.
    let fifth = sync(&client, &options).await.expect("delta after re-sync");
    assert_eq!(fifth.tables[0].kind, SyncKind::Delta);
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_change_tracking_the_modifiedon_watermark_is_used_and_deletes_are_unseen() {
    let env = start(1_000, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let dir = tempfile::tempdir().unwrap();
    let mut options = SyncOptions::new(vec!["contacts".into()], dir.path());
    options.change_tracking = false;
    let first = sync(&client, &options).await.expect("first sync");
    assert_eq!((first.tables[0].kind, first.tables[0].rows), (SyncKind::Full, 500));
    assert!(first.tables[0].warnings.iter().any(|w| w.contains("not deleted")));

    let before = env.contacts();
    let created = client.create("contacts", &json!({"lastname": "Watermarked"})).await.unwrap();
    client.update("contacts", &RecordKey::Id(uuid(&before[0].0)), &json!({"lastname": "Changed"}), None).await.unwrap();
    client.delete("contacts", &RecordKey::Id(uuid(&before[1].0)), None).await.unwrap();
    let second = sync(&client, &options).await.expect("watermark sync");
    let t = &second.tables[0];
    assert_eq!(t.kind, SyncKind::Watermark, "{t}");
    assert!(t.upserted >= 2, "{t}");
    let local = local_contacts(dir.path());
    assert!(local.contains(&(created.to_string(), "Watermarked".into())));
    assert!(local.contains(&(before[0].0.clone(), "Changed".into())));
    // The deleted row is still here: a watermark cannot see deletions (and the report says so).
    assert!(local.iter().any(|(id, _)| *id == before[1].0));
    assert_eq!(local.len(), 501);
    assert!(t.warnings.iter().any(|w| w.contains("not deleted")));
    env.emu.shutdown().await;
}
