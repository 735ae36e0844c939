//! The Delta Lake sync target (see the [module docs](super)).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use d365_sql::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, TimestampMicrosecondArray, new_null_array,
};
use d365_sql::datafusion::arrow::compute::{cast, filter_record_batch, kernels::zip::zip};
use d365_sql::datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use d365_sql::datafusion::arrow::record_batch::RecordBatch;
use d365_sql::datafusion::prelude::SessionContext;
use deltalake_core::DeltaTable;
use deltalake_core::kernel::engine::arrow_conversion::{TryIntoArrow as _, TryIntoKernel as _};
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, StructField, StructType, Transaction};
use deltalake_core::protocol::{DeltaOperation, OutputMode};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use super::changes::{self, Pending};
use super::write::{TableWriter, union_schema, with_deleted_column};
use super::{DELETED_COLUMN, DeltaLocation};
use crate::error::SyncError;
use crate::store::{TableState, Tracking};
use crate::target::{Batch, Target, TargetTable};

/// The `commitInfo` key of the sync state.
pub(crate) const STATE_KEY: &str = "d365.sync";
/// The application id of the `txn` actions of state commits.
const APP_ID: &str = "d365-sync";
/// Changes held before a merge (rows and deletes).
const FLUSH_ROWS: usize = 250_000;
/// Commits looked at for the state before the whole history is read.
const RECENT_COMMITS: usize = 100;

/// Sync target: one Delta table per Dataverse table under a [`DeltaLocation`].
pub struct DeltaTarget {
    location: DeltaLocation,
    soft_delete: bool,
    flush_rows: usize,
    load: Option<Load>,
    pending: HashMap<String, (Pending, TableState)>,
}

/// A full load in progress.
struct Load {
    writer: TableWriter,
    /// Keys loaded (with soft deletes: the rows of the old table not among them are kept,
    /// stamped deleted).
    keys: Option<HashSet<String>>,
}

impl std::fmt::Debug for DeltaTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaTarget").field("location", &self.location).field("soft_delete", &self.soft_delete).finish()
    }
}

impl DeltaTarget {
    /// Tables under `location`; with `soft_delete`, rows deleted at the source stay with the
    /// time of their deletion in `_d365_deleted`.
    pub fn new(location: DeltaLocation, soft_delete: bool) -> Self {
        Self { location, soft_delete, flush_rows: FLUSH_ROWS, load: None, pending: HashMap::new() }
    }

    /// Merges held changes once this many (rows and deletes) are waiting (default 250,000).
    pub fn with_flush_rows(mut self, rows: usize) -> Self {
        self.flush_rows = rows.max(1);
        self
    }

    /// The location of the tables.
    pub fn location(&self) -> &DeltaLocation {
        &self.location
    }

    fn describe_table(&self, table: &TargetTable) -> String {
        self.location.describe(&self.location.table_url(&table.logical))
    }

    /// The schema of the rows written: the table's columns (and the soft-delete column).
    fn file_schema(&self, table: &TargetTable) -> SchemaRef {
        if self.soft_delete { with_deleted_column(&table.schema.arrow) } else { table.schema.arrow.clone() }
    }

    fn commit_properties(table: &TargetTable, state: &TableState) -> CommitProperties {
        CommitProperties::default().with_metadata([(STATE_KEY.to_string(), state_json(&table.logical, state))])
    }

    /// Merges the changes held for `table`, or saves the state alone when there are none.
    async fn merge_pending(&mut self, table: &TargetTable) -> Result<(), SyncError> {
        let Some((pending, state)) = self.pending.remove(&table.logical) else { return Ok(()) };
        let target = self.describe_table(table);
        let err = |e: deltalake_core::DeltaTableError| super::error(&target, e);
        let mut delta = open(&self.location, table).await?;
        let props = Self::commit_properties(table, &state);
        let Ok(snapshot) = delta.snapshot() else {
            return Err(SyncError::Delta {
                target: target.clone(),
                message: "the table is gone (a sync state was found, then no table): run the sync again to reload it"
                    .into(),
            });
        };
        if pending.is_empty() {
            let version = snapshot.transaction_version(delta.log_store().as_ref(), APP_ID).await.map_err(err)?;
            let seq = version.unwrap_or(0) + 1;
            let operation = DeltaOperation::StreamingUpdate {
                output_mode: OutputMode::Update,
                query_id: APP_ID.into(),
                epoch_id: seq,
            };
            CommitBuilder::from(props)
                .with_actions(vec![Action::Txn(Transaction::new(APP_ID, seq))])
                .build(Some(snapshot), delta.log_store(), operation)
                .await
                .map_err(err)?;
            return Ok(());
        }
        // New Dataverse columns join the table first (a schema-only commit).
        let rows_schema: StructType =
            table.schema.arrow.as_ref().try_into_kernel().map_err(|e| super::error(&target, e))?;
        if let Some(merged) = union_schema(&snapshot.schema(), &rows_schema, &target)? {
            let have = snapshot.schema();
            let added: Vec<StructField> = merged.fields().filter(|f| have.field(f.name()).is_none()).cloned().collect();
            delta = delta.add_columns().with_fields(added).await.map_err(err)?;
        }
        let table_schema: Schema =
            delta.snapshot().map_err(err)?.schema().as_ref().try_into_arrow().map_err(|e| super::error(&target, e))?;
        let columns = Schema::new(
            table_schema.fields().iter().filter(|f| f.name() != DELETED_COLUMN).cloned().collect::<Vec<_>>(),
        );
        let source = pending.reduce(&table.schema.arrow, &columns, &table.key)?;
        changes::merge(delta, source, &table.key, self.soft_delete, props).await.map_err(err)?;
        Ok(())
    }
}

