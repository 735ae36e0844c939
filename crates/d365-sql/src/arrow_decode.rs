//! One Web API page (`{"value": [{...}, ...], "@odata.nextLink": ...}`) → one Arrow
//! [`RecordBatch`], in a single pass over the bytes.
//!
//! The body is walked with a small JSON scanner
//! ([`crate::json_scan`]): each key of a row is matched against the projected columns' JSON
//! keys (`name`, `_parentaccountid_value`,
//! `statecode@OData.Community.Display.V1.FormattedValue`, ...) and the value is appended
//! straight into the Arrow builder of its column — no `serde_json::Value`, no per-row map.
//! Rows of a page repeat their keys in the same order, so each key remembers the keys that
//! followed it (two of them: rows with and without a lookup's annotations alternate), and the
//! text after a key is first compared with those raw keys (quote to colon, an inline word
//! comparison, no scanning); a key is only scanned and looked up in an FxHash map when the
//! prediction fails. Keys not projected (`@odata.etag`, unrequested annotations) are
//! skipped without being copied; strings are copied once, from the page into the builder.
//! Decimal and Money values are read from their JSON text, never through `f64`, so they stay
//! exact. Missing keys and `null` become Arrow nulls.
//!
//! `benches/decode.rs` compares this with two alternatives on the same pages: serde's
//! streaming visitors into the same builders (`serde_decode`, the first version) and
//! arrow-json's `Decoder` fed with parsed rows; this one is the fastest.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int32Builder,
    Int64Builder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::arrow_schema::{ColumnSpec, ValueKind};
use crate::error::SqlError;
use crate::json_scan::{ScanError, Scanner, Token};
use crate::text_builder::TextBuilder;
use crate::values::{
    decimal_bytes, parse_date_days, parse_decimal, parse_timestamp_micros, plain_int, timestamp_micros,
};

/// FxHash (rustc's hasher): fast for short keys; the keys are column names, not attacker
/// controlled in any way that matters (a collision only costs time).
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Decodes pages of one query into batches of a fixed schema (the projected columns).
#[derive(Debug, Clone)]
pub struct PageDecoder {
    schema: SchemaRef,
    kinds: Vec<ValueKind>,
    names: Vec<String>,
    keys: FxMap<Box<str>, usize>,
    entity_set: String,
    /// Mean bytes per value of each text column in the last page decoded (shared by clones),
    /// so the next page's buffers are sized once instead of grown by copying.
    text_sizes: Arc<[AtomicUsize]>,
}

/// What [`PageDecoder`] remembers from row to row of a page: every key met so far, with the
/// keys that followed it, so the next key is predicted and checked with one comparison.
struct RowState<'a> {
    /// The keys of this page; entry 0 stands for the start of a row.
    keys: Vec<KeyEntry<'a>>,
    /// The page's keys by name (only for keys met without a correct prediction).
    by_name: FxMap<&'a str, usize>,
    /// The last row each column received a value in (`usize::MAX`: none yet).
    filled: Vec<usize>,
}

/// One key of a page.
struct KeyEntry<'a> {
    /// Its raw text, from the opening quote through the colon.
    raw: &'a [u8],
    /// Its column, if it is projected.
    slot: Option<usize>,
    /// The key that followed it last, and the one before that (rows with and without a
    /// lookup's annotations alternate between two successors): entries of `keys`, or `NONE`.
    next: [usize; 2],
}

/// No key.
const NONE: usize = usize::MAX;

impl<'a> RowState<'a> {
    fn new(columns: usize) -> Self {
        let start = KeyEntry { raw: b"", slot: None, next: [NONE; 2] };
        Self { keys: vec![start], by_name: FxMap::default(), filled: vec![usize::MAX; columns] }
    }
}

impl PageDecoder {
    /// A decoder producing `schema`, whose fields are `columns` in order.
    pub fn new(schema: SchemaRef, columns: &[&ColumnSpec], entity_set: &str) -> Self {
        let mut keys = FxMap::default();
        for (i, c) in columns.iter().enumerate() {
            keys.entry(c.json_key.clone().into_boxed_str()).or_insert(i);
        }
        Self {
            schema,
            kinds: columns.iter().map(|c| c.kind).collect(),
            names: columns.iter().map(|c| c.name.clone()).collect(),
            keys,
            entity_set: entity_set.to_string(),
            text_sizes: columns.iter().map(|_| AtomicUsize::new(16)).collect(),
        }
    }

