//! Azure Blob Storage (`az://`), against Azurite, Microsoft's storage emulator (a real HTTP
//! server installed from npm): an export lands one whole object equal to the table; a
//! scale-out plan kept in the store, run by two workers into a Delta table there and committed
//! once, holds every row exactly once.
//!
//! Without Azurite the tests skip with a message, unless `D365_AZURE_TEST=require` (set by
//! `scripts/test-all.sh`, which installs it), where they fail.

use crate::common;

use std::time::Duration;

use d365_sql::datafusion::arrow::array::{Array, StringArray};
use d365_sql::datafusion::arrow::datatypes::DataType;
use d365_sql::datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use d365_sync::deltalake::datafusion::prelude::SessionContext;
use d365_sync::scaleout::{CommitOptions, Manifest, PlanOptions, Shard, WorkerOptions, commit, plan, run_units};
use d365_sync::{DeltaLocation, ExportOptions, Format, RemoteUrl, export};

use common::azurite::Azurite;
use common::{checksum, start};

/// (id, name) pairs of the first two text columns of `batches`, sorted.
fn pairs(
    batches: impl IntoIterator<Item = d365_sql::datafusion::arrow::record_batch::RecordBatch>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for b in batches {
        // DataFusion's Parquet reader gives Utf8View: read every text column as Utf8.
        let text = |i: usize| d365_sql::datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8).unwrap();
        let (ids, names) = (text(0), text(1));
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        let names = names.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            let name = if names.is_valid(i) { names.value(i).to_string() } else { String::new() };
            out.push((ids.value(i).to_ascii_lowercase(), name));
        }
    }
    out.sort();
    out
}

fn sums(rows: &[(String, String)]) -> (usize, u64) {
    checksum(rows.iter().map(|(a, b)| (a.as_str(), b.as_str())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_azure_blob_lands_one_whole_object() {
    let Some(azurite) = Azurite::start() else { return };
    azurite.create_container("lake").await;
    let env = start(3_000, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let staging = tempfile::tempdir().unwrap();
    let url = "az://lake/crm/accounts.parquet";
    let mut options = ExportOptions::new("account", url);
    options.select = vec!["accountid".into(), "name".into()];
    options.format = Format::Parquet;
    options.storage_options = azurite.options();
    options.staging_dir = Some(staging.path().to_path_buf());
    let summary = export(&client, &options).await.expect("export to Azure Blob Storage");
    assert_eq!((summary.rows, summary.output.as_str()), (3_000, url));

    let remote = RemoteUrl::parse_with(url, azurite.options()).unwrap();
    let bytes = remote.read().await.expect("the object");
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).expect("a Parquet object").build().unwrap();
    let got = pairs(reader.map(Result::unwrap));
    assert_eq!(sums(&got), sums(&env.accounts()));

    // A container that does not exist: a clear error, and no object anywhere.
    let mut missing = ExportOptions::new("account", "az://nowhere/accounts.parquet");
    missing.format = Format::Parquet;
    missing.storage_options = azurite.options();
    missing.staging_dir = Some(staging.path().to_path_buf());
    let err = export(&client, &missing).await.expect_err("no such container").to_string();
    assert!(err.contains("az://nowhere"), "{err}");
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_plan_workers_and_commit_on_azure_blob() {
    let Some(azurite) = Azurite::start() else { return };
    azurite.create_container("lake").await;
    let env = start(6_000, None, Duration::ZERO).await;
    let (client, _clock) = env.client();
    let to = "delta+az://lake/crm";
    let manifest_url = "az://lake/plans/p1.jsonl";

    let mut options = PlanOptions::new(vec!["account".into()], to);
    options.storage_options = azurite.options();
    options.unit_rows = 1_000;
    options.probes = 8;
    let planned = plan(&client, &options).await.expect("plan");
    assert!(planned.units.len() >= 3, "{:?}", planned.units);
    planned.save(manifest_url, &azurite.options()).await.expect("manifest saved in the store");

    // Two workers read the manifest from the store and write their units there.
    let manifest = Manifest::load(manifest_url, &azurite.options()).await.expect("manifest read back");
    assert_eq!(manifest.units.len(), planned.units.len());
    for index in 0..2 {
        let mut worker = WorkerOptions::new();
        worker.shard = Some(Shard { index, count: 2 });
        worker.storage_options = azurite.options();
        worker.page_size = Some(500);
        let report = run_units(&client, &manifest, &worker).await.expect("worker");
        assert!(report.rows_read() > 0, "{report}");
    }
    let committed =
        commit(&manifest, &CommitOptions { to: None, storage_options: azurite.options() }).await.expect("commit");
    assert_eq!(committed.tables[0].rows, 6_000, "{committed}");

    // The Delta table on the store holds every account once.
    let location = DeltaLocation::parse_with(to, azurite.options()).unwrap();
    let table = location.open(&location.table_url("account")).await.unwrap();
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).unwrap();
    ctx.register_table("t", table.table_provider().await.unwrap()).unwrap();
    let batches = ctx.sql("SELECT accountid, name FROM t").await.unwrap().collect().await.unwrap();
    let got = pairs(batches);
    let mut want: Vec<(String, String)> =
        env.accounts().into_iter().map(|(id, name)| (id.to_ascii_lowercase(), name)).collect();
    want.sort();
    assert_eq!(got.len(), 6_000);
    assert_eq!(got, want);
    env.emu.shutdown().await;
}
