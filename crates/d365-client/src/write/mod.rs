//! Bulk writes: create, update, upsert or delete a stream of rows of one table, in as few
//! requests as the service allows, with every input row accounted for.
//!
//! [`write()`] reads [`WriteRow`]s from a stream, cuts them into chunks of
//! [`WriteOptions::chunk_size`] rows and sends several chunks at once (up to
//! [`WriteOptions::max_parallel`], by default the service's `x-ms-dop-hint`). Every request goes
//! through the client's one retry policy (429 / `Retry-After`, backoff, 401 refresh). How a chunk
//! is sent depends on [`BulkMode`]:
//!
//! - **Bulk messages** (`POST <set>/Microsoft.Dynamics.CRM.CreateMultiple`, `UpdateMultiple`,
//!   `UpsertMultiple` with `{"Targets":[{"@odata.type":…},…]}`): one request and one transaction
//!   per chunk. [`BulkMode::Auto`] uses them when the documented availability probe
//!   (`sdkmessagefilters`, reference §9) says the table has them, and falls back to `$batch` if
//!   the service refuses the message for the table anyway.
//! - **`$batch`** (reference §8): one request per chunk, each row its own part, with
//!   `Prefer: odata.continue-on-error`, so every row gets its own answer. Used for deletes
//!   (`DeleteMultiple` exists only for elastic tables), for optimistic concurrency (bulk
//!   messages take no per-row `If-Match`: `UpdateMultipleRequest.ConcurrencyBehavior` is
//!   documented as not applied), and for tables without bulk messages.
//! - **Row by row**: one request per row (for comparison, and for services where neither works).
//!
//! # Nothing lost, nothing twice
//!
//! Every row read from the stream ends in [`WriteReport::written`] or as a [`RowError`] in
//! [`WriteReport::failed`] (or, if the whole statement stops, in
//! [`WriteReport::not_attempted`]):
//!
//! - Creates get their primary key client-side (a v4 GUID unless the row brings one), so after a
//!   failure whose outcome is unknown (connection reset or truncated answer after the request
//!   was sent, 5xx without a Dataverse answer) the writer asks which of the chunk's ids exist
//!   (`$filter=Microsoft.Dynamics.CRM.In(PropertyName='<pk>',PropertyValues=[…])`) and resends
//!   only the missing rows. Deletes by id are checked the same way (gone = done).
//! - Updates without etags, and upserts, are idempotent: the retry policy repeats them.
//! - A bulk message is all or nothing. When one fails because of its rows (a validation error,
//!   an unknown column, a missing lookup target, a duplicate key, ...), the chunk is cut in
//!   halves and each half sent again, down to single rows, so the good rows land and only the
//!   bad ones are reported, with the service's code and message and the column when the
//!   message names it (or, for "Cannot convert the literal 'x'", the row's column holding `x`).
//! - A failure that no row can fix (a missing privilege on the table, authentication, the retry
//!   budget exhausted) stops the statement: [`write()`] returns a [`WriteError`] whose report says
//!   what was written, what failed and which rows were not attempted.
//!
//! # Atomic writes
//!
//! [`WriteOptions::atomic`] sends the whole statement as one `$batch` change set (one
//! transaction): every row is written or none is. A change set holds at most 1,000 requests, so
//! an atomic write of more than 1,000 rows is refused before anything is sent
//! ([`ClientError::InvalidArgument`]). When a row fails, the change set is rolled back and
//! [`write()`] returns a [`WriteError`]: the culprit row with the service's error, and every other
//! row as not written ("rolled back").

mod engine;
mod finops;
mod recover;
mod wire;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use serde_json::{Map, Value};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::client::DataverseClient;
use crate::error::ClientError;
use crate::metadata::EntityInfo;
use crate::records::RecordKey;

use engine::{ChunkOutcome, Engine, Prepared};

/// What a write does to each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteOp {
    /// Create new records (the primary key is assigned client-side when the row has none).
    Create,
    /// Update existing records, by id or alternate key; a missing record is a row error (404).
    Update,
    /// Create or update, by id or alternate key.
    Upsert,
    /// Delete records, by id or alternate key.
    Delete,
}

