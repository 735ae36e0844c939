//! [`SqlEngine`]: SQL text in, Arrow record batches out (or the plan and the exact Web API
//! requests, for `--explain`).

use std::sync::Arc;

use d365_client::{CacheOptions, DataverseClient, Metadata};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_optimizer::limit_pushdown::LimitPushdown;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use datafusion::prelude::{DataFrame, SQLOptions, SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;

use crate::aggregate_pushdown::DataverseAggregateExec;
use crate::aggregate_pushdown::finops_count::FinOpsCountExec;
use crate::arrow_schema::TableSchema;
use crate::catalog::{CATALOG, DataverseCatalog, ReadSettings, TABLES_SCHEMA};
use crate::error::SqlError;
use crate::join_pushdown::DataverseLinkJoinExec;
use crate::scan::DataverseScanExec;

/// How the engine reads.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Send filters, limits and sorts to the service (the default). When off, every filter is
    /// evaluated locally and every scan reads the whole table (only the projection is still
    /// sent): the reference behaviour the differential tests compare against.
    pub pushdown: bool,
    /// Rows per page (`Prefer: odata.maxpagesize`, 1–5000); `None` uses the client's default.
    pub page_size: Option<u32>,
    /// Cache metadata on disk (per organisation, with a TTL; `refresh` for
    /// `--refresh-metadata`). `None` keeps it in memory for the engine's lifetime.
    pub metadata_cache: Option<CacheOptions>,
    /// DataFusion's target partitions for local operators; `None` uses the number of cores.
    pub target_partitions: Option<usize>,
    /// Read whole-table scans (no `ORDER BY`/`LIMIT` sent to the service) as concurrent
    /// `createdon` ranges with the client's partitioned scan (AIMD up to the service's
    /// `x-ms-dop-hint`) instead of one `@odata.nextLink` chain. On by default.
    pub parallel_scan: bool,
    /// A fixed number of concurrent requests for those parallel scans (`--parallel N`);
    /// `None` starts at the service's `x-ms-dop-hint` and adapts to throttling.
    pub scan_parallelism: Option<usize>,
    /// Compute `GROUP BY`/`COUNT`/`SUM`/`AVG`/`MIN`/`MAX` over one table at the service
    /// (`$apply`; see [`crate::aggregate_pushdown`]), run joins along lookups as FetchXML
    /// `link-entity` queries (see [`crate::join_pushdown`]), and read the second table of an
    /// inner join that stays local by the first one's keys (see [`crate::join_keys`]). On by
    /// default; needs `pushdown`. Off, aggregates and joins read every row, for comparison.
    pub aggregate_pushdown: bool,
    /// Run an INNER or LEFT join of two tables along a lookup, with a filter on either side,
    /// as one FetchXML query with a `link-entity` (see [`crate::join_pushdown`]). On by
    /// default; needs `pushdown`. Off, such joins read both tables (by keys when selective).
    pub join_pushdown: bool,
    /// Refuse every write (`Readonly=true`): [`SqlEngine::execute_dml`] answers
    /// [`SqlError::ReadOnly`] before anything is sent; a dry run is still allowed.
    pub read_only: bool,
    /// At most this many rows from a query without aggregation (`MaxRows`, as the CData
    /// connector caps them); `None` returns every row.
    pub max_rows: Option<usize>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            pushdown: true,
            page_size: None,
            metadata_cache: None,
            target_partitions: None,
            parallel_scan: true,
            scan_parallelism: None,
            aggregate_pushdown: true,
            join_pushdown: true,
            read_only: false,
            max_rows: None,
        }
    }
}

/// A SQL engine over one Dataverse organisation (see the crate docs).
pub struct SqlEngine {
    ctx: SessionContext,
    client: DataverseClient,
    catalog: Arc<DataverseCatalog>,
    /// Write-back state (metadata, local tables): see [`crate::dml`].
    dml: crate::dml::DmlState,
    read_only: bool,
    max_rows: Option<usize>,
}

impl std::fmt::Debug for SqlEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlEngine").field("client", &self.client).finish()
    }
}

impl SqlEngine {
    /// An engine reading through `client`. Fetches the table list (one request, unless cached
    /// on disk); columns are fetched per table when a query first uses it.
    pub async fn new(client: DataverseClient, options: EngineOptions) -> Result<Self, SqlError> {
        let metadata = match &options.metadata_cache {
            Some(cache) => Metadata::new(client.clone(), cache)?,
            None => Metadata::in_memory(client.clone()),
        };
        Self::with_metadata(client, Arc::new(metadata), options).await
    }

