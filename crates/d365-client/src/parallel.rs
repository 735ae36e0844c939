//! Parallel partitioned scans: a table read as key ranges (see [`crate::partition`]) fetched
//! concurrently, every row exactly once.
//!
//! [`DataverseClient::plan_scan`] discovers the ranges (two or three cheap `$top=1` requests);
//! [`DataverseClient::partitioned_scan`] reads them. A scheduler task hands one page request
//! at a time to workers, up to a concurrency limit that follows AIMD
//! ([`crate::AdaptiveConcurrency`]): it starts at the service's `x-ms-dop-hint` (or
//! `--parallel N`), grows by one per page while the service answers without throttling, and
//! halves when a request of the client was throttled. It never exceeds
//! [`ScanOptions::max_parallel`] (52, the documented concurrency limit, by default). When
//! a worker would sit idle while a partition still has many rows left, that partition's rest is
//! split into new partitions (see [`crate::partition::split_remainder`]) — unless the client
//! was throttled in this scan or in the last five minutes: then the service's request budget,
//! not the concurrency, bounds the read, and a split's partial pages would only spend it.
//!
//! The stream yields [`ScanPage`]s tagged with their partition's state after the page (its next
//! link, or done), and the partitions a split created, so a caller can checkpoint the scan and
//! resume it ([`DataverseClient::partitioned_scan`] accepts saved partitions). With
//! [`ScanOptions::ordered`] pages come in the order of the partition column (null first), each
//! partition's pages in the service's order; otherwise as they arrive.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::Stream;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::client::{ApiRequest, DataverseClient, decode_json};
use crate::concurrency::{AdaptiveConcurrency, MAX_CONCURRENT_REQUESTS};
use crate::error::ClientError;
use crate::page_parser::SharedParser;
use crate::partition::{
    DEFAULT_PARTITION_COLUMN, Partition, PartitionKey, SplitContext, initial_partitions, row_instant, split_remainder,
};
use crate::query::{MAX_PAGE_SIZE, Query};

/// How a partitioned scan runs.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// The date-time column to partition on (`createdon`).
    pub column: String,
    /// The table's primary key column (`accountid`).
    pub primary_key: String,
    /// A fixed concurrency (`--parallel N`): start there and never go above it.
    pub parallel: Option<usize>,
    /// The most concurrent requests when `parallel` is not set.
    pub max_parallel: usize,
    /// Yield pages in the order of the partition column.
    pub ordered: bool,
    /// Split big partitions while reading them.
    pub split: bool,
    /// Parse every row of a page into [`ScanPage::rows`] (the default). Off, the rows hold only
    /// the partition column and the primary key (what placing rows needs), and the caller
    /// decodes [`ScanPage::body`] itself: no `serde_json::Value` is built or held per cell.
    pub keep_rows: bool,
    /// Bytes of page bodies that may be fetched at once: the concurrency is held to this
    /// budget divided by the mean body size seen so far (never below one request), so wide
    /// pages do not multiply memory by the concurrency. `None`: no budget.
    pub memory_budget: Option<usize>,
    /// With `keep_rows` off: decode each page where it arrives with this parser, once for
    /// both the caller ([`ScanPage::decoded`]) and the scan's own facts, instead of reading
    /// the body a second time for them.
    pub page_parser: Option<SharedParser>,
}

impl ScanOptions {
    /// Options for a table whose primary key is `primary_key`, partitioned on `createdon`.
    pub fn new(primary_key: impl Into<String>) -> Self {
        Self {
            column: DEFAULT_PARTITION_COLUMN.into(),
            primary_key: primary_key.into(),
            parallel: None,
            max_parallel: MAX_CONCURRENT_REQUESTS,
            ordered: false,
            split: true,
            keep_rows: true,
            memory_budget: None,
            page_parser: None,
        }
    }
}

/// The partitions of a scan, from [`DataverseClient::plan_scan`] or a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanPlan {
    /// Every partition (finished ones included when resuming).
    pub partitions: Vec<Partition>,
    /// The largest value of the column seen at discovery, + 1 s (bounds splits of the open
    /// last range).
    pub hi_estimate: Option<i64>,
    /// The next free partition id.
    pub next_id: u64,
}

