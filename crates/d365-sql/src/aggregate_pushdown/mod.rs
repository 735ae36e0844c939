//! Aggregate pushdown: `GROUP BY` with `COUNT(*)`, `COUNT(col)`, `SUM`, `AVG`, `MIN`, `MAX`
//! over one table, with its `WHERE` pushed, computed by the service with `$apply`.
//!
//! [`AggregatePushdown`] is a physical optimizer rule. DataFusion plans an aggregate in two
//! steps: a `Partial` aggregate turns rows into per-group *states* (a count; a sum; for AVG a
//! count and a sum; a min; a max), and a `Final` aggregate merges states into results. The rule
//! replaces the partial step over a [`DataverseScanExec`] by a [`DataverseAggregateExec`] that
//! asks the service for those states (`groupby((…),aggregate($count as c, revenue with sum as
//! a0, …))`), and leaves the final step as it is. Merging is therefore DataFusion's own: AVG is
//! SUM over COUNT with DataFusion's types and rounding, decimals stay exact, and partial results
//! of several requests (ranges of a table past the 50,000-row limit, the non-null counts that
//! `AVG(col)` and `COUNT(col)` need) simply add up.
//!
//! What stays local, and why ([`spec::analyze`] decides; `--explain` shows the plan):
//! - a `WHERE` that is not pushed exactly (e.g. text comparisons, re-checked locally);
//! - grouping by text (the service groups case-insensitively), by whole date-times, by lookup
//!   names or types (not returned for groups), or by expressions other than the year, month or
//!   day of a date (those are grouped by FetchXML: see [`fetch_aggregate`]);
//! - `COUNT(DISTINCT …)`, aggregates with `FILTER` or `ORDER BY`, other functions;
//! - `MIN`/`MAX` of text, GUIDs and choices (ordered differently by the service).
//!
//! The pushdown is an engine option ([`crate::EngineOptions::aggregate_pushdown`]); off, every
//! aggregate reads its rows, which is what the differential tests compare against.

pub mod exec;
pub mod fetch_aggregate;
pub mod finops_count;
pub mod spec;

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};

pub use exec::DataverseAggregateExec;

use crate::scan::DataverseScanExec;

/// The rule (see the module docs).
#[derive(Debug, Default)]
pub struct AggregatePushdown {
    /// Concurrent requests for an aggregate split into ranges (`None`: the service's hint).
    pub parallelism: Option<usize>,
}

