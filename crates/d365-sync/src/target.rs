//! Where a sync lands: the [`Target`] trait every store implements (the local SQLite copy,
//! PostgreSQL, Delta Lake), each decoding the page bodies into typed Arrow batches through
//! [`TargetTable::decode`], so the sync itself — full loads, change-tracking deltas, watermarks, token
//! handling — is written once.
//!
//! A target keeps, per table, the rows and the [`TableState`] (delta link or watermark), and
//! must advance the state **in the same transaction** as the data it belongs to, so a run
//! killed at any point and re-run ends in exactly the source's rows.

use std::sync::Arc;

use async_trait::async_trait;
use d365_sql::TableSchema;
use d365_sql::datafusion::arrow::record_batch::RecordBatch;

use crate::error::SyncError;
use crate::store::TableState;
use crate::typed::TypedReader;

/// A Dataverse table being synced.
#[derive(Debug, Clone)]
pub struct TargetTable {
    /// Logical name: the table's name in the target.
    pub logical: String,
    /// Entity set name (URLs).
    pub set: String,
    /// Primary key column.
    pub pk: String,
    /// The SQL columns that identify a row (`[pk]`, or a Finance & Operations entity's key
    /// fields): the target's primary key.
    pub key: Vec<String>,
    /// The typed shape of the table, as the SQL engine sees it (column types, choice labels,
    /// lookup names).
    pub schema: Arc<TableSchema>,
    reader: Arc<TypedReader>,
}

impl TargetTable {
    /// A table of `schema` (its logical name, entity set and primary key come from it).
    pub fn new(schema: TableSchema) -> Self {
        let reader = TypedReader::new(schema);
        Self {
            logical: reader.schema.entity.logical_name.clone(),
            set: reader.schema.entity_set.clone(),
            pk: reader.schema.primary_key.clone(),
            key: reader.schema.key_columns(),
            schema: reader.schema.clone(),
            reader: Arc::new(reader),
        }
    }

    /// The typed reader of every column.
    pub fn reader(&self) -> &TypedReader {
        &self.reader
    }

    /// The rows of `batch` to apply, typed: its body decoded, the skipped positions left out.
    pub fn decode(&self, batch: &Batch<'_>) -> Result<RecordBatch, SyncError> {
        self.reader.decode(batch.body, batch.body_rows, batch.skip)
    }
}

/// One page of rows to apply.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The page body exactly as the service sent it (every digit of a decimal kept).
    pub body: &'a [u8],
    /// Rows in the body's `value` array.
    pub body_rows: usize,
    /// Positions in the body's `value` array not to apply (rows an earlier page returned
    /// already, or `$deletedEntity` entries).
    pub skip: &'a [usize],
    /// Primary keys of rows deleted at the source.
    pub deleted: &'a [String],
}

/// A store a sync writes to.
#[async_trait]
pub trait Target: Send {
    /// Where the data goes, for the report (no credentials).
    fn describe(&self) -> String;

    /// The saved state of `table`, if it was synced before.
    async fn state(&mut self, table: &TargetTable) -> Result<Option<TableState>, SyncError>;

    /// Starts a full load of `table` into a staging area (replacing an older one).
    async fn begin_full(&mut self, table: &TargetTable) -> Result<(), SyncError>;

    /// Adds a page of a full load to the staging area. Returns the rows added.
    async fn load(&mut self, table: &TargetTable, batch: Batch<'_>) -> Result<u64, SyncError>;

    /// Replaces the table with the staging area and saves `state`, in one transaction.
    async fn finish_full(&mut self, table: &TargetTable, state: &TableState) -> Result<(), SyncError>;

    /// Applies a page of changes in place (upserts merged on the primary key, deletes) and
    /// saves `state`, in one transaction. Returns (upserted, deleted).
    async fn apply(
        &mut self,
        table: &TargetTable,
        batch: Batch<'_>,
        state: &TableState,
    ) -> Result<(u64, u64), SyncError>;

    /// Makes every change [`Target::apply`] accepted for `table` durable, with the last state
    /// given. Targets that apply each page at once have nothing to do; others (Delta Lake)
    /// hold pages and merge many at a time.
    async fn flush(&mut self, table: &TargetTable) -> Result<(), SyncError> {
        let _ = table;
        Ok(())
    }

    /// Rows in `table` now.
    async fn count(&mut self, table: &TargetTable) -> Result<u64, SyncError>;
}
