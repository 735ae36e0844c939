//! `export`: a whole table (or a filtered, projected read of one) into one NDJSON, CSV or
//! Parquet file, read as a parallel partitioned scan, typed like the SQL engine's columns
//! (see [`crate::typed`]), resumable after a crash whatever the format.
//!
//! Beside the output `OUT` the export keeps a work directory `OUT.parts/` holding one part
//! file per partition — each page decoded straight from its body into an Arrow batch and
//! appended as an Arrow IPC stream — and `checkpoint.json` (see [`crate::checkpoint`]). Each page is
//! appended to its partition's part file, then the checkpoint is replaced atomically (a
//! temporary file renamed over it), which is all a killed process (crash, SIGKILL, Ctrl-C)
//! needs. With [`ExportOptions::fsync`] the part files and then the checkpoint are also synced
//! to disk about once a second, so a power loss cannot leave the checkpoint ahead of the data;
//! without it, a part file found shorter than its checkpoint after a power loss stops the
//! resume with an error asking to start over. Re-running the same export resumes: part files are cut back to what the
//! checkpoint covers, finished partitions are not read again, and unfinished ones continue from
//! their saved next link — at most one page per partition is read twice. When every partition
//! is finished the parts are read back in partition order (the partition column's order, nulls
//! first; within a partition the service's order) through the one writer layer
//! ([`crate::writer`]) into `OUT`, written to a temporary file and renamed, and the work
//! directory is removed.

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use d365_client::{DataverseClient, Metadata, Query, ScanOptions, ScanPlan};
use d365_sql::datafusion::arrow::ipc::reader::StreamReader;
use d365_sql::datafusion::arrow::ipc::writer::StreamWriter;
use d365_sql::datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;

use crate::checkpoint::Checkpoint;
use crate::destination::Destination;
use crate::error::SyncError;
use crate::format::Format;
use crate::progress::Reporter;
use crate::typed::TypedReader;
use crate::writer::BatchWriter;

/// What to export and how.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Table: logical name (`account`) or entity set name (`accounts`).
    pub table: String,
    /// Columns: SQL column names (`name`, `parentaccountid`, `statecodename`) or Web API
    /// property names (`_parentaccountid_value`); empty for every column.
    pub select: Vec<String>,
    /// Row filter (`$filter`, raw OData).
    pub filter: Option<String>,
    /// Output format.
    pub format: Format,
    /// Output file: a local path, or an object-store URL (`s3://bucket/key`, `az://…`,
    /// `abfss://…`, `gs://…`; see [`crate::remote`]).
    pub output: PathBuf,
    /// Object-store settings besides the environment (`aws_endpoint`, `aws_allow_http`, …).
    pub storage_options: Vec<(String, String)>,
    /// Where an export to an object store is staged (default: d365's cache directory).
    pub staging_dir: Option<PathBuf>,
    /// Fixed concurrency (`--parallel N`); `None` adapts from the service's DOP hint.
    pub parallel: Option<usize>,
    /// Rows per page (1–5000); `None` uses the client's default (5000).
    pub page_size: Option<u32>,
    /// Date-time column to partition on.
    pub partition_column: String,
    /// Also survive a power loss: `fsync` the part files and the checkpoint about once a
    /// second and the output before its rename. Off by default: a killed process (crash,
    /// SIGKILL, Ctrl-C) needs only the atomic renames, and syncing costs throughput.
    pub fsync: bool,
    /// Progress display.
    pub progress: Reporter,
}

impl ExportOptions {
    /// An NDJSON export of every column of `table` to `output` (use [`Format::from_path`] to
    /// take the format from the file name).
    pub fn new(table: impl Into<String>, output: impl Into<PathBuf>) -> Self {
        Self {
            table: table.into(),
            select: Vec::new(),
            filter: None,
            format: Format::Ndjson,
            output: output.into(),
            storage_options: Vec::new(),
            staging_dir: None,
            parallel: None,
            page_size: None,
            partition_column: d365_client::partition::DEFAULT_PARTITION_COLUMN.into(),
            fsync: false,
            progress: Reporter::hidden(),
        }
    }

    /// What identifies the export for resuming (not the concurrency or page size).
    fn fingerprint(&self) -> String {
        serde_json::json!({
            "table": self.table.to_ascii_lowercase(),
            "select": self.select,
            "filter": self.filter,
            "format": self.format.to_string(),
            "column": self.partition_column,
        })
        .to_string()
    }
}

