//! [`Session`]: a connection and its SQL engine, as the Python `Connection` uses it. Every call
//! that waits on the network releases the GIL and can be interrupted with Ctrl-C.

use std::sync::{Arc, Mutex};

use d365_core::d365_auth::Interactive;
use d365_core::d365_client::RowError;
use d365_core::d365_sql::{DmlOptions, DmlOutcome};
use d365_core::{EngineSettings, OpenOptions, Outcome};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::errors::{DataError, IntegrityError, OperationalError, interface, programming, set_detail, to_py};
use crate::runtime::wait;
use crate::stream::ResultStream;
use crate::values::{params, sql_type};
use d365_core::d365_client::codes::{DOES_NOT_EXIST, DUPLICATE_KEY, VALIDATION};

/// A connection to one organisation.
#[pyclass(module = "d365._internal", frozen)]
pub struct Session {
    inner: Mutex<Option<Arc<d365_core::Session>>>,
    organization_url: String,
}

impl Session {
    pub(crate) fn get(&self) -> PyResult<Arc<d365_core::Session>> {
        self.inner
            .lock()
            .map_err(|_| interface("the connection is unusable after a panic"))?
            .clone()
            .ok_or_else(|| interface("the connection is closed"))
    }
}

/// Write options from keyword arguments (`chunk_size`, `parallel`, `bypass_plugins`,
/// `optimistic`, `atomic`, `caller_id`, `dry_run`).
fn dml_options(options: Option<&Bound<'_, PyDict>>) -> PyResult<DmlOptions> {
    let mut s = d365_core::WriteSettings::default();
    if let Some(options) = options {
        for (k, v) in options.iter() {
            let key: String = k.extract()?;
            match key.as_str() {
                "chunk_size" => s.chunk_size = v.extract()?,
                "parallel" => s.parallel = v.extract()?,
                "bypass_plugins" => s.bypass_plugins = v.extract()?,
                "optimistic" => s.optimistic = v.extract()?,
                "atomic" => s.atomic = v.extract()?,
                "dry_run" => s.dry_run = v.extract()?,
                "caller_id" => s.caller_id = if v.is_none() { None } else { Some(v.str()?.extract()?) },
                other => return Err(programming(format!("unknown write option '{other}'"))),
            }
        }
    }
    s.dml_options().map_err(|e| programming(e.to_string()))
}

/// A row that was not written, as a dict.
fn row_error<'py>(py: Python<'py>, e: &RowError) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("row", e.index)?;
    d.set_item("key", e.key.as_ref().map(|k| k.to_odata()))?;
    d.set_item("column", e.column.clone())?;
    d.set_item("status", e.status)?;
    d.set_item("code", e.code.clone())?;
    d.set_item("message", e.message.clone())?;
    Ok(d)
}