/// The table of `table` under `location`, loaded if it exists.
async fn open(location: &DeltaLocation, table: &TargetTable) -> Result<DeltaTable, SyncError> {
    location.open(&location.table_url(&table.logical)).await
}

/// With soft deletes, the rows of the old table that the new load lacks, stamped deleted, are
/// written with the load.
async fn keep_deleted_rows(load: &mut Load, table: &TargetTable) -> Result<(), SyncError> {
    let Some(keys) = &load.keys else { return Ok(()) };
    let old = load.writer.table();
    if old.snapshot().is_err() {
        return Ok(());
    }
    let target = load.writer.target().to_string();
    let err = |e: &dyn std::fmt::Display| super::error(&target, e);
    let ctx = SessionContext::new();
    old.update_datafusion_session(&ctx.state()).map_err(|e| err(&e))?;
    let provider = old.table_provider().await.map_err(|e| err(&e))?;
    let mut stream = ctx.read_table(provider).map_err(|e| err(&e))?.execute_stream().await.map_err(|e| err(&e))?;
    let schema = load.writer.schema().clone();
    let now = super::now_micros();
    let mut kept = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| err(&e))?;
        // Text may come back as Utf8View (DataFusion's Parquet reading): keys compared as Utf8.
        let Some(ids) = batch
            .column_by_name(&table.pk)
            .and_then(|c| cast(c, &DataType::Utf8).ok())
            .and_then(|c| c.as_string_opt::<i32>().cloned())
        else {
            continue;
        };
        let missing: BooleanArray =
            (0..ids.len()).map(|i| Some(ids.is_valid(i) && !keys.contains(ids.value(i)))).collect();
        let gone = filter_record_batch(&batch, &missing).map_err(|e| err(&e))?;
        if gone.num_rows() > 0 {
            kept.push(conform(&gone, &schema, now).map_err(|e| err(&e))?);
        }
    }
    for batch in kept {
        load.writer.write(batch).await?;
    }
    Ok(())
}

/// `batch` (old rows) in `schema`: columns by name, null where missing, the soft-delete
/// column kept or set to `now`.
fn conform(
    batch: &RecordBatch,
    schema: &SchemaRef,
    now: i64,
) -> Result<RecordBatch, d365_sql::datafusion::arrow::error::ArrowError> {
    let n = batch.num_rows();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            let have = match batch.column_by_name(f.name()) {
                Some(c) if c.data_type() == f.data_type() => Some(c.clone()),
                Some(c) => Some(cast(c, f.data_type())?),
                None => None,
            };
            if f.name() == DELETED_COLUMN {
                let stamp: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC"));
                return match have {
                    Some(old) => zip(&d365_sql::datafusion::arrow::compute::is_not_null(&old)?, &old, &stamp),
                    None => Ok(stamp),
                };
            }
            Ok(have.unwrap_or_else(|| new_null_array(f.data_type(), n)))
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// The state as saved in `commitInfo`.
pub(crate) fn state_json(table: &str, state: &TableState) -> Value {
    let (mode, link, next, watermark) = match &state.tracking {
        Tracking::Delta { link, next } => ("delta", Some(link.as_str()), next.as_deref(), None),
        Tracking::Watermark(w) => ("watermark", None, None, w.as_deref()),
    };
    json!({
        "table": table,
        "entitySet": state.entity_set,
        "primaryKey": state.primary_key,
        "mode": mode,
        "deltaLink": link,
        "deltaNext": next,
        "watermark": watermark,
    })
}

pub(crate) fn parse_state(v: &Value) -> Option<TableState> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let tracking = match v.get("mode")?.as_str()? {
        "delta" => Tracking::Delta { link: text("deltaLink")?, next: text("deltaNext") },
        "watermark" => Tracking::Watermark(text("watermark")),
        _ => return None,
    };
    Some(TableState { entity_set: text("entitySet")?, primary_key: text("primaryKey")?, tracking })
}

#[async_trait]
impl Target for DeltaTarget {
    fn describe(&self) -> String {
        self.location.to_string()
    }