/// What an export did.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// What was written: the local file, or the object-store URL (without credentials).
    pub output: String,
    /// Its format.
    pub format: Format,
    /// The entity set read.
    pub entity_set: String,
    /// Rows in the file.
    pub rows: u64,
    /// Rows an earlier, interrupted run had already read.
    pub resumed_rows: u64,
    /// Partitions (after splits).
    pub partitions: u64,
    /// HTTP requests of this run (retries included).
    pub requests: u64,
    /// Retried attempts.
    pub retries: u64,
    /// Throttled responses (429).
    pub throttled: u64,
    /// Time waited because the service asked to.
    pub throttle_wait: Duration,
    /// Highest concurrency used.
    pub peak_concurrency: u64,
    /// Wall time of this run.
    pub elapsed: Duration,
}

impl ExportSummary {
    /// Rows per second of this run (rows read by it over its wall time).
    pub fn rows_per_second(&self) -> f64 {
        (self.rows - self.resumed_rows) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exported {} rows of {} to {} ({}) in {:.1} s: {:.0} rows/s, {} partitions, {} requests, up to {} in parallel",
            self.rows,
            self.entity_set,
            self.output,
            self.format,
            self.elapsed.as_secs_f64(),
            self.rows_per_second(),
            self.partitions,
            self.requests,
            self.peak_concurrency,
        )?;
        if self.retries > 0 {
            write!(f, ", {} retried", self.retries)?;
        }
        if self.throttled > 0 {
            write!(f, ", throttled {} times (waited {} s)", self.throttled, self.throttle_wait.as_secs())?;
        }
        if self.resumed_rows > 0 {
            write!(f, "; resumed after {} rows", self.resumed_rows)?;
        }
        Ok(())
    }
}

/// The work directory of an export to `output`: `output` + `.parts`.
pub fn work_dir(output: &Path) -> PathBuf {
    let mut p = output.as_os_str().to_owned();
    p.push(".parts");
    PathBuf::from(p)
}

/// How often part files and the checkpoint are synced to disk.
pub(crate) const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// Part files: Arrow IPC streams, one per page, appended.
const PART_SUFFIX: &str = ".arrows";

pub(crate) fn part_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("part-{id:06}{PART_SUFFIX}"))
}

/// The typed reader of the columns `select` names in `table` (two requests: the table list
/// and the table's columns).
pub(crate) async fn resolve_reader(
    client: &DataverseClient,
    table: &str,
    select: &[String],
) -> Result<TypedReader, SyncError> {
    let metadata = Metadata::in_memory(client.clone());
    let info = crate::find_table::find_table(&metadata, table).await?;
    if info.entity_set_name.is_none() {
        return Err(SyncError::InvalidArgument(format!(
            "table '{}' has no entity set: it cannot be read",
            info.logical_name
        )));
    }
    let meta = metadata.entity(&info.logical_name).await?;
    TypedReader::project(d365_sql::table_schema(&meta), select)
}

/// Appends `batch` to `out` as one Arrow IPC stream (schema, batch, end marker).
pub(crate) fn write_segment(out: &mut Vec<u8>, batch: &RecordBatch) -> Result<(), SyncError> {
    let err = |e: d365_sql::datafusion::arrow::error::ArrowError| {
        SyncError::InvalidArgument(format!("internal: a page could not be encoded: {e}"))
    };
    let mut w = StreamWriter::try_new(out, batch.schema_ref()).map_err(err)?;
    w.write(batch).map_err(err)?;
    w.finish().map_err(err)
}

/// Hands every batch of the part file `path` (a run of IPC streams) to `f`.
fn read_part(path: &Path, mut f: impl FnMut(RecordBatch) -> Result<(), SyncError>) -> Result<(), SyncError> {
    let bad = |e: String| SyncError::Checkpoint { path: path.to_path_buf(), message: format!("bad part file: {e}") };
    let mut r = BufReader::with_capacity(1 << 20, File::open(path).map_err(SyncError::io(path))?);
    while !r.fill_buf().map_err(SyncError::io(path))?.is_empty() {
        let stream = StreamReader::try_new(&mut r, None).map_err(|e| bad(e.to_string()))?;
        for batch in stream {
            f(batch.map_err(|e| bad(e.to_string()))?)?;
        }
    }
    Ok(())
}