impl ScanPlan {
    /// A plan reading the whole table as one partition (no partition column needed; no
    /// parallelism).
    pub fn single() -> Self {
        Self { partitions: vec![Partition::new(0, crate::partition::Bounds::All)], hi_estimate: None, next_id: 1 }
    }
}

/// One page of a partitioned scan.
#[derive(Debug, Clone)]
pub struct ScanPage {
    /// The partition's state after this page: `next_link` to continue, or `done`.
    pub partition: Partition,
    /// Partitions split off the rest of this one after the page (then `partition.done`).
    pub spawned: Vec<Partition>,
    /// The page's rows (columns the scan added to place rows are removed again).
    pub rows: Vec<Map<String, Value>>,
    /// The page's body exactly as the service sent it, for decoders that keep every digit of
    /// a number (the rows above hold numbers as `f64`). It may hold the columns the scan added
    /// and the rows listed in `skipped`.
    pub body: bytes::Bytes,
    /// Positions in the body's `value` array of rows already returned by an earlier page (at a
    /// split boundary), which are not in `rows`.
    pub skipped: Vec<usize>,
    /// The whole body (skipped rows included) as the scan's [`ScanOptions::page_parser`]
    /// decoded it, if it has one.
    pub decoded: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

/// Live counters of a scan (for progress bars).
#[derive(Debug, Default)]
pub struct ScanProgress {
    /// Rows delivered.
    pub rows: AtomicU64,
    /// Pages delivered.
    pub pages: AtomicU64,
    /// Partitions known (splits add some).
    pub partitions: AtomicU64,
    /// Partitions finished.
    pub partitions_done: AtomicU64,
    /// The concurrency limit now.
    pub concurrency: AtomicU64,
    /// The highest concurrency limit reached.
    pub peak_concurrency: AtomicU64,
    /// Times the limit was lowered after throttling.
    pub backoffs: AtomicU64,
}

/// The stream of a partitioned scan; dropping it stops every request.
pub struct PartitionedScan {
    rx: mpsc::Receiver<Result<ScanPage, ClientError>>,
    task: JoinHandle<()>,
    progress: Arc<ScanProgress>,
}

impl std::fmt::Debug for PartitionedScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionedScan").field("progress", &self.progress).finish()
    }
}

impl PartitionedScan {
    /// The scan's live counters.
    pub fn progress(&self) -> Arc<ScanProgress> {
        self.progress.clone()
    }
}