impl WriteOp {
    /// `Create`, `Update`, `Upsert` or `Delete`.
    pub fn name(self) -> &'static str {
        match self {
            WriteOp::Create => "Create",
            WriteOp::Update => "Update",
            WriteOp::Upsert => "Upsert",
            WriteOp::Delete => "Delete",
        }
    }
}

/// How rows are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BulkMode {
    /// Bulk messages when the table has them and the write can use them, else `$batch`.
    #[default]
    Auto,
    /// `CreateMultiple` / `UpdateMultiple` / `UpsertMultiple` (not for deletes, optimistic or
    /// atomic writes).
    BulkMessages,
    /// `$batch`, one part per row.
    Batch,
    /// One request per row.
    RowByRow,
}

impl fmt::Display for BulkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BulkMode::Auto => "auto",
            BulkMode::BulkMessages => "bulk messages",
            BulkMode::Batch => "$batch",
            BulkMode::RowByRow => "row by row",
        })
    }
}

/// One input row.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteRow {
    /// The row's number in the input, echoed in [`RowError::index`].
    pub index: u64,
    /// Which record: required for update, upsert and delete; for a create an id chooses the new
    /// record's primary key.
    pub key: Option<RecordKey>,
    /// The etag read with the record (`W/"123"`), sent as `If-Match` when
    /// [`WriteOptions::optimistic`] is on.
    pub etag: Option<String>,
    /// Column values by Web API property name; lookups as
    /// `"<navigation property>@odata.bind": "/<set>(<id>)"` (or `null` to clear). Ignored for
    /// deletes.
    pub values: Map<String, Value>,
}

impl WriteRow {
    /// A row without key or etag.
    pub fn new(index: u64, values: Map<String, Value>) -> Self {
        Self { index, key: None, etag: None, values }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<RecordKey>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the etag.
    pub fn with_etag(mut self, etag: impl Into<String>) -> Self {
        self.etag = Some(etag.into());
        self
    }
}

/// How a write runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// Rows per request (1–1000; default 200).
    pub chunk_size: usize,
    /// Requests in flight at once (1–52); `None`: the service's `x-ms-dop-hint`.
    pub max_parallel: Option<usize>,
    /// Skip custom synchronous and asynchronous business logic (plug-ins, workflows):
    /// `MSCRM.BypassBusinessLogicExecution: CustomSync,CustomAsync`. The caller needs the
    /// `prvBypassCustomBusinessLogic` privilege (System Administrators have it), otherwise every
    /// request fails with 403 and the write stops.
    pub bypass_plugins: bool,
    /// Updates, upserts and deletes carry `If-Match: <the row's etag>`; a row whose record
    /// changed since it was read is reported (412, "doesn't match the RowVersion"), not
    /// overwritten. Update and delete rows without an etag are reported without being sent; an
    /// upsert row without one is sent unconditionally. Uses `$batch` (bulk messages take no
    /// per-row etag).
    pub optimistic: bool,
    /// All rows or none, in one `$batch` change set (at most 1,000 rows).
    pub atomic: bool,
    /// Write as this user (`MSCRMCallerID`; the caller needs `prvActOnBehalfOfAnotherUser`).
    pub caller_id: Option<Uuid>,
    /// How rows are sent.
    pub mode: BulkMode,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_parallel: None,
            bypass_plugins: false,
            optimistic: false,
            atomic: false,
            caller_id: None,
            mode: BulkMode::Auto,
        }
    }
}

/// Default rows per request.
pub const DEFAULT_CHUNK_SIZE: usize = 200;
/// Most rows per request (and per atomic write): the `$batch` limit.
pub const MAX_CHUNK_SIZE: usize = 1000;
/// Most requests in flight: the service's concurrency limit per user.
pub const MAX_PARALLEL: usize = 52;