/// The partitions of `query`; a table without the partition column (the service answers 400
/// to ordering by it) is read as one partition.
pub(crate) async fn plan(
    client: &DataverseClient,
    query: &Query,
    options: &ScanOptions,
) -> Result<(ScanPlan, bool), SyncError> {
    match client.plan_scan(query, options).await {
        Ok(plan) => Ok((plan, true)),
        Err(d365_client::ClientError::Service(s)) if s.status == 400 && s.message.contains(&options.column) => {
            tracing::info!(column = %options.column, "no partition column: reading the table as one partition");
            Ok((ScanPlan::single(), false))
        }
        Err(e) => Err(e.into()),
    }
}

/// Exports as `options` say (see the module docs), resuming an interrupted run of the same
/// export.
pub async fn export(client: &DataverseClient, options: &ExportOptions) -> Result<ExportSummary, SyncError> {
    let text = options.output.to_string_lossy();
    let mut text = text.to_string();
    if options.format == Format::Delta && !crate::delta::DeltaLocation::is_delta(&text) {
        // `--format delta -o DIR`: a Delta table in that directory (or at that URL).
        text = if text.contains("://") { format!("delta+{text}") } else { format!("delta:{text}") };
    }
    // Given options win over the environment.
    let remote = match crate::destination::parse_destination_with(&text, "the export output", &options.storage_options)?
    {
        Destination::Local(path) => {
            // The file goes where it was asked for, or nowhere: a missing directory is not made.
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
                && !parent.is_dir()
            {
                return Err(SyncError::InvalidArgument(format!(
                    "the directory {} of the export output does not exist: create it first",
                    parent.display()
                )));
            }
            return export_to(client, options, Finish::File { keep_work: false }).await;
        }
        Destination::Delta(location) => {
            let name = location.url().path_segments().and_then(|mut s| s.rfind(|p| !p.is_empty())).unwrap_or("table");
            let local = crate::remote::staging_file(&location.to_string(), name, options.staging_dir.as_deref())?;
            let staged = ExportOptions { output: local, format: Format::Delta, ..options.clone() };
            let mut summary = export_to(client, &staged, Finish::Delta(&location)).await?;
            summary.output = location.to_string();
            return Ok(summary);
        }
        Destination::Remote(remote) => remote,
        Destination::Postgres(url) => {
            // Staged in the cache directory like an object-store export, then one load.
            let local = crate::remote::staging_file(&url.to_string(), "export", options.staging_dir.as_deref())?;
            let staged = ExportOptions { output: local, format: Format::Postgres, ..options.clone() };
            let mut summary = export_to(client, &staged, Finish::Postgres(&url)).await?;
            summary.output = url.to_string();
            return Ok(summary);
        }
    };
    // Staged locally (the same place for the same URL, so a re-run resumes), kept complete
    // until the upload succeeded, then uploaded in parts.
    let local = remote.staging_file(options.staging_dir.as_deref())?;
    let staged = ExportOptions { output: local.clone(), ..options.clone() };
    let mut summary = export_to(client, &staged, Finish::File { keep_work: true }).await?;
    tracing::info!(to = %remote, "uploading the export");
    remote.upload(&local).await?;
    std::fs::remove_dir_all(work_dir(&local)).map_err(SyncError::io(work_dir(&local)))?;
    std::fs::remove_file(&local).map_err(SyncError::io(&local))?;
    summary.output = remote.to_string();
    Ok(summary)
}