impl Drop for PartitionedScan {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for PartitionedScan {
    type Item = Result<ScanPage, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

#[derive(Deserialize)]
struct Envelope {
    value: Vec<Map<String, Value>>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    /// The page as a [`PageParser`] decoded it.
    #[serde(skip)]
    decoded: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl DataverseClient {
    /// Discovers the partitions of a scan of `query`: the largest value of the partition
    /// column (`$top=1`, descending) and, at the same time, the first page of the column's
    /// values in ascending order (nulls sort first). When that page holds the whole result the
    /// scan is one range; otherwise the page's density of rows per second estimates the table's
    /// size, and the span is cut into equal ranges of about 80 % of a page each (at most the
    /// concurrency cap: 52, or `parallel`), so the queue holds work while AIMD opens slots.
    /// Big ranges are split further while they are read. A table without rows gets one open
    /// partition.
    pub async fn plan_scan(&self, query: &Query, options: &ScanOptions) -> Result<ScanPlan, ClientError> {
        check_query(query)?;
        let column = options.column.as_str();
        let page_size = query.max_page_size.or(self.options().max_page_size).unwrap_or(MAX_PAGE_SIZE);
        let probe = |filter: Option<String>, desc: bool, top: u32| {
            let mut q = Query::new(query.entity_set.clone()).select([column]).top(u64::from(top));
            q.filter = combine(query.filter.as_deref(), filter.as_deref());
            q.params = query.params.clone();
            q.order_by(column, desc)
        };
        let first = probe(None, false, page_size);
        let last = probe(Some(format!("{column} ne null")), true, 1);
        let (first, last) = futures::try_join!(self.probe_rows(&first), self.probe_rows(&last))?;
        let read = |row: &Map<String, Value>| {
            row_instant(row, column).ok_or_else(|| {
                ClientError::InvalidArgument(format!("column '{column}' is not a date-time: cannot partition on it"))
            })
        };
        let Some(head) = first.first() else {
            return Ok(ScanPlan { partitions: initial_partitions(0, 0, false, 1, 0), hi_estimate: None, next_id: 1 });
        };
        let nulls = read(head)?.is_none();
        let max = match last.first() {
            Some(row) => read(row)?,
            None => None,
        };
        let values: Vec<i64> = first.iter().map(read).collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
        let min = match (values.first(), nulls) {
            (Some(v), _) => Some(*v),
            // A page of nulls only: the smallest value needs one more request.
            (None, true) => match self.probe_rows(&probe(Some(format!("{column} ne null")), false, 1)).await?.first() {
                Some(row) => read(row)?,
                None => None,
            },
            (None, false) => None,
        };
        let cap = options.parallel.unwrap_or(options.max_parallel).max(1);
        let n = if first.len() < page_size as usize {
            1
        } else {
            match (values.first(), values.last(), min, max) {
                (Some(&lo), Some(&hi), Some(min), Some(max)) if hi > lo => {
                    let density = values.len() as f64 / (hi - lo + 1) as f64;
                    let estimate = density * (max - min + 1) as f64;
                    ((estimate / (0.8 * f64::from(page_size))).ceil() as usize).clamp(1, cap)
                }
                _ => cap,
            }
        };
        let parts = match (min, max) {
            (Some(min), Some(max)) => initial_partitions(min, max, nulls, n, 0),
            _ => initial_partitions(0, 0, nulls, 1, 0),
        };
        let next_id = parts.len() as u64;
        Ok(ScanPlan { partitions: parts, hi_estimate: max.map(|m| m + 1), next_id })
    }

    async fn probe_rows(&self, query: &Query) -> Result<Vec<Map<String, Value>>, ClientError> {
        let plan = self.plan(query)?;
        let mut req = ApiRequest::new(Method::GET, plan.url);
        if let Some(p) = &plan.prefer {
            req = req.header("prefer", p)?;
        }
        let env: Envelope = self.execute(&req, |r| decode_json(&req, &r.body)).await?;
        Ok(env.value)
    }

    /// Reads the partitions of `plan` concurrently (see the module docs). `query` gives the
    /// entity set, `$select`, `$filter`, `$expand` and page size; its `$orderby` is replaced by
    /// the partition column, and `$top`/`$apply` are refused. Finished partitions of a resumed
    /// plan are skipped; started ones continue from their next link.
    pub fn partitioned_scan(
        &self,
        query: &Query,
        plan: ScanPlan,
        options: ScanOptions,
    ) -> Result<PartitionedScan, ClientError> {
        check_query(query)?;
        let mut base = query.clone();
        // A plan of one whole-table partition (a table without the partition column) keeps
        // the query's own order and columns.
        let whole = plan.partitions.iter().all(|p| p.bounds == crate::partition::Bounds::All);
        let mut added = Vec::new();
        if !whole {
            base.order_by = vec![format!("{} asc", options.column)];
        }
        if !whole && !base.select.is_empty() {
            for c in [&options.column, &options.primary_key] {
                if !base.select.iter().any(|s| s.eq_ignore_ascii_case(c)) {
                    base.select.push(c.clone());
                    added.push(c.clone());
                }
            }
        }
        let page_size = base.max_page_size.or(self.options().max_page_size).unwrap_or(MAX_PAGE_SIZE) as usize;
        let prefer = base.prefer(self.options().max_page_size);
        let progress = Arc::new(ScanProgress::default());
        // Pages whose rows were parsed wait four deep; bodies left to the caller (big, and
        // decoded quickly) one deep, so the queue does not double the memory budget.
        let (tx, rx) = mpsc::channel(if options.keep_rows { 4 } else { 1 });
        let sched = Scheduler {
            client: self.clone(),
            base,
            prefer,
            added,
            page_size,
            aimd: self.concurrency(options.parallel, options.max_parallel),
            options,
            progress: progress.clone(),
            tx,
        };
        let task = tokio::spawn(sched.run(plan));
        Ok(PartitionedScan { rx, task, progress })
    }
}

fn check_query(query: &Query) -> Result<(), ClientError> {
    if query.top.is_some() {
        return Err(ClientError::InvalidArgument(
            "a partitioned scan reads whole tables: $top is not supported".into(),
        ));
    }
    if query.apply.is_some() {
        return Err(ClientError::InvalidArgument("a partitioned scan cannot run $apply".into()));
    }
    Ok(())
}

fn combine(a: Option<&str>, b: Option<&str>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("({a}) and ({b})")),
        (Some(x), None) | (None, Some(x)) => Some(x.to_string()),
        (None, None) => None,
    }
}

struct Fetched {
    partition: Partition,
    result: Result<(Envelope, bytes::Bytes), ClientError>,
}

/// Page bodies seen so far, for [`ScanOptions::memory_budget`]: their mean size per row sets
/// both the page size and how many pages may be fetched at once.
#[derive(Debug, Default)]
struct BodySizes {
    pages: u64,
    rows: u64,
    bytes: u64,
}

/// Under a memory budget, pages are sized so that at least this many fit in it — and as many
/// as the service's `x-ms-dop-hint` recommends running at once: a wide table then reads that
/// many smaller pages at once rather than one or two huge ones.
const PAGES_PER_BUDGET: usize = 4;
/// Most pages the budget is divided into: smaller pages would spend the service's request
/// allowance (6,000 per 5 minutes per user) faster than they save time.
const MAX_PAGES_PER_BUDGET: usize = 16;

/// Rows asked for in the first pages of a budgeted scan, before the width of a row is known.
const FIRST_PAGE_ROWS: usize = 500;

impl BodySizes {
    /// Sizes that start from a row width measured before (no page of this scan seen yet).
    fn seeded(bytes_per_row: Option<u64>) -> Self {
        match bytes_per_row {
            Some(w) if w > 0 => Self { pages: 0, rows: 1, bytes: w },
            _ => Self::default(),
        }
    }

