//! What a shell user runs into: a reader that stops early (`| head`), destinations that are
//! not what they should be, misspelt table names, scripts piped into `d365 shell`. Each ends
//! with a message that says what to do and the documented exit code, never a panic, and
//! nothing is created where it was not asked for.

use crate::common;

use common::*;
use tokio::io::AsyncBufReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_early_ends_the_command_quietly() {
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    // Both streams closed after the first line, as `d365 … 2>&1 | head -1` does.
    for args in [
        vec!["query", "SELECT c.lastname FROM contact c CROSS JOIN contact d", "--format", "csv"],
        vec!["query", "--dry-run", "DELETE FROM contact WHERE lastname IS NOT NULL"],
        vec!["tables"],
    ] {
        let mut d = env.d365(Some(&conn), &args);
        let mut child = d.cmd.spawn().expect("d365 starts");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = lines.next_line().await.unwrap();
        assert!(first.is_some(), "{args:?}: no output");
        drop(lines);
        drop(stderr);
        let status = tokio::time::timeout(RUN_LIMIT, child.wait()).await.expect("d365 ends").unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: {status:?} (101 is a panic)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_destinations_and_table_names_are_refused_before_anything_is_made() {
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    let missing = env.path("no-such-dir");
    let out = missing.join("contacts.ndjson").display().to_string();
    let run = env.d365(Some(&conn), &["export", "contact", "-o", &out]).run().await;
    run.expect_code(2).expect_output("of the export output does not exist: create it first");
    assert!(!missing.exists(), "the export created {}", missing.display());

    let file = env.path("a-file");
    std::fs::write(&file, "x").unwrap();
    let to = file.display().to_string();
    let run = env.d365(Some(&conn), &["sync", "contact", "--to", &to]).run().await;
    run.expect_code(2).expect_output("is a file: give a directory");

    let dir = env.path("copy");
    let to = dir.display().to_string();
    let run = env.d365(Some(&conn), &["sync", "contcat", "--to", &to]).run().await;
    run.expect_code(2).expect_output("no table named 'contcat' (did you mean 'contact'?)");
    assert!(!dir.exists(), "a sync of an unknown table created {}", dir.display());
    let run = env.d365(Some(&conn), &["export", "contacs", "-o", &env.path("c.csv").display().to_string()]).run().await;
    run.expect_code(2).expect_output("(did you mean 'contact");

    let run = env.d365(Some(&conn), &["export", "contact", "--page-size", "0"]).run().await;
    run.expect_code(2).expect_output("0 is not in 1..=5000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_piped_into_the_shell_runs_every_statement_and_fails_like_one() {
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    let script = env.path("script.sql");
    std::fs::write(&script, "SELECT count(*) AS n FROM contact;\nSELECT nope FROM contact;\nSELECT 41 + 1 AS answer")
        .unwrap();
    let mut d = env.d365(Some(&conn), &["shell"]);
    d.cmd.stdin(std::fs::File::open(&script).unwrap());
    let run = d.run().await;
    // The last statement has no ';' and still runs; the failed one is the exit code.
    run.expect_code(2).expect_output("| 42 ").expect_output("1 statement of the script failed");
    assert!(run.stdout.contains(&format!("| {} ", env.contacts().len())), "{}", run.stdout);
}