/// What an export ends with, once every page is in its part file.
#[derive(Clone, Copy)]
enum Finish<'a> {
    /// The local file `options.output`; with `keep_work`, the work directory (with its
    /// complete checkpoint) stays until the caller is done with the file.
    File { keep_work: bool },
    /// The Delta table at this location, in one commit (the work directory is beside
    /// `options.output`, which is not written).
    Delta(&'a crate::delta::DeltaLocation),
    /// The PostgreSQL table of the table's name, replaced in one transaction (likewise).
    Postgres(&'a crate::postgres::PostgresUrl),
}

/// The export read into the part files beside `options.output`, then finished as `finish` says.
async fn export_to(
    client: &DataverseClient,
    options: &ExportOptions,
    finish: Finish<'_>,
) -> Result<ExportSummary, SyncError> {
    let started = Instant::now();
    let stats_before = client.request_log().stats();
    let dir = work_dir(&options.output);
    let ckpt_path = dir.join("checkpoint.json");
    let fingerprint = options.fingerprint();
    let mut reader = resolve_reader(client, &options.table, &options.select).await?;
    if matches!(finish, Finish::Postgres(_)) {
        // A PostgreSQL table is keyed by the primary key (a Finance & Operations entity by its
        // key fields): they are exported too.
        let key: Vec<String> = if reader.schema.key_fields.is_empty() {
            vec![reader.schema.primary_key.clone()]
        } else {
            reader.schema.key_fields.iter().map(|k| k.name.clone()).collect()
        };
        let missing: Vec<String> = key.into_iter().filter(|k| reader.schema.column(k).is_none()).collect();
        if !missing.is_empty() {
            let select: Vec<String> = missing.into_iter().chain(options.select.iter().cloned()).collect();
            reader = resolve_reader(client, &options.table, &select).await?;
        }
    }
    let columns = reader.column_names();
    let mut ckpt = match Checkpoint::load(&ckpt_path)? {
        Some(c) if c.fingerprint == fingerprint && c.columns != columns => {
            return Err(SyncError::Checkpoint {
                path: ckpt_path,
                message: format!(
                    "the table's columns changed since this export started ({} then, {} now); \
                     delete the directory to start over",
                    c.columns.len(),
                    columns.len()
                ),
            });
        }
        Some(c) if c.fingerprint == fingerprint => {
            tracing::info!(rows = c.rows(), "resuming the export from its checkpoint");
            c
        }
        Some(_) => {
            return Err(SyncError::Checkpoint {
                path: ckpt_path,
                message: "belongs to an export with other arguments (table, columns, filter or format); \
                          re-run that export, or delete the directory to start over"
                    .into(),
            });
        }
        None => {
            let query = reader.query(options.filter.as_deref(), options.page_size);
            let scan = scan_options(&reader, &reader.schema.primary_key, options);
            // A Finance & Operations entity is read by key ranges (see `export_key_ranges`): one
            // partition and part file per range.
            let key_ranges = if client.service().is_finops() {
                let parallel = options.parallel.unwrap_or(d365_sql::scan::FINOPS_DEFAULT_PARALLEL);
                client.plan_key_ranges(&query, &reader.schema.key_fields, parallel).await?
            } else {
                Vec::new()
            };
            let (plan, has_column) = if client.service().is_finops() {
                let partitions: Vec<d365_client::Partition> = key_ranges
                    .iter()
                    .map(|r| d365_client::Partition::new(r.id as u64, d365_client::Bounds::All))
                    .collect();
                let next_id = partitions.len() as u64;
                (ScanPlan { partitions, hi_estimate: None, next_id }, false)
            } else {
                plan(client, &query, &scan).await?
            };
            std::fs::create_dir_all(&dir).map_err(|e| {
                SyncError::InvalidArgument(format!(
                    "cannot create {} (the export's work directory, next to the output file): {e}",
                    dir.display()
                ))
            })?;
            let column = has_column.then(|| options.partition_column.clone());
            let set = reader.schema.entity_set.clone();
            let mut c = Checkpoint::new(fingerprint, set, reader.schema.primary_key.clone(), column, plan);
            c.columns = columns;
            c.key_ranges = key_ranges;
            c.save(&ckpt_path, options.fsync)?;
            c
        }
    };
    let resumed_rows = ckpt.rows();
    prepare_parts(&dir, &ckpt)?;
    let mut peak = 0;
    if !ckpt.complete() && client.service().is_finops() {
        peak = crate::export_key_ranges::export_key_ranges(client, options, &reader, &dir, &ckpt_path, &mut ckpt)
            .await? as u64;
    } else if !ckpt.complete() {
        let query = reader.query(options.filter.as_deref(), options.page_size);
        let scan_opts = scan_options(&reader, &ckpt.primary_key, options);
        let mut scan = client.partitioned_scan(&query, ckpt.plan(), scan_opts)?;
        let progress = scan.progress();
        let _tracker =
            options.progress.track(&format!("export {}", ckpt.entity_set), client, progress.clone(), resumed_rows);
        let mut files: HashMap<u64, (File, u64)> = HashMap::new();
        let mut buf = Vec::with_capacity(1 << 20);
        let mut last_sync = Instant::now();
        // Part files of finished partitions not synced to disk yet.
        let mut finished: Vec<File> = Vec::new();
        while let Some(page) = scan.next().await {
            let page = page?;
            let id = page.partition.id;
            let batch = reader.decode_page(&page)?;
            buf.clear();
            if batch.num_rows() > 0 {
                write_segment(&mut buf, &batch)?;
            }
            let path = part_path(&dir, id);
            let (file, len) = match files.entry(id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let f = OpenOptions::new().create(true).append(true).open(&path).map_err(SyncError::io(&path))?;
                    let len = ckpt.part_bytes.get(&id).copied().unwrap_or(0);
                    e.insert((f, len))
                }
            };
            file.write_all(&buf).map_err(SyncError::io(&path))?;
            *len += buf.len() as u64;
            ckpt.apply(&page, *len);
            // Every page: the checkpoint replaced atomically (enough for a killed process).
            // With `fsync`, about once a second: the part files written since synced first,
            // then the checkpoint, so a power loss cannot leave it ahead of the data on disk.
            if page.partition.done
                && let Some(done) = files.remove(&id)
            {
                finished.push(done.0);
            }
            let durable = options.fsync && last_sync.elapsed() >= DURABLE_EVERY;
            if durable {
                for f in files.values().map(|(f, _)| f).chain(finished.iter()) {
                    f.sync_data().map_err(SyncError::io(&dir))?;
                }
                finished.clear();
                last_sync = Instant::now();
            }
            ckpt.save(&ckpt_path, durable)?;
        }
        peak = progress.peak_concurrency.load(std::sync::atomic::Ordering::Relaxed);
        if !ckpt.complete() {
            return Err(SyncError::InvalidArgument("the scan ended before every partition was read".into()));
        }
    }
    let rows = match finish {
        Finish::File { keep_work } => {
            let rows = assemble(&dir, &ckpt, options, &reader)?;
            if !keep_work {
                std::fs::remove_dir_all(&dir).map_err(SyncError::io(&dir))?;
            }
            rows
        }
        Finish::Delta(location) => {
            let rows = assemble_delta(&dir, &ckpt, location, &reader).await?;
            std::fs::remove_dir_all(&dir).map_err(SyncError::io(&dir))?;
            rows
        }
        Finish::Postgres(url) => {
            let rows = assemble_postgres(&dir, &ckpt, url, &reader).await?;
            std::fs::remove_dir_all(&dir).map_err(SyncError::io(&dir))?;
            rows
        }
    };
    let stats = client.request_log().stats().since(&stats_before);
    Ok(ExportSummary {
        output: options.output.display().to_string(),
        format: options.format,
        entity_set: ckpt.entity_set.clone(),
        rows,
        resumed_rows,
        partitions: ckpt.partitions.len() as u64,
        requests: stats.requests,
        retries: stats.retries,
        throttled: stats.throttled,
        throttle_wait: stats.throttle_wait,
        peak_concurrency: peak,
        elapsed: started.elapsed(),
    })
}

