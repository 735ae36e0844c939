//! Values between Python and d365: parameters in ([`param`]), Arrow columns out as Python
//! objects ([`column_objects`]), and SQL type names for `cursor.description` ([`sql_type`]).
//!
//! | SQL type | Python |
//! |---|---|
//! | VARCHAR (text, choices' labels, GUIDs) | `str` |
//! | INTEGER, BIGINT | `int` |
//! | DOUBLE | `float` |
//! | DECIMAL(p,s) (decimal, money) | `decimal.Decimal`, exact |
//! | BOOLEAN | `bool` |
//! | TIMESTAMP (UTC) | `datetime.datetime` with `tzinfo=timezone.utc` |
//! | DATE | `datetime.date` |

use d365_core::Param;
use d365_core::d365_sql::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int8Array,
    Int16Array, Int32Array, Int64Array, TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use d365_core::d365_sql::datafusion::arrow::datatypes::{DataType, TimeUnit};
use d365_core::d365_sql::datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use d365_core::d365_sql::values::{civil_from_days, format_decimal};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString, PyTuple};

use crate::errors::programming;

/// Days from 0001-01-01 (ordinal 1) to 1970-01-01.
const UNIX_EPOCH_ORDINAL: i64 = 719_163;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A Python value as a statement parameter. `position` (from 1) names it in errors.
pub fn param(obj: &Bound<'_, PyAny>, position: usize) -> PyResult<Param> {
    let py = obj.py();
    if obj.is_none() {
        return Ok(Param::Null);
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Param::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract::<i64>().map(Param::Int).map_err(|_| {
            programming(format!("parameter {position}: the integer does not fit 64 bits (pass a decimal.Decimal)"))
        });
    }
    if obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract()?;
        // pandas marks a missing number with NaN: it is bound as NULL.
        return Ok(if f.is_nan() { Param::Null } else { Param::Float(f) });
    }
    if obj.is_instance_of::<PyString>() {
        return obj.extract().map(Param::Text).map_err(|_| {
            programming(format!("parameter {position}: the string is not valid Unicode (it holds a lone surrogate)"))
        });
    }
    // NumPy scalars (numpy.int64, numpy.bool_, numpy.datetime64 …, as pandas hands them out):
    // their Python value.
    if obj.hasattr("dtype")? && obj.hasattr("item")? {
        let item = obj.call_method0("item")?;
        let kind: String = obj.getattr("dtype")?.getattr("kind")?.extract().unwrap_or_default();
        if (kind == "M" || kind == "m") && item.is_instance_of::<PyInt>() {
            return Err(programming(format!(
                "parameter {position}: a numpy.datetime64 in nanoseconds has no exact datetime (pass \
                 pandas.Timestamp(value) or value.astype('datetime64[us]'))"
            )));
        }
        if !item.get_type().is(obj.get_type()) {
            return param(&item, position);
        }
    }
    let decimal = py.import("decimal")?.getattr("Decimal")?;
    if obj.is_instance(&decimal)? {
        if !obj.call_method0("is_finite")?.extract::<bool>()? {
            return Err(programming(format!("parameter {position}: NaN and infinite decimals cannot be stored")));
        }
        return Ok(Param::Decimal(obj.call_method1("__format__", ("f",))?.extract()?));
    }
    let datetime = py.import("datetime")?;
    if obj.is_instance(&datetime.getattr("datetime")?)? {
        // pandas' NaT (a datetime that is not equal to itself) marks a missing time: NULL.
        if obj.ne(obj)? {
            return Ok(Param::Null);
        }
        return timestamp(py, obj, &datetime).map_err(|e| {
            programming(format!("parameter {position}: the datetime cannot be stored as a UTC instant: {e}"))
        });
    }
    if obj.is_instance(&datetime.getattr("date")?)? {
        let ordinal: i64 = obj.call_method0("toordinal")?.extract()?;
        return Ok(Param::Date((ordinal - UNIX_EPOCH_ORDINAL) as i32));
    }
    if obj.is_instance(&py.import("uuid")?.getattr("UUID")?)? {
        let text: String = obj.str()?.extract()?;
        return uuid::Uuid::try_parse(&text).map(Param::Guid).map_err(|e| programming(e.to_string()));
    }
    let type_name = obj.get_type().name()?.to_string();
    Err(programming(format!(
        "parameter {position}: values of type {type_name} cannot be bound (use None, bool, int, float, str, \
         decimal.Decimal, datetime.datetime, datetime.date, uuid.UUID or a NumPy scalar of one of these)"
    )))
}