/// What a write returns to Python: `{"rows", "written", "requests", "skipped", "dry_run",
/// "planned"}`; a write that stopped or left rows unwritten raises, with `rowcount` (rows
/// written) and `failures` (one dict per row) on the exception.
fn write_result(py: Python<'_>, outcome: DmlOutcome) -> PyResult<Py<PyAny>> {
    let report = &outcome.report;
    let failures = PyList::empty(py);
    for e in &report.failed {
        failures.append(row_error(py, e)?)?;
    }
    let unwritten = report.failed.len() + report.not_attempted.len();
    let err = if let Some(stop) = outcome.stopped {
        let e = to_py(py, d365_core::Error::Sql(stop));
        let value = e.value(py);
        let message = format!("the statement stopped after {} rows were written: {value}", report.written);
        let again = value.get_type().call1((message,))?;
        for attr in ["status", "code", "request_id"] {
            again.setattr(attr, value.getattr(attr)?)?;
        }
        Some(PyErr::from_value(again))
    } else if unwritten > 0 {
        let sample: Vec<String> = report.failed.iter().take(3).map(ToString::to_string).collect();
        let message = format!(
            "{unwritten} of {} rows were not written ({} written){}{}",
            report.rows,
            report.written,
            if sample.is_empty() { String::new() } else { format!(": {}", sample.join("; ")) },
            if report.failed.len() > 3 { "; see the exception's failures attribute for all" } else { "" }
        );
        let first = report.failed.first();
        let conversion =
            report.failed.iter().all(|e| e.code == d365_core::d365_sql::dml::CONVERSION_ERROR || e.code == VALIDATION);
        let integrity =
            report.failed.iter().any(|e| e.status == Some(412) || e.code == DUPLICATE_KEY || e.code == DOES_NOT_EXIST);
        let e = if integrity {
            IntegrityError::new_err(message)
        } else if conversion && !report.failed.is_empty() {
            DataError::new_err(message)
        } else {
            OperationalError::new_err(message)
        };
        set_detail(py, &e, first.and_then(|f| f.status), first.map(|f| f.code.clone()), None)?;
        Some(e)
    } else {
        None
    };
    if let Some(e) = err {
        let value = e.value(py);
        value.setattr("rowcount", report.written)?;
        value.setattr("failures", failures)?;
        return Err(e);
    }
    let d = PyDict::new(py);
    d.set_item("rows", report.rows)?;
    d.set_item("written", if outcome.dry_run { 0 } else { report.written })?;
    d.set_item("requests", report.requests)?;
    d.set_item("skipped", outcome.skipped)?;
    d.set_item("dry_run", outcome.dry_run)?;
    let planned = PyList::empty(py);
    let json = py.import("json")?;
    for p in &outcome.planned {
        planned.append(json.call_method1("loads", (p.to_json().to_string(),))?)?;
    }
    d.set_item("planned", planned)?;
    Ok(d.into_any().unbind())
}

#[pymethods]
impl Session {
    /// Opens a connection. `overrides` are further properties (later wins); `interactive`
    /// (`never`, `browser`, `device_code`) says how a user may sign in when no stored tokens
    /// exist.
    #[staticmethod]
    #[pyo3(signature = (connection_string, overrides, interactive, parallel=None, page_size=None, aggregate_pushdown=true))]
    fn open(
        py: Python<'_>,
        connection_string: &str,
        overrides: Vec<(String, String)>,
        interactive: &str,
        parallel: Option<usize>,
        page_size: Option<u32>,
        aggregate_pushdown: bool,
    ) -> PyResult<Self> {
        let interactive = match interactive {
            "never" => Interactive::Never,
            "browser" => Interactive::Browser,
            "device_code" => Interactive::DeviceCode,
            other => {
                return Err(interface(format!(
                    "interactive={other:?}: use True or \"browser\", \"device_code\", or False"
                )));
            }
        };
        let options = OpenOptions { interactive, environment: None };
        let conn =
            wait(py, d365_core::Connection::open(connection_string, &overrides, options))?.map_err(|e| to_py(py, e))?;
        let organization_url = conn.config.organization_url.to_string();
        let mut session = d365_core::Session::new(
            conn,
            EngineSettings { refresh_metadata: false, parallel, page_size, aggregate_pushdown },
        );
        session.interactive = interactive;
        Ok(Self { inner: Mutex::new(Some(Arc::new(session))), organization_url })
    }

    /// The organisation URL.
    #[getter]
    fn organization_url(&self) -> &str {
        &self.organization_url
    }

    /// Runs one statement: a `ResultStream` for a query or `EXEC`, a dict for a write.
    #[pyo3(signature = (sql, parameters=None, options=None))]
    fn execute(
        &self,
        py: Python<'_>,
        sql: &str,
        parameters: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let session = self.get()?;
        let values = params(parameters)?;
        let options = dml_options(options)?;
        let outcome = wait(py, session.execute(sql, &values, options))?.map_err(|e| to_py(py, e))?;
        match outcome {
            Outcome::Rows(stream) => {
                // The first page is read now, so a refused read (403, sign-in) raises here,
                // as DB-API users expect of execute, not at the first fetch.
                let result = ResultStream::new(stream);
                result.prefetch(py)?;
                Ok(Py::new(py, result)?.into_any())
            }
            Outcome::Procedure(batch) => Ok(Py::new(py, ResultStream::from_batch(batch))?.into_any()),
            Outcome::Written(outcome) => write_result(py, *outcome),
        }
    }