    /// An engine sharing an existing [`Metadata`] (e.g. the CLI's cached one).
    pub async fn with_metadata(
        client: DataverseClient,
        metadata: Arc<Metadata>,
        options: EngineOptions,
    ) -> Result<Self, SqlError> {
        let dml_metadata = metadata.clone();

        let entities = metadata.entities().await?;
        let settings = ReadSettings {
            client: client.clone(),
            metadata,
            pushdown: options.pushdown,
            page_size: options.page_size,
            parallel: options.parallel_scan,
            parallelism: options.scan_parallelism,
        };
        let catalog = Arc::new(DataverseCatalog::new(settings, entities));
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, TABLES_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            // T-SQL (and Dataverse) order nulls as the smallest values: ASC NULLS FIRST,
            // DESC NULLS LAST. Matching it lets `ORDER BY` go to the service unchanged.
            .set_str("datafusion.sql_parser.default_null_ordering", "nulls_min")
            // `revenue = 5591638.16` and `revenue * 1.1` are exact: a number with a point is a
            // decimal, as in T-SQL, not a float (money and decimal columns are Decimal128).
            .set_bool("datafusion.sql_parser.parse_float_as_decimal", true)
            // A round-robin repartition above a scan would pull pages as fast as the service
            // answers, whatever the consumer needs (a local LIMIT would no longer stop the
            // page stream). Pages are network-bound anyway; joins and aggregates still
            // hash-partition.
            .set_bool("datafusion.optimizer.enable_round_robin_repartition", false)
            // A hash join publishes its build-side keys as a list up to this many, which a
            // Dataverse scan on the other side reads by (see `join_keys`).
            .set_usize("datafusion.optimizer.hash_join_inlist_pushdown_max_distinct_values", crate::join_keys::MAX_KEYS)
            .set_usize("datafusion.optimizer.hash_join_inlist_pushdown_max_size", crate::join_keys::MAX_KEYS * 64);
        if let Some(n) = options.target_partitions {
            config = config.with_target_partitions(n.max(1));
        }
        let mut physical = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        if options.pushdown && options.aggregate_pushdown {
            // Right after DataFusion's join selection: the filtered side of a join builds.
            let at = physical.iter().position(|r| r.name() == "join_selection").map_or(0, |i| i + 1);
            physical.insert(at, Arc::new(crate::join_order::FilteredSideBuilds));
        }
        if options.pushdown && options.join_pushdown {
            // Right after join selection: joins along lookups go to the service as FetchXML,
            // before distribution is planned around them.
            let at = physical.iter().position(|r| r.name() == "join_selection").map_or(0, |i| i + 1);
            physical.insert(at, Arc::new(crate::join_pushdown::LinkJoinPushdown));
        }
        let mut builder = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            // After type coercion: GUID literals in the canonical form their columns hold.
            .with_analyzer_rule(Arc::new(crate::guid_literals::GuidLiterals))
            .with_physical_optimizer_rules(physical)
            // Sort pushdown runs after limit pushdown; run it again so `ORDER BY … LIMIT n`
            // reaches the scan as `$orderby` + `$top`.
            .with_physical_optimizer_rule(Arc::new(LimitPushdown::new()))
            // After the limits are placed: scans under a LIMIT stay one ordered chain.
            .with_physical_optimizer_rule(Arc::new(crate::limited_scans::SequentialUnderLimit));
        if options.pushdown && options.aggregate_pushdown {
            // After DataFusion's filter pushdown, which gives hash joins their key filters.
            builder = builder.with_physical_optimizer_rule(Arc::new(crate::join_keys::JoinKeysToScans));
        }
        if options.pushdown && options.aggregate_pushdown {
            // Last: it needs the final shape of the aggregates (partial/final steps combined).
            builder = builder.with_physical_optimizer_rule(Arc::new(crate::aggregate_pushdown::AggregatePushdown {
                parallelism: options.scan_parallelism,
            }));
        }
        let state = builder.build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_catalog(CATALOG, catalog.clone());
        let dml = crate::dml::DmlState::new(dml_metadata, catalog.clone(), options.pushdown, options.page_size);
        Ok(Self { ctx, client, catalog, dml, read_only: options.read_only, max_rows: options.max_rows })
    }