fn scan_options(reader: &TypedReader, primary_key: &str, options: &ExportOptions) -> ScanOptions {
    typed_scan_options(reader, primary_key, &options.partition_column, options.parallel)
}

/// The scan of readers that decode the page bodies into Arrow themselves (exports, scale-out
/// units), partitioned on `column`: each page is decoded where it arrives, once for the batch
/// and the scan's facts ([`TypedReader::page_parser`]; read it with
/// [`TypedReader::decode_page`]), and the bodies in flight stay within the SQL engine's budget.
pub(crate) fn typed_scan_options(
    reader: &TypedReader,
    primary_key: &str,
    column: &str,
    parallel: Option<usize>,
) -> ScanOptions {
    let mut s = ScanOptions::new(primary_key);
    s.column = column.to_string();
    s.parallel = parallel;
    s.keep_rows = false;
    s.memory_budget = Some(d365_sql::scan::SCAN_MEMORY_BUDGET);
    s.page_parser = reader.page_parser(column, primary_key);
    s
}

/// Cuts part files back to what the checkpoint covers and removes the ones it does not know.
fn prepare_parts(dir: &Path, ckpt: &Checkpoint) -> Result<(), SyncError> {
    let entries = std::fs::read_dir(dir).map_err(SyncError::io(dir))?;
    for entry in entries {
        let entry = entry.map_err(SyncError::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) =
            name.strip_prefix("part-").and_then(|n| n.strip_suffix(PART_SUFFIX)).and_then(|n| n.parse().ok())
        else {
            continue;
        };
        let path = entry.path();
        match ckpt.part_bytes.get(&id) {
            Some(&bytes) => {
                let f = OpenOptions::new().write(true).open(&path).map_err(SyncError::io(&path))?;
                let len = f.metadata().map_err(SyncError::io(&path))?.len();
                if len < bytes {
                    return Err(SyncError::Checkpoint {
                        path: path.clone(),
                        message: format!(
                            "the part file is shorter ({len} bytes) than checkpointed ({bytes}); delete the directory to start over"
                        ),
                    });
                }
                if len > bytes {
                    tracing::debug!(part = id, dropped = len - bytes, "cutting back a part file to its checkpoint");
                    f.set_len(bytes).map_err(SyncError::io(&path))?;
                }
            }
            None => std::fs::remove_file(&path).map_err(SyncError::io(&path))?,
        }
    }
    Ok(())
}