    /// Runs one write statement for every parameter set: one bulk write for `INSERT`/`UPSERT
    /// … VALUES (?, …)`.
    #[pyo3(signature = (sql, parameter_sets, options=None))]
    fn execute_many(
        &self,
        py: Python<'_>,
        sql: &str,
        parameter_sets: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let session = self.get()?;
        if !d365_core::d365_sql::SqlEngine::is_dml(sql) {
            return Err(programming(
                "executemany runs INSERT, UPSERT, UPDATE, DELETE or MERGE statements; run queries with execute",
            ));
        }
        let rows = parameter_sets
            .try_iter()
            .map_err(|_| programming("executemany takes a sequence of parameter sequences"))?
            .map(|set| params(Some(&set?)))
            .collect::<PyResult<Vec<_>>>()?;
        if rows.is_empty() {
            let d = PyDict::new(py);
            d.set_item("rows", 0)?;
            d.set_item("written", 0)?;
            d.set_item("requests", 0)?;
            return Ok(d.into_any().unbind());
        }
        let options = dml_options(options)?;
        let outcome = wait(py, session.write_many(sql, &rows, options, |_| {}))?.map_err(|e| to_py(py, e))?;
        write_result(py, outcome)
    }

    /// Calls an OAuth procedure with `(name, value)` arguments.
    fn call_procedure(&self, py: Python<'_>, name: &str, arguments: Vec<(String, String)>) -> PyResult<ResultStream> {
        let session = self.get()?;
        let exec = d365_core::ExecStatement { name: name.to_string(), args: arguments };
        let batch = wait(py, session.exec(&exec))?.map_err(|e| to_py(py, e))?;
        Ok(ResultStream::from_batch(batch))
    }

    /// Logical names of the queryable tables.
    fn table_names(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let session = self.get()?;
        let engine = wait(py, session.engine())?.map_err(|e| to_py(py, e))?;
        let mut names = engine.table_names();
        names.sort();
        Ok(names)
    }

    /// Snapshot row counts of `tables` (`None`: not readable by the caller), through
    /// Dataverse's `RetrieveTotalRecordCount`.
    fn record_counts(&self, py: Python<'_>, tables: Vec<String>) -> PyResult<Vec<Option<i64>>> {
        let session = self.get()?;
        let client = session.connection().client.clone();
        wait(py, async move { client.record_counts(&tables).await })?.map_err(|e| to_py(py, d365_core::Error::from(e)))
    }

