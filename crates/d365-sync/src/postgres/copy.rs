//! Arrow columns → PostgreSQL's binary `COPY` format, written straight from the arrays (no
//! per-value trait objects, no text rendering): the header, then per row a field count and
//! each field as a length and its big-endian wire value, then the trailer.
//!
//! | Arrow (the SQL engine's types) | PostgreSQL | wire value |
//! |---|---|---|
//! | `Utf8` (GUID columns) | `uuid` | 16 bytes |
//! | `Utf8` | `text` | UTF-8 bytes |
//! | `Int32` / `Int64` | `integer` / `bigint` | big-endian |
//! | `Float64` | `double precision` | IEEE 754 bits |
//! | `Boolean` | `boolean` | one byte |
//! | `Decimal128(38, s)` | `numeric(38, s)` | base-10000 digits, exact |
//! | `Date32` | `date` | days since 2000-01-01 |
//! | `Timestamp(µs, UTC)` | `timestamptz` | µs since 2000-01-01 UTC |

use bytes::{BufMut, BytesMut};
use d365_sql::datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use d365_sql::datafusion::arrow::datatypes::{DataType, TimeUnit};
use d365_sql::datafusion::arrow::record_batch::RecordBatch;
use d365_sql::{ColumnSpec, FilterKind, ValueKind};

use crate::error::SyncError;

/// The signature, flags and header extension length that start a binary COPY stream.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The end of a binary COPY stream.
pub const TRAILER: &[u8] = &[0xff, 0xff];

/// Days from 1970-01-01 (Arrow) to 2000-01-01 (PostgreSQL).
const EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The PostgreSQL type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    /// `text`.
    Text,
    /// `uuid`.
    Uuid,
    /// `integer`.
    Int4,
    /// `bigint`.
    Int8,
    /// `double precision`.
    Float8,
    /// `boolean`.
    Bool,
    /// `numeric(38, scale)`.
    Numeric(i8),
    /// `date`.
    Date,
    /// `timestamptz`.
    Timestamptz,
}

impl PgType {
    /// The type of a column of the SQL engine's shape of a table.
    pub fn of(column: &ColumnSpec) -> Self {
        match column.kind {
            ValueKind::Utf8 if column.filter == FilterKind::Guid => Self::Uuid,
            ValueKind::Utf8 => Self::Text,
            ValueKind::Int32 => Self::Int4,
            ValueKind::Int64 => Self::Int8,
            ValueKind::Float64 => Self::Float8,
            ValueKind::Boolean => Self::Bool,
            ValueKind::Decimal { scale } => Self::Numeric(scale),
            ValueKind::Date32 => Self::Date,
            ValueKind::Timestamp => Self::Timestamptz,
        }
    }

    /// The type as written in DDL.
    pub fn sql(self) -> String {
        match self {
            Self::Text => "text".into(),
            Self::Uuid => "uuid".into(),
            Self::Int4 => "integer".into(),
            Self::Int8 => "bigint".into(),
            Self::Float8 => "double precision".into(),
            Self::Bool => "boolean".into(),
            Self::Numeric(s) => format!("numeric(38,{s})"),
            Self::Date => "date".into(),
            Self::Timestamptz => "timestamptz".into(),
        }
    }

    fn accepts(self, t: &DataType) -> bool {
        match self {
            Self::Text | Self::Uuid => matches!(t, DataType::Utf8),
            Self::Int4 => matches!(t, DataType::Int32),
            Self::Int8 => matches!(t, DataType::Int64),
            Self::Float8 => matches!(t, DataType::Float64),
            Self::Bool => matches!(t, DataType::Boolean),
            Self::Numeric(s) => matches!(t, DataType::Decimal128(_, ds) if *ds == s),
            Self::Date => matches!(t, DataType::Date32),
            Self::Timestamptz => matches!(t, DataType::Timestamp(TimeUnit::Microsecond, _)),
        }
    }
}

/// Appends the rows of `batch` (columns typed `types`, in order) to `out`, in binary COPY
/// row format (without header or trailer). `names` name the columns in errors.
pub fn encode_rows(batch: &RecordBatch, types: &[PgType], names: &[&str], out: &mut BytesMut) -> Result<(), SyncError> {
    let columns = batch.columns();
    if columns.len() != types.len() {
        return Err(SyncError::InvalidArgument(format!(
            "internal: {} columns to copy but {} types",
            columns.len(),
            types.len()
        )));
    }
    for (i, (c, t)) in columns.iter().zip(types).enumerate() {
        if !t.accepts(c.data_type()) {
            return Err(SyncError::InvalidArgument(format!(
                "internal: column {} is {} in Arrow but {} in PostgreSQL",
                names.get(i).copied().unwrap_or("?"),
                c.data_type(),
                t.sql()
            )));
        }
    }
    let ncols = i16::try_from(columns.len())
        .map_err(|_| SyncError::Unsupported(format!("{} columns: PostgreSQL takes at most 1,600", columns.len())))?;
    for row in 0..batch.num_rows() {
        out.put_i16(ncols);
        for (i, (c, t)) in columns.iter().zip(types).enumerate() {
            if c.is_null(row) {
                out.put_i32(-1);
                continue;
            }
            encode_value(c.as_ref(), *t, row, out).map_err(|m| {
                SyncError::InvalidArgument(format!("column {}: {m}", names.get(i).copied().unwrap_or("?")))
            })?;
        }
    }
    Ok(())
}

