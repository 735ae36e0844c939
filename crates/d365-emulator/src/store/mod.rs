//! SQLite storage of the Dataverse tables: one SQL table per Dataverse table, a column per
//! attribute (plus `<lookup>_type` for polymorphic lookups), indexes on lookups, version
//! numbers and alternate keys, and `_deleted` (the change-tracking log of deletions).
//!
//! Queries run in SQLite with indexes; nothing is loaded into memory whole. The in-memory
//! mode uses SQLite's `memdb` VFS so several connections share one database.

pub mod codec;
pub mod ddl;
mod seed;

/// Ids of seeded rows and principals.
pub mod seed_ids {
    pub use super::seed::{
        DEFAULT_TEAM_ID, SALES_TEAM_ID, USD_ID, application_user_id, seeded_id, service_principal_id,
    };
}

use crate::config::Config;
use crate::error::StartError;
use crate::schema::{Column, Schema, Table};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// The Dataverse data store: a small pool of SQLite connections.
pub struct Store {
    uri: String,
    pool: Mutex<Vec<Connection>>,
    version: AtomicI64,
    /// Keeps an in-memory database alive.
    _anchor: Mutex<Connection>,
    /// The directory of a spilled "in-memory" database, removed on drop.
    _spill: Option<tempfile::TempDir>,
}

/// Above this many seeded accounts a database without `--data` lives in a temporary file
/// (removed when the emulator stops) instead of memory, so memory stays bounded: SQLite then
/// keeps only its page cache in RAM.
pub const IN_MEMORY_MAX_ROWS: usize = 100_000;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("uri", &self.uri).finish()
    }
}

pub(crate) fn open_conn(uri: &str) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(uri, flags)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    c.set_prepared_statement_cache_capacity(256);
    // 16 MiB of page cache per connection (the pool holds at most 16).
    c.pragma_update(None, "cache_size", -16_384)?;
    // Memory-mapped reads of a file-backed store (up to 2 GiB; in-memory stores ignore it):
    // pages missing from that cache come from the OS page cache without a read() and a copy
    // each, a third of the emulator's CPU in a range aggregate over a spilled million rows.
    // The pragma answers with the size set (no row where mmap is unavailable).
    c.prepare("PRAGMA mmap_size = 2147483648")?.query([])?.next()?;
    Ok(c)
}

fn store_err(e: rusqlite::Error) -> StartError {
    StartError::Store(e.to_string())
}