/// A date Python's `datetime` cannot hold (years 1–9999), as a `DataError`.
fn out_of_range(y: i64, m: u32, d: u32) -> PyErr {
    crate::errors::DataError::new_err(format!(
        "the date {y:04}-{m:02}-{d:02} is outside Python's datetime range (years 1 to 9999): read it with \
         fetch_arrow_table(), or cast it to text in SQL"
    ))
}

/// A `datetime.datetime` as microseconds since the Unix epoch (a naive one is taken as UTC, as
/// the service stores instants).
fn timestamp(py: Python<'_>, obj: &Bound<'_, PyAny>, datetime: &Bound<'_, PyModule>) -> PyResult<Param> {
    let utc = datetime.getattr("timezone")?.getattr("utc")?;
    let aware = if obj.getattr("tzinfo")?.is_none() {
        obj.call_method("replace", (), Some(&kw(py, "tzinfo", &utc)?))?
    } else {
        obj.clone()
    };
    let epoch = datetime.getattr("datetime")?.call1((1970, 1, 1, 0, 0, 0, 0, &utc))?;
    let delta = aware.call_method1("__sub__", (epoch,))?;
    let days: i64 = delta.getattr("days")?.extract()?;
    let seconds: i64 = delta.getattr("seconds")?.extract()?;
    let micros: i64 = delta.getattr("microseconds")?.extract()?;
    Ok(Param::Timestamp(days * MICROS_PER_DAY + seconds * 1_000_000 + micros))
}

fn kw<'py>(py: Python<'py>, key: &str, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let d = pyo3::types::PyDict::new(py);
    d.set_item(key, value)?;
    Ok(d)
}

/// A sequence of Python values as parameters.
pub fn params(seq: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Param>> {
    let Some(seq) = seq.filter(|s| !s.is_none()) else {
        return Ok(Vec::new());
    };
    if seq.is_instance_of::<PyString>() || seq.is_instance_of::<pyo3::types::PyDict>() {
        return Err(programming(
            "parameters are a sequence (list or tuple) bound to the ? markers in order (paramstyle qmark)",
        ));
    }
    seq.try_iter()
        .map_err(|_| programming("parameters must be a sequence (list or tuple)"))?
        .enumerate()
        .map(|(i, v)| param(&v?, i + 1))
        .collect()
}

/// The SQL type name of an Arrow type (`DECIMAL(38,4)`, `TIMESTAMP`, …), with precision and
/// scale for decimals.
pub fn sql_type(dt: &DataType) -> (String, Option<u8>, Option<i8>) {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("VARCHAR".into(), None, None),
        DataType::Boolean => ("BOOLEAN".into(), None, None),
        DataType::Int8 => ("TINYINT".into(), None, None),
        DataType::Int16 | DataType::UInt8 => ("SMALLINT".into(), None, None),
        DataType::Int32 | DataType::UInt16 => ("INTEGER".into(), None, None),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => ("BIGINT".into(), None, None),
        DataType::Float32 => ("REAL".into(), None, None),
        DataType::Float64 => ("DOUBLE".into(), None, None),
        DataType::Decimal128(p, s) => (format!("DECIMAL({p},{s})"), Some(*p), Some(*s)),
        DataType::Timestamp(..) => ("TIMESTAMP".into(), None, None),
        DataType::Date32 | DataType::Date64 => ("DATE".into(), None, None),
        DataType::Null => ("NULL".into(), None, None),
        other => (other.to_string().to_ascii_uppercase(), None, None),
    }
}

macro_rules! ints {
    ($py:expr, $array:expr, $ty:ty, $range:expr) => {{
        let a = $array.as_any().downcast_ref::<$ty>().expect("array of its type");
        $range
            .map(|i| if a.is_null(i) { Ok($py.None()) } else { Ok(a.value(i).into_pyobject($py)?.into_any().unbind()) })
            .collect()
    }};
}