fn encode_value(c: &dyn Array, t: PgType, row: usize, out: &mut BytesMut) -> Result<(), String> {
    match t {
        PgType::Text => {
            let s = c.as_string::<i32>().value(row);
            let len = i32::try_from(s.len()).map_err(|_| "a text value over 2 GiB".to_string())?;
            out.put_i32(len);
            out.put_slice(s.as_bytes());
        }
        PgType::Uuid => {
            let s = c.as_any().downcast_ref::<StringArray>().map(|a| a.value(row)).unwrap_or_default();
            let id = uuid::Uuid::try_parse(s).map_err(|_| format!("'{s}' is not a GUID"))?;
            out.put_i32(16);
            out.put_slice(id.as_bytes());
        }
        PgType::Int4 => {
            out.put_i32(4);
            out.put_i32(downcast::<Int32Array>(c)?.value(row));
        }
        PgType::Int8 => {
            out.put_i32(8);
            out.put_i64(downcast::<Int64Array>(c)?.value(row));
        }
        PgType::Float8 => {
            out.put_i32(8);
            out.put_f64(downcast::<Float64Array>(c)?.value(row));
        }
        PgType::Bool => {
            out.put_i32(1);
            out.put_u8(u8::from(downcast::<BooleanArray>(c)?.value(row)));
        }
        PgType::Numeric(scale) => numeric(downcast::<Decimal128Array>(c)?.value(row), scale.max(0) as u16, out),
        PgType::Date => {
            out.put_i32(4);
            out.put_i32(downcast::<Date32Array>(c)?.value(row) - EPOCH_DAYS);
        }
        PgType::Timestamptz => {
            out.put_i32(8);
            out.put_i64(downcast::<TimestampMicrosecondArray>(c)?.value(row) - EPOCH_MICROS);
        }
    }
    Ok(())
}

fn downcast<T: 'static>(c: &dyn Array) -> Result<&T, String> {
    c.as_any().downcast_ref::<T>().ok_or_else(|| format!("unexpected Arrow type {}", c.data_type()))
}

/// Writes the unscaled `value` with `scale` digits after the point as a binary `numeric`:
/// digit count, weight (the power of 10,000 of the first digit), sign, display scale, then
/// the base-10,000 digits with leading and trailing zero digits left out.
pub fn numeric(value: i128, scale: u16, out: &mut BytesMut) {
    let magnitude = value.unsigned_abs();
    let pow = 10u128.pow(u32::from(scale));
    let (mut int, frac) = (magnitude / pow, magnitude % pow);
    let mut digits: Vec<i16> = Vec::with_capacity(12);
    while int > 0 {
        digits.push((int % 10_000) as i16);
        int /= 10_000;
    }
    digits.reverse();
    let mut weight = digits.len() as i16 - 1;
    let frac_groups = u32::from(scale).div_ceil(4);
    let mut padded = frac * 10u128.pow(frac_groups * 4 - u32::from(scale));
    let mut fraction = vec![0i16; frac_groups as usize];
    for slot in fraction.iter_mut().rev() {
        *slot = (padded % 10_000) as i16;
        padded /= 10_000;
    }
    digits.extend(fraction);
    // Leading zero digits (a value below 1) lower the weight; trailing ones are implied.
    let lead = digits.iter().take_while(|d| **d == 0).count();
    digits.drain(..lead);
    weight -= lead as i16;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    out.put_i32(8 + 2 * digits.len() as i32);
    out.put_i16(digits.len() as i16);
    out.put_i16(weight);
    out.put_u16(if value < 0 { 0x4000 } else { 0 });
    out.put_u16(scale);
    for d in digits {
        out.put_i16(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (digits, weight, sign, dscale) of an encoded numeric.
    fn parts(value: i128, scale: u16) -> (Vec<i16>, i16, u16, u16) {
        let mut b = BytesMut::new();
        numeric(value, scale, &mut b);
        let r = |i: usize| i16::from_be_bytes([b[i], b[i + 1]]);
        let n = r(4) as usize;
        assert_eq!(i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize, 8 + 2 * n);
        ((0..n).map(|k| r(12 + 2 * k)).collect(), r(6), r(8) as u16, r(10) as u16)
    }

    #[test]
    fn numerics_are_base_10000_digits() {
        // 1234567.8900 at scale 4: 123|4567|.8900
        assert_eq!(parts(12_345_678_900, 4), (vec![123, 4567, 8900], 1, 0, 4));
        // -0.0500 at scale 4: one digit 500 at weight -1
        assert_eq!(parts(-500, 4), (vec![500], -1, 0x4000, 4));
        // 0.00001234 at scale 8: the first digit is the second after the point
        assert_eq!(parts(1234, 8), (vec![1234], -2, 0, 8));
        // zero keeps its display scale and has no digits
        assert_eq!(parts(0, 2), (vec![], 0, 0, 2));
        // 10000 at scale 0: digit 1 at weight 1, trailing zero digit implied
        assert_eq!(parts(10_000, 0), (vec![1], 1, 0, 0));
        // the largest 38-digit value
        let max = 10i128.pow(38) - 1;
        let (d, w, _, _) = parts(max, 4);
        assert_eq!((d.len(), w, d[0]), (10, 8, 99));
    }

    #[test]
    fn types_follow_the_sql_engine_shape() {
        let col = |kind, filter| ColumnSpec {
            name: "c".into(),
            property: "c".into(),
            json_key: "c".into(),
            role: d365_sql::ColumnRole::Value,
            kind,
            attribute_type: String::new(),
            filter,
            sortable: false,
        };
        assert_eq!(PgType::of(&col(ValueKind::Utf8, FilterKind::Guid)), PgType::Uuid);
        assert_eq!(PgType::of(&col(ValueKind::Utf8, FilterKind::Text)), PgType::Text);
        assert_eq!(PgType::of(&col(ValueKind::Decimal { scale: 4 }, FilterKind::Decimal)).sql(), "numeric(38,4)");
        assert_eq!(PgType::of(&col(ValueKind::Timestamp, FilterKind::Timestamp)).sql(), "timestamptz");
    }
}
