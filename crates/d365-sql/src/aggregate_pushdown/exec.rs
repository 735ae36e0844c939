//! [`DataverseAggregateExec`]: partial aggregate states computed by the service.
//!
//! It runs the `$apply` requests of an [`AggregateSpec`] and turns each response row into a
//! row of partial states (a group's count, sum, min, max; the count of non-null values for
//! `AVG` and `COUNT(col)`), which DataFusion's final aggregate above merges exactly as it
//! would merge its own partial states: AVG from SUM and COUNT, decimals exact.
//!
//! The service aggregates at most 50,000 rows per request (`AggregateQueryRecordLimit`,
//! `0x8004E023`) and returns at most 5,000 groups. A request refused for the first reason,
//! or whose 5,000 groups may be cut, is split: the whole table into `createdon` ranges of
//! about 30,000 rows each (two probes find the span and the rows per second; without a filter
//! they are sent with the first request, as they are cheap index reads) plus the rows without
//! `createdon`, a range still too big into 8.
//! Parts run concurrently, as many as the scans' adaptive concurrency allows
//! ([`AdaptiveConcurrency`]). A part that cannot be split further (one second of `createdon`,
//! or the null part) is read and aggregated locally, so a result is never truncated.
//!
//! An aggregate over the whole of a table leaves its row count and span on the client
//! ([`TableExtent`]). The next one over the same table, when the table was past the limit, is
//! split from that memory in its first round: no refused request, no probes. The first and
//! last ranges are open, so rows created since are still counted; when such an open range is
//! refused, its span is probed again before it is split.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use d365_client::{
    AdaptiveConcurrency, ClientError, DataverseClient, FORMATTED_VALUE, MAX_CONCURRENT_REQUESTS, Partition, Query,
    RequestPlan, TableExtent,
};
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType, replace_children_if_necessary};
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, collect};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

mod split;

use super::fetch_aggregate::sum_count_alias;
use super::spec::{AggregateSpec, StateSource};
use crate::arrow_decode::PageDecoder;
use crate::arrow_schema::{ColumnRole, ColumnSpec, FilterKind, ValueKind};
use crate::error::SqlError;
use crate::scan::{DataverseScanExec, PARTITION_COLUMN};
use split::Part;

/// Dataverse's error code for an aggregate over more than 50,000 rows.
pub const AGGREGATE_LIMIT_CODE: &str = "0x8004E023";
/// Most groups one aggregate response holds; a response this full may have been cut.
pub const MAX_GROUPS: usize = 5000;

