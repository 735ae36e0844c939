//! `sync`: keeps a local copy of Dataverse tables up to date.
//!
//! **The local store is SQLite** (`DIR/d365.sqlite`, one table per Dataverse table; see
//! [`crate::store`]). An incremental sync applies upserts and deletes *in place*, which SQLite
//! does in a transaction per batch — together with the delta token, so the token never runs
//! ahead of the data — while Parquet files are immutable and would need a rewrite or a merge
//! layer (delete files, compaction) for every delete. And a SQLite file is queryable as it is
//! by any tool (`sqlite3`, Python, DuckDB, DBeaver) with no schema to declare. For analytics
//! at scale, `d365 export --format parquet` of the synced tables remains the way.
//!
//! Per table:
//!
//! 1. **First run** (or after an expired token): a full parallel extract
//!    ([`d365_client::PartitionedScan`]) into a staging table that replaces the old copy in one
//!    transaction at the end (so rows deleted meanwhile disappear). With change tracking, a
//!    read of the primary keys alone with `Prefer: odata.track-changes` starts *before* the
//!    extract and yields the `@odata.deltaLink` (its version is taken when that read starts, so
//!    changes made during the extract come again in the next delta; applying them twice is
//!    harmless). The link keeps the token and drops that read's `$select`, so the delta returns
//!    every column.
//! 2. **Later runs**: the delta link is read (following `@odata.nextLink`), new and changed
//!    rows are upserted and `$deletedEntity` rows deleted, one transaction per page, each also
//!    saving the next position (the next link, then the new delta link).
//! 3. An **expired or refused token** (HTTP 400) falls back to the full extract, with a warning.
//! 4. Tables **without change tracking** (or with `change_tracking: false`) are synced by a
//!    `modifiedon` watermark: rows modified at or after the last maximum seen are read again and
//!    upserted. Deletions are then not seen, and the report says so.
//!
//! Columns that appear later (added to the Dataverse table) are added to the local table.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use d365_client::partition::{format_instant, row_instant};
use d365_client::{ClientError, DataverseClient, Metadata, Query, ScanOptions, ScanPlan};
use futures::StreamExt;
use serde_json::{Map, Value};

use crate::error::SyncError;
use crate::progress::Reporter;
use crate::store::{Store, TableState, Tracking};

/// The database file inside the sync directory.
pub const DATABASE_FILE: &str = "d365.sqlite";

/// What to sync and how.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Tables: logical names (`account`) or entity set names.
    pub tables: Vec<String>,
    /// Directory of the local copy.
    pub dir: PathBuf,
    /// Fixed concurrency of full extracts (`None`: adaptive).
    pub parallel: Option<usize>,
    /// Rows per page (`None`: 5000).
    pub page_size: Option<u32>,
    /// Use change tracking where the table has it (else `modifiedon` watermarks everywhere).
    pub change_tracking: bool,
    /// Progress display.
    pub progress: Reporter,
}

impl SyncOptions {
    /// Syncs `tables` into `dir` with change tracking.
    pub fn new(tables: Vec<String>, dir: impl Into<PathBuf>) -> Self {
        Self {
            tables,
            dir: dir.into(),
            parallel: None,
            page_size: None,
            change_tracking: true,
            progress: Reporter::hidden(),
        }
    }
}

/// How a table was synced this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// A full extract.
    Full,
    /// Changes read through change tracking.
    Delta,
    /// Rows modified since the watermark.
    Watermark,
}

impl fmt::Display for SyncKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full => "full extract",
            Self::Delta => "changes (change tracking)",
            Self::Watermark => "changes since the modifiedon watermark",
        })
    }
}

/// What a sync did to one table.
#[derive(Debug, Clone)]
pub struct TableSync {
    /// Logical name (the local table's name).
    pub table: String,
    /// How it was synced.
    pub kind: SyncKind,
    /// Rows inserted or updated.
    pub upserted: u64,
    /// Rows deleted.
    pub deleted: u64,
    /// Rows in the local table afterwards.
    pub rows: u64,
    /// Warnings (fallbacks, unseen deletions).
    pub warnings: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
}

