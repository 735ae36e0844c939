//! `export` to an S3-compatible server (moto's, a real HTTP server started here from the
//! project's Python environment): the object appears whole and equals the table; an export
//! process killed with SIGKILL mid-way resumes to the same object with the exact rows; a
//! missing bucket is a clear error and leaves no object.
//!
//! Without moto the tests skip with a message, unless `D365_S3_TEST=require` (set by
//! `scripts/test-all.sh`, which installs it), where they fail.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use d365_sql::datafusion::arrow::array::{Array, StringArray};
use d365_sql::datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use d365_sync::{ExportOptions, Format, RemoteUrl, export};
use serde_json::Value;

use common::moto::Moto;
use common::{FAULTS, checksum, start};

/// (count, checksum) of (accountid, name) in a Parquet object.
async fn parquet_object(remote: &RemoteUrl) -> (usize, u64) {
    let bytes = remote.read().await.expect("the object");
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).expect("a Parquet object").build().unwrap();
    let mut pairs = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let ids = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let names = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            let name = if names.is_valid(i) { names.value(i).to_string() } else { String::new() };
            pairs.push((ids.value(i).to_string(), name));
        }
    }
    checksum(pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())))
}

fn expected(env: &common::Env) -> (usize, u64) {
    let rows = env.accounts();
    checksum(rows.iter().map(|(a, b)| (a.as_str(), b.as_str())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_s3_lands_one_whole_object_and_a_missing_bucket_leaves_none() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("lake").await;
    let env = start(3_000, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let staging = tempfile::tempdir().unwrap();
    let url = "s3://lake/crm/accounts.parquet";
    let mut options = ExportOptions::new("account", url);
    options.select = vec!["accountid".into(), "name".into(), "revenue".into()];
    options.format = Format::Parquet;
    options.storage_options = moto.options();
    options.staging_dir = Some(staging.path().to_path_buf());
    let summary = export(&client, &options).await.expect("export to S3");
    assert_eq!((summary.rows, summary.output.as_str()), (3_000, url));
    let remote = RemoteUrl::parse_with(url, moto.options()).unwrap();
    assert_eq!(parquet_object(&remote).await, expected(&env));
    // Nothing is left in the staging directory.
    let left: Vec<_> = walk(staging.path());
    assert!(left.iter().all(|p| p.is_dir()), "staging files left: {left:?}");

    // CSV too, through the same path.
    let csv_url = "s3://lake/crm/accounts.csv";
    let mut csv = ExportOptions { output: csv_url.into(), format: Format::Csv, ..options.clone() };
    csv.select = vec!["name".into()];
    export(&client, &csv).await.expect("CSV to S3");
    let text = RemoteUrl::parse_with(csv_url, moto.options()).unwrap().read().await.unwrap();
    assert_eq!(text.iter().filter(|b| **b == b'\n').count(), 3_001);

    // A bucket that does not exist: a clear error naming the object, and no object.
    let missing = ExportOptions { output: "s3://nobucket/a.parquet".into(), ..options.clone() };
    let e = export(&client, &missing).await.unwrap_err().to_string();
    assert!(e.starts_with("s3://nobucket/a.parquet:"), "{e}");
    let remote = RemoteUrl::parse_with("s3://nobucket/a.parquet", moto.options()).unwrap();
    assert!(remote.size().await.is_err() || remote.size().await.unwrap().is_none());
    env.emu.shutdown().await;
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

const CHILD: &str = "D365_SYNC_TEST_S3_EXPORT_CHILD";

/// The export run by the child process of the kill test (this test binary, re-executed).
#[test]
fn child_s3_export_entry() {
    let Ok(spec) = std::env::var(CHILD) else { return };
    let spec: Value = serde_json::from_str(&spec).expect("child spec");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let client = common::spec_client(&spec);
        export(&client, &spec_options(&spec)).await.expect("child export");
    });
}

fn spec_options(spec: &Value) -> ExportOptions {
    let mut o = ExportOptions::new("account", spec["output"].as_str().expect("output"));
    o.format = Format::Parquet;
    o.select = vec!["accountid".into(), "name".into()];
    o.page_size = Some(250);
    o.parallel = Some(3);
    o.staging_dir = Some(PathBuf::from(spec["staging"].as_str().expect("staging")));
    o.storage_options = serde_json::from_value(spec["storage"].clone()).expect("storage options");
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_export_killed_mid_way_resumes_to_the_exact_rows() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("lake").await;
    let env = start(30_000, Some(FAULTS), Duration::from_millis(40)).await;
    let staging = tempfile::tempdir().unwrap();
    let url = "s3://lake/resumed/accounts.parquet";
    let token = env.minter.mint().await.expect("token");
    let spec = serde_json::json!({
        "org_url": env.emu.ready().org_url,
        "ca_pem": env.emu.ready().ca_pem,
        "token": token.secret(),
        "output": url,
        "staging": staging.path(),
        "storage": moto.options(),
    });
    let remote = RemoteUrl::parse_with(url, moto.options()).unwrap();
    let local = remote.staging_file(Some(staging.path())).unwrap();
    let ckpt_path = d365_sync::export::work_dir(&local).join("checkpoint.json");
    common::run_child_and_kill("export_s3::child_s3_export_entry", CHILD, &spec, &ckpt_path, 5_000).await;
    assert_eq!(remote.size().await.unwrap(), None, "no object before the export finished");

    let (client, _clock) = env.client();
    let summary = export(&client, &spec_options(&spec)).await.expect("resumed export");
    assert!(summary.resumed_rows >= 5_000, "{summary}");
    assert_eq!(summary.rows, 30_000);
    assert_eq!(parquet_object(&remote).await, expected(&env));
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_export_into_delta_tables_on_s3() {
    use d365_client::RecordKey;
    use d365_sql::datafusion::arrow::datatypes::DataType;
    use d365_sync::deltalake::datafusion::prelude::SessionContext;
    use d365_sync::{DeltaLocation, Destination, SyncKind, SyncOptions, sync};

    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("lake").await;
    let env = start(1_000, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let location = DeltaLocation::parse_with("delta+s3://lake/crm", moto.options()).unwrap();
    let contacts = |location: DeltaLocation| async move {
        let table = location.open(&location.table_url("contact")).await.unwrap();
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state()).unwrap();
        ctx.register_table("t", table.table_provider().await.unwrap()).unwrap();
        let batches = ctx
            .sql("SELECT contactid, coalesce(lastname, '') FROM t ORDER BY 1, 2")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut rows = Vec::new();
        for b in batches {
            // Text comes back as Utf8View from DataFusion's Parquet reader.
            let text = |i: usize| d365_sql::datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8).unwrap();
            let (ids, names) = (text(0), text(1));
            let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
            let names = names.as_any().downcast_ref::<StringArray>().unwrap();
            rows.extend((0..b.num_rows()).map(|i| (ids.value(i).to_string(), names.value(i).to_string())));
        }
        rows
    };
    let mut options = SyncOptions::new(vec!["contact".into()], Destination::Delta(location.clone()));
    options.page_size = Some(200);
    let first = sync(&client, &options).await.expect("first sync into S3");
    assert_eq!((first.tables[0].kind, first.tables[0].rows), (SyncKind::Full, 500), "{}", first.tables[0]);
    assert_eq!(first.destination, "delta+s3://lake/crm");
    assert_eq!(contacts(location.clone()).await, env.contacts());

    let before = env.contacts();
    client.create("contacts", &serde_json::json!({"lastname": "On S3"})).await.unwrap();
    let id = uuid::Uuid::parse_str(&before[0].0).unwrap();
    client.update("contacts", &RecordKey::Id(id), &serde_json::json!({"lastname": "Renamed"}), None).await.unwrap();
    let gone = uuid::Uuid::parse_str(&before[1].0).unwrap();
    client.delete("contacts", &RecordKey::Id(gone), None).await.unwrap();
    let second = sync(&client, &options).await.expect("delta sync into S3");
    let t = &second.tables[0];
    assert_eq!((t.kind, t.upserted, t.deleted, t.rows), (SyncKind::Delta, 2, 1, 500), "{t}");
    assert_eq!(contacts(location.clone()).await, env.contacts());

    // A table export to a Delta table on S3.
    let staging = tempfile::tempdir().unwrap();
    let mut export_options = ExportOptions::new("account", "delta+s3://lake/exports/account");
    export_options.storage_options = moto.options();
    export_options.staging_dir = Some(staging.path().to_path_buf());
    let summary = export(&client, &export_options).await.expect("export to Delta on S3");
    assert_eq!((summary.rows, summary.format), (1_000, Format::Delta), "{summary}");
    assert_eq!(summary.output, "delta+s3://lake/exports/account");
    env.emu.shutdown().await;
}
