//! Join pushdown: an INNER or LEFT join of two Dataverse tables along a lookup (`contact JOIN
//! account ON contact.parentcustomerid = account.accountid`), with the filters pushed to either
//! side, runs at the service as one FetchXML query with a `link-entity`
//! ([`DataverseLinkJoinExec`]): only joined rows travel, in one page chain, instead of two
//! table reads joined locally.
//!
//! [`LinkJoinPushdown`] is a physical optimizer rule that replaces a hash join whose inputs are
//! two [`DataverseScanExec`]s when:
//! - the join is `a.lookup = b.primarykey` (a many-to-one link: each row of `a` meets at most one
//!   row of `b`, so FetchXML pages by `a`'s key exactly), with no other join condition;
//! - the join is inner, or outer on the lookup's side (`a LEFT JOIN b`): FetchXML's `outer`
//!   link keeps every root row. (`b LEFT JOIN a`, one-to-many, stays local.)
//! - each side's pushed `$filter` has a FetchXML form ([`fetch_filter`]), and filters that are
//!   only a superset (text comparisons, re-checked locally) are not on the optional side of an
//!   outer join, where re-checking after the join could not restore SQL's answer;
//! - at least one side is filtered. Two unfiltered tables are faster read as parallel `createdon`
//!   ranges and joined locally than as one FetchXML page chain.
//!
//! Filters re-checked locally stay above the new node, and a join that is not pushed still reads
//! its second table by the first one's keys ([`crate::join_keys`]). `--explain` prints the
//! FetchXML; the engine option that turns aggregate pushdown off turns this off too.

