//! [`ResultStream`]: the rows of one statement, pulled page by page as Python asks for them —
//! as tuples (`fetch`) or as an Arrow C stream (`__arrow_c_stream__`, zero-copy into pyarrow,
//! polars, DuckDB). At most one decoded page is held besides what the caller keeps.

use std::sync::{Arc, Mutex, MutexGuard};

use d365_core::d365_sql::SqlError;
use d365_core::d365_sql::datafusion::arrow::array::{ArrayRef, RecordBatch, StructArray};
use d365_core::d365_sql::datafusion::arrow::datatypes::{Field, SchemaRef};
use d365_core::d365_sql::datafusion::arrow::error::ArrowError;
use d365_core::d365_sql::datafusion::execution::SendableRecordBatchStream;
use d365_core::d365_sql::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use pyo3_arrow::PyRecordBatch;
use pyo3_arrow::ffi::{ArrayIterator, to_schema_pycapsule, to_stream_pycapsule};

use crate::errors::{interface, to_py};
use crate::runtime::wait;
use crate::values::{rows, sql_type};

struct State {
    stream: Option<SendableRecordBatchStream>,
    /// The page being handed out, and how many of its rows are gone.
    current: Option<(RecordBatch, usize)>,
}

impl State {
    /// Makes the next page current; `false` at the end of the result.
    fn pull(&mut self, py: Python<'_>) -> PyResult<bool> {
        let Some(stream) = self.stream.as_mut() else { return Ok(false) };
        match wait(py, stream.next())? {
            Some(Ok(batch)) => {
                self.current = Some((batch, 0));
                Ok(true)
            }
            Some(Err(e)) => {
                self.stream = None;
                Err(sql_error(py, e))
            }
            None => {
                self.stream = None;
                Ok(false)
            }
        }
    }
}

/// `(name, type_code, precision, scale, null_ok)` of a result column.
type ColumnInfo = (String, String, Option<u8>, Option<i8>, bool);

/// The result of a statement, read as it is consumed.
#[pyclass(module = "d365._internal", frozen)]
pub struct ResultStream {
    schema: SchemaRef,
    state: Mutex<State>,
}

impl ResultStream {
    /// A stream of pages.
    pub fn new(stream: SendableRecordBatchStream) -> Self {
        Self { schema: stream.schema(), state: Mutex::new(State { stream: Some(stream), current: None }) }
    }

    /// One batch (a procedure's result).
    pub fn from_batch(batch: RecordBatch) -> Self {
        let schema = batch.schema();
        let stream = RecordBatchStreamAdapter::new(schema, futures::stream::iter([Ok(batch)]));
        Self::new(Box::pin(stream))
    }

    /// Reads the first page (or the error that stops the read).
    pub fn prefetch(&self, py: Python<'_>) -> PyResult<()> {
        let mut state = self.lock()?;
        if state.current.is_none() {
            state.pull(py)?;
        }
        Ok(())
    }

    fn lock(&self) -> PyResult<MutexGuard<'_, State>> {
        self.state
            .try_lock()
            .map_err(|_| interface("this cursor is being read by another thread: give each thread its own cursor"))
    }
}

fn sql_error(py: Python<'_>, e: d365_core::d365_sql::datafusion::error::DataFusionError) -> PyErr {
    to_py(py, d365_core::Error::Sql(SqlError::from(e)))
}

#[pymethods]
impl ResultStream {
    /// `(name, type_code, precision, scale, null_ok)` of each column.
    fn columns(&self) -> Vec<ColumnInfo> {
        self.schema
            .fields()
            .iter()
            .map(|f| {
                let (ty, p, s) = sql_type(f.data_type());
                (f.name().clone(), ty, p, s, f.is_nullable())
            })
            .collect()
    }

