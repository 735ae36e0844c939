//! Write-back: `INSERT`, `UPSERT`, `UPDATE`, `DELETE` and `MERGE` over the Web API.
//!
//! Every statement becomes a `SELECT` that DataFusion runs (so expressions, joins, functions,
//! local files and Dataverse tables all work as in queries), whose rows are converted to Web API
//! bodies by the Dataverse type of each column written and streamed into
//! [`d365_client::write()`] (bulk messages or `$batch`, in parallel, with its retry and recovery
//! rules):
//!
//! | statement | rows read | written as |
//! |---|---|---|
//! | `INSERT INTO t (cols) VALUES … \| SELECT …` | the `VALUES`/`SELECT` | Create (id assigned client-side, or the primary key column when given) |
//! | `UPSERT INTO t (cols) VALUES … \| SELECT …` | the same | Upsert by the primary key, or else the first alternate key whose columns are all listed |
//! | `UPDATE t SET c = e, … WHERE w` | `SELECT <pk>, @odata.etag, e, … FROM t WHERE w` (the `WHERE` is pushed to `$filter` like any query) | Update by id (`If-Match: <etag>` with optimistic concurrency) |
//! | `DELETE FROM t WHERE w` | `SELECT <pk>, @odata.etag FROM t WHERE w` | Delete by id |
//! | `MERGE INTO t USING s ON (t.k = s.x …) WHEN MATCHED THEN UPDATE SET … WHEN NOT MATCHED THEN INSERT (…) VALUES (…)` | `SELECT s.x, … FROM s` | Upsert by the key the `ON` names (an alternate key or the primary key); with only `WHEN MATCHED`: Update by key, rows without a record skipped; with only `WHEN NOT MATCHED`: Create, rows whose key exists skipped |
//!
//! Values: text, integers, decimals and money (JSON numbers), doubles, booleans (also
//! `'yes'`/`1`), date-times (sent as UTC ISO 8601), dates (`YYYY-MM-DD`), GUIDs, choices,
//! state and status as integers, multi-select choices as `'1,2'`. A lookup is set by GUID and
//! bound with `<navigation property>@odata.bind: "/<set>(<id>)"`; a lookup that can point to
//! several tables (customer, owner) takes the table from its `<col>type` column in the same
//! statement. NULL clears a column. Virtual `<col>name` columns are read-only.
//!
//! Errors: a statement that cannot run (unknown table or column — with the nearest name —,
//! read-only column, missing key, bad SQL) is an `Err` before anything is sent. A value that
//! does not convert (text into a number, a bad GUID, …) fails its row only (a
//! [`RowError`] naming row and column, code [`CONVERSION_ERROR`]); the other rows are still
//! written, unless the write is atomic. Rows are numbered from 1 in the order the statement's
//! `SELECT` produces them.

mod local;
pub(crate) mod parse;
mod target;
mod values;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use d365_client::codes::DUPLICATE_KEY;
use d365_client::{Metadata, RecordKey, RowError, WriteOp, WriteOptions, WriteProgress, WriteReport, WriteRow};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::prelude::{CsvReadOptions, DataFrame, JsonReadOptions, ParquetReadOptions, SessionContext};
use futures::StreamExt;
use serde_json::{Map, Value};

use crate::arrow_schema::{ColumnRole, ColumnSpec, FilterKind, TableSchema, ValueKind};
use crate::catalog::{CATALOG, DataverseCatalog};
use crate::engine::SqlEngine;
use crate::error::SqlError;
use crate::table_provider::DataverseTable;

use local::{HIDDEN, OverlayCatalog, OverlaySchema};
use parse::{DmlStatement, is_values, references};
use target::{Layout, Target};

pub use parse::is_dml;
pub use target::CONVERSION_ERROR;

