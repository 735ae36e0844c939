//! Writing a whole table: Parquet data files written as the batches arrive, then **one**
//! commit that adds them and removes the files of the previous version (an overwrite), or
//! creates the table. Readers see the old version until that commit, the new one after; a
//! process killed before it leaves only unreferenced files (removed by a `VACUUM`).

use std::collections::HashMap;
use std::sync::Arc;

use d365_sql::datafusion::arrow::datatypes::{Schema, SchemaRef};
use d365_sql::datafusion::arrow::record_batch::RecordBatch;
use deltalake_core::DeltaTable;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, MetadataExt as _, StructField, StructType};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::writer::{DeltaWriter as _, RecordBatchWriter};
use futures::TryStreamExt;
use serde_json::Value;
use url::Url;

use super::DeltaLocation;
use crate::error::SyncError;

/// Data files are rolled over at about this size.
const TARGET_FILE_SIZE: u64 = 128 << 20;

/// A writer of Parquet data files under `url` (files it names itself; added to a table by a
/// commit of the caller), with the exports' Parquet settings: zstd, row groups of 128 Ki rows (a
/// writer holds one row group in memory, so this bounds what a load, a merge or a unit keeps),
/// files rolled over at about 128 MB.
pub(crate) fn data_writer(
    location: &DeltaLocation,
    url: &Url,
    schema: SchemaRef,
    target: &str,
) -> Result<RecordBatchWriter, SyncError> {
    Ok(RecordBatchWriter::try_new(url.as_str(), schema, None, Some(location.storage_options()))
        .map_err(|e| super::error(&target, e))?
        .with_writer_properties(crate::writer::parquet_properties())
        .with_target_file_size(TARGET_FILE_SIZE))
}

/// A whole-table write in progress (see the module docs): table exports, and query results
/// (`d365 query SQL -o delta+…`).
pub struct TableWriter {
    target: String,
    table: DeltaTable,
    writer: RecordBatchWriter,
    schema: SchemaRef,
    rows: u64,
}

impl TableWriter {
    /// Starts writing the table at `url` with rows of `schema`. Column names Delta tables
    /// cannot hold without column mapping (spaces, `,;{}()=`, tabs, newlines: `count(*)`, say)
    /// are refused, naming the column.
    pub async fn begin(location: &DeltaLocation, url: &Url, schema: SchemaRef) -> Result<Self, SyncError> {
        let target = location.describe(url);
        if let Some(f) =
            schema.fields().iter().find(|f| f.name().contains([' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '=']))
        {
            return Err(SyncError::InvalidArgument(format!(
                "{target}: column name '{}' cannot be a Delta column (no spaces or ,;{{}}()= in names): \
                 give it an alias, e.g. AS n",
                f.name()
            )));
        }
        let table = location.open(url).await?;
        let writer = data_writer(location, url, schema.clone(), &target)?;
        Ok(Self { target, table, writer, schema, rows: 0 })
    }

    /// The table's location, for messages (no credentials).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The table as it was before this write.
    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    /// The schema of the rows written.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Writes `batch` (of [`Self::schema`]) into the data files.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<(), SyncError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch).await.map_err(|e| super::error(&self.target, e))
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Commits the files written as the table's new contents, with `info` in the commit's
    /// `commitInfo`: creates the table, or replaces every file of the current version (the
    /// schema keeps the columns the new rows lack). Returns the table as committed.
    pub async fn commit(mut self, info: HashMap<String, Value>) -> Result<DeltaTable, SyncError> {
        let target = self.target.clone();
        let adds = self.writer.flush().await.map_err(|e| super::error(&target, e))?;
        let schema: StructType = self.schema.as_ref().try_into_kernel().map_err(|e| super::error(&target, e))?;
        commit_files(self.table, &target, &schema, adds, info).await
    }
}

/// Commits `adds` (data files already under the table) as the table's new contents, with
/// `info` in the commit's `commitInfo`: creates the table with `schema`, or replaces every
/// file of the current version in one overwrite commit (the table's schema widened by the
/// columns of `schema` it lacks). Returns the table as committed.
pub(crate) async fn commit_files(
    mut table: DeltaTable,
    target: &str,
    schema: &StructType,
    adds: Vec<deltalake_core::kernel::Add>,
    info: HashMap<String, Value>,
) -> Result<DeltaTable, SyncError> {
    let err = |e: deltalake_core::DeltaTableError| super::error(&target, e);
    let adds: Vec<Action> = adds.into_iter().map(Action::Add).collect();
    let props = CommitProperties::default().with_metadata(info);
    let Ok(state) = table.snapshot() else {
        let name = target.rsplit('/').next().unwrap_or("table").to_string();
        return table
            .create()
            .with_table_name(name)
            .with_columns(schema.fields().cloned())
            .with_actions(adds)
            .with_commit_properties(props)
            .await
            .map_err(err);
    };
    let log_store = table.log_store();
    let mut actions = Vec::with_capacity(adds.len() + 16);
    let old_schema = state.schema();
    if let Some(merged) = union_schema(&old_schema, schema, target)? {
        let metadata = state.metadata().clone().with_schema(&merged).map_err(|e| super::error(&target, e))?;
        actions.push(Action::Metadata(metadata));
    }
    let removes: Vec<Action> = state
        .snapshot()
        .file_views(log_store.as_ref(), None)
        .map_ok(|f| Action::Remove(f.remove_action(true)))
        .try_collect()
        .await
        .map_err(err)?;
    actions.extend(removes);
    actions.extend(adds);
    let operation = DeltaOperation::Write { mode: SaveMode::Overwrite, partition_by: None, predicate: None };
    CommitBuilder::from(props).with_actions(actions).build(Some(state), log_store, operation).await.map_err(err)?;
    table.load().await.map_err(err)?;
    Ok(table)
}

/// The table schema `old` widened by the columns of `new` it lacks (a column gone from the
/// source stays, null from then on), or `None` when `old` has them all. A column whose type
/// changed is an error.
pub(crate) fn union_schema(old: &StructType, new: &StructType, target: &str) -> Result<Option<StructType>, SyncError> {
    let mut added: Vec<StructField> = Vec::new();
    for field in new.fields() {
        match old.field(field.name()) {
            Some(have) if have.data_type() != field.data_type() => {
                return Err(SyncError::Delta {
                    target: target.to_string(),
                    message: format!(
                        "column {} is {} in the Delta table but {} in Dataverse now; \
                         move the table away (or delete it) to load it again with the new type",
                        field.name(),
                        have.data_type(),
                        field.data_type()
                    ),
                });
            }
            Some(_) => {}
            None => added.push(StructField::new(field.name().clone(), field.data_type().clone(), true)),
        }
    }
    if added.is_empty() {
        return Ok(None);
    }
    let fields = old.fields().cloned().chain(added);
    StructType::try_new(fields).map(Some).map_err(|e| super::error(&target, e))
}

/// `schema` with the soft-delete column added at the end.
pub(crate) fn with_deleted_column(schema: &Schema) -> SchemaRef {
    use d365_sql::datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(
        super::DELETED_COLUMN,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    )));
    Arc::new(Schema::new(fields))
}
