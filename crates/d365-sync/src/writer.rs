//! The one writer layer of exports: typed Arrow batches into NDJSON, CSV or Parquet, used by
//! table exports (`d365 export TABLE`) and SQL results (`d365 query -o`, `d365 export
//! --query`) alike, so every file has the same types and the same encoding whatever produced
//! it.
//!
//! - NDJSON and CSV: encoded by [`crate::text_encode`] (every column, exact decimals, RFC 3339
//!   UTC timestamps; CSV per RFC 4180 with CRLF line ends and a header line even without rows).
//! - Parquet: zstd level 3, row groups closed at 128 Ki rows or [`PARQUET_ROW_GROUP_BYTES`] so
//!   memory stays flat whatever the row count.

use std::io::Write;

use d365_sql::datafusion::arrow::datatypes::SchemaRef;
use d365_sql::datafusion::arrow::record_batch::RecordBatch;
use d365_sql::datafusion::parquet::arrow::ArrowWriter;
use d365_sql::datafusion::parquet::file::properties::WriterProperties;

use crate::format::Format;
use crate::text_encode::{Text, TextEncoder};

/// Encoded bytes of a Parquet row group beyond which it is written out.
pub const PARQUET_ROW_GROUP_BYTES: usize = 16 << 20;

/// Parquet output: zstd (level 3), row groups of at most 128 Ki rows; small data and
/// dictionary pages (every column buffers one of each while encoding: with over a hundred
/// columns the 1 MB defaults alone could hold 200 MB).
pub fn parquet_properties() -> WriterProperties {
    use d365_sql::datafusion::parquet::basic::{Compression, ZstdLevel};
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_data_page_size_limit(256 * 1024)
        .set_dictionary_page_size_limit(256 * 1024)
        .build()
}

/// A failure to encode or write the output.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the {format} output: {message}")]
pub struct WriteError {
    /// The format being written.
    pub format: Format,
    /// What failed.
    pub message: String,
}

/// Writes batches of one schema into `W` in one format.
pub enum BatchWriter<W: Write + Send> {
    /// NDJSON or CSV.
    Text {
        /// The destination.
        out: W,
        /// The encoder.
        encoder: TextEncoder,
        /// Which of the two.
        format: Format,
        /// Encoded text not written yet.
        buf: Vec<u8>,
    },
    /// Parquet.
    Parquet(Box<ArrowWriter<W>>),
}

impl<W: Write + Send> BatchWriter<W> {
    /// A writer of `format` for batches of `schema` into `out`.
    pub fn new(format: Format, out: W, schema: SchemaRef) -> Result<Self, WriteError> {
        Self::with_csv_lf(format, out, schema, false)
    }

    /// The same; with `lf`, CSV lines end with LF alone (for a terminal or a Unix pipe).
    pub fn with_csv_lf(format: Format, out: W, schema: SchemaRef, lf: bool) -> Result<Self, WriteError> {
        let err = |e: &dyn std::fmt::Display| WriteError { format, message: e.to_string() };
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Ok(match format {
            Format::Ndjson | Format::Csv => {
                let text = if format == Format::Csv { Text::Csv } else { Text::Ndjson };
                let mut buf = Vec::with_capacity(1 << 16);
                let mut encoder = TextEncoder::new(text, &names);
                if lf {
                    encoder = encoder.with_lf();
                }
                if text == Text::Csv {
                    // The header even when no row follows.
                    encoder.csv_header(&names, &mut buf);
                }
                Self::Text { out, encoder, format, buf }
            }
            Format::Parquet => Self::Parquet(Box::new(
                ArrowWriter::try_new(out, schema, Some(parquet_properties())).map_err(|e| err(&e))?,
            )),
            Format::Delta | Format::Postgres => {
                return Err(err(&"a table is not one file: export a table to a delta+… location \
                                 (d365 export TABLE --format delta -o DIR) or a postgresql:// URL"));
            }
        })
    }

    fn format(&self) -> Format {
        match self {
            Self::Text { format, .. } => *format,
            Self::Parquet(_) => Format::Parquet,
        }
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), WriteError> {
        let format = self.format();
        let err = |e: &dyn std::fmt::Display| WriteError { format, message: e.to_string() };
        match self {
            Self::Text { out, encoder, buf, .. } => {
                encoder.encode(batch, buf).map_err(|e| err(&e))?;
                out.write_all(buf).map_err(|e| err(&e))?;
                buf.clear();
                Ok(())
            }
            Self::Parquet(w) => {
                w.write(batch).map_err(|e| err(&e))?;
                // A row group is held in memory until written: close it early when it grows.
                if w.in_progress_size() >= PARQUET_ROW_GROUP_BYTES {
                    w.flush().map_err(|e| err(&e))?;
                }
                Ok(())
            }
        }
    }

    /// Ends the output (the Parquet footer) and hands back the destination.
    pub fn finish(self) -> Result<W, WriteError> {
        let format = self.format();
        let err = |e: &dyn std::fmt::Display| WriteError { format, message: e.to_string() };
        match self {
            Self::Text { mut out, buf, .. } => {
                out.write_all(&buf).map_err(|e| err(&e))?;
                Ok(out)
            }
            Self::Parquet(w) => w.into_inner().map_err(|e| err(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use d365_sql::datafusion::arrow::array::{Decimal128Array, StringArray};
    use d365_sql::datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("revenue", DataType::Decimal128(38, 4), true),
        ]));
        let names = StringArray::from(vec![Some("A, \"quoted\""), None]);
        let revenue = Decimal128Array::from(vec![Some(12_345_678_901_234_567_i128), None])
            .with_precision_and_scale(38, 4)
            .unwrap();
        RecordBatch::try_new(schema, vec![Arc::new(names), Arc::new(revenue)]).unwrap()
    }

    fn written(format: Format, batches: &[RecordBatch]) -> Vec<u8> {
        let schema = batch().schema();
        let mut w = BatchWriter::new(format, Vec::new(), schema).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn ndjson_keeps_every_column_and_exact_decimals() {
        let text = String::from_utf8(written(Format::Ndjson, &[batch()])).unwrap();
        assert_eq!(
            text,
            "{\"name\":\"A, \\\"quoted\\\"\",\"revenue\":1234567890123.4567}\n{\"name\":null,\"revenue\":null}\n"
        );
    }

    #[test]
    fn csv_is_rfc4180_with_a_header_even_without_rows() {
        let text = String::from_utf8(written(Format::Csv, &[batch()])).unwrap();
        assert_eq!(text, "name,revenue\r\n\"A, \"\"quoted\"\"\",1234567890123.4567\r\n,\r\n");
        assert_eq!(String::from_utf8(written(Format::Csv, &[])).unwrap(), "name,revenue\r\n");
    }

    #[test]
    fn parquet_is_a_parquet_file() {
        let bytes = written(Format::Parquet, &[batch()]);
        assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
    }
}