/// How a write statement runs.
#[derive(Debug, Clone, Default)]
pub struct DmlOptions {
    /// Read and convert the rows, send no write: [`DmlOutcome::planned`] holds what would be
    /// sent.
    pub dry_run: bool,
    /// Chunk size, parallelism, bypass, optimistic concurrency, atomic, impersonation.
    pub write: WriteOptions,
    /// Keep the input values of failed rows in [`DmlOutcome::inputs`] (for an error file).
    pub keep_failed_inputs: bool,
    /// Values of the statement's `$1…$n` placeholders (bound as typed literals).
    pub params: Vec<datafusion::scalar::ScalarValue>,
}

/// One row a dry run would send.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRow {
    /// The row number (from 1).
    pub index: u64,
    /// What would be done.
    pub op: WriteOp,
    /// The record's key (none for a create with a client-assigned id).
    pub key: Option<RecordKey>,
    /// The etag sent as `If-Match` (optimistic concurrency).
    pub etag: Option<String>,
    /// The Web API body.
    pub body: Map<String, Value>,
}

impl PlannedRow {
    /// The row as one JSON object: `{"row", "op", "key", "etag", "body"}`.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("row".into(), Value::from(self.index));
        o.insert("op".into(), Value::from(self.op.name()));
        o.insert("key".into(), self.key.as_ref().map_or(Value::Null, |k| Value::from(k.to_odata())));
        if let Some(e) = &self.etag {
            o.insert("if_match".into(), Value::from(e.clone()));
        }
        o.insert("body".into(), Value::Object(self.body.clone()));
        Value::Object(o)
    }
}

/// What a write statement did.
#[derive(Debug)]
pub struct DmlOutcome {
    /// The table written.
    pub table: String,
    /// The operation sent.
    pub op: WriteOp,
    /// Rows read, written and failed (conversion failures included), requests, time. For a
    /// dry run: rows read and conversion failures only.
    pub report: WriteReport,
    /// Dry run: the rows that would be sent.
    pub planned: Vec<PlannedRow>,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// `MERGE` rows that had nothing to do (no record for `WHEN MATCHED` only, an existing
    /// record for `WHEN NOT MATCHED` only).
    pub skipped: u64,
    /// Why the statement stopped before every row was handled (the service refused the table,
    /// reading the source failed, an atomic write was rolled back, …); `None` when every row
    /// was written or reported in [`WriteReport::failed`].
    pub stopped: Option<SqlError>,
    /// Input values of the failed rows, by row number (with
    /// [`DmlOptions::keep_failed_inputs`]).
    pub inputs: HashMap<u64, Map<String, Value>>,
}

impl DmlOutcome {
    /// Whether every row was written (or, for a dry run, converted).
    pub fn all_written(&self) -> bool {
        self.stopped.is_none() && self.report.failed.is_empty() && self.report.not_attempted.is_empty()
    }
}

/// Write-back state of an engine: metadata, and local tables in front of the catalog.
pub(crate) struct DmlState {
    metadata: Arc<Metadata>,
    catalog: Arc<DataverseCatalog>,
    pushdown: bool,
    page_size: Option<u32>,
    overlay: OnceLock<Arc<OverlaySchema>>,
    next: AtomicU64,
}

impl std::fmt::Debug for DmlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmlState").finish_non_exhaustive()
    }
}

impl DmlState {
    pub(crate) fn new(
        metadata: Arc<Metadata>,
        catalog: Arc<DataverseCatalog>,
        pushdown: bool,
        page_size: Option<u32>,
    ) -> Self {
        Self { metadata, catalog, pushdown, page_size, overlay: OnceLock::new(), next: AtomicU64::new(1) }
    }

    /// Schema `dbo` with local tables, installed in `ctx` on first use.
    fn overlay(&self, ctx: &SessionContext) -> &Arc<OverlaySchema> {
        self.overlay.get_or_init(|| {
            let dbo =
                Arc::new(OverlaySchema { local: MemorySchemaProvider::new(), tables: self.catalog.tables().clone() });
            ctx.register_catalog(CATALOG, Arc::new(OverlayCatalog { inner: self.catalog.clone(), dbo: dbo.clone() }));
            dbo
        })
    }
}