    /// The DataFusion session (to register more tables or functions).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The write-back state (see [`crate::dml`]).
    pub(crate) fn dml_state(&self) -> &crate::dml::DmlState {
        &self.dml
    }

    /// The Web API client.
    pub fn client(&self) -> &DataverseClient {
        &self.client
    }

    /// Logical names of every queryable table (no per-table request).
    pub fn table_names(&self) -> Vec<String> {
        use datafusion::catalog::SchemaProvider;
        self.catalog.tables().table_names()
    }

    /// The SQL shape of a table (columns, Arrow types, Web API properties), fetching its
    /// metadata if needed: what `d365 describe` prints.
    /// `table` may also be an entity set name (`accounts`).
    pub async fn describe(&self, table: &str) -> Result<Arc<TableSchema>, SqlError> {
        let tables = self.catalog.tables();
        let name = match tables.entity(table) {
            None => tables.entity_by_set(table).map_or(table, |e| e.logical_name.as_str()),
            Some(_) => table,
        };
        Ok(tables.provider(name).await?.table_schema().clone())
    }

    /// The columns and SQL types of any table SQL can name, `metadata.entity` and the other
    /// tables of the `metadata` schema included.
    pub async fn sql_columns(&self, table: &str) -> Result<datafusion::arrow::datatypes::SchemaRef, SqlError> {
        match self.ctx.table_provider(table).await {
            Ok(p) => Ok(p.schema()),
            Err(e) => Err(SqlError::from(e)),
        }
    }

    fn options() -> SQLOptions {
        // Read-only until DML sinks exist; no DDL against the organisation.
        SQLOptions::new().with_allow_ddl(false).with_allow_dml(false)
    }

