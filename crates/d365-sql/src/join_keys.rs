//! Join keys sent to the service: a hash join's build side (the smaller, filtered side: the
//! accounts named `Contoso%`) becomes an `eq … or eq …` filter on the other side's key
//! (`contact._parentcustomerid_value`), so a selective join reads only the rows it joins
//! instead of a whole table.
//!
//! DataFusion's hash join publishes its build-side keys as a *dynamic filter*
//! ([`DynamicFilterPhysicalExpr`]) once the build side is read: an `IN (…)` list of the keys
//! when there are at most `datafusion.optimizer.hash_join_inlist_pushdown_max_distinct_values`
//! of them (the engine sets [`MAX_KEYS`]), otherwise a hash-table lookup. The rule
//! [`JoinKeysToScans`] hands an inner hash join's filter to the [`DataverseScanExec`](crate::scan::DataverseScanExec) of its
//! probe side when the key is a GUID column (a lookup or a primary key) and the join is sure to
//! compute the filter; the scan, when polled, waits for the build side, and if the filter is a
//! list of keys, reads the rows of [`KEYS_PER_REQUEST`] keys per request instead of the whole
//! table. Only join filters are taken: a top-n's dynamic filter, say, is never complete before
//! the scan under it has been read, so waiting for it would never end. An empty build side reads nothing; a filter of any
//! other shape (too many keys) leaves the scan as it was. The join itself still matches the
//! rows, so the result is the same either way.

use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr, CaseExpr, Column, DynamicFilterPhysicalExpr, InListExpr, Literal,
};
use datafusion::prelude::{col, lit};

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::logical_expr::JoinType;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, Partitioning};

use crate::arrow_schema::{ColumnRole, FilterKind, TableSchema};
use crate::filter_pushdown::{ODataFilter, translate};

/// The rule (see the module docs). Runs after DataFusion's filter pushdown.
#[derive(Debug, Default)]
pub struct JoinKeysToScans;

