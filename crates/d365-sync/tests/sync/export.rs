//! `export` end to end against the emulator: 100,000 rows under injected faults arrive exactly
//! once (count and checksum of ids and names, no duplicates); CSV and Parquet carry the typed
//! columns asked for, labels included; an export process killed with SIGKILL mid-way resumes
//! from its checkpoint to the exact rows, in NDJSON and in Parquet.

use crate::common;

use std::path::Path;
use std::time::Duration;

use d365_sql::datafusion::arrow::array::{Array, StringArray};
use d365_sql::datafusion::arrow::record_batch::RecordBatch;
use d365_sql::datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use d365_sync::{Checkpoint, ExportOptions, Format, export};
use serde_json::{Map, Value};

use common::{FAULTS, checksum, start};

fn read_ndjson(path: &Path) -> Vec<Map<String, Value>> {
    let text = std::fs::read_to_string(path).expect("output");
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON row")).collect()
}

fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).expect("output");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("a Parquet file").build().unwrap();
    reader.collect::<Result<Vec<_>, _>>().expect("batches")
}

/// (accountid, name) of every row of a Parquet export.
fn parquet_rows(path: &Path) -> Vec<Map<String, Value>> {
    let mut rows = Vec::new();
    for b in read_parquet(path) {
        let ids = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let names = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            let mut m = Map::new();
            m.insert("accountid".into(), Value::from(ids.value(i)));
            let name = if names.is_valid(i) { Value::from(names.value(i)) } else { Value::Null };
            m.insert("name".into(), name);
            rows.push(m);
        }
    }
    rows
}

fn pairs(rows: &[Map<String, Value>]) -> (usize, u64) {
    checksum(rows.iter().map(common::row_pair))
}

