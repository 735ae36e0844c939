//! Query results into an object store, as users run it: `d365 query SQL -o s3://…` and
//! `d365 export --query SQL -o s3://…` against moto's S3 server write the same bytes as the
//! local file of the same command; a missing bucket is an error after which no object exists.

use crate::common;
#[path = "../../../d365-sync/tests/sync/common/moto.rs"]
mod moto;

use common::{SECRET, start};
use moto::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_results_land_in_s3_whole() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("lake").await;
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    let s3_env = |mut cmd: common::D365| {
        for (k, v) in moto.options() {
            cmd = cmd.env(&k.to_ascii_uppercase(), v);
        }
        cmd
    };
    let sql = "SELECT accountid, name, revenue FROM account ORDER BY accountid";
    let local = env.path("local.csv");
    env.d365(Some(&conn), &["query", sql, "--format", "csv", "-o", &local.to_string_lossy()])
        .run()
        .await
        .expect_code(0);
    let want = std::fs::read(&local).unwrap();
    assert!(want.len() > 100, "{}", String::from_utf8_lossy(&want));

    let get = |key: &'static str| {
        let url = format!("http://127.0.0.1:{}/lake/{key}", moto.port);
        async move { reqwest::get(url).await.unwrap() }
    };
    let run =
        s3_env(env.d365(Some(&conn), &["query", sql, "--format", "csv", "-o", "s3://lake/q/accounts.csv"])).run().await;
    run.expect_code(0).expect_output("uploaded").expect_output("s3://lake/q/accounts.csv");
    assert_eq!(get("q/accounts.csv").await.bytes().await.unwrap().as_ref(), want.as_slice());

    let run =
        s3_env(env.d365(Some(&conn), &["export", "--query", sql, "--format", "csv", "-o", "s3://lake/q/exported.csv"]))
            .run()
            .await;
    run.expect_code(0).expect_output("uploaded");
    assert_eq!(get("q/exported.csv").await.bytes().await.unwrap().as_ref(), want.as_slice());

    // No such bucket: an error naming the object store, and no object anywhere.
    let run =
        s3_env(env.d365(Some(&conn), &["query", sql, "--format", "csv", "-o", "s3://nobucket/x.csv"])).run().await;
    assert_ne!(run.code, 0, "{}", run.stderr);
    run.expect_output("s3://nobucket/x.csv");
    assert_eq!(get("x.csv").await.status().as_u16(), 404);
}
