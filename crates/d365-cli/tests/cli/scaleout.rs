//! A scaled-out export as users run it: `d365 plan` → three `d365 export --manifest --shard`
//! processes signed in as three different application users → `d365 commit` → `d365 sync`;
//! a worker killed mid-unit and a unit run twice; and the mistakes users make (a shard out of
//! range, a manifest of another organization, a commit before the workers finished, a table
//! changed since the plan), each refused with what to do. Every end state is compared with the
//! emulator's rows, read back through `deltalake`.

use crate::common;

use std::time::{Duration, Instant};

use d365_emulator::EmulatorOptions;
use d365_emulator::NewColumn;
use d365_sync::DeltaLocation;
use d365_sync::scaleout::Manifest;

use common::{Env, SECRET, delta_contacts, start_with};

/// The connection string of the emulator's application user `worker-i`.
fn worker(env: &Env, i: usize) -> String {
    d365_core::emulator_app_connection_string(&env.emu, &format!("worker-{i}")).unwrap()
}

/// Runs SQL DML through the CLI.
async fn dml(env: &Env, conn: &str, sql: &str) {
    env.d365(Some(conn), &["query", sql]).run().await.expect_code(0);
}

struct Setup {
    env: Env,
    conn: String,
    to: String,
    location: DeltaLocation,
    plan: String,
}

