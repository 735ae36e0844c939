//! [`DataverseScanExec`]: the physical scan of one table — one Web API query whose pages are
//! decoded into RecordBatches as they arrive.
//!
//! Nothing is sent when the plan is built; the first request goes out when the stream is
//! first polled, and the client's page stream fetches one page ahead of the consumer, so at most
//! two pages are held however large the table. Two physical-plan hooks carry the remaining
//! pushdown:
//!
//! - [`ExecutionPlan::try_pushdown_sort`]: an `ORDER BY` on numeric/date columns, with nulls
//!   sorted as the smallest values (the engine's default null ordering; the service sorts
//!   nulls that way), becomes `$orderby` and DataFusion drops its sort;
//! - [`ExecutionPlan::with_fetch`]: a limit directly above the scan (possibly after the sort
//!   above was removed) becomes `$top` (when it fits in one page) and stops the page stream
//!   after that many rows.

use std::fmt;
use std::sync::Arc;

use d365_client::{
    DataverseClient, FORMATTED_VALUE, LOOKUP_LOGICAL_NAME, Query, RequestPlan, ScanOptions, SharedParser,
};
use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, Partitioning, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SortOrderPushdownResult};
use futures::{StreamExt, TryStreamExt};

use crate::arrow_decode::PageDecoder;
use crate::arrow_schema::{ColumnRole, ColumnSpec, TableSchema};
use crate::error::SqlError;
use crate::filter_pushdown::ODataFilter;
use crate::scan_pages::ArrowPages;

/// What one scan asks the service for.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    /// Indices of the output columns in the table's columns.
    pub projection: Vec<usize>,
    /// `$filter`, if any.
    pub filter: Option<ODataFilter>,
    /// `$orderby`: (column index in the table, descending).
    pub order_by: Vec<(usize, bool)>,
    /// Rows wanted at most (`$top` / stop after).
    pub fetch: Option<usize>,
}