    /// The columns of a table: dicts with `name`, `type` (SQL type name), `precision`,
    /// `scale`, `nullable`, `dataverse_type`, `primary_key`.
    fn columns<'py>(&self, py: Python<'py>, table: &str) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let session = self.get()?;
        let described = wait(py, async {
            let engine = session.engine().await?;
            Ok::<_, d365_core::Error>(engine.describe(table).await?)
        })?
        .map_err(|e| to_py(py, e))?;
        described
            .columns
            .iter()
            .zip(described.arrow.fields())
            .map(|(c, f)| {
                let d = PyDict::new(py);
                let (ty, p, s) = sql_type(f.data_type());
                d.set_item("name", &c.name)?;
                d.set_item("type", ty)?;
                d.set_item("precision", p)?;
                d.set_item("scale", s)?;
                d.set_item("nullable", f.is_nullable())?;
                d.set_item("dataverse_type", &c.attribute_type)?;
                d.set_item("primary_key", c.name == described.primary_key)?;
                Ok(d)
            })
            .collect()
    }

    /// Keeps a copy of `tables` up to date in `to` (a local directory for SQLite, or a
    /// `postgresql://` URL): one dict per table with `table`, `kind` (`full`, `delta`,
    /// `watermark`), `upserted`, `deleted`, `rows`, `warnings`, `seconds`, `destination`.
    #[pyo3(signature = (tables, to, parallel=None, page_size=None, change_tracking=true, soft_delete=false))]
    #[allow(clippy::too_many_arguments)]
    fn sync<'py>(
        &self,
        py: Python<'py>,
        tables: Vec<String>,
        to: &str,
        parallel: Option<usize>,
        page_size: Option<u32>,
        change_tracking: bool,
        soft_delete: bool,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        use d365_core::d365_sync::{SyncKind, SyncOptions, parse_destination};
        let session = self.get()?;
        let destination = parse_destination(to, "to").map_err(|e| to_py(py, e.into()))?;
        let mut options = SyncOptions::new(tables, destination);
        options.parallel = parallel.map(|n| n.max(1));
        options.page_size = page_size;
        options.change_tracking = change_tracking;
        options.soft_delete = soft_delete;
        let report = wait(py, async move { session.sync(&options).await })?.map_err(|e| to_py(py, e))?;
        report
            .tables
            .iter()
            .map(|t| {
                let d = PyDict::new(py);
                d.set_item("table", &t.table)?;
                let kind = match t.kind {
                    SyncKind::Full => "full",
                    SyncKind::Delta => "delta",
                    SyncKind::Watermark => "watermark",
                };
                d.set_item("kind", kind)?;
                d.set_item("upserted", t.upserted)?;
                d.set_item("deleted", t.deleted)?;
                d.set_item("rows", t.rows)?;
                d.set_item("warnings", PyList::new(py, &t.warnings)?)?;
                d.set_item("seconds", t.elapsed.as_secs_f64())?;
                d.set_item("destination", &report.destination)?;
                Ok(d)
            })
            .collect()
    }

    /// Exports `table` into the file `path` (`format`: `ndjson`, `csv`, `parquet`; default
    /// from the file name, else NDJSON): a dict with `rows`, `resumed_rows`, `output`,
    /// `format`, `requests`, `seconds`.
    #[pyo3(signature = (table, path, format=None, select=None, filter=None, parallel=None, page_size=None))]
    #[allow(clippy::too_many_arguments)]
    fn export<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        path: &str,
        format: Option<&str>,
        select: Option<Vec<String>>,
        filter: Option<String>,
        parallel: Option<usize>,
        page_size: Option<u32>,
    ) -> PyResult<Bound<'py, PyDict>> {
        use d365_core::d365_sync::{Destination, ExportOptions, Format, parse_destination};
        let session = self.get()?;
        let output = match parse_destination(path, "path").map_err(|e| to_py(py, e.into()))? {
            Destination::Local(p) => p,
            Destination::Remote(_) | Destination::Delta(_) | Destination::Postgres(_) => std::path::PathBuf::from(path),
        };
        let format = match format {
            Some(f) => f.parse::<Format>().map_err(|e| to_py(py, e.into()))?,
            None => Format::from_path(&output).unwrap_or_default(),
        };
        let mut options = ExportOptions::new(table, output);
        options.format = format;
        options.select = select.unwrap_or_default();
        options.filter = filter;
        options.parallel = parallel.map(|n| n.max(1));
        options.page_size = page_size;
        let summary = wait(py, async move { session.export(&options).await })?.map_err(|e| to_py(py, e))?;
        let d = PyDict::new(py);
        d.set_item("rows", summary.rows)?;
        d.set_item("resumed_rows", summary.resumed_rows)?;
        d.set_item("output", &summary.output)?;
        d.set_item("format", summary.format.to_string())?;
        d.set_item("requests", summary.requests)?;
        d.set_item("seconds", summary.elapsed.as_secs_f64())?;
        Ok(d)
    }

    /// Requests sent so far on this connection: `requests`, `retries`, `throttled` (429/503
    /// answers), `throttle_wait_s` (seconds waited as the service asked), `bytes_received`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.get()?.connection().client.request_log().stats();
        let d = PyDict::new(py);
        d.set_item("requests", s.requests)?;
        d.set_item("retries", s.retries)?;
        d.set_item("throttled", s.throttled)?;
        d.set_item("throttle_wait_s", s.throttle_wait.as_secs_f64())?;
        d.set_item("bytes_received", s.bytes_received)?;
        Ok(d)
    }

    /// Closes the connection (stops a demo emulator).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.inner.lock().map_err(|_| interface("the connection is unusable after a panic"))?.take();
        if let Some(session) = taken
            && let Ok(session) = Arc::try_unwrap(session)
        {
            wait(py, session.close())?;
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("<d365 session {}>", self.organization_url)
    }
}