impl fmt::Display for TableSync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}, {} upserted, {} deleted, {} rows locally ({:.1} s)",
            self.table,
            self.kind,
            self.upserted,
            self.deleted,
            self.rows,
            self.elapsed.as_secs_f64()
        )
    }
}

/// What a sync did.
#[derive(Debug, Clone)]
pub struct SyncReport {
    /// The SQLite database.
    pub database: PathBuf,
    /// Per table.
    pub tables: Vec<TableSync>,
}

/// Syncs every table of `options` into `options.dir` (see the module docs).
pub async fn sync(client: &DataverseClient, options: &SyncOptions) -> Result<SyncReport, SyncError> {
    if options.tables.is_empty() {
        return Err(SyncError::InvalidArgument("no table to sync".into()));
    }
    // A URL given as the directory is refused, never created as a folder of that name.
    crate::destination::local_path(&options.dir.to_string_lossy(), "the sync destination")?;
    std::fs::create_dir_all(&options.dir).map_err(SyncError::io(&options.dir))?;
    let database = options.dir.join(DATABASE_FILE);
    let mut store = Store::open(&database)?;
    let metadata = Metadata::in_memory(client.clone());
    let mut tables = Vec::new();
    for name in &options.tables {
        tables.push(sync_table(client, &metadata, &mut store, name, options).await?);
    }
    Ok(SyncReport { database, tables })
}

struct Table {
    logical: String,
    set: String,
    pk: String,
    change_tracking: bool,
    has_createdon: bool,
}

async fn resolve(metadata: &Metadata, name: &str) -> Result<Table, SyncError> {
    let info = metadata.find_entity(name).await?.ok_or_else(|| SyncError::UnknownTable(name.to_string()))?;
    let set = info.entity_set_name.clone().ok_or_else(|| {
        SyncError::InvalidArgument(format!("table '{}' has no entity set: it cannot be read", info.logical_name))
    })?;
    let meta = metadata.entity(&info.logical_name).await?;
    if meta.attribute("modifiedon").is_none() && !info.change_tracking_enabled {
        return Err(SyncError::Unsupported(format!(
            "table '{}' has neither change tracking nor a modifiedon column: it cannot be synced incrementally (use export)",
            info.logical_name
        )));
    }
    Ok(Table {
        logical: info.logical_name.clone(),
        set,
        pk: info.primary_id_attribute.clone(),
        change_tracking: info.change_tracking_enabled,
        has_createdon: meta.attribute("createdon").is_some(),
    })
}