/// The scan of one Dataverse table (see the module docs).
#[derive(Debug, Clone)]
pub struct DataverseScanExec {
    client: DataverseClient,
    table: Arc<TableSchema>,
    request: ScanRequest,
    pushdown: bool,
    page_size: Option<u32>,
    parallel: bool,
    parallelism: Option<usize>,
    /// A hash join's keys to read by (see [`crate::join_keys`]): the filter and the column.
    join_filter: Option<(Arc<DynamicFilterPhysicalExpr>, usize)>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DataverseScanExec {
    /// A scan of `table` for `request`. `pushdown` off refuses sort and limit pushdown.
    pub fn new(
        client: DataverseClient,
        table: Arc<TableSchema>,
        request: ScanRequest,
        pushdown: bool,
        page_size: Option<u32>,
    ) -> Self {
        let fields: Vec<_> = request.projection.iter().map(|&i| table.arrow.field(i).clone()).collect();
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let properties = Arc::new(properties(&schema, &request));
        let metrics = ExecutionPlanMetricsSet::new();
        Self {
            client,
            table,
            request,
            pushdown,
            page_size,
            parallel: false,
            parallelism: None,
            join_filter: None,
            schema,
            properties,
            metrics,
        }
    }

    /// Reads a whole-table scan (no `$orderby`, no `$top`) as concurrent `createdon` ranges
    /// through [`DataverseClient::partitioned_scan`] instead of one `@odata.nextLink` chain.
    /// Rows then arrive in no particular order, which SQL without `ORDER BY` allows; a scan with
    /// a sort or a limit keeps the single ordered chain.
    pub fn with_parallel(mut self, parallel: bool) -> Self {
        self.parallel = parallel;
        self
    }

    /// A fixed number of concurrent requests for the partitioned read (`--parallel N`).
    pub fn with_parallelism(mut self, parallelism: Option<usize>) -> Self {
        self.parallelism = parallelism.map(|n| n.max(1));
        self
    }

    /// Whether [`Self::execute`] uses the partitioned scan: parallel on, nothing ordered or
    /// limited, and the table has the `createdon` column to partition on.
    pub fn is_partitioned(&self) -> bool {
        if self.table.dialect == crate::arrow_schema::Dialect::FinOps {
            // Finance & Operations: key ranges (see `d365_client::KeyField`).
            return self.parallel
                && self.request.fetch.is_none()
                && self.request.order_by.is_empty()
                && !self.table.key_fields.is_empty();
        }
        self.parallel
            && self.request.fetch.is_none()
            && self.request.order_by.is_empty()
            && self.table.columns.iter().any(|c| c.property == PARTITION_COLUMN && c.role == ColumnRole::Value)
    }

    /// Rows per page asked for (`Prefer: odata.maxpagesize`), if set.
    pub fn page_size(&self) -> Option<u32> {
        self.page_size
    }

    /// The table scanned.
    pub fn table(&self) -> &TableSchema {
        &self.table
    }

    /// What the scan asks for.
    pub fn request(&self) -> &ScanRequest {
        &self.request
    }

    /// The client it reads through.
    pub fn client(&self) -> &DataverseClient {
        &self.client
    }

    /// Whether pushdown is on for this scan (off: the reference plan of the differential tests).
    pub fn pushdown(&self) -> bool {
        self.pushdown
    }

    /// The same scan restricted to the rows matching the OData condition `extra` as well.
    pub fn with_extra_filter(&self, extra: &str) -> Self {
        let mut request = self.request.clone();
        request.filter = Some(match request.filter.take() {
            Some(f) => ODataFilter { text: format!("({}) and ({extra})", f.text), exact: f.exact },
            None => ODataFilter { text: extra.to_string(), exact: true },
        });
        self.with_request(request)
    }

    fn projected(&self) -> Vec<&ColumnSpec> {
        self.request.projection.iter().filter_map(|&i| self.table.columns.get(i)).collect()
    }

    /// The Web API query this scan sends.
    pub fn query(&self) -> Query {
        let t = &self.table;
        let cols = self.projected();
        let mut select = vec![t.primary_key.clone()];
        for c in &cols {
            if !select.contains(&c.property) {
                select.push(c.property.clone());
            }
        }
        let mut annotations = Vec::new();
        if cols.iter().any(|c| c.role == ColumnRole::FormattedValue) {
            annotations.push(FORMATTED_VALUE);
        }
        if cols.iter().any(|c| c.role == ColumnRole::LookupLogicalName) {
            annotations.push(LOOKUP_LOGICAL_NAME);
        }
        let mut q = Query::new(t.entity_set.clone()).select(select);
        if !annotations.is_empty() {
            q = q.annotations(annotations);
        }
        if let Some(f) = &self.request.filter {
            q = q.filter(f.text.clone());
        }
        for &(i, desc) in &self.request.order_by {
            if let Some(c) = t.columns.get(i) {
                q = q.order_by(&c.property, desc);
            }
        }
        if let Some(n) = self.request.fetch {
            q = q.top(n as u64);
        }
        if let Some(n) = self.page_size {
            q = q.max_page_size(n);
        }
        q
    }

    /// The exact first request (URL, `Prefer` header, row limit), as `--explain` prints it.
    pub fn request_plan(&self) -> std::result::Result<RequestPlan, SqlError> {
        Ok(self.client.plan(&self.query())?)
    }

    fn with_request(&self, request: ScanRequest) -> Self {
        let mut scan = Self::new(self.client.clone(), self.table.clone(), request, self.pushdown, self.page_size)
            .with_parallel(self.parallel)
            .with_parallelism(self.parallelism);
        scan.join_filter = self.join_filter.clone();
        scan
    }

    /// Whether a hash join's keys will narrow this scan (see [`crate::join_keys`]).
    pub fn reads_by_join_keys(&self) -> bool {
        self.join_filter.is_some()
    }

    /// The same scan, reading by the keys of the hash join that owns `filter` (on the
    /// table column `column`); see [`crate::join_keys::JoinKeysToScans`].
    pub(crate) fn with_join_filter(&self, filter: Arc<DynamicFilterPhysicalExpr>, column: usize) -> Self {
        let mut scan = self.clone();
        scan.join_filter = Some((filter, column));
        scan
    }

    /// Waits for the join's build side, then reads only the rows of its keys (or everything,
    /// when the join published no key list).
    fn execute_by_join_keys(
        &self,
        filter: Arc<DynamicFilterPhysicalExpr>,
        column: usize,
        context: Arc<TaskContext>,
    ) -> SendableRecordBatchStream {
        let mut plain = self.clone();
        plain.join_filter = None;
        let schema = self.schema.clone();
        let name = self.table.columns.get(column).map(|c| c.name.clone()).unwrap_or_default();
        let keyed = MetricBuilder::new(&self.metrics).counter("join_key_requests", 0);
        let stream = futures::stream::once(async move {
            filter.wait_complete().await;
            let expr = filter.current()?;
            let filters = match crate::join_keys::keys_of(&expr, &name) {
                crate::join_keys::Keys::Only(keys) => crate::join_keys::key_filters(&plain.table, column, &keys),
                crate::join_keys::Keys::Any => None,
            };
            let Some(filters) = filters else { return plain.execute(0, context) };
            keyed.add(filters.len());
            let streams = filters
                .into_iter()
                .map(|f| plain.with_extra_filter(&f.text).with_parallel(false).execute(0, context.clone()))
                .collect::<Result<Vec<_>>>()?;
            let schema = plain.schema.clone();
            Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::iter(streams).flatten()))
                as SendableRecordBatchStream)
        })
        .try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
    }
}

