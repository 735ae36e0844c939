//! `d365 sync --to delta:DIR` as users run it: a first load killed with SIGKILL leaves no
//! table version behind and the re-run completes; changes made with `d365 query` DML arrive with
//! the next run, also when runs are killed at several points; every end state is exactly the
//! emulator's rows, read back through `deltalake`. Query results land in Delta tables too.

use crate::common;

use std::time::{Duration, Instant};

use d365_emulator::EmulatorOptions;
use d365_sync::DeltaLocation;
use d365_sync::deltalake::arrow::array::{Array, StringArray};
use d365_sync::deltalake::arrow::compute::cast;
use d365_sync::deltalake::arrow::datatypes::DataType;
use d365_sync::deltalake::datafusion::prelude::SessionContext;

use common::{Env, SECRET, delta_contacts, start_with};

/// Starts `d365 sync` and kills it (SIGKILL) `after` the table's directory appeared (the load
/// or merge under way), unless it finished first. Returns whether it was killed.
async fn sync_killed(env: &Env, conn: &str, to: &str, dir: &std::path::Path, after: Duration) -> bool {
    let args = ["sync", "contact", "--to", to, "--page-size", "50", "--parallel", "1"];
    let mut child = env.d365(Some(conn), &args).cmd.spawn().expect("d365 starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: Option<Instant> = None;
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if seen.is_none() && dir.join("contact").exists() {
            seen = Some(Instant::now());
        }
        if seen.is_some_and(|t| t.elapsed() >= after) {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
            return true;
        }
        assert!(Instant::now() < deadline, "the sync neither progressed nor finished");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_to_delta_survives_kill_9_and_ends_with_exactly_the_source() {
    let env =
        start_with(EmulatorOptions { rows: 1_200, latency: Duration::from_millis(15), ..Default::default() }).await;
    let conn = env.secret_connection(SECRET);
    let dir = env.path("lake");
    let to = format!("delta:{}", dir.display());
    let location = DeltaLocation::parse(&to).unwrap();

    // Killed during the first load (12 pages of 50 rows, 15 ms each): no version committed.
    let killed = sync_killed(&env, &conn, &to, &dir, Duration::from_millis(40)).await;
    assert!(killed, "the first load finished before it could be killed");
    assert_eq!(delta_contacts(&location).await, Vec::new(), "a killed first load committed rows");
    let run = env.d365(Some(&conn), &["sync", "contact", "--to", &to]).run().await;
    run.expect_code(0).expect_output("full extract").expect_output("into delta+file://");
    assert_eq!(delta_contacts(&location).await, env.contacts());

    // Changes through the CLI's own DML, then syncs killed at several points before one runs
    // to the end.
    for (round, after) in [0, 20, 60, 120].into_iter().enumerate() {
        for sql in [
            format!("INSERT INTO contact (lastname) VALUES ('k9-{round}-a'), ('k9-{round}-b')"),
            format!(
                "UPDATE contact SET lastname = 'k9-{round}-updated' WHERE lastname LIKE '{}%'",
                ["B", "C", "D", "E"][round]
            ),
            format!("DELETE FROM contact WHERE lastname LIKE '{}%'", ["F", "G", "H", "J"][round]),
        ] {
            env.d365(Some(&conn), &["query", &sql]).run().await.expect_code(0);
        }
        sync_killed(&env, &conn, &to, &dir, Duration::from_millis(after)).await;
    }
    let run = env.d365(Some(&conn), &["sync", "contact", "--to", &to]).run().await;
    run.expect_code(0).expect_output("changes (change tracking)");
    assert_eq!(delta_contacts(&location).await, env.contacts());

    // A plain object-store URL is refused before signing in, naming the form to use.
    let run = env.d365(Some(&conn), &["sync", "contact", "--to", "s3://lake/crm"]).run().await;
    run.expect_code(2).expect_output("--to delta+s3://lake/crm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_results_land_in_delta_tables() {
    let env = start_with(EmulatorOptions { rows: 300, ..Default::default() }).await;
    let conn = env.secret_connection(SECRET);
    let sql = "SELECT statecodename, count(*) AS n FROM account GROUP BY statecodename ORDER BY statecodename";
    let csv = env.d365(Some(&conn), &["query", sql, "--format", "csv"]).run().await;
    csv.expect_code(0);
    let want: Vec<String> = csv.stdout.lines().skip(1).map(str::to_string).collect();
    assert!(want.len() >= 2, "{}", csv.stdout);

    for (n, args) in [
        (1, vec!["query".to_string(), sql.to_string(), "-o".into(), format!("delta:{}", env.path("q1").display())]),
        (
            2,
            vec![
                "export".into(),
                "--query".into(),
                sql.into(),
                "--format".into(),
                "delta".into(),
                "-o".into(),
                env.path("q2").display().to_string(),
            ],
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        env.d365(Some(&conn), &args).run().await.expect_code(0).expect_output("Delta table");
        let location = DeltaLocation::parse(&format!("delta:{}", env.path(&format!("q{n}")).display())).unwrap();
        let table = location.open(location.url()).await.unwrap();
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state()).unwrap();
        ctx.register_table("t", table.table_provider().await.unwrap()).unwrap();
        let mut got = Vec::new();
        for b in
            ctx.sql("SELECT statecodename, n FROM t ORDER BY statecodename").await.unwrap().collect().await.unwrap()
        {
            let names = cast(b.column(0), &DataType::Utf8).unwrap();
            let names = names.as_any().downcast_ref::<StringArray>().unwrap();
            let counts = cast(b.column(1), &DataType::Utf8).unwrap();
            let counts = counts.as_any().downcast_ref::<StringArray>().unwrap();
            got.extend((0..b.num_rows()).map(|i| format!("{},{}", names.value(i), counts.value(i))));
        }
        assert_eq!(got, want, "run {n}");
    }
    // A column name a Delta table cannot hold: an error naming it and asking for an alias.
    let bad = format!("delta:{}", env.path("q3").display());
    let run = env
        .d365(Some(&conn), &["query", "SELECT statecodename, count(*) FROM account GROUP BY statecodename", "-o", &bad])
        .run()
        .await;
    run.expect_code(2).expect_output("count(*)").expect_output("alias");
}
