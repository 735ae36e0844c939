//! The Dataverse scan at the bottom of a chain of single-input operators: the walk the
//! physical rules share (aggregate pushdown, join keys, join order), each naming the
//! operators it may look through.

use std::sync::Arc;

use datafusion::physical_plan::ExecutionPlan;

use crate::scan::DataverseScanExec;

/// The scan at the bottom of `plan` through operators named in `through` (each with one
/// input), and the operators passed, top first; `None` when something else is in the way.
pub fn scan_through<'a>(
    plan: &'a Arc<dyn ExecutionPlan>,
    through: &[&str],
) -> Option<(&'a DataverseScanExec, Vec<&'a Arc<dyn ExecutionPlan>>)> {
    source_through(plan, through, |node| node.downcast_ref::<DataverseScanExec>())
}

/// The first node below `plan` that `pick` accepts, through operators named in `through`
/// (each with one input), and the operators passed, top first.
pub fn source_through<'a, T>(
    plan: &'a Arc<dyn ExecutionPlan>,
    through: &[&str],
    pick: impl Fn(&'a Arc<dyn ExecutionPlan>) -> Option<T>,
) -> Option<(T, Vec<&'a Arc<dyn ExecutionPlan>>)> {
    let mut passed = Vec::new();
    let mut node = plan;
    loop {
        if let Some(found) = pick(node) {
            return Some((found, passed));
        }
        if !through.contains(&node.name()) {
            return None;
        }
        let children = node.children();
        let [child] = children.as_slice() else { return None };
        passed.push(node);
        node = *child;
    }
}
