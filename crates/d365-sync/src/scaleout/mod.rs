//! Scale-out: one export split into **work units** run by many workers, each with its own
//! application user (Dataverse's service protection limits are per user), then **one commit**.
//!
//! ```text
//!  d365 plan account contact --to delta+s3://lake/crm -o s3://lake/plans/p1.jsonl --credentials 3
//!        │  per table: change-tracking token first, then createdon ranges of ~200k rows
//!        ▼
//!  manifest (JSON lines) ──► worker 0/3 (app user A) ─┐  Parquet files + completion marker
//!                       ├──► worker 1/3 (app user B) ─┼─► per unit, under each Delta table
//!                       └──► worker 2/3 (app user C) ─┘
//!        ▼
//!  d365 commit p1.jsonl      one Delta commit per table: every unit's files + the sync position
//!        ▼
//!  d365 sync account --to delta+s3://lake/crm      changes since the plan's token
//! ```
//!
//! - [`plan()`](plan::plan) ([`manifest`]): tables cut into units (`createdon` ranges; key ranges
//!   of Finance & Operations entities), the position to sync from;
//! - [`run_units`] ([`worker`]): a worker's share (`--shard i/N`) or named units;
//! - [`commit()`](commit::commit): checks every unit is complete, then commits;
//! - [`read_unit`]: one unit's rows as Arrow batches (Spark, Ray, Dask tasks).

pub mod commit;
pub mod manifest;
pub mod plan;
mod plan_keys;
pub mod worker;

pub use commit::{CommitOptions, CommitReport, TableCommit, commit};
pub use manifest::{Manifest, ManifestTable, Shard, TableSnapshot, TrackingLine, Unit};
pub use plan::{PlanOptions, plan};
pub use worker::{UnitReport, WorkerOptions, WorkerReport, read_unit, run_units};

/// Directory of the units' data files, under each table.
pub(crate) const DATA_DIR: &str = "d365-units";
/// Directory of the units' completion markers, under each table.
pub(crate) const MARKER_DIR: &str = "_d365/units";

/// Now, as RFC 3339 in UTC (whole seconds): when a plan was made, a unit finished.
pub(crate) fn now_text() -> String {
    d365_client::partition::format_instant(time::OffsetDateTime::now_utc().unix_timestamp())
}
