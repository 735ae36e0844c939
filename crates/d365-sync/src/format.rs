//! Output formats of an export. Part files are always NDJSON (one row a line, as the service
//! sent it less the `@odata.*` control annotations); the final file is assembled from them in
//! the format asked for: NDJSON as is, CSV with a header that is the union of every row's
//! columns in order of first appearance.

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, Write};
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::error::SyncError;

/// The format of an export's output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// One JSON object per line.
    #[default]
    Ndjson,
    /// Comma-separated values (RFC 4180), with a header line.
    Csv,
    /// Apache Parquet (not in this build yet).
    Parquet,
}

impl FromStr for Format {
    type Err = SyncError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => Ok(Self::Ndjson),
            "csv" => Ok(Self::Csv),
            "parquet" => Ok(Self::Parquet),
            other => Err(SyncError::InvalidArgument(format!("unknown format '{other}': use ndjson, csv or parquet"))),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ndjson => "ndjson",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        })
    }
}

/// Whether a key is an OData control annotation (`@odata.etag`, `@odata.context`, ...).
pub fn is_control(key: &str) -> bool {
    key.starts_with("@odata.")
}

/// Appends `row` as one NDJSON line to `out`, without control annotations.
pub fn write_ndjson_line(out: &mut Vec<u8>, row: &Map<String, Value>) {
    out.push(b'{');
    let mut first = true;
    for (k, v) in row {
        if is_control(k) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        // Serialising a string or a JSON value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, k);
        out.push(b':');
        let _ = serde_json::to_writer(&mut *out, v);
    }
    out.extend_from_slice(b"}\n");
}

/// The CSV text of one value: empty for null, text unquoted, other JSON as JSON.
fn csv_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Appends one CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(out: &mut Vec<u8>, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

/// Appends a CSV record.
pub fn write_csv_record<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = &'a str>) {
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_field(out, f);
    }
    out.extend_from_slice(b"\r\n");
}

/// The union of the columns of NDJSON `parts`, in order of first appearance.
pub fn csv_columns<R: BufRead>(parts: impl IntoIterator<Item = R>) -> Result<Vec<String>, String> {
    let mut seen = HashSet::new();
    let mut cols = Vec::new();
    for part in parts {
        for line in part.lines() {
            let line = line.map_err(|e| e.to_string())?;
            if line.is_empty() {
                continue;
            }
            let row: Map<String, Value> = serde_json::from_str(&line).map_err(|e| e.to_string())?;
            for k in row.keys() {
                if !seen.contains(k) {
                    seen.insert(k.clone());
                    cols.push(k.clone());
                }
            }
        }
    }
    Ok(cols)
}

/// Writes the rows of NDJSON `part` as CSV records of `columns` to `out`.
pub fn ndjson_to_csv<R: BufRead, W: Write>(part: R, columns: &[String], out: &mut W) -> Result<u64, String> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut n = 0;
    for line in part.lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line.is_empty() {
            continue;
        }
        let row: Map<String, Value> = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        let values: Vec<String> = columns.iter().map(|c| row.get(c).map(csv_value).unwrap_or_default()).collect();
        write_csv_record(&mut buf, values.iter().map(String::as_str));
        n += 1;
        if buf.len() > 60 * 1024 {
            out.write_all(&buf).map_err(|e| e.to_string())?;
            buf.clear();
        }
    }
    out.write_all(&buf).map_err(|e| e.to_string())?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ndjson_lines_drop_control_annotations() {
        let row = json!({"@odata.etag": "W/\"1\"", "name": "A \"B\"", "n": 1, "x@OData.Community.Display.V1.FormattedValue": "1"});
        let mut out = Vec::new();
        write_ndjson_line(&mut out, row.as_object().unwrap());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"name\":\"A \\\"B\\\"\",\"n\":1,\"x@OData.Community.Display.V1.FormattedValue\":\"1\"}\n"
        );
    }

    #[test]
    fn csv_has_the_union_of_columns_and_quotes_what_needs_it() {
        let a = "{\"id\":\"1\",\"name\":\"x, y\"}\n{\"id\":\"2\",\"n\":3.5}\n";
        let b = "{\"id\":\"3\",\"name\":\"say \\\"hi\\\"\\nbye\",\"flag\":true,\"n\":null}\n";
        let cols = csv_columns([a.as_bytes(), b.as_bytes()]).unwrap();
        assert_eq!(cols, vec!["id", "name", "n", "flag"]);
        let mut out = Vec::new();
        write_csv_record(&mut out, cols.iter().map(String::as_str));
        ndjson_to_csv(a.as_bytes(), &cols, &mut out).unwrap();
        ndjson_to_csv(b.as_bytes(), &cols, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id,name,n,flag\r\n1,\"x, y\",,\r\n2,,3.5,\r\n3,\"say \"\"hi\"\"\nbye\",,true\r\n"
        );
        assert_eq!("CSV".parse::<Format>().unwrap(), Format::Csv);
        assert!("xml".parse::<Format>().is_err());
    }
}
