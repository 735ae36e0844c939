//! The local copy of a sync: one SQLite database file, one table per Dataverse table (named by
//! its logical name, keyed by its primary key), plus `_d365_sync_state` with each table's delta
//! link or watermark.
//!
//! Tables have the SQL engine's columns, like every other target: choice codes with their
//! `…name` labels, lookups (`parentaccountid`) with `…name` and `…type`. SQLite's types:
//! GUIDs, text, dates (`YYYY-MM-DD`) and instants (`YYYY-MM-DDTHH:MM:SSZ`, UTC) as `TEXT`;
//! whole numbers and booleans (0/1) as `INTEGER`; floating-point, money and decimals as `REAL`
//! (SQLite has no exact decimal: 15-17 significant digits; PostgreSQL or Parquet keep them
//! exact). A column added to the Dataverse table later is added here
//! (`ALTER TABLE … ADD COLUMN`); one gone from Dataverse stays, null on rows changed from then on.
//!
//! Every page of changes is applied in one transaction together with the table's new sync
//! state, so the state never runs ahead of the data; a newer `versionnumber` is never
//! overwritten by an older one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use d365_sql::datafusion::arrow::array::{Array, AsArray};
use d365_sql::datafusion::arrow::datatypes::{DataType, TimeUnit};
use d365_sql::datafusion::arrow::record_batch::RecordBatch;
use d365_sql::{TableSchema, ValueKind};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::SyncError;
use crate::target::{Batch, Target, TargetTable};

/// How a table is kept up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracking {
    /// Change tracking: the `@odata.deltaLink` to read next, and the `@odata.nextLink` of a
    /// delta read in progress.
    Delta {
        /// The delta link.
        link: String,
        /// A page of the delta read not applied yet.
        next: Option<String>,
    },
    /// `modifiedon` watermark: rows modified at or after it are read again.
    Watermark(Option<String>),
}

/// A table's sync state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableState {
    /// The entity set.
    pub entity_set: String,
    /// The primary key column.
    pub primary_key: String,
    /// How it is tracked.
    pub tracking: Tracking,
}

/// The SQLite database of a sync.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// Quotes an SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SQLite type of a column.
fn declared_type(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Int32 | ValueKind::Int64 | ValueKind::Boolean => "INTEGER",
        ValueKind::Float64 | ValueKind::Decimal { .. } => "REAL",
        ValueKind::Utf8 | ValueKind::Date32 | ValueKind::Timestamp => "TEXT",
    }
}