/// The part files of a finished export, in partition order.
fn finished_parts(dir: &Path, ckpt: &Checkpoint) -> Vec<PathBuf> {
    ckpt.ordered()
        .into_iter()
        .filter(|p| ckpt.part_bytes.get(&p.id).is_some_and(|b| *b > 0))
        .map(|p| part_path(dir, p.id))
        .collect()
}

/// Writes the Delta table at `location` from the part files, in one commit. Returns the row
/// count.
async fn assemble_delta(
    dir: &Path,
    ckpt: &Checkpoint,
    location: &crate::delta::DeltaLocation,
    reader: &TypedReader,
) -> Result<u64, SyncError> {
    let (read, mut batches) = part_batches(dir, ckpt);
    let mut writer = crate::delta::TableWriter::begin(location, location.url(), reader.arrow().clone()).await?;
    while let Some(batch) = batches.recv().await {
        writer.write(batch?).await?;
    }
    read.await.map_err(|e| SyncError::InvalidArgument(format!("reading the part files failed: {e}")))?;
    let rows = writer.rows();
    writer.commit(HashMap::new()).await?;
    Ok(rows)
}

/// Loads the part files into the PostgreSQL table named after the table (binary COPY into a
/// stage, then one transaction replaces the table's rows). Returns the row count.
async fn assemble_postgres(
    dir: &Path,
    ckpt: &Checkpoint,
    url: &crate::postgres::PostgresUrl,
    reader: &TypedReader,
) -> Result<u64, SyncError> {
    use crate::target::Target as _;
    let table = crate::target::TargetTable::new(reader.schema.as_ref().clone());
    let mut target = crate::postgres::PostgresTarget::connect(url.clone(), false).await?;
    target.begin_full(&table).await?;
    let (read, mut batches) = part_batches(dir, ckpt);
    let mut rows = 0;
    while let Some(batch) = batches.recv().await {
        rows += target.load_rows(&table, &batch?).await?;
    }
    read.await.map_err(|e| SyncError::InvalidArgument(format!("reading the part files failed: {e}")))?;
    target.finish_export(&table).await?;
    Ok(rows)
}

/// The batches of the part files of a finished export, in partition order, read on a blocking
/// thread and handed over a small channel (so reading overlaps the writing).
fn part_batches(
    dir: &Path,
    ckpt: &Checkpoint,
) -> (tokio::task::JoinHandle<()>, tokio::sync::mpsc::Receiver<Result<RecordBatch, SyncError>>) {
    let parts = finished_parts(dir, ckpt);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, SyncError>>(4);
    let read = tokio::task::spawn_blocking(move || {
        for p in &parts {
            let sent = read_part(p, |batch| {
                tx.blocking_send(Ok(batch)).map_err(|_| SyncError::InvalidArgument("the writer stopped".into()))
            });
            if let Err(e) = sent {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    });
    (read, rx)
}

/// Writes the final file from the part files, in partition order. Returns the row count.
fn assemble(dir: &Path, ckpt: &Checkpoint, options: &ExportOptions, reader: &TypedReader) -> Result<u64, SyncError> {
    let out_path = &options.output;
    let mut tmp = out_path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let parts = finished_parts(dir, ckpt);
    let file = File::create(&tmp).map_err(SyncError::io(&tmp))?;
    let write_err = |e: crate::writer::WriteError| SyncError::io(&tmp)(std::io::Error::other(e));
    let mut out = BatchWriter::new(options.format, BufWriter::with_capacity(1 << 20, file), reader.arrow().clone())
        .map_err(write_err)?;
    let mut rows = 0u64;
    for p in &parts {
        read_part(p, |batch| {
            rows += batch.num_rows() as u64;
            out.write(&batch).map_err(write_err)
        })?;
    }
    let file = out.finish().map_err(write_err)?.into_inner().map_err(|e| SyncError::io(&tmp)(e.into_error()))?;
    if options.fsync {
        file.sync_data().map_err(SyncError::io(&tmp))?;
    }
    drop(file);
    std::fs::rename(&tmp, out_path).map_err(SyncError::io(out_path))?;
    Ok(rows)
}
