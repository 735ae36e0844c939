//! `sync` into a real PostgreSQL server (a throwaway cluster, see `common/postgres.rs`):
//! typed tables with labels; inserts, updates and deletes applied exactly; an expired token
//! reloads; a sync that dies at any page and runs again ends with exactly the source's rows;
//! soft deletes.

use crate::common;

use std::time::Duration;

use d365_client::RecordKey;
use d365_emulator::NewColumn;
use d365_sync::{PostgresTarget, PostgresUrl, SyncError, SyncKind, SyncOptions, parse_destination, sync, sync_to};
use serde_json::json;

use common::dies::{Dies, change_contacts, seeded};
use common::postgres::PgServer;
use common::start;

fn uuid(s: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(s).unwrap()
}

/// (contactid, lastname) of the copy, sorted.
async fn pg_contacts(pg: &tokio_postgres::Client, schema: &str, filter: &str) -> Vec<(String, String)> {
    let rows = pg
        .query(
            &format!("SELECT contactid::text, coalesce(lastname, '') FROM {schema}.contact {filter} ORDER BY 1, 2"),
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_into_postgres_is_typed_applies_exactly_the_changes_and_reloads_after_an_expired_token() {
    let Some(server) = PgServer::start() else { return };
    let env = start(2_000, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let pg = server.client().await;
    let mut options = SyncOptions::new(
        vec!["contact".into(), "account".into()],
        parse_destination(&server.url("crm"), "--to").unwrap(),
    );
    options.page_size = Some(300);

    let first = sync(&client, &options).await.expect("first sync");
    assert!(first.destination.contains("(schema crm)"), "{}", first.destination);
    let t = &first.tables[0];
    assert_eq!((t.kind, t.rows, t.upserted), (SyncKind::Full, 1_000, 1_000), "{t}");
    assert_eq!(pg_contacts(&pg, "crm", "").await, env.contacts());

    // Typed like the SQL engine: uuid keys and lookups, exact money, instants, choice codes
    // with their labels, lookup names.
    let types: Vec<(String, String)> = pg
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = 'crm' AND table_name = 'account'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (col, ty) in [
        ("accountid", "uuid"),
        ("revenue", "numeric"),
        ("createdon", "timestamp with time zone"),
        ("statecode", "integer"),
        ("statecodename", "text"),
        ("ownerid", "uuid"),
        ("owneridname", "text"),
    ] {
        assert!(types.iter().any(|(c, t)| c == col && t == ty), "{col} {ty} not in {types:?}");
    }
    let unlabelled: i64 = pg
        .query_one("SELECT count(*) FROM crm.account WHERE statecode IS NOT NULL AND statecodename IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(unlabelled, 0);
    // Money is exact: the copy's total equals the emulator's (which keeps ten-thousandths as
    // integers), digit for digit.
    let pg_total: String =
        pg.query_one("SELECT coalesce(sum(revenue), 0)::text FROM crm.account", &[]).await.unwrap().get(0);
    let source_total: String = env
        .emu
        .state()
        .store
        .with_conn(|c| c.query_row(
                "SELECT printf('%d.%04d', s / 10000, s % 10000) FROM (SELECT coalesce(sum(revenue), 0) AS s FROM account)",
                [],
                |r| r.get(0),
            ))
        .unwrap()
        .unwrap();
    assert_eq!(pg_total, source_total);

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
    let copy = pg_contacts(&pg, "crm", "").await;
    assert_eq!(copy, env.contacts());
    assert!(copy.contains(&(before[0].0.clone(), "Twice".into())));

    // Nothing changed: nothing applied.
    let third = sync(&client, &options).await.expect("empty delta");
    assert_eq!((third.tables[0].kind, third.tables[0].upserted, third.tables[0].deleted), (SyncKind::Delta, 0, 0));

    // Eight days later the token has expired (7 days kept): a full reload, with a warning; a
    // view on the table survives it.
    pg.batch_execute("CREATE VIEW crm.renamed AS SELECT contactid FROM crm.contact WHERE lastname = 'Renamed'")
        .await
        .unwrap();
    client.delete("contacts", &RecordKey::Id(uuid(&before[4].0)), None).await.unwrap();
    env.emu.state().clock.advance(8 * 86_400);
    let fourth = sync(&client, &options).await.expect("reload");
    let t = &fourth.tables[0];
    assert_eq!((t.kind, t.rows), (SyncKind::Full, 1_000), "{t}");
    assert!(t.warnings.iter().any(|w| w.contains("refused") && w.contains("expired")), "{:?}", t.warnings);
    assert_eq!(pg_contacts(&pg, "crm", "").await, env.contacts());
    let renamed: i64 = pg.query_one("SELECT count(*) FROM crm.renamed", &[]).await.unwrap().get(0);
    assert_eq!(renamed, 1);
    let fifth = sync(&client, &options).await.expect("delta after reload");
    assert_eq!(fifth.tables[0].kind, SyncKind::Delta);
    let mode: String =
        pg.query_one("SELECT mode FROM crm._d365_sync_state WHERE table_name = 'contact'", &[]).await.unwrap().get(0);
    assert_eq!(mode, "delta");
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_dies_at_any_page_and_runs_again_ends_with_exactly_the_source() {
    let Some(server) = PgServer::start() else { return };
    let env = start(2_000, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let pg = server.client().await;
    let url = PostgresUrl::parse(&server.url("kill")).unwrap();
    let mut options = SyncOptions::new(vec!["contact".into()], std::path::Path::new("unused"));
    options.page_size = Some(150);
    // Pseudo-random death points (fixed seed): during the first load, then during deltas.
    let mut next = seeded(0x9e37_79b9);
    for round in 0..6 {
        if round > 0 {
            // Changes between rounds: inserts, updates, deletes.
            change_contacts(&env, &client, round, 40, 30, 500).await;
        }
        let pages = next(8);
        let mut dying = Dies { inner: PostgresTarget::connect(url.clone(), false).await.unwrap(), pages };
        let died = sync_to(&client, &options, &mut dying).await;
        drop(dying);
        let mut target = PostgresTarget::connect(url.clone(), false).await.unwrap();
        let report = sync_to(&client, &options, &mut target).await.expect("the re-run completes");
        assert_eq!(
            pg_contacts(&pg, "kill", "").await,
            env.contacts(),
            "round {round}: died after {pages} pages ({:?}), then {}",
            died.err(),
            report.tables[0]
        );
    }
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_deletes_keep_the_row_stamped_and_a_bad_target_is_a_clear_error() {
    let Some(server) = PgServer::start() else { return };
    let env = start(400, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let pg = server.client().await;
    let mut options = SyncOptions::new(vec!["contact".into()], parse_destination(&server.url("soft"), "--to").unwrap());
    options.soft_delete = true;
    sync(&client, &options).await.expect("first sync");
    let before = env.contacts();
    client.delete("contacts", &RecordKey::Id(uuid(&before[0].0)), None).await.unwrap();
    let t = sync(&client, &options).await.expect("delta").tables.remove(0);
    assert_eq!((t.deleted, t.rows), (1, 199), "{t}");
    let live = pg_contacts(&pg, "soft", "WHERE _d365_deleted IS NULL").await;
    assert_eq!(live, env.contacts());
    let stamped: i64 = pg
        .query_one(
            &format!(
                "SELECT count(*) FROM soft.contact WHERE _d365_deleted IS NOT NULL AND contactid = '{}'",
                before[0].0
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stamped, 1);

    // Nobody listening on that port: a PostgreSQL error naming the target, no password.
    let dead = format!("postgresql://postgres:hunter2@127.0.0.1:{}/postgres", server.port + 1);
    let options = SyncOptions::new(vec!["contact".into()], parse_destination(&dead, "--to").unwrap());
    let e = sync(&client, &options).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, SyncError::Postgres { .. }) && text.contains("127.0.0.1"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_added_in_dataverse_appears_in_the_copy_and_a_removed_one_stays() {
    let Some(server) = PgServer::start() else { return };
    let env = start(400, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let pg = server.client().await;
    let options = SyncOptions::new(vec!["contact".into()], parse_destination(&server.url("drift"), "--to").unwrap());
    sync(&client, &options).await.expect("first sync");

    // A customizer adds a money column; one contact gets a value.
    env.emu.add_column("contact", NewColumn::money("new_Bonus", "Bonus")).await.expect("column created");
    let id = env.contacts()[0].0.clone();
    client.update("contacts", &RecordKey::Id(uuid(&id)), &json!({"new_bonus": 1234.5678}), None).await.unwrap();
    // A column of the copy that Dataverse does not have (as if removed there).
    pg.batch_execute("ALTER TABLE drift.contact ADD COLUMN new_gone text; UPDATE drift.contact SET new_gone = 'old'")
        .await
        .unwrap();

    let t = sync(&client, &options).await.expect("delta with a new column").tables.remove(0);
    assert_eq!((t.kind, t.upserted), (SyncKind::Delta, 1), "{t}");
    let ty: String = pg
        .query_one(
            "SELECT data_type::text FROM information_schema.columns WHERE table_schema = 'drift' \
             AND table_name = 'contact' AND column_name = 'new_bonus'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ty, "numeric");
    let rows = pg
        .query("SELECT contactid::text, new_bonus::text, new_gone FROM drift.contact WHERE new_bonus IS NOT NULL OR new_gone IS NULL", &[])
        .await
        .unwrap();
    let seen: Vec<(String, Option<String>, Option<String>)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    // Only the changed row has the new value, and its copy of the gone column is now null.
    assert_eq!(seen, vec![(id, Some("1234.5678".to_string()), None)]);
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_used_and_the_certificate_verified() {
    let Some(server) = PgServer::start_tls() else { return };
    let env = start(200, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let base = format!("postgresql://postgres@127.0.0.1:{}/postgres?schema=tls", server.port);

    // The server's CA given: TLS, verified; the server refuses anything else, so this is TLS.
    let ok = format!("{base}&sslmode=verify-full&sslrootcert={}", server.ca_file());
    let options = SyncOptions::new(vec!["contact".into()], parse_destination(&ok, "--to").unwrap());
    let t = sync(&client, &options).await.expect("sync over TLS").tables.remove(0);
    assert_eq!(t.rows, 100, "{t}");
    // The default (prefer) takes TLS when offered, and verifies it: without the CA the
    // certificate is refused, and the error says how to fix it.
    let options = SyncOptions::new(vec!["contact".into()], parse_destination(&base, "--to").unwrap());
    let e = sync(&client, &options).await.unwrap_err().to_string();
    assert!(e.contains("certificate") && e.contains("sslrootcert"), "{e}");
    // Without TLS the server refuses.
    let plain = format!("{base}&sslmode=disable");
    let options = SyncOptions::new(vec!["contact".into()], parse_destination(&plain, "--to").unwrap());
    let e = sync(&client, &options).await.unwrap_err().to_string();
    assert!(e.contains("pg_hba.conf") || e.contains("no encryption"), "{e}");
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_authenticates_by_client_certificate_accepts_sslcert_and_sslkey() {
    let Some(server) = PgServer::start_client_cert() else { return };
    let env = start(200, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let (crt, key) = server.client_files();
    let base = format!(
        "postgresql://postgres@127.0.0.1:{}/postgres?schema=certs&sslmode=verify-full&sslrootcert={}",
        server.port,
        server.ca_file()
    );
    let with_cert = format!("{base}&sslcert={crt}&sslkey={key}");
    let options = SyncOptions::new(vec!["contact".into()], parse_destination(&with_cert, "--to").unwrap());
    let t = sync(&client, &options).await.expect("sync with a client certificate").tables.remove(0);
    assert_eq!(t.rows, 100, "{t}");
    // Without the certificate the server refuses the connection.
    let options = SyncOptions::new(vec!["contact".into()], parse_destination(&base, "--to").unwrap());
    let e = sync(&client, &options).await.unwrap_err();
    assert!(matches!(e, SyncError::Postgres { .. }), "{e}");
    assert!(e.to_string().contains("certificate"), "{e}");
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_exports_into_postgresql_keyed_and_replaced_in_one_transaction() {
    let Some(server) = PgServer::start() else { return };
    let env = start(600, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let pg = server.client().await;
    let staging = tempfile::tempdir().unwrap();
    let url = server.url("snap");
    // A sync first: the export then replaces the table and drops its sync state.
    let options = SyncOptions::new(vec!["contact".into()], parse_destination(&url, "--to").unwrap());
    sync(&client, &options).await.expect("sync");
    let mut export_options = d365_sync::ExportOptions::new("contact", url.as_str());
    export_options.select = vec!["lastname".into()];
    export_options.staging_dir = Some(staging.path().to_path_buf());
    export_options.page_size = Some(70);
    let summary = d365_sync::export(&client, &export_options).await.expect("export into PostgreSQL");
    assert_eq!((summary.rows, summary.format), (300, d365_sync::Format::Postgres), "{summary}");
    assert!(summary.output.starts_with("postgresql://postgres@127.0.0.1"), "{summary}");
    assert_eq!(pg_contacts(&pg, "snap", "").await, env.contacts());
    let state: i64 = pg.query_one("SELECT count(*) FROM snap._d365_sync_state", &[]).await.unwrap().get(0);
    assert_eq!(state, 0, "the export left a sync state that no longer matches the rows");

    // Into a fresh schema: the primary key came along although not selected, as the key.
    let fresh = server.url("fresh");
    let mut first = d365_sync::ExportOptions::new("contact", fresh.as_str());
    first.select = vec!["lastname".into()];
    first.staging_dir = Some(staging.path().to_path_buf());
    d365_sync::export(&client, &first).await.expect("export into an empty schema");
    let key: String = pg
        .query_one(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid              AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'fresh.contact'::regclass AND i.indisprimary",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(key, "contactid");
    let before = env.contacts();
    client.delete("contacts", &RecordKey::Id(uuid(&before[0].0)), None).await.unwrap();
    d365_sync::export(&client, &first).await.expect("export again");
    assert_eq!(pg_contacts(&pg, "fresh", "").await, env.contacts());
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_change_tracking_the_watermark_upserts_changed_rows() {
    let Some(server) = PgServer::start() else { return };
    let env = start(400, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let pg = server.client().await;
    let mut options = SyncOptions::new(vec!["contact".into()], parse_destination(&server.url("mark"), "--to").unwrap());
    options.change_tracking = false;
    options.page_size = Some(60);
    let first = sync(&client, &options).await.expect("first sync").tables.remove(0);
    assert_eq!((first.kind, first.rows), (SyncKind::Full, 200), "{first}");
    let before = env.contacts();
    let created = client.create("contacts", &json!({"lastname": "Marked"})).await.unwrap();
    client.update("contacts", &RecordKey::Id(uuid(&before[0].0)), &json!({"lastname": "Moved"}), None).await.unwrap();
    let second = sync(&client, &options).await.expect("watermark sync").tables.remove(0);
    assert_eq!(second.kind, SyncKind::Watermark, "{second}");
    assert!(second.warnings.iter().any(|w| w.contains("not deleted")), "{:?}", second.warnings);
    let copy = pg_contacts(&pg, "mark", "").await;
    assert_eq!(copy, env.contacts());
    assert!(copy.contains(&(created.to_string(), "Marked".into())));
    let mode: String = pg.query_one("SELECT mode FROM mark._d365_sync_state", &[]).await.unwrap().get(0);
    assert_eq!(mode, "watermark");
    env.emu.shutdown().await;
}