impl PhysicalOptimizerRule for JoinKeysToScans {
    // `dynamic_filter_expr` is the one accessor of a hash join's filter that names its owner.
    #[allow(deprecated)]
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if !config.optimizer.enable_join_dynamic_filter_pushdown || config.optimizer.preserve_file_partitions > 0 {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else { return Ok(Transformed::no(node)) };
            let Some(filter) = join.dynamic_filter_expr().cloned() else { return Ok(Transformed::no(node)) };
            // Only where the join computes its filter for sure (an inner join, keys routed by
            // hash when partitioned).
            let routed = match join.partition_mode() {
                PartitionMode::CollectLeft => true,
                PartitionMode::Partitioned => matches!(
                    (join.left().output_partitioning(), join.right().output_partitioning()),
                    (Partitioning::Hash(..), Partitioning::Hash(..))
                ),
                PartitionMode::Auto => false,
            };
            if *join.join_type() != JoinType::Inner || !routed {
                return Ok(Transformed::no(node));
            }
            let Some(right) = with_filter(join.right(), &filter)? else { return Ok(Transformed::no(node)) };
            let children = vec![join.left().clone(), right];
            Ok(Transformed::yes(replace_children_if_necessary(node.clone(), children)?))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "dataverse_join_keys_to_scans"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` with the scan at its bottom reading by `filter`, through operators that keep the
/// schema as it is (repartitioning, batch coalescing, cooperative yielding).
fn with_filter(
    plan: &Arc<dyn ExecutionPlan>,
    filter: &Arc<DynamicFilterPhysicalExpr>,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let through = ["RepartitionExec", "CoalesceBatchesExec", "CooperativeExec"];
    let Some((scan, passed)) = crate::scan_path::scan_through(plan, &through) else { return Ok(None) };
    if !scan.pushdown() || scan.reads_by_join_keys() || scan.request().fetch.is_some() {
        return Ok(None);
    }
    let Some(column) = join_filter_column(filter, scan.table(), &scan.request().projection) else {
        return Ok(None);
    };
    // The new scan, then each operator above it rebuilt over its new input, bottom up.
    let mut rebuilt: Arc<dyn ExecutionPlan> = Arc::new(scan.with_join_filter(filter.clone(), column));
    for op in passed.into_iter().rev() {
        rebuilt = replace_children_if_necessary(op.clone(), vec![rebuilt])?;
    }
    Ok(Some(rebuilt))
}

/// Most join keys a build side may publish as a list (DataFusion's default is 150).
pub const MAX_KEYS: usize = 5000;
/// Keys per request: `(k eq … or k eq …)` of this many GUIDs stays well under URL limits.
pub const KEYS_PER_REQUEST: usize = 100;

/// The scan column a dynamic join filter constrains, if it is one the service can filter by
/// key (a GUID value column).
pub fn join_filter_column(
    filter: &DynamicFilterPhysicalExpr,
    table: &TableSchema,
    projection: &[usize],
) -> Option<usize> {
    let children = filter.children();
    let [only] = children.as_slice() else { return None };
    let column = only.downcast_ref::<Column>()?;
    let index = *projection.get(column.index())?;
    let spec = table.columns.get(index)?;
    (spec.name == column.name() && spec.role == ColumnRole::Value && spec.filter == FilterKind::Guid).then_some(index)
}

/// What a completed dynamic filter says about the keys of `column` (by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// Only rows whose key is one of these (possibly none).
    Only(Vec<String>),
    /// Any row (the filter is not a list of keys).
    Any,
}

/// Reads the key list out of the filter's current expression.
pub fn keys_of(expr: &Arc<dyn PhysicalExpr>, column: &str) -> Keys {
    if let Some(l) = expr.downcast_ref::<Literal>()
        && let ScalarValue::Boolean(Some(false)) = l.value()
    {
        return Keys::Only(Vec::new());
    }
    if let Some(b) = expr.downcast_ref::<BinaryExpr>()
        && *b.op() == Operator::And
    {
        // Either side being a key list is enough: the other only narrows further.
        for side in [b.left(), b.right()] {
            if let Keys::Only(k) = keys_of(side, column) {
                return Keys::Only(k);
            }
        }
        return Keys::Any;
    }
    // A partitioned join: `CASE hash(key) % n WHEN i THEN <keys of partition i> … ELSE false`.
    if let Some(case) = expr.downcast_ref::<CaseExpr>() {
        if let Some(other) = case.else_expr()
            && keys_of(other, column) != Keys::Only(Vec::new())
        {
            return Keys::Any;
        }
        let mut all = Vec::new();
        for (_, then) in case.when_then_expr() {
            match keys_of(then, column) {
                Keys::Only(k) => all.extend(k),
                Keys::Any => return Keys::Any,
            }
        }
        all.sort();
        all.dedup();
        return Keys::Only(all);
    }
    if let Some(list) = expr.downcast_ref::<InListExpr>()
        && !list.negated()
        && list.expr().downcast_ref::<Column>().is_some_and(|c| c.name() == column)
    {
        let mut keys = Vec::with_capacity(list.len());
        for item in list.list() {
            match item.downcast_ref::<Literal>().map(Literal::value) {
                Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => {
                    keys.push(s.clone())
                }
                Some(v) if v.is_null() => {}
                _ => return Keys::Any,
            }
        }
        keys.sort();
        keys.dedup();
        return Keys::Only(keys);
    }
    Keys::Any
}

/// The `$filter` conditions selecting rows whose `column` is one of `keys`, one per request.
pub fn key_filters(table: &TableSchema, column: usize, keys: &[String]) -> Option<Vec<ODataFilter>> {
    let spec = table.columns.get(column)?;
    keys.chunks(KEYS_PER_REQUEST)
        .map(|chunk| {
            let expr = col(format!("\"{}\"", spec.name)).in_list(chunk.iter().map(|k| lit(k.clone())).collect(), false);
            translate(&expr, table)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_expr::expressions::{binary, in_list, lit as plit};

    #[test]
    fn key_lists_are_read_out_of_join_filters() {
        let schema = Schema::new(vec![Field::new("parentcustomerid", DataType::Utf8, true)]);
        let c: Arc<dyn PhysicalExpr> = Arc::new(Column::new("parentcustomerid", 0));
        let list = in_list(c.clone(), vec![plit("b"), plit("a"), plit("b")], &false, &schema).unwrap();
        assert_eq!(keys_of(&list, "parentcustomerid"), Keys::Only(vec!["a".into(), "b".into()]));
        // Bounds and the list, as hash joins publish them.
        let bounds = binary(c.clone(), Operator::GtEq, plit("a"), &schema).unwrap();
        let both = binary(bounds.clone(), Operator::And, list.clone(), &schema).unwrap();
        assert_eq!(keys_of(&both, "parentcustomerid"), Keys::Only(vec!["a".into(), "b".into()]));
        assert_eq!(keys_of(&bounds, "parentcustomerid"), Keys::Any);
        assert_eq!(keys_of(&plit(false), "parentcustomerid"), Keys::Only(vec![]));
        assert_eq!(keys_of(&plit(true), "parentcustomerid"), Keys::Any);
        assert_eq!(keys_of(&list, "other"), Keys::Any);
        let negated = in_list(c.clone(), vec![plit("a")], &true, &schema).unwrap();
        assert_eq!(keys_of(&negated, "parentcustomerid"), Keys::Any);
        // Partitions of a partitioned join: the union of their lists.
        let other = in_list(c, vec![plit("c")], &false, &schema).unwrap();
        let case: Arc<dyn PhysicalExpr> = Arc::new(
            CaseExpr::try_new(
                Some(plit(ScalarValue::UInt64(Some(0)))),
                vec![(plit(ScalarValue::UInt64(Some(0))), list), (plit(ScalarValue::UInt64(Some(1))), other)],
                Some(plit(false)),
            )
            .unwrap(),
        );
        assert_eq!(keys_of(&case, "parentcustomerid"), Keys::Only(vec!["a".into(), "b".into(), "c".into()]));
    }
}