async fn setup(options: EmulatorOptions) -> Setup {
    let env = start_with(EmulatorOptions { app_users: 3, ..options }).await;
    let conn = env.secret_connection(SECRET);
    let to = format!("delta:{}", env.path("lake").display());
    let location = DeltaLocation::parse(&to).unwrap();
    let plan = env.path("plan.jsonl").display().to_string();
    Setup { env, conn, to, location, plan }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_as_three_app_users_then_one_commit_then_sync() {
    let Setup { env, conn, to, location, plan } = setup(EmulatorOptions { rows: 1_600, ..Default::default() }).await;
    let run = env
        .d365(Some(&conn), &["plan", "contact", "--to", &to, "-o", &plan, "--unit-rows", "150", "--credentials", "3"])
        .run()
        .await;
    run.expect_code(0).expect_output("contact: ").expect_output("change tracking");
    let manifest = Manifest::load(&plan, &[]).await.unwrap();
    assert!(manifest.units.len() >= 4, "{} units", manifest.units.len());
    assert_eq!(manifest.units.iter().map(|u| u.slot).max(), Some(2));
    let estimated: u64 = manifest.units.iter().map(|u| u.estimated_rows).sum();
    assert_eq!(estimated, 800, "a table this small is counted exactly by the probes");

    // Changes while the export runs (after the plan's token).
    dml(&env, &conn, "INSERT INTO contact (lastname) VALUES ('during-a'), ('during-b')").await;
    dml(&env, &conn, "UPDATE contact SET lastname = 'during-updated' WHERE lastname LIKE 'B%'").await;
    dml(&env, &conn, "DELETE FROM contact WHERE lastname LIKE 'F%'").await;

    // A commit before the workers ran commits nothing and names the units to run.
    let run = env.d365(None, &["commit", &plan]).run().await;
    run.expect_code(2).expect_output("units are not complete").expect_output("Nothing was committed");
    assert_eq!(delta_contacts(&location).await, Vec::new());

    // Three workers, each its own application user, at the same time.
    let workers = (0..3).map(|i| {
        let conn = worker(&env, i + 1);
        let shard = format!("{i}/3");
        let plan = plan.clone();
        let env = &env;
        async move { env.d365(Some(&conn), &["export", "--manifest", &plan, "--shard", &shard]).run().await }
    });
    for run in futures::future::join_all(workers).await {
        run.expect_code(0).expect_output("units read");
    }
    let run = env.d365(None, &["commit", &plan, "--to", &to]).run().await;
    run.expect_code(0).expect_output("committed to delta+file://");
    assert_eq!(delta_contacts(&location).await, env.contacts());
    // Committing again does nothing.
    env.d365(None, &["commit", &plan]).run().await.expect_code(0).expect_output("nothing to do");

    // The sync continues from the plan's token: changes made during and after the export.
    dml(&env, &conn, "INSERT INTO contact (lastname) VALUES ('after-a')").await;
    dml(&env, &conn, "DELETE FROM contact WHERE lastname LIKE 'G%'").await;
    let run = env.d365(Some(&conn), &["sync", "contact", "--to", &to]).run().await;
    run.expect_code(0).expect_output("changes (change tracking)");
    assert_eq!(delta_contacts(&location).await, env.contacts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_and_a_unit_run_twice_still_give_exactly_the_source() {
    let options = EmulatorOptions { rows: 1_200, latency: Duration::from_millis(10), ..Default::default() };
    let Setup { env, conn, to, location, plan } = setup(options).await;
    let run = env.d365(Some(&conn), &["plan", "contact", "--to", &to, "-o", &plan, "--unit-rows", "100"]).run().await;
    run.expect_code(0);
    let manifest = Manifest::load(&plan, &[]).await.unwrap();
    let markers = env.path("lake").join("contact/_d365/units").join(&manifest.header.id);
    let args = ["export", "--manifest", plan.as_str(), "--page-size", "20", "--parallel", "1"];

    // Complete markers only: a marker being written is a staging file beside it (`….json#1`).
    let complete = || {
        std::fs::read_dir(&markers)
            .map(|d| d.filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))).count())
            .unwrap_or(0)
    };
    // Killed (SIGKILL) once the first unit is complete: the second is under way.
    let mut child = env.d365(Some(&worker(&env, 1)), &args).cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed = loop {
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        if complete() >= 1 {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
            break true;
        }
        assert!(Instant::now() < deadline, "the worker neither progressed nor finished");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(killed, "the worker finished before it could be killed");
    let done = complete();
    assert!(done < manifest.units.len(), "all {done} units were complete when the worker was killed");

    // The re-run skips the complete units and reads the rest.
    let run = env.d365(Some(&worker(&env, 1)), &args).run().await;
    run.expect_code(0).expect_output("complete already (skipped)");
    // A unit run again (a retried task): its output is replaced, not added to.
    let first = manifest.units[0].id.as_str();
    let run = env.d365(Some(&worker(&env, 2)), &["export", "--manifest", &plan, "--unit", first]).run().await;
    run.expect_code(0).expect_output("1 units read");

    let run = env.d365(None, &["commit", &plan]).run().await;
    run.expect_code(0).expect_output("files of interrupted or repeated unit runs deleted");
    assert_eq!(delta_contacts(&location).await, env.contacts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_are_refused_with_what_to_do() {
    let Setup { env, conn, to, location, plan } = setup(EmulatorOptions { rows: 200, ..Default::default() }).await;
    env.d365(Some(&conn), &["plan", "contact", "--to", &to, "-o", &plan, "--unit-rows", "40"])
        .run()
        .await
        .expect_code(0);
    let export = |args: &[&str]| {
        let all: Vec<&str> = ["export", "--manifest", plan.as_str()].into_iter().chain(args.iter().copied()).collect();
        env.d365(Some(&conn), &all)
    };
    export(&["--shard", "3/3"]).run().await.expect_code(2).expect_output("out of range (0 to 2 for 3 workers)");
    export(&["--shard", "1"]).run().await.expect_code(2).expect_output("0-based");
    export(&["--unit", "contact-99999"]).run().await.expect_code(2).expect_output("has no unit 'contact-99999'");

    // A manifest of another organization.
    let text = std::fs::read_to_string(&plan).unwrap();
    let other = env.path("other.jsonl");
    let origin = url::Url::parse(&env.emu.ready().org_url).unwrap().origin().ascii_serialization();
    std::fs::write(&other, text.replacen(&origin, "https://contoso.crm4.dynamics.com", 1)).unwrap();
    let run = env.d365(Some(&conn), &["export", "--manifest", other.to_str().unwrap()]).run().await;
    run.expect_code(2).expect_output("planned for https://contoso.crm4.dynamics.com");
    // Not a manifest at all.
    let junk = env.path("junk.jsonl");
    std::fs::write(&junk, "id,name\n1,x\n").unwrap();
    let run = env.d365(Some(&conn), &["export", "--manifest", junk.to_str().unwrap()]).run().await;
    run.expect_code(2).expect_output("line 1").expect_output("d365 plan");

    // A commit to another place than the plan's.
    let elsewhere = format!("delta:{}", env.path("elsewhere").display());
    let run = env.d365(None, &["commit", &plan, "--to", &elsewhere]).run().await;
    run.expect_code(2).expect_output("its units were written under");

    // The table changed since the plan: the workers refuse rather than write other columns.
    env.emu.add_column("contact", NewColumn::money("new_Bonus", "Bonus")).await.expect("column created");
    let run = export(&[]).run().await;
    run.expect_code(2).expect_output("changed since the plan (added: new_bonus").expect_output("plan again");
    assert_eq!(delta_contacts(&location).await, Vec::new());
}