    /// The schema of the batches.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Decodes the first `max_rows` rows of the page `body` (`rows_hint`: how many rows it
    /// holds, for pre-sizing the builders).
    pub fn decode(&self, body: &[u8], max_rows: usize, rows_hint: usize) -> Result<RecordBatch, SqlError> {
        Ok(self.decode_page(body, max_rows, rows_hint)?.0)
    }

    /// The same, with the page's `@odata.nextLink`.
    pub fn decode_page(
        &self,
        body: &[u8],
        max_rows: usize,
        rows_hint: usize,
    ) -> Result<(RecordBatch, Option<String>), SqlError> {
        let mut builders = self.builders(rows_hint.min(max_rows));
        let mut next_link = None;
        let rows = self
            .page(&mut Scanner::checked(body), &mut builders, max_rows, &mut next_link)
            .map_err(|e| self.error(e.to_string()))?;
        Ok((self.finish(builders, rows)?, next_link))
    }

    /// The same with the serde-visitor decoder (`serde_decode`), for the benchmark.
    #[doc(hidden)]
    pub fn decode_with_serde(&self, body: &[u8], max_rows: usize, rows_hint: usize) -> Result<RecordBatch, SqlError> {
        let mut builders = self.builders(rows_hint.min(max_rows));
        let rows = crate::serde_decode::decode_rows(self, body, &mut builders, max_rows)
            .map_err(|e| self.error(e.to_string()))?;
        self.finish(builders, rows)
    }

    fn builders(&self, cap: usize) -> Vec<Builder> {
        let sizes = self.text_sizes.iter().map(|s| s.load(Ordering::Relaxed));
        self.kinds.iter().zip(sizes).map(|(k, size)| Builder::new(*k, cap, size)).collect()
    }

    fn finish(&self, builders: Vec<Builder>, rows: usize) -> Result<RecordBatch, SqlError> {
        for (b, size) in builders.iter().zip(self.text_sizes.iter()) {
            if let Builder::Utf8(b) = b
                && let Some(mean) = b.value_bytes().checked_div(rows)
            {
                // A tenth more than the mean, so a page like the last one fits at once.
                size.store(mean + mean / 10 + 1, Ordering::Relaxed);
            }
        }
        let arrays = builders
            .into_iter()
            .zip(&self.names)
            .map(|(b, name)| b.finish().map_err(|e| self.error(format!("column {name}: {e}"))))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options).map_err(|e| self.error(e.to_string()))
    }

    pub(crate) fn slot_of(&self, key: &str) -> Option<usize> {
        self.keys.get(key).copied()
    }

    pub(crate) fn name_of(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The envelope: finds `value`, skips everything else.
    fn page<'a>(
        &self,
        s: &mut Scanner<'a>,
        builders: &mut [Builder],
        max_rows: usize,
        next_link: &mut Option<String>,
    ) -> Result<usize, ScanError> {
        let mut rows = None;
        if s.open(b'{', b'}')? {
            loop {
                let key = s.key()?;
                if key == "value" && rows.is_none() {
                    rows = Some(self.rows(s, builders, max_rows)?);
                } else if key == "@odata.nextLink" {
                    *next_link = match s.token()? {
                        Token::Str(link) => Some(link.into_owned()),
                        Token::Null => None,
                        _ => return Err(s.error("@odata.nextLink is not a string")),
                    };
                } else {
                    s.skip_value()?;
                }
                if !s.more(b'}')? {
                    break;
                }
            }
        }
        if !s.at_end() {
            return Err(s.error("unexpected characters after the page"));
        }
        rows.ok_or_else(|| s.error("the page has no \"value\" array"))
    }

    /// The `value` array.
    fn rows<'a>(&self, s: &mut Scanner<'a>, builders: &mut [Builder], max_rows: usize) -> Result<usize, ScanError> {
        let mut n = 0usize;
        let mut state = RowState::new(builders.len());
        if !s.open(b'[', b']')? {
            return Ok(0);
        }
        loop {
            if n < max_rows {
                self.row(s, builders, n, &mut state)?;
                for (b, filled) in builders.iter_mut().zip(&state.filled) {
                    if *filled != n {
                        b.append_null();
                    }
                }
                n += 1;
            } else {
                s.skip_value()?;
            }
            if !s.more(b']')? {
                break;
            }
        }
        Ok(n)
    }

    /// One row object.
    fn row<'a>(
        &self,
        s: &mut Scanner<'a>,
        builders: &mut [Builder],
        row: usize,
        state: &mut RowState<'a>,
    ) -> Result<(), ScanError> {
        if !s.open(b'{', b'}')? {
            return Ok(());
        }
        let mut prev = 0usize;
        loop {
            match self.slot(s, &mut prev, state)? {
                // A repeated key keeps its first value.
                Some(i) if state.filled[i] != row => {
                    if let Err(m) = builders[i].read(s)? {
                        return Err(s.error(format!("column {}: {m}", self.names[i])));
                    }
                    state.filled[i] = row;
                }
                _ if s.peek() == Some(b'"') => s.skip_string()?,
                _ => s.skip_value()?,
            }
            if !s.more(b'}')? {
                return Ok(());
            }
        }
    }

    /// Reads the next key (and its colon) and returns its column. The keys that followed the
    /// previous key (`prev`) before are tried first, as raw text; otherwise the key is scanned,
    /// found by name, and becomes the first prediction after `prev`.
    #[inline]
    fn slot<'a>(
        &self,
        s: &mut Scanner<'a>,
        prev: &mut usize,
        state: &mut RowState<'a>,
    ) -> Result<Option<usize>, ScanError> {
        s.ws();
        let next = state.keys[*prev].next;
        for k in next {
            if let Some(entry) = state.keys.get(k)
                && s.eat(entry.raw)
            {
                *prev = k;
                return Ok(entry.slot);
            }
        }
        let (key, raw) = s.key_raw()?;
        let slot = self.keys.get(key.as_ref()).copied();
        let Cow::Borrowed(name) = key else {
            // An escaped key (never seen in practice): not remembered.
            return Ok(slot);
        };
        let k = match state.by_name.get(name) {
            Some(&k) => k,
            None => {
                state.keys.push(KeyEntry { raw, slot, next: [NONE; 2] });
                state.by_name.insert(name, state.keys.len() - 1);
                state.keys.len() - 1
            }
        };
        let entry = &mut state.keys[*prev];
        entry.next = [k, entry.next[0]];
        *prev = k;
        Ok(slot)
    }

    fn error(&self, message: String) -> SqlError {
        SqlError::Decode { entity_set: self.entity_set.clone(), message }
    }
}