/// Bytes of page bodies a partitioned read may fetch at once. Pages are sized to a quarter of
/// it (a 5,000-row page of `account` with every annotation is 20 MB; under this budget pages
/// hold about 1,000 rows, four at a time); narrow projections keep 5,000-row pages and run
/// more requests at once.
pub const SCAN_MEMORY_BUDGET: usize = 16 << 20;

/// The column whole-table scans are partitioned on (every standard table has it).
pub const PARTITION_COLUMN: &str = "createdon";

impl DataverseScanExec {
    /// The partitioned read: plan the ranges (two small probe requests, sent on the first
    /// poll), then decode each page as it arrives from any range.
    fn execute_partitioned(&self, query: Query, decoder: PageDecoder, partition: usize) -> SendableRecordBatchStream {
        if self.table.dialect == crate::arrow_schema::Dialect::FinOps {
            return self.execute_key_ranges(query, decoder, partition);
        }
        let client = self.client.clone();
        let mut options = ScanOptions::new(self.table.primary_key.clone());
        options.column = PARTITION_COLUMN.to_string();
        options.parallel = self.parallelism;
        // The decoder reads the body; rows are parsed only for what placing them needs, and
        // the page bodies in flight stay within a budget whatever the concurrency.
        options.keep_rows = false;
        options.memory_budget = Some(SCAN_MEMORY_BUDGET);
        // Pages are decoded where they arrive, once for the batches and the scan's facts.
        options.page_parser = self.page_parser().map(|p| SharedParser(Arc::new(p)));
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let page_count = MetricBuilder::new(&self.metrics).counter("pages", partition);
        let bytes = MetricBuilder::new(&self.metrics).counter("bytes_received", partition);
        let pages = futures::stream::once(async move {
            let plan = client.plan_scan(&query, &options).await?;
            client.partitioned_scan(&query, plan, options)
        })
        .try_flatten();
        let batches = pages.map(move |page| {
            let page = page.map_err(|e| external(e.into()))?;
            // The page body as sent (every digit of a decimal kept), minus the rows an earlier
            // page already returned at a split boundary.
            let n = page.rows.len() + page.skipped.len();
            let mut batch = match page.decoded.and_then(|d| d.downcast::<RecordBatch>().ok()) {
                Some(batch) => Arc::unwrap_or_clone(batch),
                None => decoder.decode(&page.body, n, n).map_err(external)?,
            };
            if !page.skipped.is_empty() {
                let keep: BooleanArray = (0..batch.num_rows()).map(|i| Some(!page.skipped.contains(&i))).collect();
                batch = filter_record_batch(&batch, &keep)?;
            }
            rows.add(batch.num_rows());
            page_count.add(1);
            bytes.add(page.body.len());
            Ok(batch)
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

impl DataverseScanExec {
    /// The parser decoding this scan's pages with the partition column and the key.
    fn page_parser(&self) -> Option<ArrowPages> {
        let facts = (PARTITION_COLUMN, self.table.primary_key.as_str());
        ArrowPages::for_table(&self.schema, &self.projected(), &self.table.columns, facts, &self.table.entity_set)
    }
}

/// Key ranges read at once by a Finance & Operations scan when `--parallel` is not given.
pub const FINOPS_DEFAULT_PARALLEL: usize = 4;

impl DataverseScanExec {
    /// The Finance & Operations partitioned read: key ranges read concurrently, each paged
    /// after its last key (exact while rows are inserted; see `d365_client::KeysetPage`).
    fn execute_key_ranges(&self, query: Query, decoder: PageDecoder, partition: usize) -> SendableRecordBatchStream {
        let parallel = self.parallelism.unwrap_or(FINOPS_DEFAULT_PARALLEL);
        let pages = self.client.keyset_scan(&query, self.table.key_fields.clone(), parallel);
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let page_count = MetricBuilder::new(&self.metrics).counter("pages", partition);
        let bytes = MetricBuilder::new(&self.metrics).counter("bytes_received", partition);
        let batches = pages.map(move |page| {
            let page = page.map_err(|e| external(e.into()))?;
            let batch = decoder.decode(&page.body, page.rows, page.rows).map_err(external)?;
            rows.add(batch.num_rows());
            page_count.add(1);
            bytes.add(page.body.len());
            Ok(batch)
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

fn properties(schema: &SchemaRef, request: &ScanRequest) -> PlanProperties {
    let mut sort = Vec::new();
    for &(i, desc) in &request.order_by {
        let Some(pos) = request.projection.iter().position(|&p| p == i) else { break };
        let name = schema.field(pos).name();
        let expr: Arc<dyn PhysicalExpr> = Arc::new(Column::new(name, pos));
        sort.push(PhysicalSortExpr::new(
            expr,
            datafusion::arrow::compute::SortOptions { descending: desc, nulls_first: !desc },
        ));
    }
    let eq = match LexOrdering::new(sort) {
        Some(ordering) => EquivalenceProperties::new_with_orderings(schema.clone(), [ordering]),
        None => EquivalenceProperties::new(schema.clone()),
    };
    PlanProperties::new(eq, Partitioning::UnknownPartitioning(1), EmissionType::Incremental, Boundedness::Bounded)
}

impl DisplayAs for DataverseScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let names: Vec<&str> = self.projected().iter().map(|c| c.name.as_str()).collect();
        write!(f, "DataverseScanExec: table={}, projection=[{}]", self.table.entity.logical_name, names.join(", "))?;
        if let Some(filter) = &self.request.filter {
            write!(f, ", filter=[{}]{}", filter.text, if filter.exact { "" } else { " (inexact)" })?;
        }
        if !self.request.order_by.is_empty() {
            let items: Vec<String> = self
                .request
                .order_by
                .iter()
                .filter_map(|&(i, d)| {
                    self.table.columns.get(i).map(|c| format!("{} {}", c.property, if d { "desc" } else { "asc" }))
                })
                .collect();
            write!(f, ", orderby=[{}]", items.join(", "))?;
        }
        if let Some(n) = self.request.fetch {
            write!(f, ", fetch={n}")?;
        }
        if self.is_partitioned() && !self.table.key_fields.is_empty() {
            let keys: Vec<&str> = self.table.key_fields.iter().map(|k| k.name.as_str()).collect();
            write!(f, ", key_ranges=[{}]", keys.join(", "))?;
        } else if self.is_partitioned() {
            write!(f, ", partitioned_on={PARTITION_COLUMN}")?;
        }
        if let Some((_, column)) = &self.join_filter {
            let name = self.table.columns.get(*column).map(|c| c.name.as_str()).unwrap_or("?");
            write!(f, ", join_keys={name}")?;
        }
        Ok(())
    }
}

fn external(e: SqlError) -> DataFusionError {
    e.into_datafusion()
}

#[allow(deprecated)] // `with_new_children` is still required by the trait in DataFusion 55.
impl ExecutionPlan for DataverseScanExec {
    fn name(&self) -> &str {
        "DataverseScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        // The join finds its consumers by visiting expressions: without this it would never
        // compute the key filter this scan waits for.
        if let Some((filter, _)) = &self.join_filter {
            let expr: Arc<dyn PhysicalExpr> = filter.clone();
            return f(&expr);
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal("DataverseScanExec has no children".into()))
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("DataverseScanExec has one partition, not {partition}")));
        }
        if let Some((filter, column)) = &self.join_filter {
            return Ok(self.execute_by_join_keys(filter.clone(), *column, context));
        }
        let query = self.query();
        let decoder = PageDecoder::new(self.schema.clone(), &self.projected(), &self.table.entity_set);
        if self.is_partitioned() {
            return Ok(self.execute_partitioned(query, decoder, partition));
        }
        // Building the stream sends nothing: the first GET goes out on the first poll.
        let pages = self.client.page_stream(&query).map_err(|e| external(e.into()))?.raw();
        // Rows and pages received from the service (with exact filters and no local work above,
        // rows received = rows returned).
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let page_count = MetricBuilder::new(&self.metrics).counter("pages", partition);
        let bytes = MetricBuilder::new(&self.metrics).counter("bytes_received", partition);
        let batches = pages.map(move |page| {
            let page = page.map_err(|e| external(e.into()))?;
            let body = page.raw.as_deref().unwrap_or(b"{\"value\":[]}");
            let batch = decoder.decode(body, page.row_count, page.row_count).map_err(external)?;
            rows.add(batch.num_rows());
            page_count.add(1);
            bytes.add(body.len());
            Ok(batch)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn ExecutionPlan>> {
        // A limit under an inexact filter would cut rows the local filter still needs.
        if !self.pushdown || self.request.filter.as_ref().is_some_and(|f| !f.exact) {
            return None;
        }
        let mut request = self.request.clone();
        request.fetch = match (request.fetch, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Some(Arc::new(self.with_request(request)))
    }

    fn fetch(&self) -> Option<usize> {
        self.request.fetch
    }

    fn try_pushdown_sort(&self, order: &[PhysicalSortExpr]) -> Result<SortOrderPushdownResult<Arc<dyn ExecutionPlan>>> {
        // A sort after a limit is not a sort of the table; and re-sorting is not ours to do.
        if !self.pushdown || self.request.fetch.is_some() || !self.request.order_by.is_empty() || order.is_empty() {
            return Ok(SortOrderPushdownResult::Unsupported);
        }
        let mut order_by = Vec::with_capacity(order.len());
        for s in order {
            let Some(col) = s.expr.downcast_ref::<Column>() else {
                return Ok(SortOrderPushdownResult::Unsupported);
            };
            let Some(&table_index) = self.request.projection.get(col.index()) else {
                return Ok(SortOrderPushdownResult::Unsupported);
            };
            let Some(spec) = self.table.columns.get(table_index) else {
                return Ok(SortOrderPushdownResult::Unsupported);
            };
            // The service sorts nulls as the smallest values.
            let nulls_smallest = s.options.nulls_first != s.options.descending;
            if spec.name != col.name() || !spec.sortable || spec.role != ColumnRole::Value || !nulls_smallest {
                return Ok(SortOrderPushdownResult::Unsupported);
            }
            order_by.push((table_index, s.options.descending));
        }
        let mut request = self.request.clone();
        request.order_by = order_by;
        Ok(SortOrderPushdownResult::Exact { inner: Arc::new(self.with_request(request)) })
    }
}