    async fn state(&mut self, table: &TargetTable) -> Result<Option<TableState>, SyncError> {
        let delta = open(&self.location, table).await?;
        if delta.version().is_none() {
            return Ok(None);
        }
        let target = self.describe_table(table);
        for limit in [Some(RECENT_COMMITS), None] {
            let mut history = delta.history(limit);
            while let Some(info) = history.try_next().await.map_err(|e| super::error(&target, e))? {
                if let Some(state) = info.info.get(STATE_KEY) {
                    return Ok(parse_state(state));
                }
            }
            if delta.version().is_some_and(|v| v < RECENT_COMMITS as u64) {
                break;
            }
        }
        Ok(None)
    }

    async fn begin_full(&mut self, table: &TargetTable) -> Result<(), SyncError> {
        self.pending.remove(&table.logical);
        let url = self.location.table_url(&table.logical);
        let writer = TableWriter::begin(&self.location, &url, self.file_schema(table)).await?;
        self.load = Some(Load { writer, keys: self.soft_delete.then(HashSet::new) });
        Ok(())
    }

    async fn load(&mut self, table: &TargetTable, batch: Batch<'_>) -> Result<u64, SyncError> {
        let rows = table.decode(&batch)?;
        let n = rows.num_rows() as u64;
        let schema = self.file_schema(table);
        let load = self
            .load
            .as_mut()
            .ok_or_else(|| SyncError::InvalidArgument("a load page came before the load began".into()))?;
        if let Some(keys) = &mut load.keys
            && let Some(ids) = rows.column_by_name(&table.pk).and_then(|c| c.as_string_opt::<i32>())
        {
            keys.extend((0..ids.len()).filter(|i| ids.is_valid(*i)).map(|i| ids.value(i).to_string()));
        }
        let rows = if self.soft_delete {
            let mut columns = rows.columns().to_vec();
            columns.push(new_null_array(schema.field(schema.fields().len() - 1).data_type(), rows.num_rows()));
            RecordBatch::try_new(schema, columns).map_err(|e| SyncError::InvalidArgument(format!("load: {e}")))?
        } else {
            rows
        };
        load.writer.write(rows).await?;
        Ok(n)
    }

    async fn finish_full(&mut self, table: &TargetTable, state: &TableState) -> Result<(), SyncError> {
        let mut load = self.load.take().ok_or_else(|| SyncError::InvalidArgument("no load to finish".into()))?;
        keep_deleted_rows(&mut load, table).await?;
        let info: HashMap<String, Value> = [(STATE_KEY.to_string(), state_json(&table.logical, state))].into();
        load.writer.commit(info).await?;
        Ok(())
    }

    async fn apply(
        &mut self,
        table: &TargetTable,
        batch: Batch<'_>,
        state: &TableState,
    ) -> Result<(u64, u64), SyncError> {
        let rows = table.decode(&batch)?;
        let counts = (rows.num_rows() as u64, batch.deleted.len() as u64);
        let entry = self.pending.entry(table.logical.clone()).or_insert_with(|| (Pending::default(), state.clone()));
        entry.0.push(rows, batch.deleted);
        entry.1 = state.clone();
        if entry.0.len() >= self.flush_rows {
            self.merge_pending(table).await?;
        }
        Ok(counts)
    }

    async fn flush(&mut self, table: &TargetTable) -> Result<(), SyncError> {
        self.merge_pending(table).await
    }

    async fn count(&mut self, table: &TargetTable) -> Result<u64, SyncError> {
        let delta = open(&self.location, table).await?;
        if delta.version().is_none() {
            return Ok(0);
        }
        let target = self.describe_table(table);
        let err = |e: &dyn std::fmt::Display| super::error(&target, e);
        let ctx = SessionContext::new();
        delta.update_datafusion_session(&ctx.state()).map_err(|e| err(&e))?;
        ctx.register_table("t", delta.table_provider().await.map_err(|e| err(&e))?).map_err(|e| err(&e))?;
        let live = if self.soft_delete && delta.snapshot().is_ok_and(|s| s.schema().field(DELETED_COLUMN).is_some()) {
            format!(" WHERE \"{DELETED_COLUMN}\" IS NULL")
        } else {
            String::new()
        };
        let batches = ctx
            .sql(&format!("SELECT count(*) FROM t{live}"))
            .await
            .map_err(|e| err(&e))?
            .collect()
            .await
            .map_err(|e| err(&e))?;
        let n = batches
            .first()
            .and_then(|b| {
                b.column(0).as_primitive_opt::<d365_sql::datafusion::arrow::datatypes::Int64Type>().map(|a| a.value(0))
            })
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_commit_info() {
        for tracking in [
            Tracking::Delta { link: "accounts?$deltatoken=1".into(), next: Some("accounts?$skiptoken=2".into()) },
            Tracking::Delta { link: "accounts?$deltatoken=1".into(), next: None },
            Tracking::Watermark(Some("2026-01-01T00:00:00Z".into())),
            Tracking::Watermark(None),
        ] {
            let s = TableState { entity_set: "accounts".into(), primary_key: "accountid".into(), tracking };
            assert_eq!(parse_state(&state_json("account", &s)).as_ref(), Some(&s));
        }
        assert!(parse_state(&json!({"mode": "other"})).is_none());
    }
}
