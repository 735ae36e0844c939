//! `sync`: keeps a copy of Dataverse tables up to date in a [`Target`]:
//!
//! - a local directory: **SQLite** (`DIR/d365.sqlite`, one table per Dataverse table; see
//!   [`crate::store`]), queryable as it is by any tool (`sqlite3`, Python, DuckDB, DBeaver);
//! - `postgresql://…`: **PostgreSQL**, typed like the SQL engine's columns (see
//!   [`crate::postgres`]).
//!
//! An incremental sync applies upserts and deletes *in place*, in one transaction per page
//! together with the delta token, so the token never runs ahead of the data.
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
//!    every column. A run killed during the extract leaves the old copy and state untouched.
//! 2. **Later runs**: the delta link is read (following `@odata.nextLink`), new and changed
//!    rows are upserted and `$deletedEntity` rows deleted, one transaction per page, each also
//!    saving the next position (the next link, then the new delta link).
//! 3. An **expired or refused token** (HTTP 400) falls back to the full extract, with a warning.
//! 4. Tables **without change tracking** (or with `change_tracking: false`) are synced by a
//!    `modifiedon` watermark: rows modified at or after the last maximum seen are read again and
//!    upserted. Deletions are then not seen, and the report says so.
//!
//! Columns that appear later (added to the Dataverse table) are added to the copy. Typed
//! targets read every column with its choice labels and lookup names (the `…name` / `…type`
//! columns of the SQL engine).

use std::fmt;
use std::time::{Duration, Instant};

use d365_client::partition::{format_instant, row_instant};
use d365_client::{ClientError, DataverseClient, Metadata, Query, ScanOptions, ScanPlan};
use d365_client::{FORMATTED_VALUE, LOOKUP_LOGICAL_NAME};
use futures::StreamExt;
use serde_json::{Map, Value};

use crate::deleted::DeletedEntries;
use crate::delta::DeltaTarget;
use crate::destination::Destination;
use crate::error::SyncError;
use crate::postgres::PostgresTarget;
use crate::progress::Reporter;
use crate::store::{Store, TableState, Tracking};
use crate::target::{Batch, Target, TargetTable};

/// The database file inside the sync directory.
pub const DATABASE_FILE: &str = "d365.sqlite";

/// What to sync and how.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Tables: logical names (`account`) or entity set names.
    pub tables: Vec<String>,
    /// Where the copy is kept: a local directory (SQLite) or a PostgreSQL database.
    pub to: Destination,
    /// Fixed concurrency of full extracts (`None`: adaptive).
    pub parallel: Option<usize>,
    /// Rows per page (`None`: 5000).
    pub page_size: Option<u32>,
    /// Use change tracking where the table has it (else `modifiedon` watermarks everywhere).
    pub change_tracking: bool,
    /// Keep rows deleted in Dataverse, stamped in a `_d365_deleted` column, instead of
    /// deleting them (PostgreSQL).
    pub soft_delete: bool,
    /// Progress display.
    pub progress: Reporter,
}