    /// Plans `sql` (one statement). Nothing is sent to the service but metadata.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame, SqlError> {
        Ok(self.ctx.sql_with_options(sql, Self::options()).await?)
    }

    /// Plans `sql` with its `$1…$n` placeholders replaced by `params` (typed literals: the
    /// values never pass through SQL text). No parameters plans `sql` as it is.
    pub async fn sql_with_params(&self, sql: &str, params: &[ScalarValue]) -> Result<DataFrame, SqlError> {
        let df = self.sql(sql).await?;
        if params.is_empty() {
            return Ok(df);
        }
        Ok(df.with_param_values(params.to_vec())?)
    }

    /// Runs `sql`: record batches as pages arrive.
    pub async fn stream(&self, sql: &str) -> Result<SendableRecordBatchStream, SqlError> {
        self.stream_with_params(sql, &[]).await
    }

    /// Runs `sql` with `params` bound to its `$1…$n` placeholders (see
    /// [`SqlEngine::sql_with_params`]).
    pub async fn stream_with_params(
        &self,
        sql: &str,
        params: &[ScalarValue],
    ) -> Result<SendableRecordBatchStream, SqlError> {
        let mut df = self.sql_with_params(sql, params).await?;
        if let Some(n) = self.max_rows
            && !aggregates(df.logical_plan())
        {
            df = df.limit(0, Some(n))?;
        }
        Ok(df.execute_stream().await?)
    }

    /// Whether writes are refused (`Readonly=true`).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Runs `sql` and collects every batch (convenience for small results).
    pub async fn collect(&self, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
        Ok(self.sql(sql).await?.collect().await?)
    }

    /// The optimized logical plan, the physical plan, and the exact Web API request (URL and
    /// `Prefer` header) of every Dataverse scan in it. Sends nothing but metadata requests.
    pub async fn explain(&self, sql: &str) -> Result<String, SqlError> {
        let df = self.sql(sql).await?;
        let logical = df.clone().into_optimized_plan()?;
        let physical = df.create_physical_plan().await?;
        let mut out = String::new();
        out.push_str("Logical plan:\n");
        out.push_str(&indent(&logical.display_indent().to_string()));
        out.push_str("\nPhysical plan:\n");
        out.push_str(&indent(&displayable(physical.as_ref()).indent(true).to_string()));
        out.push_str("\nWeb API requests:\n");
        let mut scans = Vec::new();
        let mut aggregates = Vec::new();
        let mut counts = Vec::new();
        let mut joins = Vec::new();
        collect_scans(&physical, &mut scans, &mut aggregates, &mut counts, &mut joins);
        if scans.is_empty() && aggregates.is_empty() && counts.is_empty() && joins.is_empty() {
            out.push_str("  (none)\n");
        }
        for join in joins {
            out.push_str(&indent(&join.request_text()?));
            out.push_str(&indent(if join.queries().len() > 1 {
                "(the join computed by the service: a FetchXML page chain of the joined rows, then one of \
                 the kept table's rows that no row points to (`not any`), up to 5,000 per page, each next \
                 page asked for with the previous page's paging cookie)"
            } else {
                "(the join computed by the service: one FetchXML page chain of the joined rows, \
                 up to 5,000 per page, each next page asked for with the previous page's paging cookie)"
            }));
        }
        for count in counts {
            out.push_str(&indent(&count.request_plan()?.to_string()));
            out.push_str(&indent("(the row count from the service's $count: no row is read)"));
        }
        for aggregate in aggregates {
            for plan in aggregate.request_plans()? {
                out.push_str(&indent(&plan.to_string()));
            }
            out.push_str(&indent(
                "(computed by the service; past 50,000 rows (AggregateQueryRecordLimit) or 5,000 groups \
                 the same requests run per createdon range, and partial results are merged locally)",
            ));
        }
        for scan in scans {
            out.push_str(&indent(&scan.request_plan()?.to_string()));
            if scan.reads_by_join_keys() {
                out.push_str(&indent(&format!(
                    "(waits for the join's other side; if it has at most {} keys, this request runs \
                     once per {} of them, with their `eq … or …` filter added, instead of reading \
                     every row)",
                    crate::join_keys::MAX_KEYS,
                    crate::join_keys::KEYS_PER_REQUEST
                )));
                continue;
            }
            if scan.is_partitioned() && !scan.table().key_fields.is_empty() {
                let keys: Vec<&str> = scan.table().key_fields.iter().map(|k| k.name.as_str()).collect();
                out.push_str(&indent(&format!(
                    "(read in parallel by key ranges of ({keys}): the row count and one $skip probe per \
                     boundary place the ranges, then each range is read in key order, every next \
                     request asking for the keys after the last one received, never by $skip)",
                    keys = keys.join(", ")
                )));
            } else if scan.is_partitioned() {
                out.push_str(&indent(&format!(
                    "(read in parallel: two $top probes of {col} find its range, then this request runs \
                     once per {col} range, with `and {col} ge … and {col} lt …` added and $orderby={col})",
                    col = crate::scan::PARTITION_COLUMN
                )));
            }
        }
        let joins_local = crate::join_pushdown::local_reasons(&physical);
        if !joins_local.is_empty() {
            out.push_str("\nJoins computed locally:\n");
            for why in joins_local {
                out.push_str(&indent(&why));
            }
        }
        let local = crate::aggregate_pushdown::local_reasons(&physical);
        if !local.is_empty() {
            out.push_str("\nAggregates computed locally (every row is read):\n");
            for why in local {
                out.push_str(&indent(&why));
            }
        }
        Ok(out)
    }
}

fn indent(text: &str) -> String {
    let mut s: String = text.trim_end().lines().map(|l| format!("  {l}\n")).collect();
    if s.is_empty() {
        s.push('\n');
    }
    s
}

fn collect_scans<'a>(
    plan: &'a Arc<dyn ExecutionPlan>,
    out: &mut Vec<&'a DataverseScanExec>,
    aggregates: &mut Vec<&'a DataverseAggregateExec>,
    counts: &mut Vec<&'a FinOpsCountExec>,
    joins: &mut Vec<&'a DataverseLinkJoinExec>,
) {
    if let Some(join) = plan.downcast_ref::<DataverseLinkJoinExec>() {
        joins.push(join);
    }
    if let Some(scan) = plan.downcast_ref::<DataverseScanExec>() {
        out.push(scan);
    }
    if let Some(aggregate) = plan.downcast_ref::<DataverseAggregateExec>() {
        aggregates.push(aggregate);
    }
    if let Some(count) = plan.downcast_ref::<FinOpsCountExec>() {
        counts.push(count);
    }
    for child in plan.children() {
        collect_scans(child, out, aggregates, counts, joins);
    }
}

/// Whether `plan` aggregates or removes duplicates anywhere (`MaxRows` leaves such queries
/// whole, as the CData connector does).
fn aggregates(plan: &datafusion::logical_expr::LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNode;
    use datafusion::logical_expr::LogicalPlan;
    plan.exists(|p| Ok(matches!(p, LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_)))).unwrap_or(false)
}