async fn sync_table(
    client: &DataverseClient,
    metadata: &Metadata,
    store: &mut Store,
    name: &str,
    options: &SyncOptions,
) -> Result<TableSync, SyncError> {
    let started = Instant::now();
    let t = resolve(metadata, name).await?;
    let use_ct = options.change_tracking && t.change_tracking;
    let mut warnings = Vec::new();
    if !use_ct {
        let why = if t.change_tracking { "change tracking not used" } else { "change tracking is off for this table" };
        warnings.push(format!(
            "{}: {why}: syncing by the modifiedon watermark; rows deleted in Dataverse are not deleted here",
            t.logical
        ));
    }
    let state = store.state(&t.logical)?;
    let mut result = match state.map(|s| s.tracking) {
        Some(Tracking::Delta { link, next }) if use_ct => match delta(client, store, &t, link, next, options).await {
            Err(SyncError::Client(ClientError::Service(s))) if s.status == 400 => {
                let w = format!("{}: the delta token was refused ({}): full re-sync", t.logical, s.message);
                tracing::warn!("{w}");
                warnings.push(w);
                full(client, store, &t, use_ct, options).await?
            }
            other => other?,
        },
        Some(Tracking::Watermark(Some(mark))) if !use_ct => watermark(client, store, &t, &mark, options).await?,
        _ => full(client, store, &t, use_ct, options).await?,
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    result.warnings.extend(warnings);
    result.rows = store.count(&t.logical)?;
    result.elapsed = started.elapsed();
    Ok(result)
}

fn blank(t: &Table, kind: SyncKind) -> TableSync {
    TableSync {
        table: t.logical.clone(),
        kind,
        upserted: 0,
        deleted: 0,
        rows: 0,
        warnings: Vec::new(),
        elapsed: Duration::ZERO,
    }
}

fn page_query(t: &Table, options: &SyncOptions) -> Query {
    let mut q = Query::new(t.set.clone());
    if let Some(n) = options.page_size {
        q = q.max_page_size(n);
    }
    q
}

/// The largest `modifiedon` of `rows`, folded into `max`.
fn fold_modified(max: &mut Option<i64>, rows: &[Map<String, Value>]) {
    for r in rows {
        if let Some(Some(v)) = row_instant(r, "modifiedon") {
            *max = Some(max.map_or(v, |m| m.max(v)));
        }
    }
}

/// Reads the whole table through a partitioned scan into `table`, calling `apply` per page.
async fn scan_into(
    client: &DataverseClient,
    store: &mut Store,
    t: &Table,
    into: &str,
    query: &Query,
    options: &SyncOptions,
    max_modified: &mut Option<i64>,
) -> Result<u64, SyncError> {
    let mut scan_opts = ScanOptions::new(t.pk.clone());
    scan_opts.parallel = options.parallel;
    let plan = if t.has_createdon { client.plan_scan(query, &scan_opts).await? } else { ScanPlan::single() };
    let mut scan = client.partitioned_scan(query, plan, scan_opts)?;
    let _tracker = options.progress.track(&format!("sync {}", t.logical), client, scan.progress(), 0);
    let mut upserted = 0;
    while let Some(page) = scan.next().await {
        let page = page?;
        fold_modified(max_modified, &page.rows);
        upserted += store.apply(into, &t.pk, &page.rows, &[], None)?.0;
    }
    Ok(upserted)
}

async fn full(
    client: &DataverseClient,
    store: &mut Store,
    t: &Table,
    use_ct: bool,
    options: &SyncOptions,
) -> Result<TableSync, SyncError> {
    let mut out = blank(t, SyncKind::Full);
    let staging = store.begin_full(&t.logical, &t.pk)?;
    let query = page_query(t, options);
    let mut max_modified = None;
    let tracking = if use_ct {
        // The keys-only change-tracking read starts first: its version precedes the extract.
        let q = Query::new(t.set.clone()).select([t.pk.clone()]);
        let plan = client.plan(&q)?;
        let prefer = match plan.prefer {
            Some(p) => format!("odata.track-changes,{p}"),
            None => "odata.track-changes".to_string(),
        };
        let mut keys = client.page_stream_from(plan.url, Some(prefer));
        let first = keys.next().await.transpose()?;
        let (link, upserted) = futures::try_join!(
            async {
                let mut last = first;
                while last.as_ref().is_some_and(|p| p.delta_link.is_none()) {
                    last = keys.next().await.transpose()?;
                }
                let link = last.and_then(|p| p.delta_link).ok_or_else(|| {
                    SyncError::InvalidArgument(format!(
                        "{}: the change-tracking read ended without a delta link",
                        t.logical
                    ))
                })?;
                Ok::<_, SyncError>(link)
            },
            scan_into(client, store, t, &staging, &query, options, &mut max_modified)
        )?;
        out.upserted = upserted;
        Tracking::Delta { link: without_select(&link), next: None }
    } else {
        out.upserted = scan_into(client, store, t, &staging, &query, options, &mut max_modified).await?;
        Tracking::Watermark(max_modified.map(format_instant))
    };
    let state = TableState { entity_set: t.set.clone(), primary_key: t.pk.clone(), tracking };
    store.finish_full(&t.logical, &staging, &state)?;
    Ok(out)
}

/// `link` without its `$select` option (the rest, the delta token included, kept verbatim).
fn without_select(link: &str) -> String {
    match link.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query.split('&').filter(|p| !p.starts_with("$select=")).collect();
            if kept.is_empty() { path.to_string() } else { format!("{path}?{}", kept.join("&")) }
        }
        None => link.to_string(),
    }
}

