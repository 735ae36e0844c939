//! [`FilteredSideBuilds`]: in an inner join of two Dataverse tables where only one side is
//! filtered, that side becomes the hash join's build side, whatever order the query names
//! them in. The build side is read first and its keys narrow the read of the other side (see
//! [`crate::join_keys`]), so `FROM contact c JOIN account a … WHERE a.name LIKE 'Contoso%'`
//! reads the Contoso accounts, then only their contacts.
//!
//! DataFusion orders joins by statistics, which a Web API table does not have; without this
//! rule the first table named is the build side. The rule runs right after DataFusion's own
//! join selection (before repartitioning and dynamic filters are set up, as swapping requires).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::logical_expr::JoinType;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::HashJoinExec;

use crate::scan_path::scan_through;

/// The rule (see the module docs).
#[derive(Debug, Default)]
pub struct FilteredSideBuilds;

/// Whether the Dataverse table read at the bottom of `plan` (through single-input operators)
/// is filtered; `None` when `plan` is not such a read.
fn filtered(plan: &Arc<dyn ExecutionPlan>) -> Option<bool> {
    let through = ["FilterExec", "ProjectionExec", "CoalesceBatchesExec", "CooperativeExec"];
    let (scan, passed) = scan_through(plan, &through)?;
    Some(scan.request().filter.is_some() || passed.iter().any(|p| p.name() == "FilterExec"))
}

impl PhysicalOptimizerRule for FilteredSideBuilds {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else { return Ok(Transformed::no(node)) };
            if *join.join_type() != JoinType::Inner
                || filtered(join.left()) != Some(false)
                || filtered(join.right()) != Some(true)
            {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(join.swap_inputs(*join.partition_mode())?))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "dataverse_filtered_side_builds"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