/// One column's builder.
pub(crate) enum Builder {
    Utf8(TextBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Decimal(Decimal128Builder, u8),
    Timestamp(TimestampMicrosecondBuilder),
    Date32(Date32Builder),
}

impl Builder {
    /// A builder for `cap` values (text: of about `text_size` bytes each).
    fn new(kind: ValueKind, cap: usize, text_size: usize) -> Self {
        match kind {
            ValueKind::Utf8 => Builder::Utf8(TextBuilder::with_capacity(cap, cap.saturating_mul(text_size))),
            ValueKind::Int32 => Builder::Int32(Int32Builder::with_capacity(cap)),
            ValueKind::Int64 => Builder::Int64(Int64Builder::with_capacity(cap)),
            ValueKind::Float64 => Builder::Float64(Float64Builder::with_capacity(cap)),
            ValueKind::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(cap)),
            ValueKind::Decimal { scale } => Builder::Decimal(
                Decimal128Builder::with_capacity(cap).with_data_type(kind.data_type()),
                u8::try_from(scale).unwrap_or(0),
            ),
            ValueKind::Timestamp => {
                Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(cap).with_data_type(kind.data_type()))
            }
            ValueKind::Date32 => Builder::Date32(Date32Builder::with_capacity(cap)),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Builder::Utf8(b) => b.len(),
            Builder::Int32(b) => b.len(),
            Builder::Int64(b) => b.len(),
            Builder::Float64(b) => b.len(),
            Builder::Boolean(b) => b.len(),
            Builder::Decimal(b, _) => b.len(),
            Builder::Timestamp(b) => b.len(),
            Builder::Date32(b) => b.len(),
        }
    }

    #[inline(always)]
    pub(crate) fn append_null(&mut self) {
        match self {
            Builder::Utf8(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Boolean(b) => b.append_null(),
            Builder::Decimal(b, _) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Date32(b) => b.append_null(),
        }
    }

    fn finish(self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Builder::Utf8(b) => b.finish()?,
            Builder::Int32(mut b) => Arc::new(b.finish()),
            Builder::Int64(mut b) => Arc::new(b.finish()),
            Builder::Float64(mut b) => Arc::new(b.finish()),
            Builder::Boolean(mut b) => Arc::new(b.finish()),
            Builder::Decimal(mut b, _) => Arc::new(b.finish()),
            Builder::Timestamp(mut b) => Arc::new(b.finish()),
            Builder::Date32(mut b) => Arc::new(b.finish()),
        })
    }
}

