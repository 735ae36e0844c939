//! Scaled-out exports from Python (see `d365_sync::scaleout`): plan, run a worker's units,
//! commit, and read one unit as an Arrow stream (the Spark data source's partitions, Ray or
//! Dask tasks). Manifests travel as their JSON-lines text, so a plan made on a driver can be
//! handed to executors without a shared file system.

use d365_core::d365_sql::datafusion::error::DataFusionError;
use d365_core::d365_sql::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use d365_core::d365_sync::scaleout::{self, CommitOptions, Manifest, PlanOptions, Shard, WorkerOptions};
use futures::StreamExt;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::to_py;
use crate::runtime::wait;
use crate::session::Session;
use crate::stream::ResultStream;

fn sync_err(py: Python<'_>, e: d365_core::d365_sync::SyncError) -> PyErr {
    to_py(py, e.into())
}

/// The manifest at `location` (a local path or an object URL) as JSON-lines text.
#[pyfunction]
pub fn load_manifest(py: Python<'_>, location: String) -> PyResult<String> {
    let manifest = wait(py, async move { Manifest::load(&location, &[]).await })?.map_err(|e| sync_err(py, e))?;
    Ok(manifest.to_jsonl())
}

fn parse(py: Python<'_>, text: &str) -> PyResult<Manifest> {
    Manifest::parse(text, "(manifest text)").map_err(|e| sync_err(py, e))
}

/// Plans `tables` (see `d365 plan`): the manifest as JSON-lines text, also written to
/// `output` when given. `to` empty: a plan for reading only.
#[pyfunction]
#[pyo3(signature = (session, tables, to, output=None, unit_rows=200_000, credentials=1, change_tracking=true))]
#[allow(clippy::too_many_arguments)]
pub fn plan(
    py: Python<'_>,
    session: &Session,
    tables: Vec<String>,
    to: String,
    output: Option<String>,
    unit_rows: u64,
    credentials: usize,
    change_tracking: bool,
) -> PyResult<String> {
    let session = session.get()?;
    let mut options = PlanOptions::new(tables, to);
    options.unit_rows = unit_rows;
    options.credentials = credentials;
    options.change_tracking = change_tracking;
    let manifest = wait(py, async move {
        let manifest = scaleout::plan(&session.connection().client, &options).await?;
        if let Some(out) = output {
            manifest.save(&out, &[]).await?;
        }
        Ok::<_, d365_core::d365_sync::SyncError>(manifest)
    })?
    .map_err(|e| sync_err(py, e))?;
    Ok(manifest.to_jsonl())
}

/// Runs the units of a worker (see `d365 export --manifest`): a dict with `manifest`, `rows`,
/// `requests`, `throttled`, `seconds` and `units` (one dict per unit: `unit`, `rows`, `files`,
/// `skipped`, `seconds`).
#[pyfunction]
#[pyo3(signature = (session, manifest, shard=None, units=None, parallel=None, page_size=None))]
pub fn run_units<'py>(
    py: Python<'py>,
    session: &Session,
    manifest: &str,
    shard: Option<&str>,
    units: Option<Vec<String>>,
    parallel: Option<usize>,
    page_size: Option<u32>,
) -> PyResult<Bound<'py, PyDict>> {
    let manifest = parse(py, manifest)?;
    let session = session.get()?;
    let mut options = WorkerOptions::new();
    options.shard = shard.map(str::parse::<Shard>).transpose().map_err(|e| sync_err(py, e))?;
    options.units = units.unwrap_or_default();
    options.parallel = parallel.map(|n| n.max(1));
    options.page_size = page_size;
    let report = wait(py, async move { scaleout::run_units(&session.connection().client, &manifest, &options).await })?
        .map_err(|e| sync_err(py, e))?;
    let d = PyDict::new(py);
    d.set_item("manifest", &report.manifest)?;
    d.set_item("rows", report.rows_read())?;
    d.set_item("requests", report.requests)?;
    d.set_item("throttled", report.throttled)?;
    d.set_item("seconds", report.elapsed.as_secs_f64())?;
    let units = report
        .units
        .iter()
        .map(|u| {
            let d = PyDict::new(py);
            d.set_item("unit", &u.unit)?;
            d.set_item("rows", u.rows)?;
            d.set_item("files", u.files)?;
            d.set_item("skipped", u.skipped)?;
            d.set_item("seconds", u.elapsed.as_secs_f64())?;
            Ok(d)
        })
        .collect::<PyResult<Vec<_>>>()?;
    d.set_item("units", units)?;
    Ok(d)
}

/// Commits a plan (see `d365 commit`): one dict per table with `table`, `location`, `rows`,
/// `files`, `version`, `already`, `orphans_deleted`. Needs no connection.
#[pyfunction]
#[pyo3(signature = (manifest, to=None))]
pub fn commit<'py>(py: Python<'py>, manifest: &str, to: Option<String>) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let manifest = parse(py, manifest)?;
    let options = CommitOptions { to, storage_options: Vec::new() };
    let report = wait(py, async move { scaleout::commit(&manifest, &options).await })?.map_err(|e| sync_err(py, e))?;
    report
        .tables
        .iter()
        .map(|t| {
            let d = PyDict::new(py);
            d.set_item("table", &t.table)?;
            d.set_item("location", &t.location)?;
            d.set_item("rows", t.rows)?;
            d.set_item("files", t.files)?;
            d.set_item("version", t.version)?;
            d.set_item("already", t.already)?;
            d.set_item("orphans_deleted", t.orphans_deleted)?;
            Ok(d)
        })
        .collect()
}

/// One unit's rows as a result stream (rows or an Arrow C stream), read as consumed.
#[pyfunction]
#[pyo3(signature = (session, manifest, unit, parallel=None))]
pub fn read_unit(
    py: Python<'_>,
    session: &Session,
    manifest: &str,
    unit: String,
    parallel: Option<usize>,
) -> PyResult<ResultStream> {
    let manifest = parse(py, manifest)?;
    let session = session.get()?;
    let (schema, batches) = wait(py, async move {
        scaleout::read_unit(&session.connection().client, &manifest, &unit, parallel.map(|n| n.max(1))).await
    })?
    .map_err(|e| sync_err(py, e))?;
    let batches = batches.map(|b| b.map_err(|e| DataFusionError::External(Box::new(e))));
    let stream = ResultStream::new(Box::pin(RecordBatchStreamAdapter::new(schema, batches)));
    stream.prefetch(py)?;
    Ok(stream)
}

/// Registers the functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(load_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(run_units, m)?)?;
    m.add_function(wrap_pyfunction!(commit, m)?)?;
    m.add_function(wrap_pyfunction!(read_unit, m)?)?;
    Ok(())
}
