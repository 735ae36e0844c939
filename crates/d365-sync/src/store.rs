//! The local copy of a sync: one SQLite database file, one table per Dataverse table (named by
//! its logical name, keyed by its primary key), plus `_d365_sync_state` with each table's delta
//! link or watermark.
//!
//! Columns are created from the rows as they come: a key not seen before becomes a column
//! (`ALTER TABLE ... ADD COLUMN`), typed by its first non-null value (text, integer, real;
//! booleans as 0/1; arrays and objects as JSON text). So a column added to the Dataverse table
//! later is picked up, never fatal. Annotation keys (`@odata.etag`, `x@...`) are not stored.
//!
//! Every batch (a page of upserts and deletes) is applied in one transaction together with the
//! table's new sync state, so the state never runs ahead of the data.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

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

fn to_sql(v: &Value) -> Sql {
    match v {
        Value::Null => Sql::Null,
        Value::Bool(b) => Sql::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Sql::Integer(i),
            None => Sql::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Sql::Text(s.clone()),
        other => Sql::Text(other.to_string()),
    }
}

fn declared_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "INTEGER",
        Value::Number(n) if n.is_i64() || n.is_u64() => "INTEGER",
        Value::Number(_) => "REAL",
        Value::Null => "",
        _ => "TEXT",
    }
}

