//! Fast, resumable export and incremental sync of Dataverse tables.
//!
//! - [`export()`]: a table (or a filtered, projected read of one) into an NDJSON or CSV file,
//!   read as a parallel partitioned scan ([`d365_client::PartitionedScan`]); a checkpoint
//!   beside the output makes a re-run resume after a crash, reading at most one page per
//!   partition again.
//! - [`sync()`]: keeps a copy of tables up to date with change tracking, in a local SQLite
//!   file, a PostgreSQL database or Delta Lake tables ([`Target`]; see [`sync`](mod@sync)).
//! - [`bench`](mod@bench): sequential paging against the parallel export, and the ceiling the service
//!   limits allow.
//! - [`scaleout`]: one export planned as work units, run by many workers (each with its own
//!   application user), committed to Delta Lake in one transaction per table.
//! - [`Reporter`]: live progress on a terminal.

pub mod bench;
pub mod checkpoint;
pub mod deleted;
pub mod delta;
pub mod destination;
mod error;
pub mod export;
mod export_key_ranges;
mod find_table;
pub mod format;
pub mod postgres;
pub mod progress;
pub mod remote;
pub mod scaleout;
pub mod store;
pub mod sync;
pub mod target;
pub mod text_encode;
pub mod typed;
pub mod writer;

pub use checkpoint::Checkpoint;
pub use delta::{DeltaLocation, DeltaTarget};
/// The `deltalake` crate this build writes Delta tables with (to read them back, say).
pub use deltalake_core as deltalake;
pub use destination::{Destination, local_path, parse_destination, parse_destination_with};
pub use error::SyncError;
pub use export::{ExportOptions, ExportSummary, export};
pub use format::Format;
pub use postgres::{PostgresTarget, PostgresUrl};
pub use progress::Reporter;
pub use remote::RemoteUrl;
pub use sync::{SyncKind, SyncOptions, SyncReport, TableSync, sync, sync_to};
pub use target::{Batch, Target, TargetTable};