/// Why one row was not written.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    /// The row's [`WriteRow::index`].
    pub index: u64,
    /// The row's key, if it had one.
    pub key: Option<RecordKey>,
    /// The record id, when known (assigned for creates).
    pub id: Option<Uuid>,
    /// The HTTP status of the service's answer (`None` when the client refused the row).
    pub status: Option<u16>,
    /// The Dataverse error code (`0x80044331`), empty when there was none.
    pub code: String,
    /// The service's message, or the client's reason.
    pub message: String,
    /// The column the message is about, when it names one of the row's columns.
    pub column: Option<String>,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {}", self.index)?;
        if let Some(c) = &self.column {
            write!(f, ", column {c}")?;
        }
        if let Some(s) = self.status {
            write!(f, ": HTTP {s}")?;
        }
        if !self.code.is_empty() {
            write!(f, " [{}]", self.code)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Live counters, passed to the progress callback after every finished chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteProgress {
    /// Rows read from the input so far.
    pub rows_read: u64,
    /// Rows written.
    pub written: u64,
    /// Rows reported as failed.
    pub failed: u64,
    /// HTTP requests sent by the client since the write started (retries included).
    pub requests: u64,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteReport {
    /// The operation.
    pub op: WriteOp,
    /// How rows were sent (never `Auto`).
    pub mode: BulkMode,
    /// Rows read from the input.
    pub rows: u64,
    /// Rows written (created, updated, upserted or deleted).
    pub written: u64,
    /// Rows not written, by input index.
    pub failed: Vec<RowError>,
    /// Rows read but never sent because the write stopped early (empty unless [`write()`]
    /// returned an error).
    pub not_attempted: Vec<u64>,
    /// HTTP requests the client sent during the write (every attempt; if the client is shared,
    /// concurrent requests of others are counted too).
    pub requests: u64,
    /// Of those, retries of an earlier attempt.
    pub retries: u64,
    /// Responses that were 429 (or 503 with `Retry-After`).
    pub throttled: u64,
    /// Chunks sent (before bisection; row by row, every row is a chunk).
    pub chunks: u64,
    /// Times a failed chunk was cut in halves.
    pub bisections: u64,
    /// Rows whose unknown outcome was settled by asking the service (found written).
    pub recovered: u64,
    /// The most requests in flight at once that were allowed.
    pub parallelism: usize,
    /// Wall-clock time of the write.
    pub elapsed: Duration,
}

impl WriteReport {
    /// An empty report: nothing read, nothing sent.
    pub fn new(op: WriteOp, mode: BulkMode) -> Self {
        Self {
            op,
            mode,
            rows: 0,
            written: 0,
            failed: Vec::new(),
            not_attempted: Vec::new(),
            requests: 0,
            retries: 0,
            throttled: 0,
            chunks: 0,
            bisections: 0,
            recovered: 0,
            parallelism: 0,
            elapsed: Duration::ZERO,
        }
    }

    /// Rows written per second.
    pub fn rows_per_second(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.written as f64 / s } else { 0.0 }
    }
}

impl fmt::Display for WriteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} of {} rows written, {} failed", self.op.name(), self.written, self.rows, self.failed.len())?;
        if !self.not_attempted.is_empty() {
            write!(f, ", {} not attempted", self.not_attempted.len())?;
        }
        write!(
            f,
            " in {:.1} s ({}; {} requests, {} retries, {} throttled; {} chunks, {} bisections, {} recovered; parallelism {})",
            self.elapsed.as_secs_f64(),
            self.mode,
            self.requests,
            self.retries,
            self.throttled,
            self.chunks,
            self.bisections,
            self.recovered,
            self.parallelism
        )
    }
}

/// A write that stopped (or an atomic write that was rolled back): the error, and the report
/// of what happened to every row read so far.
#[derive(Debug, thiserror::Error)]
#[error("{error} ({report})")]
pub struct WriteError {
    /// Why the write stopped.
    #[source]
    pub error: ClientError,
    /// Written, failed and not-attempted rows.
    pub report: Box<WriteReport>,
}

impl WriteError {
    fn before_start(op: WriteOp, error: ClientError) -> Self {
        Self { error, report: Box::new(WriteReport::new(op, BulkMode::Auto)) }
    }
}

impl DataverseClient {
    /// [`write()`] with this client.
    pub async fn write<S, P>(
        &self,
        entity: &EntityInfo,
        op: WriteOp,
        rows: S,
        options: &WriteOptions,
        progress: P,
    ) -> Result<WriteReport, WriteError>
    where
        S: Stream<Item = WriteRow> + Send,
        P: Fn(&WriteProgress) + Send + Sync,
    {
        write(self, entity, op, rows, options, progress).await
    }
}