impl Store {
    /// Opens the store: a SQLite file when `data` is given (created and seeded on first use,
    /// reused as it is afterwards), else a fresh in-memory database seeded with `rows` accounts.
    pub fn open(data: Option<&Path>, schema: Arc<Schema>, config: &Config, rows: usize) -> Result<Self, StartError> {
        let spill = if data.is_none() && rows > IN_MEMORY_MAX_ROWS {
            Some(
                tempfile::Builder::new()
                    .prefix("d365-emulator-data-")
                    .tempdir()
                    .map_err(|e| StartError::io(&std::env::temp_dir(), e))?,
            )
        } else {
            None
        };
        let file = data.map(Path::to_path_buf).or_else(|| spill.as_ref().map(|d| d.path().join("data.sqlite")));
        let uri = match &file {
            Some(p) => {
                if let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| StartError::io(parent, e))?;
                }
                format!("file:{}", p.display())
            }
            None => format!("file:/d365-emulator-{}?vfs=memdb", uuid::Uuid::new_v4()),
        };
        let anchor = open_conn(&uri).map_err(store_err)?;
        if file.is_some() {
            anchor.pragma_update(None, "journal_mode", "WAL").map_err(store_err)?;
            // A spilled database is thrown away on exit: no need to survive power loss.
            let sync = if spill.is_some() { "OFF" } else { "NORMAL" };
            anchor.pragma_update(None, "synchronous", sync).map_err(store_err)?;
        }
        let seeded = ddl::is_seeded(&anchor).map_err(store_err)?;
        if !seeded {
            // A throw-away database is seeded without a journal and with a larger cache.
            if spill.is_some() {
                anchor.pragma_update(None, "journal_mode", "OFF").map_err(store_err)?;
                anchor.pragma_update(None, "cache_size", -131_072).map_err(store_err)?;
            }
            let t0 = std::time::Instant::now();
            ddl::create(&anchor, &schema).map_err(store_err)?;
            seed::seed(&anchor, &schema, config, rows).map_err(store_err)?;
            let t1 = std::time::Instant::now();
            ddl::create_indexes(&anchor, &schema).map_err(store_err)?;
            ddl::mark_seeded(&anchor).map_err(store_err)?;
            tracing::debug!(
                rows,
                seed_ms = (t1 - t0).as_millis() as u64,
                index_ms = t1.elapsed().as_millis() as u64,
                "seeded"
            );
            if spill.is_some() {
                anchor.pragma_update(None, "cache_size", -16_384).map_err(store_err)?;
                anchor.pragma_update(None, "journal_mode", "WAL").map_err(store_err)?;
            }
        } else {
            seed::add_platform_tables(&anchor, &schema, config).map_err(store_err)?;
        }
        ddl::create_custom_columns(&anchor).map_err(store_err)?;
        let version = ddl::max_version(&anchor, &schema).map_err(store_err)?;
        Ok(Self {
            uri,
            pool: Mutex::new(Vec::new()),
            version: AtomicI64::new(version),
            _anchor: Mutex::new(anchor),
            _spill: spill,
        })
    }

    /// Adds `columns` to the SQL table of `table` (existing rows get null) and records
    /// `definition` (a [`crate::schema::custom::NewColumn`] as JSON) so that opening the data
    /// file again re-creates them (blocking: call from `spawn_blocking`).
    pub fn add_columns(&self, table: &Table, columns: &[Column], definition: &str) -> rusqlite::Result<()> {
        self.with_conn(|c| ddl::add_columns(c, table, columns, definition))?
    }

    /// The definitions of the columns created at runtime, oldest first: `(table, definition)`.
    pub fn custom_columns(&self) -> rusqlite::Result<Vec<(String, String)>> {
        self.with_conn(|c| ddl::custom_columns(c))?
    }

    /// Runs `f` with a pooled connection (blocking: call from `spawn_blocking`).
    pub fn with_conn<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> rusqlite::Result<R> {
        let conn = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match conn {
            Some(c) => c,
            None => open_conn(&self.uri)?,
        };
        let r = f(&mut conn);
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < 16 {
            pool.push(conn);
        }
        Ok(r)
    }

    /// A new connection outside the pool (a `$batch` change set holds one for its transaction).
    pub fn open_connection(&self) -> rusqlite::Result<Connection> {
        open_conn(&self.uri)
    }

    /// The next row version (a store-wide increasing counter, the source of ETags).
    pub fn next_version(&self) -> i64 {
        self.version.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The latest row version handed out.
    pub fn current_version(&self) -> i64 {
        self.version.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(store: &Store, table: &str) -> i64 {
        store.with_conn(|c| c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))).unwrap().unwrap()
    }

    #[test]
    fn a_data_file_from_before_the_platform_tables_gets_them_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.sqlite");
        let schema = Arc::new(Schema::builtin());
        let config = Config::default();
        let store = Store::open(Some(&file), schema.clone(), &config, 4).unwrap();
        let (messages, filters) = (count(&store, "sdkmessage"), count(&store, "sdkmessagefilter"));
        assert!(messages >= 10 && filters > messages, "{messages} messages, {filters} filters");
        let version = store.current_version();
        drop(store);
        // What an older build left behind: the same data without the platform tables.
        let c = Connection::open(&file).unwrap();
        c.execute_batch("DROP TABLE sdkmessagefilter; DROP TABLE sdkmessage;").unwrap();
        drop(c);
        let store = Store::open(Some(&file), schema, &config, 4).unwrap();
        assert_eq!((count(&store, "sdkmessage"), count(&store, "sdkmessagefilter")), (messages, filters));
        assert_eq!(count(&store, "account"), 4, "the data is kept");
        // The platform rows were seeded last, so their new versions follow the data's again.
        assert_eq!(store.current_version(), version, "new rows get versions after the newest one");
    }
}