impl Builder {
    /// Reads the next value and appends it: the usual shape of each kind (a string for text
    /// and instants, a number for numbers) straight into the builder, anything else through
    /// [`Builder::append`]. The outer error is a malformed page, the inner one a value that
    /// does not fit the column.
    #[inline]
    fn read(&mut self, s: &mut Scanner<'_>) -> Result<Result<(), String>, ScanError> {
        let first = s.peek();
        if first == Some(b'n') && s.eat(b"null") {
            self.append_null();
            return Ok(Ok(()));
        }
        let number = matches!(first, Some(b'-' | b'0'..=b'9'));
        match self {
            Builder::Utf8(b) if first == Some(b'"') => match s.plain_span()? {
                Some((start, end)) => b.append_slice_of(s.bytes(), start, end),
                None => b.append_value(s.unescaped()?),
            },
            Builder::Int32(b) if number => {
                let n = s.number_bytes();
                match int_bytes(n).map(i32::try_from) {
                    Ok(Ok(v)) => b.append_value(v),
                    _ => return Ok(Err(format!("'{}' is not a 32-bit integer", String::from_utf8_lossy(n)))),
                }
            }
            Builder::Int64(b) if number => match int_bytes(s.number_bytes()) {
                Ok(v) => b.append_value(v),
                Err(e) => return Ok(Err(e)),
            },
            Builder::Float64(b) if number => {
                let n = s.number();
                match n.parse() {
                    Ok(v) => b.append_value(v),
                    Err(_) => return Ok(Err(format!("'{n}' is not a number"))),
                }
            }
            Builder::Decimal(b, scale) if number => {
                let n = s.number_bytes();
                match decimal_bytes(n, *scale) {
                    Some(v) => b.append_value(v),
                    None => return Ok(Err(format!("'{}' is not a decimal number", String::from_utf8_lossy(n)))),
                }
            }
            Builder::Timestamp(b) if first == Some(b'"') => {
                let at = s.position();
                let value = match s.plain_span()? {
                    Some((start, end)) => timestamp_micros(&s.bytes()[start..end]),
                    None => parse_timestamp_micros(&s.string()?),
                };
                match value {
                    Some(v) => b.append_value(v),
                    None => {
                        let quoted = s.bytes().get(at + 1..s.position().saturating_sub(1)).unwrap_or_default();
                        return Ok(Err(format!("'{}' is not a date and time", String::from_utf8_lossy(quoted))));
                    }
                }
            }
            b => return Ok(b.append(s.token()?)),
        }
        Ok(Ok(()))
    }

    /// Appends one JSON token (numbers and booleans may also arrive as strings).
    #[inline]
    fn append(&mut self, t: Token<'_>) -> Result<(), String> {
        let bad = |t: &Token<'_>| format!("unexpected value {t:?}");
        match (self, t) {
            (b, Token::Null) => b.append_null(),
            (Builder::Utf8(b), Token::Str(s)) => b.append_value(s),
            (Builder::Utf8(b), Token::Number(n)) => b.append_value(n),
            (Builder::Utf8(b), Token::Bool(v)) => b.append_value(if v { "true" } else { "false" }),
            (Builder::Int32(b), Token::Number(n)) => {
                b.append_value(int(n)?.try_into().map_err(|_| bad(&Token::Number(n)))?)
            }
            (Builder::Int32(b), Token::Str(s)) => {
                b.append_value(s.trim().parse().map_err(|_| format!("'{s}' is not an integer"))?)
            }
            (Builder::Int64(b), Token::Number(n)) => b.append_value(int(n)?),
            (Builder::Int64(b), Token::Str(s)) => {
                b.append_value(s.trim().parse().map_err(|_| format!("'{s}' is not an integer"))?)
            }
            (Builder::Float64(b), Token::Number(n)) => {
                b.append_value(n.parse().map_err(|_| format!("'{n}' is not a number"))?)
            }
            (Builder::Float64(b), Token::Str(s)) => {
                b.append_value(s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?)
            }
            (Builder::Boolean(b), Token::Bool(v)) => b.append_value(v),
            (Builder::Boolean(b), Token::Str(s)) if s == "true" || s == "false" => b.append_value(s == "true"),
            (Builder::Decimal(b, scale), Token::Number(n)) => {
                b.append_value(parse_decimal(n, *scale).ok_or_else(|| format!("'{n}' is not a decimal number"))?)
            }
            (Builder::Decimal(b, scale), Token::Str(s)) => {
                b.append_value(parse_decimal(&s, *scale).ok_or_else(|| format!("'{s}' is not a decimal number"))?)
            }
            (Builder::Timestamp(b), Token::Str(s)) => {
                b.append_value(parse_timestamp_micros(&s).ok_or_else(|| format!("'{s}' is not a date and time"))?)
            }
            (Builder::Date32(b), Token::Str(s)) => {
                b.append_value(parse_date_days(&s).ok_or_else(|| format!("'{s}' is not a date"))?)
            }
            (_, t) => return Err(bad(&t)),
        }
        Ok(())
    }
}

