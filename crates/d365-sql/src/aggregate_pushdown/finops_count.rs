//! `COUNT(*)` of a Finance & Operations entity, with its `WHERE` pushed, answered by the
//! service's `{set}/$count` (a number, not the rows). F&O's OData service has no `$apply`, so
//! this is the one aggregate it can compute; every other one reads the rows (by key ranges).

use std::fmt;
use std::sync::Arc;

use d365_client::DataverseClient;
use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use super::spec::Refusal;
use crate::arrow_schema::Dialect;
use crate::scan::DataverseScanExec;

/// The partial state of `COUNT(*)` over a Finance & Operations scan, from `$count`.
#[derive(Debug)]
pub struct FinOpsCountExec {
    client: DataverseClient,
    query: d365_client::Query,
    table: String,
    filter: Option<String>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

/// The `$count` form of `aggregate` (a partial aggregate with state schema `partial`) over
/// `scan`, or why it is computed locally.
pub fn plan(
    aggregate: &AggregateExec,
    scan: &DataverseScanExec,
    partial: SchemaRef,
) -> Result<FinOpsCountExec, Refusal> {
    if scan.table().dialect != Dialect::FinOps {
        return Err("not a Finance & Operations entity".into());
    }
    let local = |why: &str| Err(format!("Finance & Operations has no service-side aggregates ($count only): {why}"));
    let request = scan.request();
    if request.fetch.is_some() || !request.order_by.is_empty() {
        return local("the scan below is limited or ordered");
    }
    if request.filter.as_ref().is_some_and(|f| !f.exact) {
        return local("a filter is evaluated locally");
    }
    if !aggregate.group_expr().expr().is_empty() || aggregate.group_expr().has_grouping_set() {
        return local("GROUP BY");
    }
    let [agg] = aggregate.aggr_expr() else { return local("more than COUNT(*)") };
    let counts_rows = agg.fun().name().eq_ignore_ascii_case("count")
        && !agg.is_distinct()
        && agg.order_bys().is_empty()
        && aggregate.filter_expr().iter().all(Option::is_none)
        && matches!(agg.expressions().as_slice(), [a] if a.downcast_ref::<Literal>().is_some_and(|l| !l.value().is_null()));
    if !counts_rows {
        return local(&format!("{} is not COUNT(*)", agg.name()));
    }
    if partial.fields().len() != 1 || partial.field(0).data_type() != &DataType::Int64 {
        return local("unexpected partial aggregate schema");
    }
    let properties = Arc::new(PlanProperties::new(
        EquivalenceProperties::new(partial.clone()),
        Partitioning::UnknownPartitioning(1),
        EmissionType::Final,
        Boundedness::Bounded,
    ));
    let mut query = d365_client::Query::new(scan.table().entity_set.clone());
    query.filter = request.filter.as_ref().map(|f| f.text.clone());
    Ok(FinOpsCountExec {
        client: scan.client().clone(),
        table: scan.table().entity.logical_name.clone(),
        filter: query.filter.clone(),
        query,
        schema: partial,
        properties,
        metrics: ExecutionPlanMetricsSet::new(),
    })
}

impl FinOpsCountExec {
    /// The request, as `--explain` prints it.
    pub fn request_plan(&self) -> std::result::Result<d365_client::RequestPlan, d365_client::ClientError> {
        let mut plan = self.client.plan(&self.query)?;
        let path = format!("{}/$count", plan.url.path().trim_end_matches('/'));
        plan.url.set_path(&path);
        Ok(plan)
    }
}

impl DisplayAs for FinOpsCountExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "FinOpsCountExec: table={}, request=$count", self.table)?;
        if let Some(filter) = &self.filter {
            write!(f, ", filter=[{filter}]")?;
        }
        Ok(())
    }
}

#[allow(deprecated)] // `with_new_children` is still required by the trait in DataFusion 55.
impl ExecutionPlan for FinOpsCountExec {
    crate::leaf_exec::leaf_exec_methods!("FinOpsCountExec");

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        crate::leaf_exec::one_partition("FinOpsCountExec", partition)?;
        let (client, query, schema) = (self.client.clone(), self.query.clone(), self.schema.clone());
        let requests = MetricBuilder::new(&self.metrics).counter("requests", partition);
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let out = schema.clone();
        let stream = futures::stream::once(async move {
            requests.add(1);
            let n = client.count_rows(&query).await.map_err(|e| crate::error::SqlError::from(e).into_datafusion())?;
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            rows.add(1);
            Ok(RecordBatch::try_new(out, vec![Arc::new(Int64Array::from(vec![n]))])?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