    /// Body bytes per row seen, once a row was.
    fn per_row(&self) -> Option<u64> {
        self.bytes.checked_div(self.rows)
    }

    fn add(&mut self, bytes: usize, rows: usize) {
        self.pages += 1;
        self.rows += rows as u64;
        self.bytes += bytes as u64;
    }

    /// Rows to ask for per page, at most `max`: without a budget, `max`; with one, about
    /// `budget / slots` bytes of rows, `slots` being the requests the service recommends at
    /// once (its DOP hint) within `PAGES_PER_BUDGET..=MAX_PAGES_PER_BUDGET`
    /// (`FIRST_PAGE_ROWS` until a row was seen).
    fn page_rows(&self, budget: Option<usize>, max: usize, slots: usize) -> usize {
        let Some(budget) = budget else { return max };
        if self.rows == 0 {
            return FIRST_PAGE_ROWS.min(max).max(1);
        }
        let per_row = (self.bytes / self.rows).max(1);
        let slots = slots.clamp(PAGES_PER_BUDGET, MAX_PAGES_PER_BUDGET) as u64;
        usize::try_from(budget as u64 / slots / per_row).unwrap_or(usize::MAX).clamp(1, max.max(1))
    }

    /// Requests the budget allows at once for pages of `page_rows` rows; before the first
    /// page arrives, one (its size is not known yet).
    fn allowed(&self, budget: Option<usize>, page_rows: usize) -> usize {
        let Some(budget) = budget else { return usize::MAX };
        if self.pages == 0 {
            return 1;
        }
        let page = match self.bytes.checked_div(self.rows) {
            Some(per_row) => per_row.saturating_mul(page_rows as u64),
            None => self.bytes / self.pages,
        };
        usize::try_from(budget as u64 / page.max(1)).unwrap_or(usize::MAX).max(1)
    }
}

struct Scheduler {
    client: DataverseClient,
    base: Query,
    prefer: Option<String>,
    added: Vec<String>,
    page_size: usize,
    /// Declared before `tx`: it is dropped first, so the concurrency it reached is left on the
    /// client before the reader sees the end of the scan.
    aimd: AdaptiveConcurrency,
    options: ScanOptions,
    progress: Arc<ScanProgress>,
    tx: mpsc::Sender<Result<ScanPage, ClientError>>,
}

/// Pages buffered for ordered output beyond which only the head partition is read.
const ORDERED_BUFFER_PER_SLOT: usize = 2;

impl Scheduler {
    /// The `Prefer` header of a request for pages of `page_rows` rows (the query's own when
    /// that is its page size).
    fn prefer_for(&self, page_rows: usize) -> Option<String> {
        if page_rows == self.page_size {
            return self.prefer.clone();
        }
        let mut q = self.base.clone();
        q.max_page_size = Some(u32::try_from(page_rows).unwrap_or(u32::MAX));
        q.prefer(None)
    }