/// Partial states of an aggregate, computed by the service (see the module docs).
#[derive(Debug)]
pub struct DataverseAggregateExec {
    spec: Arc<AggregateSpec>,
    client: DataverseClient,
    /// The scan the aggregate read; a part too dense to split is read through it.
    scan: Arc<DataverseScanExec>,
    /// The same aggregate in `Partial` mode over `scan` (for those parts).
    local_partial: Arc<dyn ExecutionPlan>,
    parallelism: Option<usize>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DataverseAggregateExec {
    /// The service-side form of `local_partial` (a `Partial` aggregate over `scan`).
    pub fn new(
        spec: AggregateSpec,
        scan: Arc<DataverseScanExec>,
        local_partial: Arc<dyn ExecutionPlan>,
        parallelism: Option<usize>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(spec.schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            client: scan.client().clone(),
            spec: Arc::new(spec),
            scan,
            local_partial,
            parallelism,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// What is computed where.
    pub fn spec(&self) -> &AggregateSpec {
        &self.spec
    }

    /// The requests of the first attempt (the whole table), as `--explain` prints them.
    pub fn request_plans(&self) -> std::result::Result<Vec<RequestPlan>, SqlError> {
        let base = self.client.base_url();
        requests(&self.spec, None)
            .into_iter()
            .map(|(_, q)| Ok(q.plan(base, None)?))
            .collect::<std::result::Result<Vec<_>, SqlError>>()
    }
}

/// The queries of one part: the main one, then one per counted property.
fn requests(spec: &AggregateSpec, extra: Option<&str>) -> Vec<(Option<String>, Query)> {
    let annotated = |q: Query| if spec.needs_formatted_values() { q.annotations([FORMATTED_VALUE]) } else { q };
    if let Some(fetch) = &spec.fetch {
        // FetchXML (a date part is grouped): the analysis checked that the filters translate.
        let query = |counted: Option<&str>| {
            let mut q = Query::new(spec.table.entity_set.clone());
            q.params.push(("fetchXml".into(), spec.fetch_xml(fetch, extra, counted).unwrap_or_default()));
            annotated(q)
        };
        let mut out = vec![(None, query(None))];
        out.extend(spec.non_null_counts.iter().map(|p| (Some(p.clone()), query(Some(p)))));
        return out;
    }
    let query = |apply: String| annotated(Query::new(spec.table.entity_set.clone()).apply(apply));
    let mut out = vec![(None, query(spec.main_apply(extra)))];
    for p in &spec.non_null_counts {
        out.push((Some(p.clone()), query(spec.count_apply(p, extra))));
    }
    out
}

enum Outcome {
    Batches(Vec<RecordBatch>),
    Split(Vec<Part>),
}

/// What every part needs.
struct Runner {
    spec: Arc<AggregateSpec>,
    client: DataverseClient,
    scan: Arc<DataverseScanExec>,
    local_partial: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    requests: Count,
    bytes: Count,
    local_parts: Count,
    /// What an earlier aggregate over the whole table saw (unfiltered aggregates only).
    recalled: Option<TableExtent>,
    /// Rows the service counted in the parts answered so far (main requests).
    rows_counted: AtomicU64,
    /// The `createdon` span probed for the whole table during this run.
    span_seen: Mutex<Option<(i64, i64)>>,
}

impl Runner {
    fn part_filter(part: &Part) -> Option<String> {
        Partition::new(0, part.bounds).filter(PARTITION_COLUMN)
    }

    async fn run(self: Arc<Self>, part: Part) -> std::result::Result<Outcome, SqlError> {
        if part.local {
            return self.run_local(&part).await;
        }
        let extra = Self::part_filter(&part);
        let queries = requests(&self.spec, extra.as_deref());
        let whole = futures::future::join_all(queries.iter().map(|(counted, q)| self.fetch(q, counted.as_deref())));
        // The whole of an unfiltered table: its span is probed at the same time (two cheap index
        // reads), so a table too big for one request is split without another round trip.
        let (results, span) = if self.speculate_span(&part) {
            let (results, span) = futures::join!(whole, self.span(None));
            (results, Some(span))
        } else {
            (whole.await, None)
        };
        let mut batches = Vec::new();
        let mut too_big = false;
        let mut counted = 0;
        for (result, (which, _)) in results.into_iter().zip(&queries) {
            match result {
                Ok(Some((mut b, rows))) => {
                    batches.append(&mut b);
                    if which.is_none() {
                        counted += rows;
                    }
                }
                Ok(None) => too_big = true,
                Err(e) if is_limit(&e) => too_big = true,
                Err(e) => return Err(e.into()),
            }
        }
        if too_big {
            return self.split(part, span).await;
        }
        self.rows_counted.fetch_add(counted, Ordering::Relaxed);
        Ok(Outcome::Batches(batches))
    }

    /// One request's pages as partial-state batches, with the rows the service counted;
    /// `None` when the response may be cut.
    async fn fetch(
        &self,
        query: &Query,
        counted: Option<&str>,
    ) -> std::result::Result<Option<(Vec<RecordBatch>, u64)>, ClientError> {
        let (decoder, names) = self.decoder(counted.is_none());
        let mut pages = self.client.page_stream(query)?.raw();
        let mut out = Vec::new();
        let mut rows = 0u64;
        while let Some(page) = pages.next().await {
            let page = page?;
            self.requests.add(1);
            let body = page.raw.as_deref().unwrap_or(b"{\"value\":[]}");
            self.bytes.add(body.len());
            if page.next_link.is_none() && page.row_count >= MAX_GROUPS {
                return Ok(None);
            }
            let decoded = decoder.decode(body, page.row_count, page.row_count).map_err(decode_error)?;
            rows += counts_sum(decoded.column(self.spec.groups.len()));
            out.push(self.states(&decoded, &names, counted).map_err(decode_error)?);
        }
        Ok(Some((out, rows)))
    }

    /// A decoder of the response rows: the group columns, `c`, then the main request's
    /// aggregates (`main`).
    fn decoder(&self, main: bool) -> (PageDecoder, Vec<String>) {
        let mut specs: Vec<ColumnSpec> = self.spec.groups.clone();
        let value = |name: &str, kind: ValueKind| ColumnSpec {
            name: name.to_string(),
            property: name.to_string(),
            json_key: name.to_string(),
            role: ColumnRole::Value,
            kind,
            attribute_type: String::new(),
            filter: FilterKind::None,
            sortable: false,
        };
        specs.push(value("c", ValueKind::Int64));
        if main {
            specs.extend(self.spec.aggregates.iter().map(|a| value(&a.alias, a.kind)));
            if self.spec.fetch.is_some() {
                // FetchXML sums come with the count of the values they add up.
                specs.extend(
                    self.spec
                        .aggregates
                        .iter()
                        .filter(|a| a.method == "sum")
                        .map(|a| value(&sum_count_alias(&a.alias), ValueKind::Int64)),
                );
            }
        }
        // Unique field names for the decoder's own schema (group columns may repeat).
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let fields: Vec<Field> =
            specs.iter().enumerate().map(|(i, s)| Field::new(format!("f{i}"), s.kind.data_type(), true)).collect();
        let refs: Vec<&ColumnSpec> = specs.iter().collect();
        (PageDecoder::new(Arc::new(Schema::new(fields)), &refs, &self.spec.table.entity_set), names)
    }

    /// The partial-state batch of decoded response rows (see [`StateSource`]).
    fn states(
        &self,
        decoded: &RecordBatch,
        names: &[String],
        counted: Option<&str>,
    ) -> std::result::Result<RecordBatch, String> {
        let rows = decoded.num_rows();
        let n_groups = self.spec.groups.len();
        let column_named = |name: &str| -> Option<&ArrayRef> {
            names[n_groups..].iter().position(|n| n == name).map(|i| decoded.column(n_groups + i))
        };
        let count = column_named("c").ok_or("no count column")?;
        let zeros: ArrayRef = Arc::new(Int64Array::from(vec![0i64; rows]));
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.spec.schema.fields().len());
        for (field, source) in self.spec.schema.fields().iter().zip(&self.spec.sources) {
            let target = field.data_type();
            // A state this request does not compute: "no value seen" (null) where the state
            // allows it, as DataFusion's own partial states do (a non-null zero count would mark
            // the group as seen, and AVG would divide by it); else zero.
            let absent = || if field.is_nullable() { new_null_array(target, rows) } else { zeros.clone() };
            let array = match source {
                StateSource::Group(i) => decoded.column(*i).clone(),
                StateSource::RowCount if counted.is_none() => count.clone(),
                StateSource::RowCount => absent(),
                StateSource::NonNullCount(p) if counted == Some(p.as_str()) => count.clone(),
                StateSource::NonNullCount(_) => absent(),
                StateSource::Aggregated { alias } if counted.is_none() => {
                    let values = column_named(alias).ok_or_else(|| format!("no column {alias}"))?.clone();
                    match column_named(&sum_count_alias(alias)).filter(|_| self.spec.fetch.is_some()) {
                        // A FetchXML sum of no values is 0; SQL's is NULL.
                        Some(n) => null_where_zero(&values, n)?,
                        None => values,
                    }
                }
                StateSource::Aggregated { .. } => absent(),
            };
            let array =
                if array.data_type() == target { array } else { cast(&array, target).map_err(|e| e.to_string())? };
            columns.push(array);
        }
        RecordBatch::try_new(self.spec.schema.clone(), columns).map_err(|e| e.to_string())
    }

    /// Reads the part's rows and aggregates them locally (same partial states).
    async fn run_local(&self, part: &Part) -> std::result::Result<Outcome, SqlError> {
        self.local_parts.add(1);
        let scan: Arc<dyn ExecutionPlan> = match Self::part_filter(part) {
            Some(extra) => Arc::new(self.scan.with_extra_filter(&extra)),
            None => self.scan.clone(),
        };
        let plan = replace_children_if_necessary(self.local_partial.clone(), vec![scan])?;
        Ok(Outcome::Batches(collect(plan, self.context.clone()).await?))
    }
}

/// The sum of a column of counts (0 when it is not one).
fn counts_sum(counts: &ArrayRef) -> u64 {
    counts.as_any().downcast_ref::<Int64Array>().map_or(0, |c| c.iter().flatten().map(|n| n.max(0) as u64).sum())
}

/// `values` with NULL where `counts` is 0 (or null).
fn null_where_zero(values: &ArrayRef, counts: &ArrayRef) -> std::result::Result<ArrayRef, String> {
    let counts = counts.as_any().downcast_ref::<Int64Array>().ok_or("a value count that is not a number")?;
    let keep: BooleanArray = counts.iter().map(|n| Some(n.unwrap_or(0) > 0)).collect();
    let nulls = new_null_array(values.data_type(), values.len());
    datafusion::arrow::compute::kernels::zip::zip(&keep, values, &nulls).map_err(|e| e.to_string())
}

fn is_limit(e: &ClientError) -> bool {
    e.dataverse_code().is_some_and(|c| c.eq_ignore_ascii_case(AGGREGATE_LIMIT_CODE))
}

fn decode_error(message: impl fmt::Display) -> ClientError {
    ClientError::InvalidArgument(format!("cannot decode an aggregate response: {message}"))
}

impl DisplayAs for DataverseAggregateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.spec.fetch {
            Some(fetch) => write!(
                f,
                "DataverseAggregateExec: table={}, fetch_xml={}",
                self.spec.table.entity.logical_name,
                self.spec.fetch_xml(fetch, None, None).unwrap_or_default()
            )?,
            None => write!(
                f,
                "DataverseAggregateExec: table={}, apply={}",
                self.spec.table.entity.logical_name,
                self.spec.main_apply(None)
            )?,
        }
        for p in &self.spec.non_null_counts {
            write!(f, ", count_non_null={p}")?;
        }
        Ok(())
    }
}

