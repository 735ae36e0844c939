//! The F&O data store: its own SQLite database (in memory, or `<data>.fno.sqlite` beside the
//! Dataverse data file), one SQL table per data entity with the entity's properties as
//! columns plus `RecId` (unique across the store, as in F&O) and `RecVersion` (changed on every
//! update; both make up the ETag). Text columns use `COLLATE NOCASE`, so keys, comparisons and
//! ordering are case-insensitive like SQL Server's default collation.

use super::model::{DataType, ENTITIES, Entity};
use crate::error::StartError;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// The first RecId handed out (F&O RecIds of demo data are of this size).
pub const FIRST_REC_ID: i64 = 5_637_144_576;

/// Above this many seeded customers a database without a data file lives in a temporary file.
const IN_MEMORY_MAX_ROWS: usize = 200_000;

/// The F&O data store: a small pool of SQLite connections to one database.
pub struct FnoStore {
    uri: String,
    pool: Mutex<Vec<Connection>>,
    rec_id: AtomicI64,
    _anchor: Mutex<Connection>,
    _spill: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for FnoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnoStore").field("uri", &self.uri).finish()
    }
}

fn store_err(e: rusqlite::Error) -> StartError {
    StartError::Store(format!("F&O store: {e}"))
}

/// The F&O data file that belongs with the Dataverse data file `data`.
pub fn data_file(data: &Path) -> PathBuf {
    PathBuf::from(format!("{}.fno.sqlite", data.display()))
}

/// The column definition of one property.
fn column_sql(name: &str, t: DataType) -> String {
    let ty = match t {
        DataType::String | DataType::Guid => "TEXT NOT NULL DEFAULT '' COLLATE NOCASE",
        DataType::Real => "REAL NOT NULL DEFAULT 0",
        _ => "INTEGER NOT NULL DEFAULT 0",
    };
    format!("\"{name}\" {ty}")
}

/// `CREATE TABLE` and index statements of `e`.
pub fn ddl(e: &Entity) -> String {
    let mut cols: Vec<String> = e.fields.iter().map(|f| column_sql(f.name, f.data_type)).collect();
    cols.push("RecId INTEGER NOT NULL UNIQUE".into());
    cols.push("RecVersion INTEGER NOT NULL".into());
    let keys: Vec<String> = e.keys.iter().map(|k| format!("\"{k}\"")).collect();
    cols.push(format!("PRIMARY KEY ({})", keys.join(", ")));
    let mut sql = format!("CREATE TABLE \"{}\" ({});\n", e.table(), cols.join(", "));
    if e.field("ModifiedDateTime").is_some() {
        sql.push_str(&format!("CREATE INDEX \"{0}_modified\" ON \"{0}\" (\"ModifiedDateTime\");\n", e.table()));
    }
    for f in e.fields.iter().filter(|f| f.references.is_some()) {
        let lead = if e.company { "\"dataAreaId\", " } else { "" };
        sql.push_str(&format!("CREATE INDEX \"{0}_{1}\" ON \"{0}\" ({lead}\"{1}\");\n", e.table(), f.name));
    }
    sql
}

impl FnoStore {
    /// Opens the store: `file` when given (created and seeded on first use, reused afterwards),
    /// else a fresh in-memory database; seeded with `rows` customers (see [`super::seed`]).
    pub fn open(file: Option<&Path>, rows: usize) -> Result<Self, StartError> {
        let spill = if file.is_none() && rows > IN_MEMORY_MAX_ROWS {
            Some(
                tempfile::Builder::new()
                    .prefix("d365-emulator-fno-")
                    .tempdir()
                    .map_err(|e| StartError::io(&std::env::temp_dir(), e))?,
            )
        } else {
            None
        };
        let file = file.map(Path::to_path_buf).or_else(|| spill.as_ref().map(|d| d.path().join("fno.sqlite")));
        let uri = match &file {
            Some(p) => format!("file:{}", p.display()),
            None => format!("file:/d365-emulator-fno-{}?vfs=memdb", uuid::Uuid::new_v4()),
        };
        let anchor = crate::store::open_conn(&uri).map_err(store_err)?;
        if file.is_some() {
            anchor.pragma_update(None, "journal_mode", "WAL").map_err(store_err)?;
            anchor.pragma_update(None, "synchronous", "NORMAL").map_err(store_err)?;
        }
        let seeded: bool = anchor
            .query_row("SELECT count(*) FROM sqlite_master WHERE name = '_fno_meta'", [], |r| r.get::<_, i64>(0))
            .map_err(store_err)?
            > 0;
        if !seeded {
            let mut sql = String::from("BEGIN;\n");
            for e in ENTITIES {
                sql.push_str(&ddl(e));
            }
            sql.push_str("CREATE TABLE _fno_meta (k TEXT PRIMARY KEY, v TEXT);\nCOMMIT;");
            anchor.execute_batch(&sql).map_err(store_err)?;
            let t0 = std::time::Instant::now();
            super::seed::seed(&anchor, rows).map_err(store_err)?;
            anchor.execute("INSERT INTO _fno_meta VALUES ('seeded', ?1)", [rows.to_string()]).map_err(store_err)?;
            tracing::debug!(rows, ms = t0.elapsed().as_millis() as u64, "F&O store seeded");
        }
        let mut max = FIRST_REC_ID - 1;
        for e in ENTITIES {
            let m: Option<i64> = anchor
                .query_row(&format!("SELECT max(RecId) FROM \"{}\"", e.table()), [], |r| r.get(0))
                .map_err(store_err)?;
            max = max.max(m.unwrap_or(0));
        }
        Ok(Self {
            uri,
            pool: Mutex::new(Vec::new()),
            rec_id: AtomicI64::new(max),
            _anchor: Mutex::new(anchor),
            _spill: spill,
        })
    }

    /// Runs `f` with a pooled connection (blocking: call from `spawn_blocking`).
    pub fn with_conn<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> rusqlite::Result<R> {
        let conn = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match conn {
            Some(c) => c,
            None => crate::store::open_conn(&self.uri)?,
        };
        let r = f(&mut conn);
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < 8 {
            pool.push(conn);
        }
        Ok(r)
    }

    /// A new connection outside the pool (a `$batch` change set holds one for its transaction).
    pub fn open_connection(&self) -> rusqlite::Result<Connection> {
        crate::store::open_conn(&self.uri)
    }

    /// The next RecId.
    pub fn next_rec_id(&self) -> i64 {
        self.rec_id.fetch_add(1, Ordering::SeqCst) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_seeds_and_reopens_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.fno.sqlite");
        let s = FnoStore::open(Some(&file), 40).unwrap();
        let n: i64 =
            s.with_conn(|c| c.query_row("SELECT count(*) FROM CustomerV3", [], |r| r.get(0))).unwrap().unwrap();
        assert_eq!(n, 40);
        let next = s.next_rec_id();
        drop(s);
        let s = FnoStore::open(Some(&file), 999).unwrap();
        let n: i64 =
            s.with_conn(|c| c.query_row("SELECT count(*) FROM CustomerV3", [], |r| r.get(0))).unwrap().unwrap();
        assert_eq!(n, 40, "an existing file is kept as it is");
        assert_eq!(s.next_rec_id(), next, "RecIds continue after the stored ones");
    }
}