/// Writes `rows` to the table `entity` (its entity set, logical name and primary key are used)
/// as the module documentation describes, calling `progress` after every chunk. Returns the
/// report, or a [`WriteError`] (with the report so far) when the write stopped or an atomic
/// write was rolled back. Invalid options are refused before anything is sent.
pub async fn write<S, P>(
    client: &DataverseClient,
    entity: &EntityInfo,
    op: WriteOp,
    rows: S,
    options: &WriteOptions,
    progress: P,
) -> Result<WriteReport, WriteError>
where
    S: Stream<Item = WriteRow> + Send,
    P: Fn(&WriteProgress) + Send + Sync,
{
    if client.service().is_finops() {
        return finops::write(client, entity, op, rows, options, progress).await;
    }
    let account = Accounting::start(client, &progress);
    check_options(entity, op, options).map_err(|e| WriteError::before_start(op, e))?;
    let mode = engine::resolve_mode(client, entity, op, options).await.map_err(|e| WriteError::before_start(op, e))?;
    let engine = Arc::new(Engine::new(client.clone(), entity, op, options.clone(), mode));
    let mut report = WriteReport::new(op, mode);
    let mut rows = std::pin::pin!(rows);
    let finish = |report: WriteReport| account.finish(report);
    let notify = |report: &WriteReport| account.notify(report);

    if options.atomic {
        let all = match collect_atomic(rows.as_mut(), &mut report).await {
            Ok(all) => all,
            Err(error) => return Err(WriteError { error, report: Box::new(finish(report)) }),
        };
        let mut prepared = Vec::with_capacity(all.len());
        for row in all {
            match engine.prepare(row) {
                Ok(p) => prepared.push(p),
                Err(e) => report.failed.push(*e),
            }
        }
        if !report.failed.is_empty() {
            // Atomic: a row the client refuses fails the statement before anything is sent.
            let first = report.failed[0].clone();
            report.not_attempted = prepared.iter().map(|p| p.index).collect();
            return Err(WriteError {
                error: ClientError::InvalidArgument(format!("atomic write not sent: {first}")),
                report: Box::new(finish(report)),
            });
        }
        report.parallelism = 1;
        report.chunks = u64::from(!prepared.is_empty());
        let outcome = if prepared.is_empty() { ChunkOutcome::default() } else { engine.clone().atomic(prepared).await };
        let abort = merge(&mut report, outcome, &engine);
        notify(&report);
        return match abort {
            Some(error) => Err(WriteError { error, report: Box::new(finish(report)) }),
            None => Ok(finish(report)),
        };
    }

    // Row by row, a task sends one row, so `parallelism` requests are in flight however few
    // rows there are.
    let per_task = if mode == BulkMode::RowByRow { 1 } else { options.chunk_size };
    let mut tasks: JoinSet<ChunkOutcome> = JoinSet::new();
    let mut buffer: VecDeque<Prepared> = VecDeque::new();
    let mut exhausted = false;
    let mut abort: Option<ClientError> = None;
    loop {
        while abort.is_none() && tasks.len() < engine.parallelism() && !(exhausted && buffer.is_empty()) {
            while !exhausted && buffer.len() < per_task {
                match rows.next().await {
                    Some(row) => {
                        report.rows += 1;
                        match engine.prepare(row) {
                            Ok(p) => buffer.push_back(p),
                            Err(e) => report.failed.push(*e),
                        }
                    }
                    None => exhausted = true,
                }
            }
            if buffer.is_empty() {
                break;
            }
            let n = buffer.len().min(per_task);
            let chunk: Vec<Prepared> = buffer.drain(..n).collect();
            report.chunks += 1;
            report.parallelism = report.parallelism.max(engine.parallelism());
            tasks.spawn(engine.clone().chunk(chunk));
        }
        let Some(done) = tasks.join_next().await else { break };
        let outcome = done.unwrap_or_else(|e| ChunkOutcome::panicked(&e));
        if let Some(e) = merge(&mut report, outcome, &engine) {
            abort.get_or_insert(e);
        }
        notify(&report);
    }
    if let Some(error) = abort {
        report.not_attempted.extend(buffer.iter().map(|p| p.index));
        return Err(WriteError { error, report: Box::new(finish(report)) });
    }
    Ok(finish(report))
}