/// Rows `offset..offset + len` of `array` as Python objects.
pub fn column_objects(py: Python<'_>, array: &ArrayRef, offset: usize, len: usize) -> PyResult<Vec<Py<PyAny>>> {
    let range = offset..offset + len;
    match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            range
                .map(|i| Ok(if a.is_null(i) { py.None() } else { PyString::new(py, a.value(i)).into_any().unbind() }))
                .collect()
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            range
                .map(|i| Ok(if a.is_null(i) { py.None() } else { PyString::new(py, a.value(i)).into_any().unbind() }))
                .collect()
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            range
                .map(|i| Ok(if a.is_null(i) { py.None() } else { PyString::new(py, a.value(i)).into_any().unbind() }))
                .collect()
        }
        DataType::Boolean => {
            let a = array.as_any().downcast_ref::<BooleanArray>().expect("boolean array");
            range
                .map(|i| {
                    Ok(if a.is_null(i) {
                        py.None()
                    } else {
                        PyBool::new(py, a.value(i)).to_owned().into_any().unbind()
                    })
                })
                .collect()
        }
        DataType::Int8 => ints!(py, array, Int8Array, range),
        DataType::Int16 => ints!(py, array, Int16Array, range),
        DataType::Int32 => ints!(py, array, Int32Array, range),
        DataType::Int64 => ints!(py, array, Int64Array, range),
        DataType::UInt8 => ints!(py, array, UInt8Array, range),
        DataType::UInt16 => ints!(py, array, UInt16Array, range),
        DataType::UInt32 => ints!(py, array, UInt32Array, range),
        DataType::UInt64 => ints!(py, array, UInt64Array, range),
        DataType::Float32 => ints!(py, array, Float32Array, range),
        DataType::Float64 => ints!(py, array, Float64Array, range),
        DataType::Decimal128(_, scale) => {
            let a = array.as_any().downcast_ref::<Decimal128Array>().expect("decimal array");
            let decimal = py.import("decimal")?.getattr("Decimal")?;
            let scale = *scale;
            range
                .map(|i| {
                    if a.is_null(i) {
                        return Ok(py.None());
                    }
                    Ok(decimal.call1((format_decimal(a.value(i), scale),))?.unbind())
                })
                .collect()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let a = array.as_any().downcast_ref::<TimestampMicrosecondArray>().expect("timestamp array");
            let datetime = py.import("datetime")?;
            let class = datetime.getattr("datetime")?;
            let utc = datetime.getattr("timezone")?.getattr("utc")?;
            range
                .map(|i| {
                    if a.is_null(i) {
                        return Ok(py.None());
                    }
                    let us = a.value(i);
                    let days = us.div_euclid(MICROS_PER_DAY);
                    let rest = us.rem_euclid(MICROS_PER_DAY);
                    let (y, m, d) = civil_from_days(days);
                    let secs = rest / 1_000_000;
                    let args = (y, m, d, secs / 3600, (secs / 60) % 60, secs % 60, rest % 1_000_000, &utc);
                    Ok(class.call1(args).map_err(|_| out_of_range(y, m, d))?.unbind())
                })
                .collect()
        }
        DataType::Date32 => {
            let a = array.as_any().downcast_ref::<Date32Array>().expect("date array");
            let class = py.import("datetime")?.getattr("date")?;
            range
                .map(|i| {
                    if a.is_null(i) {
                        return Ok(py.None());
                    }
                    let (y, m, d) = civil_from_days(i64::from(a.value(i)));
                    Ok(class.call1((y, m, d)).map_err(|_| out_of_range(y, m, d))?.unbind())
                })
                .collect()
        }
        DataType::Null => Ok(range.map(|_| py.None()).collect()),
        _ => {
            // Anything else (not produced by Dataverse columns) as its Arrow text.
            let formatter = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
                .map_err(|e| crate::errors::DataError::new_err(e.to_string()))?;
            range
                .map(|i| {
                    Ok(if array.is_null(i) {
                        py.None()
                    } else {
                        PyString::new(py, &formatter.value(i).to_string()).into_any().unbind()
                    })
                })
                .collect()
        }
    }
}

/// Rows `offset..offset + len` of a batch as tuples.
pub fn rows(
    py: Python<'_>,
    batch: &d365_core::d365_sql::datafusion::arrow::array::RecordBatch,
    offset: usize,
    len: usize,
) -> PyResult<Vec<Py<PyAny>>> {
    let columns = batch.columns().iter().map(|c| column_objects(py, c, offset, len)).collect::<PyResult<Vec<_>>>()?;
    let mut iters: Vec<_> = columns.into_iter().map(Vec::into_iter).collect();
    (0..len)
        .map(|_| {
            let cells: Vec<Py<PyAny>> = iters.iter_mut().map(|c| c.next().expect("one value per row")).collect();
            Ok(PyTuple::new(py, cells)?.into_any().unbind())
        })
        .collect()
}