/// Whether a delta row is a `$deletedEntity` entry; its id.
fn deleted_id(row: &Map<String, Value>) -> Option<&str> {
    let ctx = row.get("@odata.context").and_then(Value::as_str)?;
    ctx.ends_with("$deletedEntity").then(|| row.get("id").and_then(Value::as_str)).flatten()
}

async fn delta(
    client: &DataverseClient,
    store: &mut Store,
    t: &Table,
    link: String,
    next: Option<String>,
    options: &SyncOptions,
) -> Result<TableSync, SyncError> {
    let mut out = blank(t, SyncKind::Delta);
    let start = next.clone().unwrap_or_else(|| link.clone());
    let url = client
        .base_url()
        .join(&start)
        .map_err(|e| SyncError::InvalidArgument(format!("{}: the saved delta link is not a URL: {e}", t.logical)))?;
    let prefer = format!("odata.maxpagesize={}", options.page_size.unwrap_or(d365_client::MAX_PAGE_SIZE));
    let mut pages = client.page_stream_from(url, Some(prefer));
    while let Some(page) = pages.next().await {
        let page = page?;
        let mut deleted = Vec::new();
        let mut rows = Vec::with_capacity(page.rows.len());
        for r in page.rows {
            match deleted_id(&r) {
                Some(id) => deleted.push(id.to_string()),
                None => rows.push(r),
            }
        }
        let tracking = match (&page.delta_link, &page.next_link) {
            (Some(d), _) => Tracking::Delta { link: d.clone(), next: None },
            (None, Some(n)) => Tracking::Delta { link: link.clone(), next: Some(n.clone()) },
            (None, None) => Tracking::Delta { link: link.clone(), next: None },
        };
        let state = TableState { entity_set: t.set.clone(), primary_key: t.pk.clone(), tracking };
        let (u, d) = store.apply(&t.logical, &t.pk, &rows, &deleted, Some((&t.logical, &state)))?;
        out.upserted += u;
        out.deleted += d;
    }
    Ok(out)
}

async fn watermark(
    client: &DataverseClient,
    store: &mut Store,
    t: &Table,
    mark: &str,
    options: &SyncOptions,
) -> Result<TableSync, SyncError> {
    let mut out = blank(t, SyncKind::Watermark);
    let query = page_query(t, options).filter(format!("modifiedon ge {mark}"));
    let mut max_modified = d365_client::partition::parse_instant(mark);
    out.upserted = scan_into(client, store, t, &t.logical, &query, options, &mut max_modified).await?;
    let state = TableState {
        entity_set: t.set.clone(),
        primary_key: t.pk.clone(),
        tracking: Tracking::Watermark(max_modified.map(format_instant).or_else(|| Some(mark.to_string()))),
    };
    store.save_state(&t.logical, &state)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_links_lose_their_select_only() {
        assert_eq!(
            without_select("https://o/api/data/v9.2/accounts?$select=accountid&$deltatoken=919042%2108%2f22%2f2017"),
            "https://o/api/data/v9.2/accounts?$deltatoken=919042%2108%2f22%2f2017"
        );
        assert_eq!(without_select("accounts?$select=a"), "accounts");
        assert_eq!(without_select("accounts"), "accounts");
    }

    #[test]
    fn deleted_entries_are_recognised() {
        let d: Map<String, Value> = serde_json::from_str(
            r#"{"@odata.context":"https://o/api/data/v9.2/$metadata#accounts/$deletedEntity","id":"2e45","reason":"deleted"}"#,
        )
        .unwrap();
        assert_eq!(deleted_id(&d), Some("2e45"));
        let r: Map<String, Value> = serde_json::from_str(r#"{"accountid":"1","name":"x"}"#).unwrap();
        assert_eq!(deleted_id(&r), None);
    }
}