    /// Up to `n` rows as tuples (all remaining rows when `n` is None); fewer only at the end.
    #[pyo3(signature = (n=None))]
    fn fetch(&self, py: Python<'_>, n: Option<usize>) -> PyResult<Vec<Py<PyAny>>> {
        let mut state = self.lock()?;
        let want = n.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while out.len() < want {
            if let Some((batch, used)) = state.current.as_mut() {
                let take = (batch.num_rows() - *used).min(want - out.len());
                if take > 0 {
                    out.extend(rows(py, batch, *used, take)?);
                    *used += take;
                    continue;
                }
                state.current = None;
            }
            if !state.pull(py)? {
                break;
            }
        }
        Ok(out)
    }

    /// The next page as an Arrow record batch (the rest of the current page if rows were
    /// already fetched), handed over without copying through `__arrow_c_array__`; `None` at the
    /// end. Waits like `fetch`: the GIL is released and Ctrl-C stops it.
    fn next_batch(&self, py: Python<'_>) -> PyResult<Option<PyRecordBatch>> {
        let mut state = self.lock()?;
        let batch = match state.current.take() {
            Some((b, used)) if used < b.num_rows() => b.slice(used, b.num_rows() - used),
            _ => {
                if !state.pull(py)? {
                    return Ok(None);
                }
                match state.current.take() {
                    Some((b, _)) => b,
                    None => return Ok(None),
                }
            }
        };
        Ok(Some(PyRecordBatch::new(batch)))
    }

    /// The schema of the result as an Arrow C schema capsule.
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        to_schema_pycapsule(py, self.schema.as_ref()).map_err(Into::into)
    }

    /// The remaining rows as an Arrow C stream (the PyCapsule interface): pages are fetched
    /// and handed over as the consumer reads, without copying.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyCapsule>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let mut state = self.lock()?;
        let first = state.current.take().map(|(b, used)| b.slice(used, b.num_rows() - used));
        let reader = BlockingReader { first, stream: state.stream.take() };
        let fields = self.schema.fields().clone();
        let arrays = reader.map(|batch| batch.map(|b| Arc::new(StructArray::from(b)) as ArrayRef));
        let field = Field::new_struct("", fields, false).with_metadata(self.schema.metadata().clone());
        let iter = ArrayIterator::new(arrays, Arc::new(field));
        to_stream_pycapsule(py, Box::new(iter), requested_schema).map_err(Into::into)
    }

    /// Drops the rest of the result (stops reading pages).
    fn close(&self) -> PyResult<()> {
        let mut state = self.lock()?;
        state.stream = None;
        state.current = None;
        Ok(())
    }
}

/// The rest of a result as a blocking iterator of batches, for the Arrow C stream.
struct BlockingReader {
    first: Option<RecordBatch>,
    stream: Option<SendableRecordBatchStream>,
}

impl Iterator for BlockingReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(b) = self.first.take() {
            return Some(Ok(b));
        }
        let stream = self.stream.as_mut()?;
        // The consumer (pyarrow, polars, DuckDB) may call in holding the GIL: the page is
        // fetched with it released (other Python threads and log records are not held up),
        // checking for Ctrl-C every 100 ms as the DB-API methods do.
        let next = Python::attach(|py| match wait(py, stream.next()) {
            Ok(next) => Ok(next),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) => {
                // The consumer turns this error into its own exception; the interrupt is set
                // again so that Python raises KeyboardInterrupt as soon as it runs.
                // SAFETY: called with the GIL held (inside `attach`).
                unsafe { pyo3::ffi::PyErr_SetInterrupt() };
                Err("interrupted (Ctrl-C): the rest of the result was not read".to_string())
            }
            Err(e) => Err(e.to_string()),
        });
        let next = match next {
            Ok(next) => next,
            Err(message) => {
                self.stream = None;
                return Some(Err(ArrowError::ExternalError(Box::new(std::io::Error::other(message)))));
            }
        };
        match next {
            Some(Ok(b)) => Some(Ok(b)),
            Some(Err(e)) => {
                self.stream = None;
                // The message a person can act on, as the DB-API methods give it.
                Some(Err(ArrowError::ExternalError(Box::new(d365_core::Error::Sql(SqlError::from(e))))))
            }
            None => {
                self.stream = None;
                None
            }
        }
    }
}