impl SyncOptions {
    /// Syncs `tables` into `to` (a directory, or a parsed [`Destination`]) with change
    /// tracking.
    pub fn new(tables: Vec<String>, to: impl Into<Destination>) -> Self {
        Self {
            tables,
            to: to.into(),
            parallel: None,
            page_size: None,
            change_tracking: true,
            soft_delete: false,
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
            Self::Watermark => "changes since the watermark",
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
    /// Rows in the copy afterwards.
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
            "{}: {}, {} upserted, {} deleted, {} rows in the copy ({:.1} s)",
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
    /// Where the copy is (the SQLite file, or the PostgreSQL database and schema; never a
    /// password).
    pub destination: String,
    /// Per table.
    pub tables: Vec<TableSync>,
}

/// Syncs every table of `options` into `options.to` (see the module docs).
pub async fn sync(client: &DataverseClient, options: &SyncOptions) -> Result<SyncReport, SyncError> {
    if options.tables.is_empty() {
        return Err(SyncError::InvalidArgument("no table to sync".into()));
    }
    // Every name is checked before anything is created at the destination.
    let metadata = Metadata::in_memory(client.clone());
    for name in &options.tables {
        crate::find_table::find_table(&metadata, name).await?;
    }
    let mut target: Box<dyn Target> = match &options.to {
        Destination::Local(dir) => {
            // A URL given as the directory is refused, never created as a folder of that name.
            crate::destination::local_path(&dir.to_string_lossy(), "the sync destination")?;
            if options.soft_delete {
                return Err(SyncError::Unsupported(
                    "soft deletes are kept in PostgreSQL and Delta Lake targets only; the SQLite copy deletes rows"
                        .into(),
                ));
            }
            if dir.exists() && !dir.is_dir() {
                return Err(SyncError::InvalidArgument(format!(
                    "the sync destination {} is a file: give a directory (the copy is the SQLite file {DATABASE_FILE} in it)",
                    dir.display()
                )));
            }
            std::fs::create_dir_all(dir).map_err(SyncError::io(dir))?;
            Box::new(Store::open(&dir.join(DATABASE_FILE))?)
        }
        Destination::Postgres(url) => Box::new(PostgresTarget::connect(url.clone(), options.soft_delete).await?),
        Destination::Delta(location) => Box::new(DeltaTarget::new(location.clone(), options.soft_delete)),
        Destination::Remote(r) => {
            return Err(SyncError::Unsupported(format!(
                "sync into {r}: a sync into an object store writes Delta Lake tables: give delta+{r} \
                 (one table per Dataverse table under it)"
            )));
        }
    };
    sync_with(client, options, target.as_mut(), &metadata).await
}

/// Syncs every table of `options` into `target` (`options.to` is not used): for targets
/// built by the caller.
pub async fn sync_to(
    client: &DataverseClient,
    options: &SyncOptions,
    target: &mut dyn Target,
) -> Result<SyncReport, SyncError> {
    if options.tables.is_empty() {
        return Err(SyncError::InvalidArgument("no table to sync".into()));
    }
    sync_with(client, options, target, &Metadata::in_memory(client.clone())).await
}

async fn sync_with(
    client: &DataverseClient,
    options: &SyncOptions,
    target: &mut dyn Target,
    metadata: &Metadata,
) -> Result<SyncReport, SyncError> {
    let mut tables = Vec::new();
    for name in &options.tables {
        tables.push(sync_table(client, metadata, target, name, options).await?);
    }
    Ok(SyncReport { destination: target.describe(), tables })
}

/// A table to sync or plan, resolved from its metadata.
pub(crate) struct Table {
    pub(crate) target: TargetTable,
    pub(crate) change_tracking: bool,
    pub(crate) has_createdon: bool,
    /// The modification-time column of watermark syncs (`modifiedon`; F&O: `ModifiedDateTime`).
    pub(crate) watermark: String,
    /// A Finance & Operations entity (read by key ranges, no change tracking, no deletes).
    pub(crate) finops: bool,
}

/// The modification-time column of a Finance & Operations entity: `ModifiedDateTime`, else a
/// UTC date-time field whose name says it records modifications.
fn finops_watermark(meta: &d365_client::EntityMetadata) -> Option<String> {
    let instants = || meta.attributes.iter().filter(|a| a.attribute_type == "DateTime" && !a.is_date_only());
    instants()
        .find(|a| a.logical_name.eq_ignore_ascii_case("ModifiedDateTime"))
        .or_else(|| instants().find(|a| a.logical_name.to_ascii_lowercase().contains("modified")))
        .map(|a| a.logical_name.clone())
}

/// The table `name`: its typed shape and whether it can be tracked.
pub(crate) async fn resolve(metadata: &Metadata, name: &str) -> Result<Table, SyncError> {
    let (info, meta) = fetch_table(metadata, name).await?;
    table_of(&info, &meta)
}

/// The listing and the metadata of table `name` (logical or entity set name).
pub(crate) async fn fetch_table(
    metadata: &Metadata,
    name: &str,
) -> Result<(d365_client::EntityInfo, std::sync::Arc<d365_client::EntityMetadata>), SyncError> {
    let info = crate::find_table::find_table(metadata, name).await?;
    let meta = metadata.entity(&info.logical_name).await?;
    Ok((info, meta))
}

/// [`resolve`] from metadata at hand (a plan's snapshot).
pub(crate) fn table_of(info: &d365_client::EntityInfo, meta: &d365_client::EntityMetadata) -> Result<Table, SyncError> {
    if info.entity_set_name.is_none() {
        return Err(SyncError::InvalidArgument(format!(
            "table '{}' has no entity set: it cannot be read",
            info.logical_name
        )));
    }
    if info.data_entity {
        let Some(watermark) = finops_watermark(meta) else {
            return Err(SyncError::Unsupported(format!(
                "entity '{}' has no modification time column (such as ModifiedDateTime), and Finance & Operations' OData service has no change tracking: it cannot be synced incrementally; copy it whole with `d365 export {}`",
                info.logical_name, info.logical_name
            )));
        };
        let target = TargetTable::new(d365_sql::table_schema(meta));
        if target.schema.key_fields.is_empty() {
            return Err(SyncError::Unsupported(format!(
                "entity '{}' lists no key fields in its metadata: its rows cannot be matched between syncs",
                info.logical_name
            )));
        }
        return Ok(Table { target, change_tracking: false, has_createdon: false, watermark, finops: true });
    }
    if meta.attribute("modifiedon").is_none() && !info.change_tracking_enabled {
        return Err(SyncError::Unsupported(format!(
            "table '{}' has neither change tracking nor a modifiedon column: it cannot be synced incrementally (use export)",
            info.logical_name
        )));
    }
    Ok(Table {
        target: TargetTable::new(d365_sql::table_schema(meta)),
        change_tracking: info.change_tracking_enabled,
        has_createdon: meta.attribute("createdon").is_some(),
        watermark: "modifiedon".into(),
        finops: false,
    })
}

async fn sync_table(
    client: &DataverseClient,
    metadata: &Metadata,
    target: &mut dyn Target,
    name: &str,
    options: &SyncOptions,
) -> Result<TableSync, SyncError> {
    let started = Instant::now();
    let t = resolve(metadata, name).await?;
    let logical = t.target.logical.clone();
    let use_ct = options.change_tracking && t.change_tracking;
    let mut warnings = Vec::new();
    if t.finops {
        warnings.push(format!(
            "{logical}: Finance & Operations has no change tracking over OData: syncing by the {} watermark; rows deleted there are not deleted here",
            t.watermark
        ));
    } else if !use_ct {
        let why = if t.change_tracking { "change tracking not used" } else { "change tracking is off for this table" };
        warnings.push(format!(
            "{logical}: {why}: syncing by the modifiedon watermark; rows deleted in Dataverse are not deleted here"
        ));
    }
    let mut state = target.state(&t.target).await?;
    if let Some(Tracking::Delta { link, .. }) = state.as_ref().map(|s| &s.tracking)
        && let Some(other) = foreign_origin(client.base_url(), link)
    {
        // A delta token of another organization (or another emulator) means nothing here.
        let w = format!(
            "{logical}: the copy was synced from {other}, not {}: full re-sync",
            client.base_url().origin().ascii_serialization()
        );
        warnings.push(w);
        state = None;
    }
    let mut result = match state.map(|s| s.tracking) {
        Some(Tracking::Delta { link, next }) if use_ct => match delta(client, target, &t, link, next, options).await {
            Err(SyncError::Client(ClientError::Service(s))) if s.status == 400 => {
                let w = format!("{logical}: the delta token was refused ({}): full re-sync", s.message);
                warnings.push(w);
                full(client, target, &t, use_ct, options).await?
            }
            other => other?,
        },
        Some(Tracking::Watermark(Some(mark))) if !use_ct => watermark(client, target, &t, &mark, options).await?,
        _ => full(client, target, &t, use_ct, options).await?,
    };
    // Reported to the caller (the CLI prints them, Python returns them), not logged twice.
    result.warnings.extend(warnings);
    result.rows = target.count(&t.target).await?;
    result.elapsed = started.elapsed();
    Ok(result)
}

fn blank(t: &Table, kind: SyncKind) -> TableSync {
    TableSync {
        table: t.target.logical.clone(),
        kind,
        upserted: 0,
        deleted: 0,
        rows: 0,
        warnings: Vec::new(),
        elapsed: Duration::ZERO,
    }
}

/// The read of the whole table: every column, with the annotations its labels and lookup
/// names come from.
fn page_query(t: &Table, options: &SyncOptions) -> Query {
    t.target.reader().query(None, options.page_size)
}

/// The largest `column` (the watermark column) of `rows`, folded into `max`.
fn fold_modified(max: &mut Option<i64>, rows: &[Map<String, Value>], column: &str) {
    for r in rows {
        if let Some(Some(v)) = row_instant(r, column) {
            *max = Some(max.map_or(v, |m| m.max(v)));
        }
    }
}

/// Where the pages of [`scan_into`] go.
enum Dest<'a> {
    /// The staging area of a full load.
    Staging,
    /// The table itself, with this state saved with every page.
    Table(&'a TableState),
}

impl Dest<'_> {
    /// Gives one page to `target`; returns the rows it upserted.
    async fn hand_over(&self, target: &mut dyn Target, t: &Table, batch: Batch<'_>) -> Result<u64, SyncError> {
        Ok(match self {
            Dest::Staging => target.load(&t.target, batch).await?,
            Dest::Table(state) => target.apply(&t.target, batch, state).await?.0,
        })
    }
}

/// Reads the table through a partitioned scan, handing every page to `target`. With
/// `max_modified` given, the largest `modifiedon` read is folded into it.
async fn scan_into(
    client: &DataverseClient,
    target: &mut dyn Target,
    t: &Table,
    into: Dest<'_>,
    query: &Query,
    options: &SyncOptions,
    mut max_modified: Option<&mut Option<i64>>,
) -> Result<u64, SyncError> {
    if t.finops {
        return scan_key_ranges(client, target, t, into, query, options, max_modified).await;
    }
    let mut scan_opts = ScanOptions::new(t.target.pk.clone());
    scan_opts.parallel = options.parallel;
    // The target decodes the bodies itself; rows are parsed only when the `modifiedon`
    // watermark must be found (tables synced without change tracking).
    scan_opts.keep_rows = max_modified.is_some();
    if !scan_opts.keep_rows {
        // Pages in flight stay within the SQL engine's budget (wide pages are made smaller
        // rather than fetched many at a time).
        scan_opts.memory_budget = Some(d365_sql::scan::SCAN_MEMORY_BUDGET);
    }
    let plan = if t.has_createdon { client.plan_scan(query, &scan_opts).await? } else { ScanPlan::single() };
    let mut scan = client.partitioned_scan(query, plan, scan_opts)?;
    let _tracker = options.progress.track(&format!("sync {}", t.target.logical), client, scan.progress(), 0);
    let mut upserted = 0;
    while let Some(page) = scan.next().await {
        let page = page?;
        if let Some(max) = max_modified.as_deref_mut() {
            fold_modified(max, &page.rows, &t.watermark);
        }
        let batch = Batch {
            body: &page.body,
            body_rows: page.rows.len() + page.skipped.len(),
            skip: &page.skipped,
            deleted: &[],
        };
        upserted += into.hand_over(target, t, batch).await?;
    }
    Ok(upserted)
}

/// [`scan_into`] for a Finance & Operations entity: key ranges read in parallel (see
/// [`DataverseClient::keyset_scan`]; `$skip` paging could skip or repeat rows written during
/// the read).
async fn scan_key_ranges(
    client: &DataverseClient,
    target: &mut dyn Target,
    t: &Table,
    into: Dest<'_>,
    query: &Query,
    options: &SyncOptions,
    mut max_modified: Option<&mut Option<i64>>,
) -> Result<u64, SyncError> {
    let parallel = options.parallel.unwrap_or(d365_sql::scan::FINOPS_DEFAULT_PARALLEL);
    let mut pages = client.keyset_scan(query, t.target.schema.key_fields.clone(), parallel);
    let progress = std::sync::Arc::new(d365_client::ScanProgress::default());
    let _tracker = options.progress.track(&format!("sync {}", t.target.logical), client, progress.clone(), 0);
    let mut upserted = 0;
    while let Some(page) = pages.next().await {
        let page = page?;
        if let Some(max) = max_modified.as_deref_mut() {
            let rows: Value = serde_json::from_slice(&page.body)
                .map_err(|e| SyncError::InvalidArgument(format!("{}: a page is not JSON: {e}", t.target.logical)))?;
            let rows: Vec<Map<String, Value>> = rows
                .get("value")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
                .unwrap_or_default();
            fold_modified(max, &rows, &t.watermark);
        }
        progress.rows.fetch_add(page.rows as u64, std::sync::atomic::Ordering::Relaxed);
        let batch = Batch { body: &page.body, body_rows: page.rows, skip: &[], deleted: &[] };
        upserted += into.hand_over(target, t, batch).await?;
    }
    Ok(upserted)
}

async fn full(
    client: &DataverseClient,
    target: &mut dyn Target,
    t: &Table,
    use_ct: bool,
    options: &SyncOptions,
) -> Result<TableSync, SyncError> {
    let mut out = blank(t, SyncKind::Full);
    target.begin_full(&t.target).await?;
    let query = page_query(t, options);
    let tracking = if use_ct {
        // The keys-only change-tracking read starts first: its version precedes the extract.
        let keys = TrackingRead::start(client, &t.target).await?;
        let (link, upserted) =
            futures::try_join!(keys.finish(), scan_into(client, target, t, Dest::Staging, &query, options, None))?;
        out.upserted = upserted;
        Tracking::Delta { link, next: None }
    } else {
        let mut max_modified = None;
        out.upserted = scan_into(client, target, t, Dest::Staging, &query, options, Some(&mut max_modified)).await?;
        Tracking::Watermark(max_modified.map(format_instant))
    };
    let state = TableState { entity_set: t.target.set.clone(), primary_key: t.target.pk.clone(), tracking };
    target.finish_full(&t.target, &state).await?;
    Ok(out)
}

/// The read that yields a table's `@odata.deltaLink`: the primary keys alone with
/// `Prefer: odata.track-changes`, to its last page. Its version is taken when the read starts
/// ([`TrackingRead::start`] returns once the first page came), so rows changed while it, or
/// anything started after it, runs come again in the next delta. The link keeps the token and
/// drops the read's `$select`, so the delta returns every column.
pub(crate) struct TrackingRead {
    keys: d365_client::PageStream,
    last: Option<d365_client::Page>,
    table: String,
}

impl TrackingRead {
    /// Starts the read: returns after its first page.
    pub(crate) async fn start(client: &DataverseClient, table: &TargetTable) -> Result<Self, SyncError> {
        let q = Query::new(table.set.clone()).select([table.pk.clone()]);
        let plan = client.plan(&q)?;
        let prefer = match plan.prefer {
            Some(p) => format!("odata.track-changes,{p}"),
            None => "odata.track-changes".to_string(),
        };
        let mut keys = client.page_stream_from(plan.url, Some(prefer));
        let last = keys.next().await.transpose()?;
        Ok(Self { keys, last, table: table.logical.clone() })
    }

