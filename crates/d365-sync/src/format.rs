//! Output formats of an export (written by [`crate::writer`]).

use std::fmt;
use std::str::FromStr;

use crate::error::SyncError;

/// The format of an export's output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// One JSON object per line.
    #[default]
    Ndjson,
    /// Comma-separated values (RFC 4180), with a header line.
    Csv,
    /// Apache Parquet (zstd).
    Parquet,
    /// A Delta Lake table (a directory or object-store prefix; see [`crate::delta`]).
    Delta,
    /// A PostgreSQL table (a `postgresql://` output; implied by the URL, never parsed).
    Postgres,
}

impl FromStr for Format {
    type Err = SyncError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => Ok(Self::Ndjson),
            "csv" => Ok(Self::Csv),
            "parquet" => Ok(Self::Parquet),
            "delta" => Ok(Self::Delta),
            other => {
                Err(SyncError::InvalidArgument(format!("unknown format '{other}': use ndjson, csv, parquet or delta")))
            }
        }
    }
}

impl Format {
    /// The format a file name implies (`.parquet`, `.csv`, `.ndjson`/`.jsonl`/`.json`), if any.
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        path.extension().and_then(|e| e.to_str()).and_then(|e| e.parse().ok()).filter(|f| *f != Self::Delta)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ndjson => "ndjson",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
            Self::Delta => "delta",
            Self::Postgres => "postgresql",
        })
    }
}
