//! `d365 query` with write statements: the built binary against an in-process emulator, as the
//! least-privilege integration app (contacts writable, accounts read-only). Exit codes: 0 all
//! written, 2 bad statement, 4 some rows failed or the service refused the table; `--errors`
//! lists the rows not written; `--dry-run` writes nothing; `--table` feeds INSERT … SELECT.

use crate::common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_with_a_bad_row_writes_the_rest_lists_it_and_exits_4() {
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    let errors = env.path("errors.csv");
    let errors_arg = errors.display().to_string();
    let run = env
        .d365(
            Some(&conn),
            &[
                "query",
                "INSERT INTO contact (lastname, birthdate, gendercode) VALUES ('cli-ok', '2000-01-01', 1), ('cli-bad', 'not a date', 2), ('cli-ok2', NULL, 1)",
                "--errors",
                &errors_arg,
            ],
        )
        .run()
        .await;
    run.expect_code(4)
        .expect_output("create contact: 2 rows written, 1 failed")
        .expect_output("row 2, column birthdate")
        .expect_output("1 of 3 rows were not written");
    let text = std::fs::read_to_string(&errors).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "row,key,column,status,code,message,values", "{text}");
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].starts_with("2,,birthdate,,InvalidValue,"), "{text}");
    assert!(lines[1].contains("not a date") && lines[1].contains("cli-bad"), "{text}");

    // The two good rows are there.
    let run = env
        .d365(
            Some(&conn),
            &["query", "SELECT lastname FROM contact WHERE lastname LIKE 'cli-%' ORDER BY lastname", "--format", "csv"],
        )
        .run()
        .await;
    run.expect_code(0);
    assert_eq!(run.stdout.trim(), "lastname\ncli-ok\ncli-ok2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_table_files_403_and_bad_statements() {
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    let csv = env.path("people.csv");
    std::fs::write(&csv, "first,last\nGrace,Hopper\nEdsger,Dijkstra\n").unwrap();
    let table = format!("people={}", csv.display());

    // Dry run: one JSON line per row, nothing written.
    let run = env
        .d365(
            Some(&conn),
            &[
                "query",
                "INSERT INTO contact (firstname, lastname) SELECT first, last FROM people",
                "--table",
                &table,
                "--dry-run",
            ],
        )
        .run()
        .await;
    run.expect_code(0).expect_output("dry run: 2 of 2 rows of contact would be sent");
    let first: serde_json::Value = serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["op"], "Create");
    assert_eq!(first["body"]["lastname"], "Hopper");

    // For real.
    let run = env
        .d365(
            Some(&conn),
            &["query", "INSERT INTO contact (firstname, lastname) SELECT first, last FROM people", "--table", &table],
        )
        .run()
        .await;
    run.expect_code(0).expect_output("create contact: 2 rows written, 0 failed");
    let run = env
        .d365(
            Some(&conn),
            &["query", "SELECT count(*) AS n FROM contact WHERE lastname IN ('Hopper', 'Dijkstra')", "--format", "csv"],
        )
        .run()
        .await;
    run.expect_code(0);
    assert_eq!(run.stdout.trim(), "n\n2");

    // A plain SELECT reads the file too, and may join it to a Dataverse table.
    let run = env
        .d365(
            Some(&conn),
            &[
                "query",
                "SELECT p.last, c.firstname FROM people p JOIN contact c ON c.lastname = p.last ORDER BY p.last",
                "--table",
                &table,
                "--format",
                "csv",
            ],
        )
        .run()
        .await;
    run.expect_code(0);
    assert_eq!(run.stdout.trim(), "last,firstname\nDijkstra,Edsger\nHopper,Grace");

    // The app may not write accounts: the service's 403, exit 4.
    let run = env.d365(Some(&conn), &["query", "INSERT INTO account (name) VALUES ('no')"]).run().await;
    run.expect_code(4).expect_output("403");

    // A statement error: exit 2, nothing sent.
    let run = env.d365(Some(&conn), &["query", "UPDATE contact SET lastnam = 'x' WHERE 1 = 0"]).run().await;
    run.expect_code(2).expect_output("did you mean 'lastname'?");
    let run = env.d365(Some(&conn), &["query", "DELETE FROM contact", "--errors", "e.txt"]).run().await;
    run.expect_code(2).expect_output(".csv or .ndjson");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_of_a_write_is_a_dry_run_and_readonly_connections_refuse_writes() {
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    let before = env.contacts();

    // --explain shows what a write would send; it writes nothing.
    let run = env
        .d365(Some(&conn), &["query", "--explain", "INSERT INTO contact (lastname) VALUES ('explained')"])
        .run()
        .await;
    run.expect_code(0).expect_output("dry run: 1 of 1 rows of contact would be sent (create)");
    let planned: serde_json::Value = serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(planned["body"]["lastname"], "explained");
    assert_eq!(env.contacts(), before, "--explain wrote a row");

    // Readonly=true: refused before anything is sent, exit 2; a dry run is still allowed.
    let readonly = format!("{conn};Readonly=true");
    let run = env.d365(Some(&readonly), &["query", "DELETE FROM contact WHERE lastname = 'x'"]).run().await;
    run.expect_code(2).expect_output("the connection is read-only (Readonly=true)");
    let run =
        env.d365(Some(&readonly), &["query", "--dry-run", "INSERT INTO contact (lastname) VALUES ('dry')"]).run().await;
    run.expect_code(0).expect_output("nothing written");
    assert_eq!(env.contacts(), before);

    // MaxRows caps a query's rows, not an aggregate's; a bad value names the property.
    let capped = format!("{conn};MaxRows=2");
    let run = env.d365(Some(&capped), &["query", "SELECT lastname FROM contact", "--format", "csv"]).run().await;
    run.expect_code(0);
    assert_eq!(run.stdout.trim().lines().count(), 3, "{}", run.stdout);
    let run = env.d365(Some(&capped), &["query", "SELECT count(*) AS n FROM contact", "--format", "csv"]).run().await;
    run.expect_code(0);
    assert_eq!(run.stdout.trim(), format!("n\n{}", before.len()));
    let run = env.d365(Some(&format!("{conn};Pagesize=0")), &["query", "SELECT 1"]).run().await;
    run.expect_code(2).expect_output("Pagesize=0 is not valid: expected a number of rows from 1 to 5000");
}