/// Reads every row of an atomic write (one `$batch` change set), counting them in `report`;
/// past [`MAX_CHUNK_SIZE`] rows the write is refused with nothing sent.
pub(super) async fn collect_atomic<S: Stream<Item = WriteRow>>(
    mut rows: std::pin::Pin<&mut S>,
    report: &mut WriteReport,
) -> Result<Vec<WriteRow>, ClientError> {
    let mut all = Vec::new();
    while let Some(row) = rows.next().await {
        report.rows += 1;
        if all.len() == MAX_CHUNK_SIZE {
            return Err(ClientError::InvalidArgument(format!(
                "an atomic write is one $batch change set, which holds at most {MAX_CHUNK_SIZE} rows; this input has more: nothing was written (split the statement or turn atomic off)"
            )));
        }
        all.push(row);
    }
    Ok(all)
}

/// The bookkeeping every write shares: the request counters since it started, its clock, and
/// its progress callback.
pub(super) struct Accounting<'a, P> {
    client: &'a DataverseClient,
    stats0: crate::request_log::RequestStats,
    started: Instant,
    progress: &'a P,
}

impl<'a, P: Fn(&WriteProgress)> Accounting<'a, P> {
    /// Starts counting now.
    pub(super) fn start(client: &'a DataverseClient, progress: &'a P) -> Self {
        Self { client, stats0: client.request_log().stats(), started: Instant::now(), progress }
    }

    /// The report with the requests, retries, throttling and time of the write, its rows in
    /// input order.
    pub(super) fn finish(&self, mut report: WriteReport) -> WriteReport {
        let stats = self.client.request_log().stats().since(&self.stats0);
        report.requests = stats.requests;
        report.retries = stats.retries;
        report.throttled = stats.throttled;
        report.elapsed = self.started.elapsed();
        report.failed.sort_by_key(|e| e.index);
        report.not_attempted.sort_unstable();
        report
    }

    /// Tells the progress callback where the write stands.
    pub(super) fn notify(&self, report: &WriteReport) {
        (self.progress)(&WriteProgress {
            rows_read: report.rows,
            written: report.written,
            failed: report.failed.len() as u64,
            requests: self.client.request_log().stats().since(&self.stats0).requests,
        })
    }
}

/// Adds a chunk's outcome to the report; returns its stop error, if any.
fn merge(report: &mut WriteReport, outcome: ChunkOutcome, engine: &Engine) -> Option<ClientError> {
    report.written += outcome.written;
    report.failed.extend(outcome.failed);
    report.not_attempted.extend(outcome.unresolved);
    report.bisections = engine.bisections();
    report.recovered = engine.recovered();
    outcome.abort
}

fn check_options(entity: &EntityInfo, op: WriteOp, o: &WriteOptions) -> Result<(), ClientError> {
    let bad = |m: String| Err(ClientError::InvalidArgument(m));
    if entity.entity_set_name.as_deref().is_none_or(str::is_empty) {
        return bad(format!("table '{}' has no entity set: the Web API cannot write it", entity.logical_name));
    }
    if entity.primary_id_attribute.is_empty() {
        return bad(format!("table '{}' has no primary key attribute in its metadata", entity.logical_name));
    }
    if !(1..=MAX_CHUNK_SIZE).contains(&o.chunk_size) {
        return bad(format!("chunk size {} is outside 1..={MAX_CHUNK_SIZE}", o.chunk_size));
    }
    if let Some(p) = o.max_parallel
        && !(1..=MAX_PARALLEL).contains(&p)
    {
        return bad(format!("parallelism {p} is outside 1..={MAX_PARALLEL}"));
    }
    match o.mode {
        BulkMode::BulkMessages if op == WriteOp::Delete => bad(
            "DeleteMultiple exists only for elastic tables (standard tables answer 'DeleteMultiple has not yet been implemented.'): use BulkMode::Batch or Auto for deletes".into(),
        ),
        BulkMode::BulkMessages if o.optimistic => bad(
            "bulk messages take no per-row If-Match (UpdateMultiple's ConcurrencyBehavior is documented as not applied): use BulkMode::Batch or Auto for optimistic writes".into(),
        ),
        BulkMode::BulkMessages | BulkMode::RowByRow if o.atomic => {
            bad(format!("an atomic write is one $batch change set: mode '{}' cannot be atomic", o.mode))
        }
        _ => Ok(()),
    }
}
