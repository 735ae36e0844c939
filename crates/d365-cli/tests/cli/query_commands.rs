//! `d365 query`, `tables`, `describe` and `EXEC` end to end: the built binary against an
//! emulator in this test process, through the real HTTPS + OAuth path; output formats, the
//! metadata cache, and bad SQL with its exit code.

use crate::common;

use common::*;

/// The rows of a CSV output (header first), split naively: the test data has no commas.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines().map(|l| l.split(',').map(str::to_string).collect()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_formats_and_pushdown() {
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    // piped: CSV with a header; the order and limit are exact
    let run = env
        .d365(Some(&conn), &["query", "SELECT fullname, createdon FROM contact ORDER BY createdon DESC LIMIT 3"])
        .run()
        .await;
    run.expect_code(0);
    let rows = csv_rows(&run.stdout);
    assert_eq!(rows[0], ["fullname", "createdon"], "{}", run.stdout);
    assert_eq!(rows.len(), 4, "{}", run.stdout);
    let dates: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted, "newest first");

    // an aggregate over a whole table (read as partitions) matches the row count
    let count = env.d365(Some(&conn), &["query", "SELECT count(*) AS n FROM contact"]).run().await;
    count.expect_code(0);
    let n: usize = csv_rows(&count.stdout)[1][0].parse().unwrap();
    let all = env
        .d365(Some(&conn), &["query", "SELECT contactid FROM contact", "--format", "ndjson", "--parallel", "2"])
        .run()
        .await;
    all.expect_code(0);
    let ids: std::collections::HashSet<String> = all
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["contactid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), n, "every row once");
    assert!(n > 0);

    // JSON array
    let run = env.d365(Some(&conn), &["query", "SELECT fullname FROM contact LIMIT 2", "--format", "json"]).run().await;
    run.expect_code(0);
    assert_eq!(run.json().as_array().map(Vec::len), Some(2), "{}", run.stdout);

    // Parquet needs a file, and writes one
    env.d365(Some(&conn), &["query", "SELECT fullname FROM contact", "--format", "parquet"])
        .run()
        .await
        .expect_code(2)
        .expect_output("--output");
    let out = env.path("contacts.parquet");
    let run = env
        .d365(
            Some(&conn),
            &["query", "SELECT fullname FROM contact", "--format", "parquet", "--output", out.to_str().unwrap()],
        )
        .run()
        .await;
    run.expect_code(0).expect_output(&format!("{n} rows written"));
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"), "a Parquet file");

    // export to Parquet (a table, resumable, through the part files; or a query), renamed
    // into place at the end
    let out = env.path("export.parquet");
    let run =
        env.d365(Some(&conn), &["export", "contact", "--format", "parquet", "-o", out.to_str().unwrap()]).run().await;
    run.expect_code(0).expect_output(&format!("exported {n} rows"));
    assert!(std::fs::read(&out).unwrap().starts_with(b"PAR1"));
    assert!(!env.path("export.parquet.parts").exists());
    env.d365(Some(&conn), &["export", "--query", "SELECT fullname FROM contact", "--format", "parquet"])
        .run()
        .await
        .expect_code(2)
        .expect_output("--output");
    // A table export takes an OData filter and SQL column names, labels included.
    let csv = env.path("active.csv");
    let csv_path = csv.to_str().unwrap();
    let args = [
        "export",
        "contact",
        "--select",
        "fullname,statecodename",
        "--filter",
        "statecode eq 0",
        "--format",
        "csv",
        "-o",
        csv_path,
    ];
    let run = env.d365(Some(&conn), &args).run().await;
    run.expect_code(0);
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("fullname,statecodename\r\n"), "{text}");
    assert!(text.lines().skip(1).all(|l| l.ends_with(",Active")), "{text}");
    env.d365(Some(&conn), &["export", "contact", "--select", "fulname", "-o", "x.ndjson"])
        .run()
        .await
        .expect_code(2)
        .expect_output("did you mean 'fullname'");

    // --explain prints the plan and the request, and sends no data request
    let run = env
        .d365(
            Some(&conn),
            &["query", "--explain", "SELECT fullname FROM contact WHERE statecode = 0 ORDER BY createdon DESC LIMIT 5"],
        )
        .run()
        .await;
    run.expect_code(0).expect_output("statecode%20eq%200").expect_output("$top=5").expect_output("createdon%20desc");
    // a text filter is sent as a superset and re-checked here (case), so no $top goes with it
    let run = env
        .d365(Some(&conn), &["query", "--explain", "SELECT fullname FROM contact WHERE fullname LIKE 'A%'"])
        .run()
        .await;
    run.expect_code(0).expect_output("filter=[startswith(fullname,'A')] (inexact)").expect_output("read in parallel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sql_is_bad_input_with_position_or_nearest_name() {
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    let run = env.d365(Some(&conn), &["query", "SELECT fullname FROM contcat"]).run().await;
    run.expect_code(2).expect_output("contact");
    assert_eq!(run.stderr.trim().lines().count(), 1, "one line: {}", run.stderr);
    env.d365(Some(&conn), &["query", "SELECT fulname FROM contact"])
        .run()
        .await
        .expect_code(2)
        .expect_output("fullname");
    env.d365(Some(&conn), &["query", "SELEC fullname FROM contact"]).run().await.expect_code(2).expect_output("SELEC");
    // a forbidden table is the service's refusal (403), not bad input
    env.d365(Some(&conn), &["query", "SELECT * FROM new_widget"])
        .run()
        .await
        .expect_code(4)
        .expect_output("prvReadnew_");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_describe_and_exec() {
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    let run = env.d365(Some(&conn), &["tables", "acc*"]).run().await;
    run.expect_code(0);
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), ["account"], "{}", run.stdout);
    // Row counts (RetrieveTotalRecordCount): the least-privilege app reads accounts and
    // contacts but not widgets, which get a dash instead of failing the listing.
    let run = env.d365(Some(&conn), &["tables", "--counts"]).run().await;
    run.expect_code(0).expect_output("snapshot");
    let counts: std::collections::HashMap<&str, &str> =
        run.stdout.lines().filter_map(|l| l.split_once(char::is_whitespace)).map(|(n, c)| (n, c.trim())).collect();
    let contacts = env.contacts().len().to_string();
    assert_eq!(counts.get("contact"), Some(&contacts.as_str()), "{}", run.stdout);
    assert_eq!(counts.get("new_widget"), Some(&"-"), "{}", run.stdout);
    let run = env.d365(Some(&conn), &["describe", "account"]).run().await;
    run.expect_code(0)
        .expect_output("entity set accounts")
        .expect_output("parentaccountidname")
        .expect_output("Decimal128");
    env.d365(Some(&conn), &["describe", "acount"]).run().await.expect_code(2).expect_output("account");
    // The entity set name, as the Web API and `d365 export` name tables, and the metadata schema.
    let run = env.d365(Some(&conn), &["describe", "contacts"]).run().await;
    run.expect_code(0).expect_output("contact (entity set contacts, key contactid)");
    let run = env.d365(Some(&conn), &["describe", "metadata.entity"]).run().await;
    run.expect_code(0).expect_output("logicalname").expect_output("entitysetname");

    // EXEC runs the sign-in procedures (no data connection needed)
    let desktop =
        format!("{}AuthScheme=AzureAD;OAuthClientId={DESKTOP};CallbackURL=http://localhost:33333", env.base());
    let run = env
        .d365(
            Some(&desktop),
            &["query", "EXEC GetOAuthAuthorizationUrl @CallbackURL = 'http://localhost:33333', @State = 'q''1'"],
        )
        .run()
        .await;
    run.expect_code(0);
    let rows = csv_rows(&run.stdout);
    assert_eq!(rows[0], ["URL"]);
    let url = url::Url::parse(&rows[1].join(",")).unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "q'1");
    env.d365(Some(&desktop), &["query", "EXEC GetOAuthAuthorizationUrl @CallbackURL 'x'"])
        .run()
        .await
        .expect_code(2)
        .expect_output("column");
    env.d365(Some(&desktop), &["query", "EXEC NoSuchProc"]).run().await.expect_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_run_at_the_service_unless_turned_off() {
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    let sql =
        "SELECT statecodename, count(*) AS n, sum(revenue) AS total FROM account GROUP BY statecodename ORDER BY 1";
    let explain = env.d365(Some(&conn), &["query", "--explain", sql]).run().await;
    explain.expect_code(0).expect_output("$apply=groupby((statecode)");
    let off = env.d365(Some(&conn), &["query", "--explain", "--no-aggregate-pushdown", sql]).run().await;
    off.expect_code(0);
    assert!(!off.stdout.contains("$apply"), "{}", off.stdout);
    assert!(off.stdout.contains("aggregate pushdown is off"), "{}", off.stdout);
    let pushed = env.d365(Some(&conn), &["query", sql]).run().await;
    pushed.expect_code(0);
    let local = env.d365(Some(&conn), &["query", "--no-aggregate-pushdown", sql]).run().await;
    local.expect_code(0);
    assert_eq!(pushed.stdout, local.stdout);
    assert!(csv_rows(&pushed.stdout).len() >= 2, "{}", pushed.stdout);

    // The benchmark runs it pushed as a new connection, pushed again, and locally, and checks
    // that the rows agree; repeated, the table is known to fit: no span probes.
    let bench = env.d365(Some(&conn), &["bench", "aggregate", "--query", sql, "--rounds", "2"]).run().await;
    bench.expect_code(0).expect_output("same rows");
    let requests = |label: &str| -> u64 {
        let line = bench.stdout.lines().find(|l| l.trim_start().starts_with(label)).expect(label);
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "requests").expect("a request count");
        words[at - 1].parse().expect("a number")
    };
    assert_eq!(requests("pushed"), 3, "the aggregate and two span probes: {}", bench.stdout);
    assert_eq!(requests("repeated"), 1, "{}", bench.stdout);
    assert!(requests("local") >= 1, "{}", bench.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_urls_as_destinations_are_refused_and_nothing_is_created() {
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    let url = "postgresql://postgres@127.0.0.1:5432/postgres";
    let dir = env.path("work");
    std::fs::create_dir_all(&dir).unwrap();
    // Query results are files: PostgreSQL takes table exports and syncs, and the error says so.
    let run = env.d365(Some(&conn), &["query", "SELECT name FROM account", "-o", url]).current_dir(&dir).run().await;
    run.expect_code(2).expect_output("d365 export TABLE -o postgresql://").expect_output("d365 sync TABLES");
    for (args, name) in [
        (vec!["sync", "contact", "--to", "s3://bucket/crm"], "give --to delta+s3://bucket/crm"),
        (vec!["export", "account", "-o", "delta+ftp://bucket/accounts"], "Delta location"),
        (vec!["query", "SELECT name FROM account", "-o", "delta+ftp://bucket/a"], "Delta location"),
        (vec!["export", "account", "-o", "s3://bucket/folder/"], "name the object"),
        (vec!["sync", "contact", "--to", "ftp2://x/y"], "unknown destination scheme"),
    ] {
        let run = env.d365(Some(&conn), &args).current_dir(&dir).run().await;
        run.expect_code(2).expect_output(name);
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing written beside the command");
}
