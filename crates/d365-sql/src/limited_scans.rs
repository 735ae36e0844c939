//! [`SequentialUnderLimit`]: a physical optimizer rule that keeps scans under a `LIMIT` on one
//! ordered `@odata.nextLink` chain.
//!
//! A whole-table scan reads `createdon` ranges in parallel (see
//! [`DataverseScanExec::with_parallel`]). That is the fast way to read a whole table, but a
//! query such as `SELECT name FROM account WHERE lower(name) <> 'x' LIMIT 5` stops after a few
//! rows: there the parallel read would send its probes and a page per range for nothing. So
//! below any operator with a row limit, scans stay sequential, except under operators that
//! read all their input anyway (a sort, a top-n, an aggregate).

use std::sync::Arc;

use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;

use crate::scan::DataverseScanExec;

/// The rule (see the module docs).
#[derive(Debug, Default)]
pub struct SequentialUnderLimit;

impl PhysicalOptimizerRule for SequentialUnderLimit {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        rewrite(plan, false)
    }

    fn name(&self) -> &str {
        "sequential_under_limit"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Operators that read all their input before they emit, whatever limit sits above them.
fn reads_all_input(plan: &dyn ExecutionPlan) -> bool {
    matches!(plan.name(), "SortExec" | "AggregateExec" | "SortPreservingMergeExec")
}

fn rewrite(plan: Arc<dyn ExecutionPlan>, limited: bool) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(scan) = plan.downcast_ref::<DataverseScanExec>() {
        return Ok(if limited && scan.is_partitioned() { Arc::new(scan.clone().with_parallel(false)) } else { plan });
    }
    let limited = if reads_all_input(plan.as_ref()) {
        false
    } else {
        limited || plan.fetch().is_some() || plan.name().contains("Limit")
    };
    let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
    if children.is_empty() {
        return Ok(plan);
    }
    let new = children.into_iter().map(|c| rewrite(c, limited)).collect::<Result<Vec<_>>>()?;
    replace_children_if_necessary(plan, new)
}
