//! Arrow values (whatever type DataFusion evaluated an expression to) → Web API JSON values, by
//! the Dataverse type of the column written. A value that cannot be converted is an error
//! message for that row and column; NULL is JSON `null` (clears the column).

use datafusion::arrow::array::Array;
use datafusion::common::ScalarValue;
use serde_json::{Number, Value};

use crate::values::{civil_from_days, format_date, parse_date_days, parse_timestamp_micros};

/// How a column's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// String, Memo.
    Text,
    /// Integer, Picklist, State, Status (a 32-bit integer).
    Int32,
    /// BigInt.
    Int64,
    /// Decimal, Money (sent as a JSON number).
    Decimal,
    /// Double.
    Double,
    /// Yes/No.
    Boolean,
    /// Date and time: UTC ISO 8601.
    DateTime,
    /// Date only: `YYYY-MM-DD`.
    DateOnly,
    /// A Finance & Operations date: `YYYY-MM-DDT12:00:00Z` (how the service sends dates).
    DateMidday,
    /// Uniqueidentifier (and lookups' values): a GUID.
    Guid,
    /// Multi-select choice: `"1,2"`.
    MultiSelect,
}

impl WriteKind {
    /// The kind for a Dataverse attribute type, or `None` when it cannot be written here.
    pub(crate) fn of(attribute_type: &str, multi_select: bool, date_only: bool) -> Option<Self> {
        if multi_select {
            return Some(WriteKind::MultiSelect);
        }
        Some(match attribute_type {
            "String" | "Memo" => WriteKind::Text,
            "Integer" | "Picklist" | "State" | "Status" => WriteKind::Int32,
            "BigInt" => WriteKind::Int64,
            "Decimal" | "Money" => WriteKind::Decimal,
            "Double" => WriteKind::Double,
            "Boolean" => WriteKind::Boolean,
            "DateTime" if date_only => WriteKind::DateOnly,
            "DateTime" => WriteKind::DateTime,
            "Uniqueidentifier" | "Lookup" | "Customer" | "Owner" => WriteKind::Guid,
            // Finance & Operations enums: the member name.
            "Enum" => WriteKind::Text,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            WriteKind::Text => "text",
            WriteKind::Int32 => "a 32-bit integer",
            WriteKind::Int64 => "a 64-bit integer",
            WriteKind::Decimal => "a decimal number",
            WriteKind::Double => "a floating-point number",
            WriteKind::Boolean => "a yes/no value",
            WriteKind::DateTime => "a date and time",
            WriteKind::DateOnly | WriteKind::DateMidday => "a date",
            WriteKind::Guid => "a GUID",
            WriteKind::MultiSelect => "a list of choice values (\"1,2\")",
        }
    }
}

/// The cell at `row` of `array` as a scalar.
pub(crate) fn cell(array: &dyn Array, row: usize) -> Result<ScalarValue, String> {
    ScalarValue::try_from_array(array, row).map_err(|e| e.to_string())
}

/// Text of a string scalar.
pub(crate) fn as_text(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Some(s),
        _ => None,
    }
}

fn shown(v: &ScalarValue) -> String {
    match as_text(v) {
        Some(s) => format!("'{s}'"),
        None => v.to_string(),
    }
}

/// A whole number: integer types, whole floats and decimals, or text that parses as one.
fn integer(v: &ScalarValue) -> Option<i128> {
    if let Some(n) = crate::filter_pushdown::int_value(v) {
        return Some(n);
    }
    Some(match v {
        ScalarValue::Float32(Some(f)) if f.fract() == 0.0 && f.is_finite() => *f as i128,
        ScalarValue::Float64(Some(f)) if f.fract() == 0.0 && f.is_finite() && f.abs() < 1e30 => *f as i128,
        ScalarValue::Decimal128(Some(n), _, s) => {
            let p = 10i128.checked_pow(u32::try_from(*s).ok()?)?;
            if n % p != 0 {
                return None;
            }
            n / p
        }
        other => {
            // Text of a whole number, also written with a zero fraction ("1.0", as a float
            // parameter arrives in a VALUES row typed as text).
            let t = as_text(other)?.trim();
            match t.parse::<i128>() {
                Ok(n) => n,
                Err(_) => {
                    let f = t.parse::<f64>().ok().filter(|f| f.fract() == 0.0 && f.abs() < 1e15)?;
                    f as i128
                }
            }
        }
    })
}