    /// The requests the memory budget should make room for: `--parallel N`, else the service's
    /// DOP hint. Once the scan is held by the service's request budget (throttled), the fewest
    /// the budget is sized for: every request then counts against that budget, so pages are as
    /// large as memory allows and the concurrency, not the page, shrinks to fit.
    fn slots(&self) -> usize {
        if !self.aimd.may_split() {
            return PAGES_PER_BUDGET;
        }
        self.options.parallel.or_else(|| self.client.server_hints().dop_hint.map(|d| d as usize)).unwrap_or(0)
    }

    /// What `fetch` needs to know of the options.
    fn fetch_columns(&self, page_rows: usize) -> FetchColumns {
        FetchColumns {
            column: self.options.column.clone(),
            slim: (!self.options.keep_rows).then(|| [self.options.column.clone(), self.options.primary_key.clone()]),
            parser: self.options.page_parser.clone().filter(|_| !self.options.keep_rows),
            page_rows,
        }
    }

    async fn run(mut self, plan: ScanPlan) {
        let mut next_id = plan.next_id.max(plan.partitions.iter().map(|p| p.id + 1).max().unwrap_or(0));
        let hi_estimate = plan.hi_estimate;
        let mut pending: BTreeMap<PartitionKey, Partition> = BTreeMap::new();
        let mut unfinished: BTreeSet<PartitionKey> = BTreeSet::new();
        let total = plan.partitions.len() as u64;
        let mut done = 0u64;
        for p in plan.partitions {
            if p.done {
                done += 1;
            } else {
                unfinished.insert(p.key());
                pending.insert(p.key(), p);
            }
        }
        self.progress.partitions.store(total, Ordering::Relaxed);
        self.progress.partitions_done.store(done, Ordering::Relaxed);
        let mut buffer: BTreeMap<PartitionKey, VecDeque<ScanPage>> = BTreeMap::new();
        let mut buffered = 0usize;
        let mut joins: JoinSet<Fetched> = JoinSet::new();
        let shape = format!("{}?{}", self.base.entity_set, self.base.select.join(","));
        let mut sizes = BodySizes::seeded(self.client.row_width(&shape));
        loop {
            let page_rows = sizes.page_rows(self.options.memory_budget, self.page_size, self.slots());
            let limit = self.aimd.limit().min(sizes.allowed(self.options.memory_budget, page_rows));
            self.progress.concurrency.store(limit as u64, Ordering::Relaxed);
            self.progress.peak_concurrency.fetch_max(limit as u64, Ordering::Relaxed);
            while joins.len() < limit {
                let Some((&key, _)) = pending.first_key_value() else { break };
                let head = unfinished.first().copied();
                if self.options.ordered && Some(key) != head && buffered >= ORDERED_BUFFER_PER_SLOT * limit {
                    break;
                }
                let Some((_, p)) = pending.pop_first() else { break };
                joins.spawn(fetch(
                    self.client.clone(),
                    self.base.clone(),
                    self.prefer_for(page_rows),
                    self.fetch_columns(page_rows),
                    p,
                ));
            }
            self.aimd.in_flight(joins.len());
            let Some(joined) = joins.join_next().await else { break };
            let fetched = match joined {
                Ok(f) => f,
                Err(e) => {
                    let _ = self.tx.send(Err(ClientError::InvalidArgument(format!("a scan worker failed: {e}")))).await;
                    return;
                }
            };
            let mut p = fetched.partition;
            let (env, body) = match fetched.result {
                Ok(fetched) => fetched,
                Err(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
            };
            sizes.add(body.len(), env.value.len());
            if let Some(w) = sizes.per_row().filter(|_| !env.value.is_empty()) {
                self.client.note_row_width(&shape, w);
            }
            if self.aimd.on_page(self.client.request_log().stats().throttled) {
                self.progress.backoffs.fetch_add(1, Ordering::Relaxed);
            }
            let key = p.key();
            let mut rows = env.value;
            let mut skipped = Vec::new();
            if !p.skip_ids.is_empty() {
                let skip: HashSet<&str> = p.skip_ids.iter().map(String::as_str).collect();
                let mut position = 0;
                rows.retain(|r| {
                    let keep =
                        !r.get(&self.options.primary_key).and_then(Value::as_str).is_some_and(|id| skip.contains(id));
                    if !keep {
                        skipped.push(position);
                    }
                    position += 1;
                    keep
                });
            }
            p.pages += 1;
            p.rows += rows.len() as u64;
            // Split the rest of a partition while fewer partitions wait than requests may run:
            // into page-sized pieces (as the page's density estimates them), up to the
            // concurrency cap, so the queue holds work for the slots AIMD opens.
            let spawned = match &env.next_link {
                Some(_) if self.options.split && self.aimd.may_split() && pending.len() < self.aimd.limit() => {
                    let ctx = SplitContext {
                        column: &self.options.column,
                        primary_key: &self.options.primary_key,
                        hi_estimate,
                        page_size: sizes.page_rows(self.options.memory_budget, self.page_size, self.slots()),
                    };
                    split_remainder(&p, &rows, ctx, self.aimd.cap(), &mut next_id).unwrap_or_default()
                }
                _ => Vec::new(),
            };
            if spawned.is_empty() {
                p.next_link = env.next_link;
                p.done = p.next_link.is_none();
            } else {
                p.next_link = None;
                p.done = true;
            }
            for r in &mut rows {
                for c in &self.added {
                    r.remove(c);
                }
            }
            self.progress.rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
            self.progress.pages.fetch_add(1, Ordering::Relaxed);
            self.progress.partitions.fetch_add(spawned.len() as u64, Ordering::Relaxed);
            if p.done {
                unfinished.remove(&key);
                self.progress.partitions_done.fetch_add(1, Ordering::Relaxed);
            } else {
                pending.insert(key, p.clone());
            }
            for c in &spawned {
                unfinished.insert(c.key());
                pending.insert(c.key(), c.clone());
            }
            let page = ScanPage { partition: p, spawned, rows, body, skipped, decoded: env.decoded };
            if !self.options.ordered {
                if self.tx.send(Ok(page)).await.is_err() {
                    return;
                }
                continue;
            }
            buffer.entry(key).or_default().push_back(page);
            buffered += 1;
            // Flush what the head of the order allows.
            loop {
                let head = match (unfinished.first(), buffer.first_key_value()) {
                    (Some(u), Some((b, _))) => *u.min(b),
                    (None, Some((b, _))) => *b,
                    _ => break,
                };
                let Some(queue) = buffer.get_mut(&head) else { break };
                while let Some(page) = queue.pop_front() {
                    buffered -= 1;
                    if self.tx.send(Ok(page)).await.is_err() {
                        return;
                    }
                }
                if unfinished.contains(&head) {
                    break;
                }
                buffer.remove(&head);
            }
        }
    }
}

/// The partition column, and the columns kept of each row when rows are not kept whole.
struct FetchColumns {
    column: String,
    slim: Option<[String; 2]>,
    parser: Option<SharedParser>,
    /// The rows a page is asked for (a size hint for the parser).
    page_rows: usize,
}

/// Reads the next page of `p`.
async fn fetch(
    client: DataverseClient,
    base: Query,
    prefer: Option<String>,
    cols: FetchColumns,
    p: Partition,
) -> Fetched {
    let column = cols.column;
    let result = async {
        let url = match &p.next_link {
            Some(link) => client
                .base_url()
                .join(link)
                .map_err(|e| ClientError::InvalidArgument(format!("saved next link is not a URL: {e}")))?,
            None => {
                let mut q = base;
                q.filter = combine(q.filter.as_deref(), p.filter(&column).as_deref());
                client.plan(&q)?.url
            }
        };
        let mut req = ApiRequest::new(Method::GET, url);
        if let Some(pref) = &prefer {
            req = req.header("prefer", pref)?;
        }
        client
            .execute(&req, |r| {
                // A page the caller's parser refuses is read as without one: a body that is not a
                // page is retried, and the caller decodes a page it cannot take again itself and
                // reports why (a value error is not worth another request).
                let parsed = cols.parser.as_ref().and_then(|p| p.0.parse(&r.body, cols.page_rows).ok());
                let env = match (parsed, &cols.slim) {
                    (Some(page), _) => {
                        Envelope { value: page.rows, next_link: page.next_link, decoded: Some(page.decoded) }
                    }
                    (None, None) => decode_json::<Envelope>(&req, &r.body)?,
                    (None, Some([a, b])) => {
                        let page = crate::slim_page::parse(&r.body, &[a, b])
                            .map_err(|e| crate::client::decode_error(&req, e))?;
                        Envelope { value: page.value, next_link: page.next_link, decoded: None }
                    }
                };
                Ok((env, r.body.clone()))
            })
            .await
    }
    .await;
    Fetched { partition: p, result }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_budget_sizes_pages_and_holds_concurrency_to_it() {
        let mut s = BodySizes::default();
        assert_eq!(s.allowed(None, 5000), usize::MAX);
        assert_eq!(s.page_rows(None, 5000, 8), 5000, "no budget: the query's page size");
        assert_eq!(s.page_rows(Some(16 << 20), 5000, 8), FIRST_PAGE_ROWS, "small pages until a row's width is known");
        assert_eq!(s.page_rows(Some(16 << 20), 100, 8), 100, "never above the query's page size");
        // A scan of a shape read before starts from the width measured then.
        let seeded = BodySizes::seeded(Some(2048));
        assert_eq!(seeded.page_rows(Some(16 << 20), 5000, 8), 1024);
        assert_eq!(seeded.allowed(Some(16 << 20), 1024), 1, "one request until a page of this scan arrived");
        assert_eq!(BodySizes::seeded(Some(0)).page_rows(Some(16 << 20), 5000, 8), FIRST_PAGE_ROWS);
        assert_eq!(s.allowed(Some(64 << 20), 500), 1, "one request until a page size is known");
        // Wide rows (4 KiB): pages of a quarter of the budget, four at once …
        s.add(2 << 20, 512);
        assert_eq!(s.page_rows(Some(16 << 20), 5000, 0), 1024);
        assert_eq!(s.allowed(Some(16 << 20), 1024), 4);
        // … or as many as the service's DOP hint asks for (within 4..=16).
        assert_eq!(s.page_rows(Some(16 << 20), 5000, 8), 512);
        assert_eq!(s.allowed(Some(16 << 20), 512), 8);
        assert_eq!(s.page_rows(Some(16 << 20), 5000, 52), 256);
        // Narrow rows: the query's page size, and as many requests as fit.
        let mut narrow = BodySizes::default();
        narrow.add(500_000, 5000);
        assert_eq!(narrow.page_rows(Some(16 << 20), 5000, 8), 5000);
        assert_eq!(narrow.allowed(Some(16 << 20), 5000), 33);
        // Rows wider than the budget: one row per page, one request.
        let mut huge = BodySizes::default();
        huge.add(64 << 20, 2);
        assert_eq!(huge.page_rows(Some(16 << 20), 5000, 8), 1);
        assert_eq!(huge.allowed(Some(16 << 20), 1), 1, "never below one request");
        // Pages without rows (empty partitions) fall back to the mean page size.
        let mut empty = BodySizes::default();
        empty.add(1 << 20, 0);
        assert_eq!(empty.allowed(Some(8 << 20), FIRST_PAGE_ROWS), 8);
    }

    #[test]
    fn queries_that_cannot_be_partitioned_are_refused() {
        assert!(check_query(&Query::new("accounts").top(5)).is_err());
        assert!(check_query(&Query::new("accounts").apply("aggregate($count as n)")).is_err());
        assert!(check_query(&Query::new("accounts").filter("statecode eq 0")).is_ok());
        assert_eq!(combine(Some("a eq 1"), Some("b eq 2")).as_deref(), Some("(a eq 1) and (b eq 2)"));
    }
}
