//! Changes waiting to be merged into a Delta table: pages of upserts and deletes, reduced to
//! one entry per key (the newest), then applied by one `MERGE` whose commit carries the sync
//! state.
//!
//! Every merge rewrites the data files holding a matched key, so changes are merged in large
//! groups (many pages at once), not page by page.

use std::collections::HashMap;
use std::sync::Arc;

use d365_sql::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, StringArray, UInt32Array, new_null_array,
};
use d365_sql::datafusion::arrow::compute::{concat_batches, take};
use d365_sql::datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use d365_sql::datafusion::arrow::record_batch::RecordBatch;
use d365_sql::datafusion::common::{Column, ScalarValue};
use d365_sql::datafusion::logical_expr::{Expr, lit};
use d365_sql::datafusion::prelude::SessionContext;

use crate::error::SyncError;

/// The source column that marks a delete.
const DELETE_FLAG: &str = "__d365_delete";
/// Alias of the changes in the merge.
const SOURCE: &str = "s";
/// Alias of the table in the merge.
const TARGET: &str = "t";

/// The changes of one table not merged yet.
#[derive(Default)]
pub(crate) struct Pending {
    /// Pages in arrival order: the upserted rows, then the keys deleted.
    pages: Vec<(RecordBatch, Vec<String>)>,
    rows: usize,
}

impl Pending {
    /// Adds a page.
    pub fn push(&mut self, rows: RecordBatch, deleted: &[String]) {
        self.rows += rows.num_rows() + deleted.len();
        if rows.num_rows() > 0 || !deleted.is_empty() {
            self.pages.push((rows, deleted.to_vec()));
        }
    }

