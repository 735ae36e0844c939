//! `d365 sync --to postgresql://…` as users run it, against a throwaway PostgreSQL cluster:
//! a first load killed with SIGKILL half-way leaves nothing behind and the re-run completes;
//! changes made with `d365 query` DML arrive with the next run, also when that run is killed;
//! every end state is exactly the emulator's rows.

use crate::common;
#[path = "../../../d365-sync/tests/sync/common/postgres.rs"]
mod postgres;

use std::time::{Duration, Instant};

use d365_emulator::EmulatorOptions;

use common::{Env, SECRET, start_with};
use postgres::PgServer;

async fn copy(pg: &tokio_postgres::Client) -> Vec<(String, String)> {
    let rows =
        pg.query("SELECT contactid::text, coalesce(lastname, '') FROM crm.contact ORDER BY 1, 2", &[]).await.unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Starts `d365 sync` and kills it (SIGKILL) once `ready` says so, or lets it finish.
async fn sync_killed_when(
    env: &Env,
    conn: &str,
    url: &str,
    pg: &tokio_postgres::Client,
    ready: &str,
) -> Option<std::process::ExitStatus> {
    let args = ["sync", "contact", "--to", url, "--page-size", "50", "--parallel", "1"];
    let mut child = env.d365(Some(conn), &args).cmd.spawn().expect("d365 starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        let seen = pg.query_one(ready, &[]).await.map(|r| r.get::<_, i64>(0)).unwrap_or(0);
        if seen > 0 {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
            return None;
        }
        assert!(Instant::now() < deadline, "the sync neither progressed nor finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_to_postgresql_survives_kill_9_and_ends_with_exactly_the_source() {
    let Some(server) = PgServer::start() else { return };
    let env =
        start_with(EmulatorOptions { rows: 1_200, latency: Duration::from_millis(15), ..Default::default() }).await;
    let conn = env.secret_connection(SECRET);
    let pg = server.client().await;
    let url = server.url("crm");

    // Killed during the first load, once the server has taken 100 rows of its COPY: no table
    // appears, no state.
    let staged = "SELECT max(tuples_processed) FROM pg_stat_progress_copy HAVING max(tuples_processed) >= 100";
    let killed = sync_killed_when(&env, &conn, &url, &pg, staged).await;
    assert!(killed.is_none(), "the first load finished before it could be killed: {killed:?}");
    let table: Option<String> = pg.query_one("SELECT to_regclass('crm.contact')::text", &[]).await.unwrap().get(0);
    assert_eq!(table, None, "a killed first load left a table behind");
    let run = env.d365(Some(&conn), &["sync", "contact", "--to", &url]).run().await;
    run.expect_code(0).expect_output("full extract").expect_output("(schema crm)");
    assert_eq!(copy(&pg).await, env.contacts());

    // Changes through the CLI's own DML; the next sync is killed as soon as its first page of
    // changes is in (or finishes first), then run again.
    for sql in [
        "INSERT INTO contact (lastname) VALUES ('k9-a'), ('k9-b'), ('k9-c')",
        "UPDATE contact SET lastname = 'k9-updated' WHERE lastname LIKE 'B%'",
        "DELETE FROM contact WHERE lastname LIKE 'C%'",
    ] {
        env.d365(Some(&conn), &["query", sql]).run().await.expect_code(0);
    }
    let applied = "SELECT count(*) FROM crm.contact WHERE lastname = 'k9-a'";
    sync_killed_when(&env, &conn, &url, &pg, applied).await;
    let run = env.d365(Some(&conn), &["sync", "contact", "--to", &url]).run().await;
    run.expect_code(0).expect_output("changes (change tracking)");
    assert_eq!(copy(&pg).await, env.contacts());

    // An unreachable server is a service error (exit 4) naming it; the password never reaches
    // the output.
    let bad = format!("postgresql://postgres:hunter2@127.0.0.1:{}/postgres", server.port + 1);
    let run = env.d365(Some(&conn), &["sync", "contact", "--to", &bad]).run().await;
    run.expect_code(4).expect_output("PostgreSQL postgresql://postgres@127.0.0.1").expect_no("hunter2");
}