fn expected(env: &common::Env) -> (usize, u64) {
    let rows = env.accounts();
    checksum(rows.iter().map(|(a, b)| (a.as_str(), b.as_str())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_of_100k_rows_under_faults_has_exactly_the_tables_rows() {
    let env = start(100_000, Some(FAULTS), Duration::ZERO).await;
    env.sql("UPDATE account SET createdon = NULL WHERE rowid % 89 = 0;");
    let (client, _clock) = env.client();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("accounts.ndjson");
    let mut options = ExportOptions::new("account", &out);
    options.select = vec!["accountid".into(), "name".into(), "revenue".into()];
    options.page_size = Some(1000);
    let summary = export(&client, &options).await.expect("export");
    let rows = read_ndjson(&out);
    assert_eq!(pairs(&rows), expected(&env));
    assert_eq!(summary.rows, 100_000);
    assert!(summary.retries > 0, "faults were injected: {summary}");
    assert!(rows.iter().all(|r| !r.contains_key("@odata.etag") && r.contains_key("revenue")));
    assert!(!d365_sync::export::work_dir(&out).exists(), "the work directory is removed");
    // Rows come in createdon order (nulls first), as partitions are assembled in order.
    let createdon: Vec<Option<String>> = {
        let mut o = ExportOptions::new("account", dir.path().join("c.ndjson"));
        o.select = vec!["createdon".into()];
        export(&client, &o).await.expect("export");
        read_ndjson(&dir.path().join("c.ndjson")).iter().map(|r| r["createdon"].as_str().map(str::to_string)).collect()
    };
    assert!(createdon.windows(2).all(|w| w[0] <= w[1]), "ordered by createdon");
    assert_eq!(createdon.len(), 100_000);
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_export_has_a_header_of_every_column() {
    let env = start(3_000, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("accounts.csv");
    let mut options = ExportOptions::new("accounts", &out);
    options.select = vec!["accountid".into(), "name".into(), "address1_city".into()];
    options.format = Format::Csv;
    options.page_size = Some(200);
    let summary = export(&client, &options).await.expect("export");
    assert_eq!(summary.rows, 3_000);
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.split("\r\n");
    assert_eq!(lines.next(), Some("accountid,name,address1_city"));
    assert_eq!(text.matches("\r\n").count(), 3_001);
    // Parquet, typed: exact money, the choice label beside its code.
    let out = dir.path().join("accounts.parquet");
    let mut options = ExportOptions::new("account", &out);
    options.select = vec!["accountid".into(), "revenue".into(), "statecode".into(), "statecodename".into()];
    options.format = Format::Parquet;
    let summary = export(&client, &options).await.expect("parquet export");
    let batches = read_parquet(&out);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3_000);
    assert_eq!(summary.rows, 3_000);
    let schema = batches[0].schema();
    let types: Vec<String> = schema.fields().iter().map(|f| format!("{}:{}", f.name(), f.data_type())).collect();
    assert_eq!(types, ["accountid:Utf8", "revenue:Decimal128(38, 4)", "statecode:Int32", "statecodename:Utf8"]);
    let labels = batches[0].column(3).as_any().downcast_ref::<StringArray>().unwrap();
    assert!(labels.iter().all(|l| matches!(l, Some("Active") | Some("Inactive"))));
    // An unknown column names the nearest one.
    options.select = vec!["revenu".into()];
    let e = export(&client, &options).await.unwrap_err().to_string();
    assert!(e.contains("no column 'revenu'") && e.contains("revenue"), "{e}");
    // An unknown table is a user error.
    let e = export(&client, &ExportOptions::new("nosuchtable", dir.path().join("x"))).await.unwrap_err();
    assert!(e.is_user_error(), "{e}");
    env.emu.shutdown().await;
}

const CHILD: &str = "D365_SYNC_TEST_EXPORT_CHILD";

/// The export run by the child process of `export_killed_mid_way_resumes_to_the_exact_rows`
/// (this test binary, re-executed). Does nothing in a normal test run.
#[test]
fn child_export_entry() {
    let Ok(spec) = std::env::var(CHILD) else { return };
    let spec: Value = serde_json::from_str(&spec).expect("child spec");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let client = common::spec_client(&spec);
        let options = spec_options(&spec);
        export(&client, &options).await.expect("child export");
    });
}

fn spec_options(spec: &Value) -> ExportOptions {
    let mut o = ExportOptions::new("account", spec["output"].as_str().expect("output"));
    o.format = spec["format"].as_str().expect("format").parse().expect("a format");
    o.select = vec!["accountid".into(), "name".into()];
    o.page_size = Some(250);
    o.parallel = Some(3);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_killed_mid_way_resumes_to_the_exact_rows() {
    killed_and_resumed(Format::Ndjson).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_export_killed_mid_way_resumes_to_the_exact_rows() {
    killed_and_resumed(Format::Parquet).await;
}

async fn killed_and_resumed(format: Format) {
    // Latency makes the export take a few seconds, so it can be killed mid-way.
    let env = start(30_000, Some(FAULTS), Duration::from_millis(40)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("accounts.{format}"));
    let token = env.minter.mint().await.expect("token");
    let spec = serde_json::json!({
        "org_url": env.emu.ready().org_url,
        "ca_pem": env.emu.ready().ca_pem,
        "token": token.secret(),
        "output": out,
        "format": format.to_string(),
    });
    let ckpt_path = d365_sync::export::work_dir(&out).join("checkpoint.json");
    common::run_child_and_kill("export::child_export_entry", CHILD, &spec, &ckpt_path, 5_000).await;
    assert!(!out.exists(), "no output before the export finished");
    let before = Checkpoint::load(&ckpt_path).unwrap().expect("checkpoint");
    assert!(!before.complete());

    let (client, _clock) = env.client();
    let summary = export(&client, &spec_options(&spec)).await.expect("resumed export");
    assert!(summary.resumed_rows >= 5_000, "{summary}");
    let rows = if format == Format::Parquet { parquet_rows(&out) } else { read_ndjson(&out) };
    assert_eq!(pairs(&rows), expected(&env));
    assert_eq!(summary.rows, 30_000);
    // At most one page per unfinished partition was read twice: the rest of the table in
    // 250-row pages, plus one page per partition, plus retries and split first pages.
    let unfinished = before.partitions.values().filter(|p| !p.done).count() as u64;
    let left = 30_000 - before.rows();
    assert!(
        summary.requests <= left.div_ceil(250) + 2 * unfinished + summary.retries + summary.partitions,
        "{summary}, {unfinished} unfinished partitions"
    );
    env.emu.shutdown().await;
}