    /// Entries (rows and deletes) held.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no change is held.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The changes as one batch of `table` columns (the table's schema without the
    /// soft-delete column) plus the delete flag, one row per key: the newest version of a row
    /// (by `versionnumber`, else the later page), or its delete when that came later.
    pub fn reduce(self, rows_schema: &SchemaRef, table: &Schema, key: &[String]) -> Result<RecordBatch, SyncError> {
        let err =
            |e: d365_sql::datafusion::arrow::error::ArrowError| SyncError::InvalidArgument(format!("changes: {e}"));
        let pk = key.first().map(String::as_str).unwrap_or_default();
        let batches: Vec<&RecordBatch> = self.pages.iter().map(|(b, _)| b).collect();
        let all = concat_batches(rows_schema, batches.iter().copied()).map_err(err)?;
        let keys = if key.len() == 1 {
            column(&all, pk)?
        } else {
            // A composite key (a Finance & Operations entity): its columns' text, joined.
            if self.pages.iter().any(|(_, d)| !d.is_empty()) {
                return Err(SyncError::InvalidArgument("changes: deletes by a composite key are not supported".into()));
            }
            let parts = key
                .iter()
                .map(|k| {
                    let c = column(&all, k)?;
                    d365_sql::datafusion::arrow::compute::cast(&c, &DataType::Utf8).map_err(err)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let joined: StringArray = (0..all.num_rows())
                .map(|i| {
                    let mut text = String::new();
                    for p in &parts {
                        let p = p.as_string::<i32>();
                        if p.is_null(i) {
                            return None;
                        }
                        text.push_str(p.value(i));
                        text.push('\u{1f}');
                    }
                    Some(text)
                })
                .collect();
            Arc::new(joined)
        };
        let keys = keys
            .as_string_opt::<i32>()
            .ok_or_else(|| SyncError::InvalidArgument(format!("changes: the key column {pk} is not text")))?;
        let versions = all.column_by_name("versionnumber").and_then(|c| c.as_primitive_opt::<Int64Type>().cloned());
        #[derive(Clone, Copy)]
        enum Win {
            Row(usize),
            Delete,
        }
        let mut winners: HashMap<String, Win> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut at = 0usize;
        for (batch, deleted) in &self.pages {
            for i in at..at + batch.num_rows() {
                if keys.is_null(i) {
                    continue;
                }
                let key = keys.value(i);
                let newer = |j: usize| match &versions {
                    Some(v) if v.is_valid(i) && v.is_valid(j) => v.value(i) >= v.value(j),
                    _ => true,
                };
                match winners.get_mut(key) {
                    Some(w @ Win::Row(_)) => {
                        if let Win::Row(j) = *w
                            && newer(j)
                        {
                            *w = Win::Row(i);
                        }
                    }
                    Some(w) => *w = Win::Row(i),
                    None => {
                        order.push(key.to_string());
                        winners.insert(key.to_string(), Win::Row(i));
                    }
                }
            }
            at += batch.num_rows();
            for key in deleted {
                if winners.insert(key.clone(), Win::Delete).is_none() {
                    order.push(key.clone());
                }
            }
        }
        let mut take_rows = Vec::new();
        let mut delete_keys = Vec::new();
        for key in order {
            match winners[&key] {
                Win::Row(i) => take_rows.push(i as u32),
                Win::Delete => delete_keys.push(key),
            }
        }
        let indices = UInt32Array::from(take_rows);
        let n_rows = indices.len();
        let n = n_rows + delete_keys.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.fields().len() + 1);
        let mut fields: Vec<Arc<Field>> = Vec::with_capacity(table.fields().len() + 1);
        for field in table.fields() {
            let upserts = match all.column_by_name(field.name()) {
                Some(c) if c.data_type() == field.data_type() => take(c.as_ref(), &indices, None).map_err(err)?,
                Some(c) => {
                    return Err(SyncError::InvalidArgument(format!(
                        "changes: column {} is {} in Dataverse but {} in the Delta table",
                        field.name(),
                        c.data_type(),
                        field.data_type()
                    )));
                }
                // A column gone from the source: null from now on.
                None => new_null_array(field.data_type(), n_rows),
            };
            let deletes: ArrayRef = if field.name() == pk {
                Arc::new(StringArray::from(delete_keys.clone()))
            } else {
                new_null_array(field.data_type(), delete_keys.len())
            };
            let joined =
                d365_sql::datafusion::arrow::compute::concat(&[upserts.as_ref(), deletes.as_ref()]).map_err(err)?;
            columns.push(cast_key(joined, field.data_type())?);
            fields.push(Arc::new(Field::new(field.name(), field.data_type().clone(), true)));
        }
        let flags: BooleanArray = (0..n).map(|i| Some(i >= n_rows)).collect();
        columns.push(Arc::new(flags));
        fields.push(Arc::new(Field::new(DELETE_FLAG, DataType::Boolean, false)));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(err)
    }
}

fn cast_key(a: ArrayRef, to: &DataType) -> Result<ArrayRef, SyncError> {
    if a.data_type() == to {
        return Ok(a);
    }
    d365_sql::datafusion::arrow::compute::cast(&a, to).map_err(|e| SyncError::InvalidArgument(format!("changes: {e}")))
}

fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef, SyncError> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| SyncError::InvalidArgument(format!("changes: no column {name} in the rows read")))
}

/// `target.k = source.k` for every key column.
fn same_key(key: &[String]) -> Expr {
    let mut parts = key.iter().map(|k| target(k).eq(source(k)));
    let first = parts.next().unwrap_or_else(|| lit(false));
    parts.fold(first, Expr::and)
}

fn source(name: &str) -> Expr {
    Expr::Column(Column::new(Some(SOURCE), name))
}

fn target(name: &str) -> Expr {
    Expr::Column(Column::new(Some(TARGET), name))
}