/// A hidden table, removed when dropped.
struct Hidden {
    name: String,
    schema: Arc<OverlaySchema>,
}

impl Drop for Hidden {
    fn drop(&mut self) {
        let _ = self.schema.deregister_table(&self.name);
    }
}

/// Name of the etag column of the hidden scans.
const ETAG: &str = "__etag";

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Which row errors of a one-clause MERGE mean "nothing to do".
type SkipRule = fn(&RowError) -> bool;

/// A statement ready to run.
struct Plan {
    target: Arc<Target>,
    layout: Arc<Layout>,
    df: DataFrame,
    /// Row errors that mean "nothing to do" (MERGE with one clause).
    skip: Option<SkipRule>,
    _hidden: Option<Hidden>,
}

/// Rows read, conversion failures, inputs, dry-run rows, source error.
#[derive(Default)]
struct Side {
    rows: u64,
    failed: Vec<RowError>,
    inputs: HashMap<u64, Map<String, Value>>,
    source_error: Option<SqlError>,
}

impl SqlEngine {
    /// Whether `sql` is a write statement (see [`crate::dml`]).
    pub fn is_dml(sql: &str) -> bool {
        is_dml(sql)
    }

    /// Registers a local file as table `name` (CSV, NDJSON — `.ndjson`/`.jsonl`/`.json` — or
    /// Parquet, by extension), for queries and as the source of `INSERT … SELECT` / `MERGE`.
    pub async fn register_file(&self, name: &str, path: &Path) -> Result<(), SqlError> {
        let name = self.local_name(name)?;
        let state = self.dml_state();
        if !path.is_file() {
            return Err(SqlError::Plan(format!("cannot read '{}': no such file", path.display())));
        }
        let text = path.to_str().ok_or_else(|| SqlError::Plan(format!("path '{}' is not UTF-8", path.display())))?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
        let dotted = format!(".{ext}");
        state.overlay(self.context());
        let ctx = self.context();
        match ext.as_str() {
            "csv" => ctx.register_csv(name.as_str(), text, CsvReadOptions::new().file_extension(&dotted)).await?,
            "ndjson" | "jsonl" | "json" => {
                ctx.register_json(name.as_str(), text, JsonReadOptions::default().file_extension(&dotted)).await?
            }
            "parquet" => {
                ctx.register_parquet(name.as_str(), text, ParquetReadOptions::default().file_extension(&dotted)).await?
            }
            _ => {
                return Err(SqlError::Plan(format!(
                    "'{}': unknown file type (use .csv, .ndjson, .jsonl, .json or .parquet)",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Registers in-memory rows as local table `name` (like [`SqlEngine::register_file`]): e.g.
    /// the parameter sets of a bulk insert, read by `INSERT … SELECT … FROM name`.
    pub fn register_batch(
        &self,
        name: &str,
        batch: datafusion::arrow::record_batch::RecordBatch,
    ) -> Result<(), SqlError> {
        let name = self.local_name(name)?;
        let table = datafusion::datasource::MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        self.dml_state().overlay(self.context()).register_table(name, Arc::new(table))?;
        Ok(())
    }

    /// Removes a local table registered with [`SqlEngine::register_batch`] or
    /// [`SqlEngine::register_file`]; `false` when there was none of that name.
    pub fn deregister_local(&self, name: &str) -> Result<bool, SqlError> {
        let name = name.trim().to_ascii_lowercase();
        Ok(self.dml_state().overlay(self.context()).local.deregister_table(&name)?.is_some())
    }

    /// `name` lower-cased, if it can name a local table: letters, digits and `_`, not hidden,
    /// not the name of one of the organisation's tables.
    fn local_name(&self, name: &str) -> Result<String, SqlError> {
        let name = name.trim().to_ascii_lowercase();
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(HIDDEN);
        if !valid {
            return Err(SqlError::Plan(format!(
                "'{name}' is not a usable table name (letters, digits and _, starting with a letter)"
            )));
        }
        if self.dml_state().catalog.tables().entity(&name).is_some() {
            return Err(SqlError::Plan(format!(
                "a local table cannot be named '{name}': the organisation has a table of that name"
            )));
        }
        Ok(name)
    }

    /// Runs one write statement (see [`crate::dml`]), calling `progress` after every chunk.
    /// `Err` means nothing was written; a statement that stopped part-way returns its outcome
    /// with [`DmlOutcome::stopped`] set.
    pub async fn execute_dml(
        &self,
        sql: &str,
        options: &DmlOptions,
        progress: impl Fn(&WriteProgress) + Send + Sync,
    ) -> Result<DmlOutcome, SqlError> {
        let statement = parse::parse(sql)?;
        if self.is_read_only() && !options.dry_run {
            return Err(SqlError::ReadOnly);
        }
        let plan = self.plan_dml(statement, options).await?;
        self.run_plan(plan, options, progress).await
    }

    async fn target(&self, table: &str) -> Result<Target, SqlError> {
        let schema = self.describe(table).await?;
        let state = self.dml_state();
        let meta = state.metadata.entity(&schema.entity.logical_name).await?;
        let sets = state
            .metadata
            .entities()
            .await?
            .iter()
            .filter_map(|e| e.entity_set_name.clone().map(|s| (e.logical_name.clone(), s)))
            .collect();
        Ok(Target { schema, meta, sets: Arc::new(sets) })
    }

    /// The target table plus its etag column, registered under a hidden name.
    fn hidden_scan(&self, target: &Target) -> Result<Hidden, SqlError> {
        let state = self.dml_state();
        let mut shape: TableSchema = (*target.schema).clone();
        shape.columns.push(ColumnSpec {
            name: ETAG.into(),
            property: shape.primary_key.clone(),
            json_key: "@odata.etag".into(),
            role: ColumnRole::Value,
            kind: ValueKind::Utf8,
            attribute_type: "ETag".into(),
            filter: FilterKind::None,
            sortable: false,
        });
        let mut fields: Vec<Field> = shape.arrow.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(ETAG, DataType::Utf8, true));
        shape.arrow = Arc::new(Schema::new(fields));
        let provider = DataverseTable::new(self.client().clone(), Arc::new(shape), state.pushdown, state.page_size);
        let name = format!("{HIDDEN}{}", state.next.fetch_add(1, Ordering::Relaxed));
        let schema = state.overlay(self.context()).clone();
        schema.register_table(name.clone(), Arc::new(provider))?;
        Ok(Hidden { name, schema })
    }

    async fn plan_dml(&self, statement: DmlStatement, options: &DmlOptions) -> Result<Plan, SqlError> {
        match statement {
            DmlStatement::Insert { table, columns, source, upsert } => {
                let target = self.target(&table).await?;
                let op = if upsert { WriteOp::Upsert } else { WriteOp::Create };
                let text = parse::values_as_text(&source).unwrap_or_else(|| source.to_string());
                let df = self.sql_with_params(&text, &options.params).await?;
                let width = df.schema().fields().len();
                let names: Vec<String> = if columns.is_empty() {
                    if is_values(&source) {
                        return Err(SqlError::Plan(format!(
                            "{} … VALUES needs the column list: {} INTO {table} (col1, col2, …) VALUES …",
                            op_word(op),
                            op_word(op)
                        )));
                    }
                    df.schema().fields().iter().map(|f| f.name().to_ascii_lowercase()).collect()
                } else {
                    columns
                };
                if names.len() != width {
                    return Err(SqlError::Plan(format!(
                        "{} names {} columns but its {} gives {width}",
                        op_word(op),
                        names.len(),
                        if is_values(&source) { "VALUES" } else { "SELECT" }
                    )));
                }
                let setters = target.setters(&names, op)?;
                let key = if upsert {
                    let cols = target.key_within(&names)?;
                    cols.iter()
                        .map(|c| {
                            let i = names.iter().position(|n| n.eq_ignore_ascii_case(c)).unwrap_or_default();
                            (c.clone(), i)
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let layout = Layout { op, id: None, etag: None, key, names, setters, first_value: 0 };
                Ok(Plan { target: Arc::new(target), layout: Arc::new(layout), df, skip: None, _hidden: None })
            }
            DmlStatement::Update { table, alias, assignments, selection } => {
                self.plan_by_id(WriteOp::Update, &table, alias.as_deref(), &assignments, selection.as_ref(), options)
                    .await
            }
            DmlStatement::Delete { table, alias, selection } => {
                self.plan_by_id(WriteOp::Delete, &table, alias.as_deref(), &[], selection.as_ref(), options).await
            }
            DmlStatement::Merge(m) => self.plan_merge(*m, options).await,
        }
    }

    /// UPDATE (with `assignments`) and DELETE (without): `SELECT <pk>, <etag>, <values…>`
    /// over the target, its WHERE pushed down like a query's; rows are written by id.
    async fn plan_by_id(
        &self,
        op: WriteOp,
        table: &str,
        alias: Option<&str>,
        assignments: &[(String, datafusion::sql::sqlparser::ast::Expr)],
        selection: Option<&datafusion::sql::sqlparser::ast::Expr>,
        options: &DmlOptions,
    ) -> Result<Plan, SqlError> {
        let target = self.target(table).await?;
        let names: Vec<String> = assignments.iter().map(|(c, _)| c.clone()).collect();
        let setters = target.setters(&names, op)?;
        let hidden = self.hidden_scan(&target)?;
        let alias = quote(alias.unwrap_or(table));
        // Dataverse rows are written by id; Finance & Operations rows by their key fields.
        let finops_key = target.finops_key();
        if target.finops() && finops_key.is_empty() {
            return Err(SqlError::Unsupported(format!(
                "'{}' has no key in its metadata: its rows cannot be addressed for {}",
                target.name(),
                op.name()
            )));
        }
        let mut sql = if finops_key.is_empty() {
            format!("SELECT {alias}.{} AS __pk", quote(&target.schema.primary_key))
        } else {
            let items: Vec<String> = finops_key
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{alias}.{} AS __k{i}", quote(&k.to_ascii_lowercase())))
                .collect();
            format!("SELECT {}", items.join(", "))
        };
        let etag_at = finops_key.len().max(1);
        sql.push_str(&format!(", {alias}.{ETAG} AS __etag"));
        for (i, (_, e)) in assignments.iter().enumerate() {
            sql.push_str(&format!(", ({e}) AS __v{i}"));
        }
        sql.push_str(&format!(" FROM {} AS {alias}", quote(&hidden.name)));
        if let Some(w) = selection {
            sql.push_str(&format!(" WHERE {w}"));
        }
        let df = self.sql_with_params(&sql, &options.params).await?;
        let (id, key) = if finops_key.is_empty() {
            (Some(0), Vec::new())
        } else {
            (None, finops_key.iter().enumerate().map(|(i, k)| (k.clone(), i)).collect())
        };
        let layout = Layout { op, id, etag: Some(etag_at), key, names, setters, first_value: etag_at + 1 };
        Ok(Plan { target: Arc::new(target), layout: Arc::new(layout), df, skip: None, _hidden: Some(hidden) })
    }

    async fn plan_merge(&self, m: parse::Merge, options: &DmlOptions) -> Result<Plan, SqlError> {
        let target = self.target(&m.table).await?;
        let on_cols: Vec<String> = m.on.iter().map(|(c, _)| c.clone()).collect();
        target.key_for(&on_cols)?;
        let uses_target = |e: &datafusion::sql::sqlparser::ast::Expr| references(e, &m.alias);
        let (op, names, exprs, skip): (WriteOp, Vec<String>, Vec<String>, Option<SkipRule>) = match (
            &m.update, &m.insert,
        ) {
            (Some(set), None) => {
                if options.write.optimistic {
                    return Err(SqlError::Plan(
                        "--concurrency optimistic needs the etag read with each row: use UPDATE … WHERE, not MERGE"
                            .into(),
                    ));
                }
                let names = set.iter().map(|(c, _)| c.clone()).collect();
                let exprs = set.iter().map(|(_, e)| e.to_string()).collect();
                (WriteOp::Update, names, exprs, Some(|e: &RowError| e.status == Some(404)))
            }
            (None, Some((cols, values))) => {
                let exprs = values.iter().map(|e| e.to_string()).collect();
                (WriteOp::Create, cols.clone(), exprs, Some(|e: &RowError| e.code == DUPLICATE_KEY))
            }
            (Some(set), Some((cols, values))) => {
                // One upsert per row: the same columns must be written whether the record
                // exists or not.
                let mut ins: Vec<(String, String)> = cols
                    .iter()
                    .zip(values)
                    .filter(|(c, _)| !on_cols.iter().any(|k| k.eq_ignore_ascii_case(c)))
                    .map(|(c, e)| (c.to_ascii_lowercase(), e.to_string()))
                    .collect();
                let mut upd: Vec<(String, String)> =
                    set.iter().map(|(c, e)| (c.to_ascii_lowercase(), e.to_string())).collect();
                ins.sort();
                upd.sort();
                if ins != upd {
                    return Err(SqlError::Unsupported(
                            "MERGE whose WHEN MATCHED UPDATE SET and WHEN NOT MATCHED INSERT write different columns or values: it runs as one upsert by key, so both must set the same columns to the same expressions (the key columns aside)".into(),
                        ));
                }
                let exprs = values.iter().map(|e| e.to_string()).collect();
                (WriteOp::Upsert, cols.clone(), exprs, None)
            }
            (None, None) => return Err(SqlError::Plan("MERGE without WHEN clauses".into())),
        };
        if m.update.iter().flatten().any(|(_, e)| uses_target(e))
            || m.insert.iter().flat_map(|(_, v)| v).any(uses_target)
        {
            return Err(SqlError::Unsupported(format!(
                "MERGE values that read the target '{}': they are computed from the source only",
                m.alias
            )));
        }
        let setters = target.setters(&names, op)?;
        let mut sql = String::from("SELECT ");
        let mut items: Vec<String> = m.on.iter().enumerate().map(|(i, (_, e))| format!("({e}) AS __k{i}")).collect();
        items.extend(exprs.iter().enumerate().map(|(i, e)| format!("({e}) AS __v{i}")));
        sql.push_str(&items.join(", "));
        sql.push_str(&format!(" FROM {}", m.source));
        let df = self.sql_with_params(&sql, &options.params).await?;
        let key = if op == WriteOp::Create {
            Vec::new()
        } else {
            m.on.iter().enumerate().map(|(i, (c, _))| (c.clone(), i)).collect()
        };
        let layout = Layout { op, id: None, etag: None, key, names, setters, first_value: m.on.len() };
        Ok(Plan { target: Arc::new(target), layout: Arc::new(layout), df, skip, _hidden: None })
    }

    async fn run_plan(
        &self,
        plan: Plan,
        options: &DmlOptions,
        progress: impl Fn(&WriteProgress) + Send + Sync,
    ) -> Result<DmlOutcome, SqlError> {
        let op = plan.layout.op;
        let entity = plan.target.schema.entity.clone();
        let side = Arc::new(Mutex::new(Side::default()));
        let keep_inputs = options.keep_failed_inputs;
        let batches = plan.df.clone().execute_stream().await?;
        let rows = {
            let (side, layout, target) = (side.clone(), plan.layout.clone(), plan.target.clone());
            futures::stream::unfold((batches, VecDeque::<WriteRow>::new()), move |(mut batches, mut buffer)| {
                let (side, layout, target) = (side.clone(), layout.clone(), target.clone());
                async move {
                    loop {
                        if let Some(r) = buffer.pop_front() {
                            return Some((r, (batches, buffer)));
                        }
                        match batches.next().await {
                            None => return None,
                            Some(Err(e)) => {
                                if let Ok(mut s) = side.lock() {
                                    s.source_error = Some(SqlError::from(e));
                                }
                                return None;
                            }
                            Some(Ok(batch)) => {
                                let Ok(mut s) = side.lock() else { return None };
                                for r in 0..batch.num_rows() {
                                    s.rows += 1;
                                    let index = s.rows;
                                    let c = layout.convert(&target, &batch, r, index);
                                    if keep_inputs {
                                        s.inputs.insert(index, c.input);
                                    }
                                    match c.row {
                                        Ok(row) => buffer.push_back(row),
                                        Err(e) => s.failed.push(*e),
                                    }
                                }
                            }
                        }
                    }
                }
            })
        };

        let mut planned = Vec::new();
        let mut stopped = None;
        let report = if options.dry_run {
            let mut rows = std::pin::pin!(rows);
            while let Some(row) = rows.next().await {
                planned.push(PlannedRow { index: row.index, op, key: row.key, etag: row.etag, body: row.values });
            }
            let mut r = empty_report(op);
            r.rows = planned.len() as u64;
            r
        } else if options.write.atomic {
            // Every row is read and converted before anything is sent: a row that does not
            // convert stops the statement with nothing written.
            let all: Vec<WriteRow> = rows.collect().await;
            let failed = side.lock().map(|s| s.failed.first().cloned()).unwrap_or_default();
            if let Some(first) = failed {
                let mut r = empty_report(op);
                r.rows = all.len() as u64;
                r.not_attempted = all.iter().map(|w| w.index).collect();
                stopped = Some(SqlError::Client(d365_client::ClientError::InvalidArgument(format!(
                    "atomic write not sent: {first}"
                ))));
                r
            } else {
                self.send(&entity, op, futures::stream::iter(all), options, &progress, &mut stopped).await
            }
        } else {
            self.send(&entity, op, rows, options, &progress, &mut stopped).await
        };

        let mut report = report;
        let side = std::mem::take(&mut *side.lock().map_err(|_| SqlError::Execution("poisoned".into()))?);
        report.rows += side.failed.len() as u64;
        report.failed.extend(side.failed);
        report.failed.sort_by_key(|e| e.index);
        if stopped.is_none() {
            stopped = side.source_error;
        }
        let mut skipped = 0;
        if let Some(skip) = plan.skip {
            let before = report.failed.len();
            report.failed.retain(|e| !skip(e));
            skipped = (before - report.failed.len()) as u64;
        }
        let mut inputs = side.inputs;
        if keep_inputs {
            let wanted: std::collections::HashSet<u64> =
                report.failed.iter().map(|e| e.index).chain(report.not_attempted.iter().copied()).collect();
            inputs.retain(|k, _| wanted.contains(k));
        }
        Ok(DmlOutcome {
            table: entity.logical_name.clone(),
            op,
            report,
            planned,
            dry_run: options.dry_run,
            skipped,
            stopped,
            inputs,
        })
    }

    async fn send<S>(
        &self,
        entity: &d365_client::EntityInfo,
        op: WriteOp,
        rows: S,
        options: &DmlOptions,
        progress: &(impl Fn(&WriteProgress) + Send + Sync),
        stopped: &mut Option<SqlError>,
    ) -> WriteReport
    where
        S: futures::Stream<Item = WriteRow> + Send,
    {
        match d365_client::write(self.client(), entity, op, rows, &options.write, progress).await {
            Ok(r) => r,
            Err(e) => {
                *stopped = Some(SqlError::Client(e.error));
                *e.report
            }
        }
    }
}

fn op_word(op: WriteOp) -> &'static str {
    if op == WriteOp::Upsert { "UPSERT" } else { "INSERT" }
}

fn empty_report(op: WriteOp) -> WriteReport {
    WriteReport::new(op, d365_client::BulkMode::Auto)
}