/// An integer token (`12`, or `12.0` as some services write whole numbers).
#[inline]
fn int(n: &str) -> Result<i64, String> {
    n.parse::<i64>().or_else(|_| match n.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(f as i64),
        _ => Err(format!("'{n}' is not an integer")),
    })
}

/// [`int`] of a number token's bytes, with a one-pass path for plain integers.
#[inline]
fn int_bytes(n: &[u8]) -> Result<i64, String> {
    plain_int(n).map_or_else(|| int(&String::from_utf8_lossy(n)), Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrow_schema::{ColumnRole, FilterKind};
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    fn spec(name: &str, key: &str, kind: ValueKind) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            property: key.split('@').next().unwrap_or(key).into(),
            json_key: key.into(),
            role: ColumnRole::Value,
            kind,
            attribute_type: String::new(),
            filter: FilterKind::None,
            sortable: false,
        }
    }

    /// A decoder of `cols`, each a nullable field named after the column.
    fn decoder(cols: &[ColumnSpec]) -> PageDecoder {
        let refs: Vec<&ColumnSpec> = cols.iter().collect();
        let schema = Arc::new(Schema::new(
            cols.iter().map(|c| Field::new(&c.name, c.kind.data_type(), true)).collect::<Vec<_>>(),
        ));
        PageDecoder::new(schema, &refs, "things")
    }

    #[test]
    fn decodes_every_kind_nulls_and_annotations() {
        let cols = [
            spec("name", "name", ValueKind::Utf8),
            spec("n", "n", ValueKind::Int32),
            spec("big", "big", ValueKind::Int64),
            spec("d", "d", ValueKind::Float64),
            spec("b", "b", ValueKind::Boolean),
            spec("m", "m", ValueKind::Decimal { scale: 4 }),
            spec("t", "t", ValueKind::Timestamp),
            spec("day", "day", ValueKind::Date32),
            spec("pname", "_p_value@OData.Community.Display.V1.FormattedValue", ValueKind::Utf8),
        ];
        let dec = decoder(&cols);
        let body = br#"{"@odata.context":"x","value":[
            {"@odata.etag":"W/\"1\"","name":"A \"q\" \u00e9","n":-5,"big":9007199254740993,"d":1.5,"b":true,
             "m":12345678901234.1234,"t":"2024-02-29T23:59:59Z","day":"2024-02-29",
             "_p_value@OData.Community.Display.V1.FormattedValue":"Parent","_p_value":"x","extra":{"a":[1,2]}},
            {"name":null,"n":7},
            {"name":"third"}
        ],"@odata.nextLink":"next"}"#;
        let batch = dec.decode(body, usize::MAX, 3).unwrap();
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.column(0).as_string::<i32>().value(0), "A \"q\" é");
        assert!(batch.column(0).is_null(1));
        assert_eq!(batch.column(1).as_primitive::<datafusion::arrow::datatypes::Int32Type>().value(1), 7);
        assert_eq!(
            batch.column(2).as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(0),
            9_007_199_254_740_993
        );
        assert_eq!(
            batch.column(5).as_primitive::<datafusion::arrow::datatypes::Decimal128Type>().value(0),
            123_456_789_012_341_234
        );
        let t = batch.column(6).as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>().value(0);
        assert_eq!(t, 1_709_251_199_000_000);
        assert_eq!(batch.column(7).as_primitive::<datafusion::arrow::datatypes::Date32Type>().value(0), 19_782);
        assert_eq!(batch.column(8).as_string::<i32>().value(0), "Parent");
        assert!(batch.column(8).is_null(2));
        // The serde decoder agrees.
        assert_eq!(dec.decode_with_serde(body, usize::MAX, 3).unwrap(), batch);
        // A limit inside the page.
        assert_eq!(dec.decode(body, 2, 3).unwrap().num_rows(), 2);
        // Errors name the column.
        let err = dec.decode(br#"{"value":[{"n":"x"}]}"#, 10, 1).unwrap_err().to_string();
        assert!(err.contains("column n"), "{err}");
        assert!(dec.decode(br#"{"nope":1}"#, 10, 1).is_err());
        let err = dec.decode(br#"{"value":[{"t":"2024-13-01T00:00:00Z"}]}"#, 10, 1).unwrap_err().to_string();
        assert!(err.contains("column t: '2024-13-01T00:00:00Z' is not a date and time"), "{err}");
        // Bytes that are not UTF-8: in a text value, refused naming the column; in a skipped
        // value, harmless.
        let err = dec.decode(b"{\"value\":[{\"name\":\"a\xffb\"}]}", 10, 1).unwrap_err().to_string();
        assert!(err.contains("column name") && err.contains("UTF-8"), "{err}");
        let ok = dec.decode(b"{\"value\":[{\"skipped\":\"a\xffb\",\"name\":\"x\"}]}", 10, 1).unwrap();
        assert_eq!(ok.column(0).as_string::<i32>().value(0), "x");
    }

    #[test]
    fn rows_with_changing_keys_agree_with_serde() {
        // Rows drop, add, repeat and reorder keys (lookup annotations come and go): the key
        // predictions must never attach a value to the wrong column.
        let cols = [
            spec("name", "name", ValueKind::Utf8),
            spec("n", "n", ValueKind::Int32),
            spec("p", "_p_value", ValueKind::Utf8),
            spec("pname", "_p_value@OData.Community.Display.V1.FormattedValue", ValueKind::Utf8),
            spec("ptype", "_p_value@Microsoft.Dynamics.CRM.lookuplogicalname", ValueKind::Utf8),
            spec("m", "m", ValueKind::Decimal { scale: 2 }),
        ];
        let dec = decoder(&cols);
        let pairs = [
            r#""@odata.etag":"W/\"1\"""#,
            r#""name":"a""#,
            r#""n":1"#,
            r#""_p_value@OData.Community.Display.V1.FormattedValue":"P""#,
            r#""_p_value@Microsoft.Dynamics.CRM.lookuplogicalname":"account""#,
            r#""_p_value":"x""#,
            r#""m@OData.Community.Display.V1.FormattedValue":"$1.50""#,
            r#""m":1.5"#,
            r#""extra":[1,{"a":"b"}]"#,
        ];
        let mut seed = 11u64;
        let mut rows = Vec::new();
        for r in 0..400 {
            let mut keys: Vec<&str> = pairs
                .iter()
                .filter(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    !(seed >> 33).is_multiple_of(4)
                })
                .copied()
                .collect();
            if r % 7 == 0 && keys.len() > 2 {
                keys.swap(0, 2);
            }
            if r % 11 == 0 && !keys.is_empty() {
                keys.push(keys[0]);
            }
            rows.push(format!("{{{}}}", keys.join(",")));
        }
        let body = format!(r#"{{"value":[{}]}}"#, rows.join(","));
        let ours = dec.decode(body.as_bytes(), usize::MAX, rows.len()).unwrap();
        assert_eq!(ours.num_rows(), 400);
        assert_eq!(ours, dec.decode_with_serde(body.as_bytes(), usize::MAX, rows.len()).unwrap());
        assert!(ours.column(3).null_count() > 0 && ours.column(3).null_count() < 400);
    }

    #[test]
    fn empty_projection_counts_rows() {
        let dec = PageDecoder::new(Arc::new(Schema::empty()), &[], "things");
        let batch = dec.decode(br#"{"value":[{"a":1},{"a":2}]}"#, usize::MAX, 2).unwrap();
        assert_eq!(batch.num_rows(), 2);
    }
}