/// Merges `changes` (from [`Pending::reduce`]) into `table` with `commit` as the commit's
/// properties: deletes applied (or stamped in `_d365_deleted` with `soft_delete`), rows
/// inserted, or updated unless the table holds a newer `versionnumber`. Returns the table
/// after the commit.
pub(crate) async fn merge(
    table: deltalake_core::DeltaTable,
    changes: RecordBatch,
    key: &[String],
    soft_delete: bool,
    commit: deltalake_core::kernel::transaction::CommitProperties,
) -> Result<deltalake_core::DeltaTable, deltalake_core::DeltaTableError> {
    let columns: Vec<String> =
        changes.schema().fields().iter().map(|f| f.name().clone()).filter(|n| n != DELETE_FLAG).collect();
    let has_version = columns.iter().any(|c| c == "versionnumber");
    let ctx = SessionContext::new();
    let source_df = ctx.read_batch(changes)?;
    let deleted = source(DELETE_FLAG);
    let mut builder = table
        .merge(source_df, same_key(key))
        .with_source_alias(SOURCE)
        .with_target_alias(TARGET)
        .with_writer_properties(crate::writer::parquet_properties())
        .with_commit_properties(commit);
    builder = if soft_delete {
        let now = ScalarValue::TimestampMicrosecond(Some(super::now_micros()), Some("UTC".into()));
        builder.when_matched_update(|u| {
            u.predicate(deleted.clone()).update(
                super::DELETED_COLUMN,
                d365_sql::datafusion::functions::expr_fn::coalesce(vec![target(super::DELETED_COLUMN), lit(now)]),
            )
        })?
    } else {
        builder.when_matched_delete(|d| d.predicate(deleted.clone()))?
    };
    let mut guard = Expr::Not(Box::new(deleted.clone()));
    if has_version {
        let v = "versionnumber";
        guard = guard.and(target(v).is_null().or(source(v).is_null()).or(source(v).gt_eq(target(v))));
    }
    builder = builder.when_matched_update(|mut u| {
        u = u.predicate(guard);
        for c in columns.iter().filter(|c| !key.contains(c)) {
            u = u.update(c.as_str(), source(c));
        }
        if soft_delete {
            u = u.update(super::DELETED_COLUMN, lit(ScalarValue::TimestampMicrosecond(None, Some("UTC".into()))));
        }
        u
    })?;
    builder = builder.when_not_matched_insert(|mut i| {
        i = i.predicate(Expr::Not(Box::new(deleted)));
        for c in &columns {
            i = i.set(c.as_str(), source(c));
        }
        i
    })?;
    let (table, _metrics) = builder.await?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use d365_sql::datafusion::arrow::array::Int64Array;

    fn rows(ids: &[&str], versions: &[i64], names: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("accountid", DataType::Utf8, true),
            Field::new("versionnumber", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(ids.to_vec())),
                Arc::new(Int64Array::from(versions.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn one_entry_per_key_the_newest_wins() {
        let mut p = Pending::default();
        p.push(rows(&["a", "b", "c"], &[5, 5, 5], &["a5", "b5", "c5"]), &["d".to_string()]);
        // b older than what came before: ignored; a newer; c deleted; d re-created.
        p.push(rows(&["a", "b", "d"], &[6, 4, 7], &["a6", "b4", "d7"]), &["c".to_string()]);
        assert_eq!(p.len(), 8);
        let schema = rows(&[], &[], &[]).schema();
        // The table has one more column than the rows (gone from the source).
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new("gone", DataType::Int32, true)));
        let table = Schema::new(fields);
        let out = p.reduce(&schema, &table, &["accountid".to_string()]).unwrap();
        let ids = out.column(0).as_string::<i32>();
        let names = out.column(2).as_string::<i32>();
        let flags = out.column_by_name(DELETE_FLAG).unwrap().as_boolean();
        let got: Vec<(String, Option<String>, bool)> = (0..out.num_rows())
            .map(|i| (ids.value(i).to_string(), names.is_valid(i).then(|| names.value(i).to_string()), flags.value(i)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), Some("a6".into()), false),
                ("b".into(), Some("b5".into()), false),
                ("d".into(), Some("d7".into()), false),
                ("c".into(), None, true),
            ]
        );
        assert_eq!(out.column_by_name("gone").unwrap().null_count(), 4);
    }
}