pub mod exec;
pub mod fetch_filter;

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{PhysicalExpr, conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::joins::utils::build_join_schema;
use datafusion::physical_plan::projection::ProjectionExec;

pub use exec::{DataverseLinkJoinExec, JoinSide, LinkJoin};

use crate::arrow_schema::{ColumnRole, ColumnSpec, Dialect, FilterKind};
use crate::scan::DataverseScanExec;

/// The rule (see the module docs).
#[derive(Debug, Default)]
pub struct LinkJoinPushdown;

impl PhysicalOptimizerRule for LinkJoinPushdown {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else { return Ok(Transformed::no(node)) };
            match pushed(join) {
                Ok(Some(plan)) if plan.schema().fields().len() == node.schema().fields().len() => {
                    Ok(Transformed::yes(plan))
                }
                Ok(_) => Ok(Transformed::no(node)),
                Err(why) => {
                    tracing::debug!("join computed locally: {why}");
                    Ok(Transformed::no(node))
                }
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "dataverse_link_join_pushdown"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Why each join of two Dataverse tables in `plan` is computed locally (for `--explain`).
pub fn local_reasons(plan: &Arc<dyn ExecutionPlan>) -> Vec<String> {
    let mut out = Vec::new();
    let _ = plan.apply(|node| {
        if let Some(join) = node.downcast_ref::<HashJoinExec>()
            && let (Some(l), Some(r)) = (input_of(join.left()), input_of(join.right()))
            && let Err(why) = pushed(join)
        {
            out.push(format!(
                "{} with {}: {why}",
                l.scan.table().entity.logical_name,
                r.scan.table().entity.logical_name
            ));
        }
        Ok::<_, datafusion::error::DataFusionError>(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    out
}

/// One input of the join: the scan, the predicates re-checked above it (over the scan's
/// columns), and where each of the input's columns is among the scan's.
struct Input<'a> {
    scan: &'a DataverseScanExec,
    rechecks: Vec<Arc<dyn PhysicalExpr>>,
    to_scan: Vec<usize>,
}

/// The scan below `plan` through filters, column projections and operators that keep the
/// schema, or `None` when something else is in the way.
fn input_of(plan: &Arc<dyn ExecutionPlan>) -> Option<Input<'_>> {
    let through = ["CooperativeExec", "CoalesceBatchesExec", "RepartitionExec", "FilterExec", "ProjectionExec"];
    let (scan, passed) = crate::scan_path::scan_through(plan, &through)?;
    let mut to_scan: Vec<usize> = (0..scan.schema().fields().len()).collect();
    let mut rechecks = Vec::new();
    // Bottom up: each operator's columns in terms of the scan's.
    for op in passed.into_iter().rev() {
        if let Some(f) = op.downcast_ref::<FilterExec>() {
            if f.fetch().is_some() {
                return None;
            }
            rechecks.push(remapped(f.predicate(), &to_scan, 0).ok()?);
            if let Some(p) = f.projection() {
                to_scan = p.iter().map(|&i| to_scan.get(i).copied()).collect::<Option<_>>()?;
            }
        } else if let Some(p) = op.downcast_ref::<ProjectionExec>() {
            to_scan = p
                .expr()
                .iter()
                .map(|e| e.expr.downcast_ref::<Column>().and_then(|c| to_scan.get(c.index()).copied()))
                .collect::<Option<_>>()?;
        }
    }
    Some(Input { scan, rechecks, to_scan })
}

/// Whether `spec` is a lookup's GUID value (`_x_value`).
fn is_lookup(spec: &ColumnSpec) -> bool {
    spec.role == ColumnRole::Value
        && spec.filter == FilterKind::Guid
        && fetch_filter::attribute_of(&spec.property) != spec.property
}

/// The table column of the join key `expr` (a column of the input).
fn key_column<'a>(expr: &Arc<dyn PhysicalExpr>, input: &Input<'a>) -> Option<&'a ColumnSpec> {
    let c = expr.downcast_ref::<Column>()?;
    let in_scan = *input.to_scan.get(c.index())?;
    let index = *input.scan.request().projection.get(in_scan)?;
    input.scan.table().columns.get(index)
}

/// The FetchXML join replacing `join` (with its local re-checks and projection above), or why
/// there is none.
fn pushed(join: &HashJoinExec) -> std::result::Result<Option<Arc<dyn ExecutionPlan>>, String> {
    let (Some(left), Some(right)) = (input_of(join.left()), input_of(join.right())) else {
        return Ok(None);
    };
    for side in [&left, &right] {
        let s = side.scan;
        if !s.pushdown() || s.table().dialect != Dialect::Dataverse {
            return Err("pushdown is off or the table is not a Dataverse table".into());
        }
        if s.request().fetch.is_some() || !s.request().order_by.is_empty() {
            return Err("a side is limited or sorted by itself".into());
        }
    }
    if join.filter().is_some() {
        return Err("the join has a condition besides key equality".into());
    }
    let [(l_key, r_key)] = join.on() else { return Err("the join has more than one key".into()) };
    let (Some(l_col), Some(r_col)) = (key_column(l_key, &left), key_column(r_key, &right)) else {
        return Err("the join keys are not plain columns".into());
    };
    let is_pk = |spec: &ColumnSpec, scan: &DataverseScanExec| {
        spec.role == ColumnRole::Value && spec.property == scan.table().primary_key
    };
    let join_type = *join.join_type();
    // The root holds the lookup; an outer join must keep the root's rows.
    let (root_first, outer) =
        match (is_lookup(l_col) && is_pk(r_col, right.scan), is_lookup(r_col) && is_pk(l_col, left.scan)) {
            (true, _) if matches!(join_type, JoinType::Inner | JoinType::Left) => (true, join_type == JoinType::Left),
            (_, true) if matches!(join_type, JoinType::Inner | JoinType::Right) => {
                (false, join_type == JoinType::Right)
            }
            (true, _) | (_, true) => {
                return Err("an outer join that keeps the rows of the table the lookup points to (one-to-many)".into());
            }
            _ => return Err("the join is not a lookup equal to the other table's primary key".into()),
        };
    let (root, linked) = if root_first { (&left, &right) } else { (&right, &left) };
    if root.scan.request().filter.is_none() && linked.scan.request().filter.is_none() {
        return Err("neither table is filtered (two parallel reads joined locally are faster)".into());
    }
    if outer && !linked.rechecks.is_empty() {
        return Err("the optional side of the outer join has a filter that is re-checked locally".into());
    }
    let side = |input: &Input| -> std::result::Result<JoinSide, String> {
        let filter = match &input.scan.request().filter {
            Some(f) => Some(
                fetch_filter::fetch_filter(&f.text)
                    .ok_or_else(|| format!("the filter {} has no FetchXML form", f.text))?,
            ),
            None => None,
        };
        Ok(JoinSide {
            table: Arc::new(input.scan.table().clone()),
            projection: input.scan.request().projection.clone(),
            filter,
        })
    };
    let lookup = if root_first { l_col } else { r_col };
    let link = LinkJoin {
        root: side(root)?,
        linked: side(linked)?,
        lookup: fetch_filter::attribute_of(&lookup.property).to_string(),
        outer,
        root_first,
        page_rows: root.scan.page_size().unwrap_or(exec::FETCH_PAGE_ROWS).clamp(1, exec::FETCH_PAGE_ROWS),
    };
    // The node reads both scans' columns; the re-checks and the join's own columns go above.
    let (left_len, right_len) = (left.scan.schema().fields().len(), right.scan.schema().fields().len());
    let (schema, _) = build_join_schema(&left.scan.schema(), &right.scan.schema(), &join_type);
    let mut plan: Arc<dyn ExecutionPlan> =
        Arc::new(DataverseLinkJoinExec::new(left.scan.client().clone(), link, Arc::new(schema)));
    let identity = |n: usize, offset: usize| (offset..offset + n).collect::<Vec<usize>>();
    let mut rechecks: Vec<Arc<dyn PhysicalExpr>> = left.rechecks.clone();
    for r in &right.rechecks {
        rechecks.push(remapped(r, &identity(right_len, 0), left_len).map_err(|e| e.to_string())?);
    }
    if !rechecks.is_empty() {
        plan = Arc::new(FilterExec::try_new(conjunction(rechecks), plan).map_err(|e| e.to_string())?);
    }
    // The join's columns (left input's, then right input's), then its own projection.
    let mut columns: Vec<usize> =
        left.to_scan.iter().copied().chain(right.to_scan.iter().map(|&i| left_len + i)).collect();
    if let Some(projection) = &join.projection {
        columns = projection.iter().map(|&i| columns.get(i).copied()).collect::<Option<_>>().ok_or("bad projection")?;
    }
    if columns != identity(left_len + right_len, 0) {
        let schema = plan.schema();
        let names = join.schema();
        let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = columns
            .iter()
            .zip(names.fields())
            .map(|(&i, out)| {
                (Arc::new(Column::new(schema.field(i).name(), i)) as Arc<dyn PhysicalExpr>, out.name().clone())
            })
            .collect();
        plan = Arc::new(ProjectionExec::try_new(exprs, plan).map_err(|e| e.to_string())?);
    }
    Ok(Some(plan))
}

/// `expr` with each column `i` replaced by column `offset + map[i]`.
fn remapped(expr: &Arc<dyn PhysicalExpr>, map: &[usize], offset: usize) -> Result<Arc<dyn PhysicalExpr>> {
    expr.clone()
        .transform(|e| {
            Ok(match e.downcast_ref::<Column>() {
                Some(c) => {
                    let Some(&to) = map.get(c.index()) else {
                        return Err(datafusion::error::DataFusionError::Internal(format!("no column {}", c.index())));
                    };
                    Transformed::yes(Arc::new(Column::new(c.name(), offset + to)) as Arc<dyn PhysicalExpr>)
                }
                None => Transformed::no(e),
            })
        })
        .map(|t| t.data)
}