    /// Reads the rest; the delta link of the last page.
    pub(crate) async fn finish(mut self) -> Result<String, SyncError> {
        while self.last.as_ref().is_some_and(|p| p.delta_link.is_none()) {
            self.last = self.keys.next().await.transpose()?;
        }
        let link = self.last.and_then(|p| p.delta_link).ok_or_else(|| {
            SyncError::InvalidArgument(format!("{}: the change-tracking read ended without a delta link", self.table))
        })?;
        Ok(without_select(&link))
    }
}

/// The origin of `link` when it is an absolute URL of another origin than `base`.
pub(crate) fn foreign_origin(base: &url::Url, link: &str) -> Option<String> {
    let link = url::Url::parse(link).ok()?;
    (link.origin() != base.origin()).then(|| link.origin().ascii_serialization())
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

async fn delta(
    client: &DataverseClient,
    target: &mut dyn Target,
    t: &Table,
    link: String,
    next: Option<String>,
    options: &SyncOptions,
) -> Result<TableSync, SyncError> {
    let mut out = blank(t, SyncKind::Delta);
    let start = next.clone().unwrap_or_else(|| link.clone());
    let url = client.base_url().join(&start).map_err(|e| {
        SyncError::InvalidArgument(format!("{}: the saved delta link is not a URL: {e}", t.target.logical))
    })?;
    let prefer = format!(
        "odata.maxpagesize={},odata.include-annotations=\"{FORMATTED_VALUE},{LOOKUP_LOGICAL_NAME}\"",
        options.page_size.unwrap_or(d365_client::MAX_PAGE_SIZE)
    );
    // The target decodes the bodies itself: the rows are not parsed, the deleted entries are
    // picked from the body.
    let finder = DeletedEntries::new(&t.target.set);
    let mut pages = client.page_stream_from(url, Some(prefer)).raw();
    while let Some(page) = pages.next().await {
        let page = page?;
        let body = page.raw.clone().unwrap_or_default();
        let (deleted, skip) = finder.find(&body, page.row_count)?;
        let tracking = match (&page.delta_link, &page.next_link) {
            (Some(d), _) => Tracking::Delta { link: d.clone(), next: None },
            (None, Some(n)) => Tracking::Delta { link: link.clone(), next: Some(n.clone()) },
            (None, None) => Tracking::Delta { link: link.clone(), next: None },
        };
        let state = TableState { entity_set: t.target.set.clone(), primary_key: t.target.pk.clone(), tracking };
        let batch = Batch { body: &body, body_rows: page.row_count, skip: &skip, deleted: &deleted };
        let (u, d) = target.apply(&t.target, batch, &state).await?;
        out.upserted += u;
        out.deleted += d;
    }
    target.flush(&t.target).await?;
    Ok(out)
}

async fn watermark(
    client: &DataverseClient,
    target: &mut dyn Target,
    t: &Table,
    mark: &str,
    options: &SyncOptions,
) -> Result<TableSync, SyncError> {
    let mut out = blank(t, SyncKind::Watermark);
    let query = page_query(t, options).filter(format!("{} ge {mark}", t.watermark));
    let mut max_modified = d365_client::partition::parse_instant(mark);
    let state = |mark: Option<String>| TableState {
        entity_set: t.target.set.clone(),
        primary_key: t.target.pk.clone(),
        tracking: Tracking::Watermark(mark),
    };
    // Pages of a partitioned scan come in no particular order: the watermark only advances
    // once every page is applied.
    let unchanged = state(Some(mark.to_string()));
    out.upserted =
        scan_into(client, target, t, Dest::Table(&unchanged), &query, options, Some(&mut max_modified)).await?;
    let done = state(max_modified.map(format_instant).or_else(|| Some(mark.to_string())));
    let empty = Batch { body: b"{\"value\":[]}", body_rows: 0, skip: &[], deleted: &[] };
    target.apply(&t.target, empty, &done).await?;
    target.flush(&t.target).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_links_of_another_organization_are_recognised() {
        let base = url::Url::parse("https://org.crm.dynamics.com/api/data/v9.2/").unwrap();
        assert_eq!(foreign_origin(&base, "https://org.crm.dynamics.com/api/data/v9.2/accounts?$deltatoken=1"), None);
        assert_eq!(foreign_origin(&base, "accounts?$deltatoken=1"), None);
        assert_eq!(
            foreign_origin(&base, "https://127.0.0.1:4001/api/data/v9.2/accounts?$deltatoken=1").as_deref(),
            Some("https://127.0.0.1:4001")
        );
    }

    #[test]
    fn delta_links_lose_their_select_only() {
        assert_eq!(
            without_select("https://o/api/data/v9.2/accounts?$select=accountid&$deltatoken=919042%2108%2f22%2f2017"),
            "https://o/api/data/v9.2/accounts?$deltatoken=919042%2108%2f22%2f2017"
        );
        assert_eq!(without_select("accounts?$select=a"), "accounts");
        assert_eq!(without_select("accounts"), "accounts");
    }
}