/// The value of row `row` of column `a`.
fn cell(a: &dyn Array, row: usize) -> Sql {
    if a.is_null(row) {
        return Sql::Null;
    }
    match a.data_type() {
        DataType::Utf8 => Sql::Text(a.as_string::<i32>().value(row).to_string()),
        DataType::Int32 => {
            Sql::Integer(i64::from(a.as_primitive::<d365_sql::datafusion::arrow::datatypes::Int32Type>().value(row)))
        }
        DataType::Int64 => {
            Sql::Integer(a.as_primitive::<d365_sql::datafusion::arrow::datatypes::Int64Type>().value(row))
        }
        DataType::Float64 => {
            Sql::Real(a.as_primitive::<d365_sql::datafusion::arrow::datatypes::Float64Type>().value(row))
        }
        DataType::Boolean => Sql::Integer(i64::from(a.as_boolean().value(row))),
        DataType::Decimal128(_, scale) => {
            let v = a.as_primitive::<d365_sql::datafusion::arrow::datatypes::Decimal128Type>().value(row);
            Sql::Real(v as f64 / 10f64.powi(i32::from(*scale)))
        }
        DataType::Date32 | DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let mut out = Vec::with_capacity(20);
            crate::text_encode::temporal(a, row, &mut out);
            Sql::Text(String::from_utf8(out).unwrap_or_default())
        }
        _ => Sql::Null,
    }
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, SyncError> {
        let err = |source| SyncError::Store { path: path.to_path_buf(), source };
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS _d365_sync_state (
                 table_name TEXT PRIMARY KEY, entity_set TEXT NOT NULL, primary_key TEXT NOT NULL,
                 mode TEXT NOT NULL, delta_link TEXT, delta_next TEXT, watermark TEXT,
                 updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')));",
        )
        .map_err(err)?;
        Ok(Self { conn, path: path.to_path_buf() })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> SyncError + '_ {
        |source| SyncError::Store { path: self.path.clone(), source }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection (to query the copy).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The sync state of `table`, if it was synced before.
    pub fn state(&self, table: &str) -> Result<Option<TableState>, SyncError> {
        self.conn
            .query_row(
                "SELECT entity_set, primary_key, mode, delta_link, delta_next, watermark FROM _d365_sync_state WHERE table_name = ?1",
                [table],
                |r| {
                    let mode: String = r.get(2)?;
                    let tracking = match (mode.as_str(), r.get::<_, Option<String>>(3)?) {
                        ("delta", Some(link)) => Tracking::Delta { link, next: r.get(4)? },
                        _ => Tracking::Watermark(r.get(5)?),
                    };
                    Ok(TableState { entity_set: r.get(0)?, primary_key: r.get(1)?, tracking })
                },
            )
            .optional()
            .map_err(self.err())
    }

    /// Columns of `table`, in order (empty when it does not exist).
    fn columns(&self, table: &str) -> Result<Vec<String>, SyncError> {
        let mut st = self.conn.prepare(&format!("PRAGMA table_info({})", ident(table))).map_err(self.err())?;
        let names = st.query_map([], |r| r.get::<_, String>(1)).map_err(self.err())?;
        names.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// Rows in `table` (0 when it does not exist).
    pub fn count(&self, table: &str) -> Result<u64, SyncError> {
        if self.columns(table)?.is_empty() {
            return Ok(0);
        }
        self.conn
            .query_row(&format!("SELECT count(*) FROM {}", ident(table)), [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.err())
    }

    /// Creates `name` with the columns of `schema` (the primary key first), if missing.
    fn create(&self, name: &str, schema: &TableSchema) -> Result<(), SyncError> {
        let keys = schema.key_columns();
        let mut defs: Vec<String> = schema
            .columns
            .iter()
            .map(|c| {
                let key = if keys.len() == 1 && c.name == keys[0] { " PRIMARY KEY" } else { "" };
                format!("{} {}{key}", ident(&c.name), declared_type(c.kind))
            })
            .collect();
        if keys.len() > 1 {
            // A Finance & Operations entity's composite key.
            defs.push(format!("PRIMARY KEY ({})", keys.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ")));
        }
        self.conn
            .execute_batch(&format!("CREATE TABLE IF NOT EXISTS {} ({})", ident(name), defs.join(", ")))
            .map_err(self.err())
    }

    /// Adds to `name` the columns of `schema` it lacks; returns those it has that `schema`
    /// does not (gone from Dataverse).
    fn add_new_columns(&self, name: &str, schema: &TableSchema) -> Result<Vec<String>, SyncError> {
        let have = self.columns(name)?;
        let have_set: HashSet<&str> = have.iter().map(String::as_str).collect();
        for c in &schema.columns {
            if !have_set.contains(c.name.as_str()) {
                tracing::info!("{name}: new column {} added", c.name);
                self.conn
                    .execute_batch(&format!(
                        "ALTER TABLE {} ADD COLUMN {} {}",
                        ident(name),
                        ident(&c.name),
                        declared_type(c.kind)
                    ))
                    .map_err(self.err())?;
            }
        }
        let source: HashSet<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        Ok(have.into_iter().filter(|c| !source.contains(c.as_str())).collect())
    }

    /// Upserts the rows of `rows` into `name`, deletes `deleted` ids, and saves `state` when
    /// given, in one transaction. Returns (upserted, deleted).
    fn merge(
        &mut self,
        name: &str,
        schema: &TableSchema,
        rows: &RecordBatch,
        deleted: &[String],
        state: Option<(&str, &TableState)>,
    ) -> Result<(u64, u64), SyncError> {
        self.create(name, schema)?;
        let gone = self.add_new_columns(name, schema)?;
        let keys: Vec<String> = schema.key_columns().iter().map(|k| ident(k)).collect();
        let pk = keys.join(",");
        let names: Vec<String> = schema.columns.iter().map(|c| ident(&c.name)).collect();
        let mut sets: Vec<String> =
            names.iter().filter(|n| !keys.contains(n)).map(|n| format!("{n}=excluded.{n}")).collect();
        sets.extend(gone.iter().map(|g| format!("{}=NULL", ident(g))));
        let action = if sets.is_empty() { "NOTHING".to_string() } else { format!("UPDATE SET {}", sets.join(",")) };
        let guard = match schema.column("versionnumber") {
            Some(_) if !sets.is_empty() => {
                let v = ident("versionnumber");
                format!(" WHERE {v} IS NULL OR excluded.{v} IS NULL OR excluded.{v} >= {v}")
            }
            _ => String::new(),
        };
        let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT({pk}) DO {action}{guard}",
            ident(name),
            names.join(","),
            marks.join(",")
        );
        let path = self.path.clone();
        let err = |source| SyncError::Store { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        let mut upserted = 0;
        {
            let mut st = tx.prepare_cached(&sql).map_err(err)?;
            // Dataverse ids compare in lower case; Finance & Operations keys are kept as sent.
            let pk_index = (schema.dialect == d365_sql::Dialect::Dataverse)
                .then(|| schema.column(&schema.primary_key).map(|(i, _)| i))
                .flatten();
            let mut values: Vec<Sql> = Vec::with_capacity(names.len());
            for row in 0..rows.num_rows() {
                values.clear();
                values.extend(rows.columns().iter().map(|a| cell(a.as_ref(), row)));
                if let Some(Sql::Text(id)) = pk_index.and_then(|i| values.get_mut(i)) {
                    *id = id.to_ascii_lowercase();
                }
                upserted += st.execute(rusqlite::params_from_iter(values.iter())).map_err(err)? as u64;
            }
        }
        let mut removed = 0;
        if !deleted.is_empty() {
            let mut st = tx.prepare_cached(&format!("DELETE FROM {} WHERE {pk} = ?1", ident(name))).map_err(err)?;
            for id in deleted {
                removed += st.execute([id.to_ascii_lowercase()]).map_err(err)? as u64;
            }
        }
        if let Some((table, state)) = state {
            save_state(&tx, table, state).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok((upserted, removed))
    }

    /// Saves `state` alone.
    pub fn save_state(&self, table: &str, state: &TableState) -> Result<(), SyncError> {
        save_state(&self.conn, table, state).map_err(self.err())
    }
}

/// The local SQLite copy as a sync target.
#[async_trait::async_trait]
impl Target for Store {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    async fn state(&mut self, table: &TargetTable) -> Result<Option<TableState>, SyncError> {
        if self.columns(&table.logical)?.is_empty() {
            return Ok(None);
        }
        Store::state(self, &table.logical)
    }

    async fn begin_full(&mut self, table: &TargetTable) -> Result<(), SyncError> {
        let staging = staging_name(&table.logical);
        self.conn.execute_batch(&format!("DROP TABLE IF EXISTS {}", ident(&staging))).map_err(self.err())?;
        self.create(&staging, &table.schema)
    }

    async fn load(&mut self, table: &TargetTable, batch: Batch<'_>) -> Result<u64, SyncError> {
        let rows = table.decode(&batch)?;
        Ok(self.merge(&staging_name(&table.logical), &table.schema, &rows, &[], None)?.0)
    }

    async fn finish_full(&mut self, table: &TargetTable, state: &TableState) -> Result<(), SyncError> {
        let path = self.path.clone();
        let err = |source| SyncError::Store { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS {t}; ALTER TABLE {s} RENAME TO {t};",
            t = ident(&table.logical),
            s = ident(&staging_name(&table.logical))
        ))
        .map_err(err)?;
        save_state(&tx, &table.logical, state).map_err(err)?;
        tx.commit().map_err(err)
    }

    async fn apply(
        &mut self,
        table: &TargetTable,
        batch: Batch<'_>,
        state: &TableState,
    ) -> Result<(u64, u64), SyncError> {
        let rows = table.decode(&batch)?;
        self.merge(&table.logical, &table.schema, &rows, batch.deleted, Some((&table.logical, state)))
    }

    async fn count(&mut self, table: &TargetTable) -> Result<u64, SyncError> {
        Store::count(self, &table.logical)
    }
}

fn staging_name(table: &str) -> String {
    format!("{table}__d365_staging")
}

fn save_state(conn: &Connection, table: &str, state: &TableState) -> rusqlite::Result<()> {
    let (mode, link, next, watermark) = match &state.tracking {
        Tracking::Delta { link, next } => ("delta", Some(link.as_str()), next.as_deref(), None),
        Tracking::Watermark(w) => ("watermark", None, None, w.as_deref()),
    };
    conn.execute(
        "INSERT INTO _d365_sync_state (table_name, entity_set, primary_key, mode, delta_link, delta_next, watermark, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, strftime('%Y-%m-%dT%H:%M:%SZ','now'))
         ON CONFLICT(table_name) DO UPDATE SET entity_set=excluded.entity_set, primary_key=excluded.primary_key,
           mode=excluded.mode, delta_link=excluded.delta_link, delta_next=excluded.delta_next,
           watermark=excluded.watermark, updated_at=excluded.updated_at",
        params![table, state.entity_set, state.primary_key, mode, link, next, watermark],
    )?;
    Ok(())
}