#[allow(deprecated)] // `with_new_children` is still required by the trait in DataFusion 55.
impl ExecutionPlan for DataverseAggregateExec {
    crate::leaf_exec::leaf_exec_methods!("DataverseAggregateExec");

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        crate::leaf_exec::one_partition("DataverseAggregateExec", partition)?;
        let runner = Arc::new(Runner {
            spec: self.spec.clone(),
            client: self.client.clone(),
            scan: self.scan.clone(),
            local_partial: self.local_partial.clone(),
            context,
            requests: MetricBuilder::new(&self.metrics).counter("requests", partition),
            bytes: MetricBuilder::new(&self.metrics).counter("bytes_received", partition),
            local_parts: MetricBuilder::new(&self.metrics).counter("local_parts", partition),
            recalled: if self.spec.filter.is_none() {
                self.client.table_extent(&self.spec.table.entity_set)
            } else {
                None
            },
            rows_counted: AtomicU64::new(0),
            span_seen: Mutex::new(None),
        });
        let queue = VecDeque::from(runner.first_parts());
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        // Parts run under the scans' throttling-aware concurrency: from the service's DOP hint
        // (or `parallel`), one more per answered part, halved when the service throttles.
        let concurrency = self.client.concurrency(self.parallelism, MAX_CONCURRENT_REQUESTS);
        let state = Driver {
            runner,
            queue,
            running: FuturesUnordered::new(),
            ready: VecDeque::new(),
            concurrency,
            failed: false,
        };
        let stream = futures::stream::unfold(state, |mut s| async move {
            let item = s.next().await?;
            Some((item, s))
        })
        .map(move |b| {
            if let Ok(b) = &b {
                rows.add(b.num_rows());
            }
            b
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.spec.schema.clone(), stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Runs parts concurrently, queueing the pieces of split ones.
struct Driver {
    runner: Arc<Runner>,
    queue: VecDeque<Part>,
    running: FuturesUnordered<BoxFuture<'static, std::result::Result<Outcome, SqlError>>>,
    ready: VecDeque<RecordBatch>,
    concurrency: AdaptiveConcurrency,
    failed: bool,
}

impl Driver {
    async fn next(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            if self.failed {
                return None;
            }
            if let Some(b) = self.ready.pop_front() {
                return Some(Ok(b));
            }
            while self.running.len() < self.concurrency.limit() {
                let Some(part) = self.queue.pop_front() else { break };
                self.running.push(self.runner.clone().run(part).boxed());
            }
            self.concurrency.in_flight(self.running.len());
            let Some(outcome) = self.running.next().await else {
                self.runner.remember_extent();
                return None;
            };
            self.concurrency.on_page(self.runner.client.request_log().stats().throttled);
            match outcome {
                Ok(Outcome::Batches(b)) => self.ready.extend(b.into_iter().filter(|b| b.num_rows() > 0)),
                Ok(Outcome::Split(parts)) => self.queue.extend(parts),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e.into_datafusion()));
                }
            }
        }
    }
}