impl PhysicalOptimizerRule for AggregatePushdown {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| self.rewrite(node)).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "dataverse_aggregate_pushdown"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Why each aggregate over a table scan in `plan` is computed locally (for `--explain`).
pub fn local_reasons(plan: &Arc<dyn ExecutionPlan>) -> Vec<String> {
    let mut out = Vec::new();
    let visit = |node: &Arc<dyn ExecutionPlan>| {
        if let Some(aggregate) = node.downcast_ref::<AggregateExec>()
            && matches!(aggregate.mode(), AggregateMode::Partial | AggregateMode::Single)
            && let Some(scan) = scan_below(aggregate.input())
        {
            let why = if !scan.pushdown() {
                "pushdown is off".to_string()
            } else {
                match partial_over(aggregate, scan.clone()) {
                    Ok(partial) if scan.table().dialect == crate::arrow_schema::Dialect::FinOps => {
                        match finops_count::plan(aggregate, &scan, partial.schema()) {
                            Ok(_) => "aggregate pushdown is off".to_string(),
                            Err(why) => why,
                        }
                    }
                    Ok(partial) => match spec::analyze(aggregate, &scan, partial.schema()) {
                        Ok(_) => "aggregate pushdown is off".to_string(),
                        Err(why) => why,
                    },
                    Err(e) => e.to_string(),
                }
            };
            out.push(format!("{}: {why}", scan.table().entity.logical_name));
        } else if let Some(aggregate) = node.downcast_ref::<AggregateExec>()
            && matches!(aggregate.mode(), AggregateMode::Partial | AggregateMode::Single)
            && let Some((scan, passed)) = crate::scan_path::scan_through(
                aggregate.input(),
                &["CooperativeExec", "CoalesceBatchesExec", "FilterExec", "ProjectionExec", "RepartitionExec"],
            )
            && let Some(filter) =
                passed.iter().find_map(|n| n.downcast_ref::<datafusion::physical_plan::filter::FilterExec>())
        {
            // The scan's rows pass a local filter first: the service cannot aggregate them.
            out.push(format!(
                "{}: part of the WHERE is evaluated locally ({}): a text comparison the service makes \
                 case-insensitively, or a condition it has no filter for; every matching row is read",
                scan.table().entity.logical_name,
                filter.predicate()
            ));
        }
        Ok::<_, datafusion::error::DataFusionError>(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    };
    let _ = plan.apply(visit);
    out
}

/// `aggregate`'s partial step (per-group states) reading `scan` directly.
fn partial_over(aggregate: &AggregateExec, scan: Arc<DataverseScanExec>) -> Result<AggregateExec> {
    AggregateExec::try_new(
        AggregateMode::Partial,
        aggregate.group_expr().clone(),
        aggregate.aggr_expr().to_vec(),
        aggregate.filter_expr().to_vec(),
        scan,
        aggregate.input_schema(),
    )
}

/// The scan below pass-through operators (cooperative yielding, batch coalescing).
fn scan_below(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<DataverseScanExec>> {
    let (scan, _) = crate::scan_path::scan_through(plan, &["CooperativeExec", "CoalesceBatchesExec"])?;
    Some(Arc::new(scan.clone()))
}

impl AggregatePushdown {
    fn rewrite(&self, node: Arc<dyn ExecutionPlan>) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
        let Some(aggregate) = node.downcast_ref::<AggregateExec>() else { return Ok(Transformed::no(node)) };
        let Some(scan) = scan_below(aggregate.input()) else { return Ok(Transformed::no(node)) };
        match aggregate.mode() {
            AggregateMode::Partial => {
                let Some(exec) = self.pushed(aggregate, scan, node.clone()) else {
                    return Ok(Transformed::no(node));
                };
                Ok(Transformed::yes(exec))
            }
            AggregateMode::Single => {
                // Split into the two steps, then replace the partial one.
                let partial: Arc<dyn ExecutionPlan> = Arc::new(partial_over(aggregate, scan.clone())?);
                let Some(exec) = self.pushed(aggregate, scan, partial) else { return Ok(Transformed::no(node)) };
                let last = AggregateExec::try_new(
                    AggregateMode::Final,
                    aggregate.group_expr().as_final(),
                    aggregate.aggr_expr().to_vec(),
                    aggregate.filter_expr().to_vec(),
                    exec,
                    aggregate.input_schema(),
                )?;
                Ok(Transformed::yes(Arc::new(last)))
            }
            _ => Ok(Transformed::no(node)),
        }
    }

    /// The service-side replacement of `partial` (a partial aggregate over `scan`), if the
    /// service can compute it.
    fn pushed(
        &self,
        aggregate: &AggregateExec,
        scan: Arc<DataverseScanExec>,
        partial: Arc<dyn ExecutionPlan>,
    ) -> Option<Arc<dyn ExecutionPlan>> {
        if !scan.pushdown() {
            return None;
        }
        if scan.table().dialect == crate::arrow_schema::Dialect::FinOps {
            return match finops_count::plan(aggregate, &scan, partial.schema()) {
                Ok(exec) => Some(Arc::new(exec)),
                Err(why) => {
                    tracing::debug!(table = %scan.table().entity.logical_name, "aggregate computed locally: {why}");
                    None
                }
            };
        }
        match spec::analyze(aggregate, &scan, partial.schema()) {
            Ok(spec) => Some(Arc::new(DataverseAggregateExec::new(spec, scan, partial, self.parallelism))),
            Err(why) => {
                tracing::debug!(table = %scan.table().entity.logical_name, "aggregate computed locally: {why}");
                None
            }
        }
    }
}