fn float(v: &ScalarValue) -> Option<f64> {
    let f = match v {
        ScalarValue::Float32(Some(f)) => f64::from(*f),
        ScalarValue::Float64(Some(f)) => *f,
        ScalarValue::Decimal128(Some(n), _, s) => (*n as f64) / 10f64.powi(i32::from(*s)),
        other => match as_text(other) {
            Some(t) => t.trim().parse::<f64>().ok()?,
            None => integer(other)? as f64,
        },
    };
    f.is_finite().then_some(f)
}

/// Microseconds since the epoch of a timestamp, date or ISO text.
fn micros(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampSecond(Some(n), _) => n.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(n), _) => n.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(n), _) => Some(*n),
        ScalarValue::TimestampNanosecond(Some(n), _) => Some(n.div_euclid(1_000)),
        ScalarValue::Date32(Some(d)) => i64::from(*d).checked_mul(86_400_000_000),
        ScalarValue::Date64(Some(ms)) => ms.checked_mul(1_000),
        other => {
            let t = as_text(other)?.trim();
            parse_timestamp_micros(t).or_else(|| {
                (t.len() == 10).then(|| parse_date_days(t)).flatten().map(|d| i64::from(d) * 86_400_000_000)
            })
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`.
pub(crate) fn format_instant(micros: i64) -> Option<String> {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    if !(1..=9999).contains(&y) {
        return None;
    }
    let rem = secs.rem_euclid(86_400);
    let mut s = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push('Z');
    Some(s)
}

/// A GUID in canonical lower-case form, if `text` is one (with or without braces).
pub(crate) fn guid(text: &str) -> Option<uuid::Uuid> {
    let t = text.trim();
    let t = t.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(t);
    uuid::Uuid::try_parse(t).ok()
}

/// Converts one non-null cell for a column of `kind`.
pub(crate) fn to_json(kind: WriteKind, v: &ScalarValue) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let bad = || Err(format!("cannot convert {} to {}", shown(v), kind.name()));
    match kind {
        WriteKind::Text => Ok(Value::String(match as_text(v) {
            Some(s) => s.to_string(),
            None => match micros(v).filter(|_| !matches!(v, ScalarValue::Utf8(_))) {
                Some(m) if matches!(v, ScalarValue::Date32(_) | ScalarValue::Date64(_)) => {
                    format_date((m / 86_400_000_000) as i32).unwrap_or_else(|| v.to_string())
                }
                Some(m) => format_instant(m).unwrap_or_else(|| v.to_string()),
                None => v.to_string(),
            },
        })),
        WriteKind::Int32 => match integer(v).and_then(|n| i32::try_from(n).ok()) {
            Some(n) if !matches!(v, ScalarValue::Boolean(_)) => Ok(Value::from(n)),
            _ => bad(),
        },
        WriteKind::Int64 => match integer(v).and_then(|n| i64::try_from(n).ok()) {
            Some(n) if !matches!(v, ScalarValue::Boolean(_)) => Ok(Value::from(n)),
            _ => bad(),
        },
        WriteKind::Decimal | WriteKind::Double => {
            match float(v).filter(|_| !matches!(v, ScalarValue::Boolean(_))).and_then(Number::from_f64) {
                Some(n) => Ok(Value::Number(n)),
                None => bad(),
            }
        }
        WriteKind::Boolean => match v {
            ScalarValue::Boolean(Some(b)) => Ok(Value::Bool(*b)),
            other => match (integer(other), as_text(other).map(|t| t.trim().to_ascii_lowercase())) {
                (Some(0), _) => Ok(Value::Bool(false)),
                (Some(1), _) => Ok(Value::Bool(true)),
                (_, Some(t)) if matches!(t.as_str(), "true" | "yes" | "y") => Ok(Value::Bool(true)),
                (_, Some(t)) if matches!(t.as_str(), "false" | "no" | "n") => Ok(Value::Bool(false)),
                _ => bad(),
            },
        },
        WriteKind::DateTime => match micros(v).and_then(format_instant) {
            Some(s) => Ok(Value::String(s)),
            None => bad(),
        },
        WriteKind::DateOnly | WriteKind::DateMidday => {
            let days = match v {
                ScalarValue::Date32(Some(d)) => Some(*d),
                other => match as_text(other) {
                    Some(t) => parse_date_days(t.trim()),
                    None => micros(other).and_then(|m| i32::try_from(m.div_euclid(86_400_000_000)).ok()),
                },
            };
            match days.and_then(format_date) {
                Some(s) if kind == WriteKind::DateMidday => Ok(Value::String(format!("{s}T12:00:00Z"))),
                Some(s) => Ok(Value::String(s)),
                None => bad(),
            }
        }
        WriteKind::Guid => match as_text(v).and_then(guid) {
            Some(g) => Ok(Value::String(g.to_string())),
            None => Err(format!("{} is not a GUID", shown(v))),
        },
        WriteKind::MultiSelect => {
            if let Some(t) = as_text(v) {
                let mut out = Vec::new();
                for part in t.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    match part.parse::<i32>() {
                        Ok(n) => out.push(n.to_string()),
                        Err(_) => return bad(),
                    }
                }
                if out.is_empty() {
                    return Ok(Value::Null);
                }
                return Ok(Value::String(out.join(",")));
            }
            match integer(v).and_then(|n| i32::try_from(n).ok()) {
                Some(n) => Ok(Value::String(n.to_string())),
                None => bad(),
            }
        }
    }
}

/// A cell as display text (for error reports and dry runs): NULL as JSON null.
pub(crate) fn display(v: &ScalarValue) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    match as_text(v) {
        Some(s) => Value::String(s.to_string()),
        None => Value::String(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> ScalarValue {
        ScalarValue::Utf8(Some(t.into()))
    }

    #[test]
    fn converts_by_column_type() {
        assert_eq!(to_json(WriteKind::Int32, &s(" 42 ")).unwrap(), Value::from(42));
        assert!(to_json(WriteKind::Int32, &s("abc")).unwrap_err().contains("'abc'"));
        // A whole number written with a zero fraction is that number; a fraction is refused.
        assert_eq!(to_json(WriteKind::Int32, &s("1.0")).unwrap(), Value::from(1));
        assert!(to_json(WriteKind::Int32, &s("1.5")).unwrap_err().contains("'1.5'"));
        assert!(to_json(WriteKind::Int32, &ScalarValue::Int64(Some(1 << 40))).is_err());
        assert_eq!(to_json(WriteKind::Int64, &ScalarValue::Decimal128(Some(1200), 10, 2)).unwrap(), Value::from(12));
        assert_eq!(
            to_json(WriteKind::Decimal, &ScalarValue::Decimal128(Some(1234), 10, 2)).unwrap(),
            Value::from(12.34)
        );
        assert_eq!(to_json(WriteKind::Boolean, &s("Yes")).unwrap(), Value::Bool(true));
        assert_eq!(to_json(WriteKind::Boolean, &ScalarValue::Int64(Some(0))).unwrap(), Value::Bool(false));
        assert_eq!(
            to_json(WriteKind::DateTime, &s("2024-02-29T10:00:00+02:00")).unwrap(),
            Value::from("2024-02-29T08:00:00Z")
        );
        assert_eq!(to_json(WriteKind::DateTime, &s("2024-02-29")).unwrap(), Value::from("2024-02-29T00:00:00Z"));
        assert_eq!(
            to_json(WriteKind::DateTime, &ScalarValue::TimestampMicrosecond(Some(1_500_000), None)).unwrap(),
            Value::from("1970-01-01T00:00:01.5Z")
        );
        assert_eq!(
            to_json(WriteKind::DateOnly, &ScalarValue::Date32(Some(19_782))).unwrap(),
            Value::from("2024-02-29")
        );
        assert_eq!(to_json(WriteKind::DateOnly, &s("2024-02-29")).unwrap(), Value::from("2024-02-29"));
        assert!(to_json(WriteKind::DateOnly, &s("2024-02-30x")).is_err());
        assert_eq!(
            to_json(WriteKind::Guid, &s("{0F8FAD5B-D9CB-469F-A165-70867728950E}")).unwrap(),
            Value::from("0f8fad5b-d9cb-469f-a165-70867728950e")
        );
        assert!(to_json(WriteKind::Guid, &s("not-a-guid")).unwrap_err().contains("not a GUID"));
        assert_eq!(to_json(WriteKind::MultiSelect, &s("1, 2")).unwrap(), Value::from("1,2"));
        assert_eq!(to_json(WriteKind::Text, &ScalarValue::Int64(Some(7))).unwrap(), Value::from("7"));
        assert_eq!(to_json(WriteKind::Text, &ScalarValue::Utf8(None)).unwrap(), Value::Null);
    }
}