/// Whether a row key is stored as a column.
fn is_column(key: &str) -> bool {
    !key.contains('@')
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

    /// Columns of `table` (empty when it does not exist).
    fn columns(&self, table: &str) -> Result<HashSet<String>, SyncError> {
        let mut st = self.conn.prepare(&format!("PRAGMA table_info({})", ident(table))).map_err(self.err())?;
        let names = st.query_map([], |r| r.get::<_, String>(1)).map_err(self.err())?;
        names.collect::<Result<HashSet<_>, _>>().map_err(self.err())
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

    /// The connection (to query the copy).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Creates an empty staging table for a full load of `table` (dropping an older one).
    pub fn begin_full(&self, table: &str, primary_key: &str) -> Result<String, SyncError> {
        let staging = staging_name(table);
        self.conn
            .execute_batch(&format!(
                "DROP TABLE IF EXISTS {s}; CREATE TABLE {s} ({pk} TEXT PRIMARY KEY);",
                s = ident(&staging),
                pk = ident(primary_key)
            ))
            .map_err(self.err())?;
        Ok(staging)
    }

    /// Replaces `table` with the staging table of a full load and saves `state`, in one
    /// transaction.
    pub fn finish_full(&mut self, table: &str, staging: &str, state: &TableState) -> Result<(), SyncError> {
        let path = self.path.clone();
        let err = |source| SyncError::Store { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS {t}; ALTER TABLE {s} RENAME TO {t};",
            t = ident(table),
            s = ident(staging)
        ))
        .map_err(err)?;
        save_state(&tx, table, state).map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Upserts `rows` and deletes `deleted` ids in `table`, and saves `state` when given, in
    /// one transaction. New columns are added first. Returns (upserted, deleted).
    pub fn apply(
        &mut self,
        table: &str,
        primary_key: &str,
        rows: &[Map<String, Value>],
        deleted: &[String],
        state: Option<(&str, &TableState)>,
    ) -> Result<(u64, u64), SyncError> {
        let mut have = self.columns(table)?;
        if have.is_empty() {
            self.conn
                .execute_batch(&format!(
                    "CREATE TABLE IF NOT EXISTS {} ({} TEXT PRIMARY KEY)",
                    ident(table),
                    ident(primary_key)
                ))
                .map_err(self.err())?;
            have.insert(primary_key.to_string());
        }
        let path = self.path.clone();
        let err = |source| SyncError::Store { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        for row in rows {
            for (k, v) in row {
                if is_column(k) && !v.is_null() && !have.contains(k) {
                    tx.execute_batch(&format!(
                        "ALTER TABLE {} ADD COLUMN {} {}",
                        ident(table),
                        ident(k),
                        declared_type(v)
                    ))
                    .map_err(err)?;
                    have.insert(k.clone());
                }
            }
        }
        let mut upserted = 0;
        for row in rows {
            let Some(id) = row.get(primary_key).and_then(Value::as_str) else { continue };
            let cols: Vec<(&String, &Value)> =
                row.iter().filter(|(k, _)| is_column(k) && have.contains(*k) && *k != primary_key).collect();
            let names: Vec<String> = cols.iter().map(|(k, _)| ident(k)).collect();
            let mut sql = format!("INSERT INTO {} ({}", ident(table), ident(primary_key));
            for n in &names {
                sql.push(',');
                sql.push_str(n);
            }
            sql.push_str(") VALUES (?1");
            for i in 0..names.len() {
                sql.push_str(&format!(",?{}", i + 2));
            }
            sql.push_str(&format!(") ON CONFLICT({}) DO ", ident(primary_key)));
            if names.is_empty() {
                sql.push_str("NOTHING");
            } else {
                let sets: Vec<String> = names.iter().map(|n| format!("{n}=excluded.{n}")).collect();
                sql.push_str(&format!("UPDATE SET {}", sets.join(",")));
            }
            let mut values: Vec<Sql> = Vec::with_capacity(cols.len() + 1);
            values.push(Sql::Text(id.to_ascii_lowercase()));
            values.extend(cols.iter().map(|(_, v)| to_sql(v)));
            let mut st = tx.prepare_cached(&sql).map_err(err)?;
            st.execute(rusqlite::params_from_iter(values.iter())).map_err(err)?;
            upserted += 1;
        }
        let mut removed = 0;
        if !deleted.is_empty() {
            let mut st = tx
                .prepare_cached(&format!("DELETE FROM {} WHERE {} = ?1", ident(table), ident(primary_key)))
                .map_err(err)?;
            for id in deleted {
                removed += st.execute([id.to_ascii_lowercase()]).map_err(err)? as u64;
            }
        }
        if let Some((name, state)) = state {
            save_state(&tx, name, state).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok((upserted, removed))
    }

    /// Saves `state` alone.
    pub fn save_state(&self, table: &str, state: &TableState) -> Result<(), SyncError> {
        save_state(&self.conn, table, state).map_err(self.err())
    }
}

/// The local SQLite copy as a sync target: rows are applied from the parsed pages (columns
/// typed by their first value, see the module docs).
#[async_trait::async_trait]
impl Target for Store {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn wants_rows(&self) -> bool {
        true
    }

    async fn state(&mut self, table: &TargetTable) -> Result<Option<TableState>, SyncError> {
        if self.columns(&table.logical)?.is_empty() {
            return Ok(None);
        }
        Store::state(self, &table.logical)
    }

    async fn begin_full(&mut self, table: &TargetTable) -> Result<(), SyncError> {
        Store::begin_full(self, &table.logical, &table.pk).map(drop)
    }

    async fn load(&mut self, table: &TargetTable, batch: Batch<'_>) -> Result<u64, SyncError> {
        let staging = staging_name(&table.logical);
        Ok(Store::apply(self, &staging, &table.pk, batch.rows, &[], None)?.0)
    }

    async fn finish_full(&mut self, table: &TargetTable, state: &TableState) -> Result<(), SyncError> {
        Store::finish_full(self, &table.logical, &staging_name(&table.logical), state)
    }

    async fn apply(
        &mut self,
        table: &TargetTable,
        batch: Batch<'_>,
        state: &TableState,
    ) -> Result<(u64, u64), SyncError> {
        Store::apply(self, &table.logical, &table.pk, batch.rows, batch.deleted, Some((&table.logical, state)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn upserts_deletes_new_columns_and_state_in_one_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("d.sqlite")).unwrap();
        assert_eq!(s.state("contact").unwrap(), None);
        let state = TableState {
            entity_set: "contacts".into(),
            primary_key: "contactid".into(),
            tracking: Tracking::Delta { link: "contacts?$deltatoken=1".into(), next: None },
        };
        let rows = vec![
            row(json!({"@odata.etag": "W/\"1\"", "contactid": "A", "lastname": "X", "n": 1})),
            row(json!({"contactid": "b", "lastname": null, "n": 2.5, "ok": true})),
        ];
        assert_eq!(s.apply("contact", "contactid", &rows, &[], Some(("contact", &state))).unwrap(), (2, 0));
        assert_eq!(s.state("contact").unwrap(), Some(state.clone()));
        // A column seen for the first time later is added; an update replaces values.
        let later = vec![row(json!({"contactid": "a", "lastname": "Y", "telephone1": "555"}))];
        s.apply("contact", "contactid", &later, &["B".to_string(), "zz".to_string()], None).unwrap();
        assert_eq!(s.count("contact").unwrap(), 1);
        let (name, phone, n): (String, String, i64) = s
            .connection()
            .query_row("SELECT lastname, telephone1, n FROM contact WHERE contactid = 'a'", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((name.as_str(), phone.as_str(), n), ("Y", "555", 1));
        assert!(!s.columns("contact").unwrap().contains("@odata.etag"));
        // A full load replaces the table at once.
        let staging = s.begin_full("contact", "contactid").unwrap();
        s.apply(&staging, "contactid", &[row(json!({"contactid": "c", "lastname": "Z"}))], &[], None).unwrap();
        let w = TableState { tracking: Tracking::Watermark(Some("2026-01-01T00:00:00Z".into())), ..state };
        s.finish_full("contact", &staging, &w).unwrap();
        assert_eq!(s.count("contact").unwrap(), 1);
        assert_eq!(s.state("contact").unwrap(), Some(w));
        assert_eq!(s.count(&staging).unwrap(), 0);
    }
}
