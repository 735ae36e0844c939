//! Delta Lake tables (`deltalake` 1.x), local or on an object store, as an export destination
//! and a sync target.
//!
//! A Delta destination is written `delta+<location>`: `delta+file:///data/lake`,
//! `delta:./lake` (a relative local path), `delta+s3://bucket/lake`, `delta+abfss://fs@acct.dfs.core.windows.net/lake`,
//! `delta+az://container/lake`, `delta+gs://bucket/lake`. A sync writes one table per Dataverse
//! table under it (`…/lake/account`); an export writes the table at the location itself.
//! Object-store credentials come from the same environment variables as other object-store
//! destinations (`AWS_*`, `AZURE_STORAGE_*`, `GOOGLE_*`).
//!
//! - [`DeltaTarget`]: the sync [`Target`](crate::Target). A full load writes Parquet data
//!   files as the pages arrive and adds them in **one commit** that also removes the previous
//!   files; changes are buffered and **merged** (`MERGE` on the primary key, never over a newer
//!   `versionnumber`, deletes applied or stamped in `_d365_deleted`). The sync state (delta
//!   link or watermark) is written into the same commit's `commitInfo`, so the data and the
//!   state advance together: a run killed at any point leaves the last commit, whole.
//! - Exports (`d365 export TABLE -o delta+…`) write the table's rows in one overwrite commit.

mod changes;
mod location;
mod target;
mod write;

pub use location::DeltaLocation;
pub use target::DeltaTarget;
pub(crate) use target::{STATE_KEY, parse_state, state_json};
pub use write::TableWriter;
pub(crate) use write::{commit_files, data_writer};

use crate::error::SyncError;

/// The column of a soft-deleted row's deletion time (null while the row exists).
pub const DELETED_COLUMN: &str = crate::postgres::DELETED_COLUMN;

/// A `deltalake` failure at `target`, as a [`SyncError`].
pub(crate) fn error(target: &impl std::fmt::Display, e: impl std::fmt::Display) -> SyncError {
    SyncError::Delta { target: target.to_string(), message: e.to_string() }
}

/// Now, in microseconds since the Unix epoch (soft-delete stamps).
pub(crate) fn now_micros() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}
