//! Join pushdown: INNER and LEFT joins of Dataverse tables along lookups (`contact JOIN account
//! ON contact.parentcustomerid = account.accountid`, and chains of them), with the filters
//! pushed to each table, run at the service as FetchXML with `link-entity` elements
//! ([`DataverseLinkJoinExec`]): only joined rows travel, instead of every table read and joined
//! locally.
//!
//! [`LinkJoinPushdown`] is a physical optimizer rule, run bottom up, that replaces a hash join
//! whose inputs are [`DataverseScanExec`]s or joins it already replaced when:
//! - the join is `x.lookup = y.primarykey` with no other join condition, where `x` is any table
//!   of one input and `y` the root table of the other: `y`'s tree hangs under `x` as a
//!   many-to-one link, so each root row gives at most one row and FetchXML pages by the root's
//!   key exactly;
//! - the join is inner, or outer keeping the lookup's side (`x LEFT JOIN y`: an `outer` link,
//!   when every link of `y`'s tree is outer too), or outer keeping the side the lookup points to
//!   (`y LEFT JOIN x`, one-to-many, `x` a single table): then two page chains, the inner join,
//!   and the rows of `y` that no row of `x` points to (a `not any` link) with NULLs for `x`;
//! - each table's pushed `$filter` has a FetchXML form ([`fetch_filter`]), and filters that are
//!   only a superset (text comparisons, re-checked locally) are not on the optional side of an
//!   outer join, where re-checking after the join could not restore SQL's answer;
//! - at least one table is filtered. Unfiltered tables are faster read as parallel `createdon`
//!   ranges and joined locally than as one FetchXML page chain.
//!
//! Filters re-checked locally stay above the new node, and a join that is not pushed still reads
//! its second table by the first one's keys ([`crate::join_keys`]). `--explain` prints the
//! FetchXML; the engine option that turns aggregate pushdown off turns this off too.

pub mod exec;
pub mod fetch_filter;
pub mod link_query;

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

use datafusion::arrow::datatypes::SchemaRef;
pub use exec::DataverseLinkJoinExec;
pub use link_query::{FETCH_PAGE_ROWS, JoinNode, Link, LinkQuery, Unmatched};

use crate::arrow_schema::{ColumnRole, ColumnSpec, Dialect, FilterKind, TableSchema};
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
            out.push(format!("{} with {}: {why}", l.source.name(), r.source.name()));
        }
        Ok::<_, datafusion::error::DataFusionError>(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    out
}

/// What an input of the join reads: a table, or tables already joined by the service.
enum Source<'a> {
    Scan(&'a DataverseScanExec),
    Join(&'a DataverseLinkJoinExec),
}

impl Source<'_> {
    fn name(&self) -> String {
        match self {
            Source::Scan(s) => s.table().entity.logical_name.clone(),
            Source::Join(j) => j.queries().first().map(|q| q.describe()).unwrap_or_default(),
        }
    }

    fn schema(&self) -> SchemaRef {
        match self {
            Source::Scan(s) => s.schema(),
            Source::Join(j) => j.schema(),
        }
    }

    /// The specs of the source's columns, in order.
    fn columns(&self) -> Vec<ColumnSpec> {
        match self {
            Source::Scan(s) => s.request().projection.iter().map(|&i| s.table().columns[i].clone()).collect(),
            Source::Join(j) => j.columns().to_vec(),
        }
    }

    /// The source as one FetchXML tree, or why it cannot be one.
    fn query(&self) -> std::result::Result<LinkQuery, String> {
        match self {
            Source::Scan(s) => {
                if !s.pushdown() || s.table().dialect != Dialect::Dataverse {
                    return Err("pushdown is off or the table is not a Dataverse table".into());
                }
                if s.request().fetch.is_some() || !s.request().order_by.is_empty() {
                    return Err("a side is limited or sorted by itself".into());
                }
                let filter = match &s.request().filter {
                    Some(f) => Some(
                        fetch_filter::fetch_filter(&f.text)
                            .ok_or_else(|| format!("the filter {} has no FetchXML form", f.text))?,
                    ),
                    None => None,
                };
                let page_rows = s.page_size().unwrap_or(FETCH_PAGE_ROWS).clamp(1, FETCH_PAGE_ROWS);
                Ok(LinkQuery::single(Arc::new(s.table().clone()), filter, &s.request().projection, page_rows))
            }
            Source::Join(j) => match j.queries() {
                [q] if q.unmatched.is_none() => Ok(q.clone()),
                _ => Err("a side is a one-to-many outer join already (two page chains)".into()),
            },
        }
    }

    fn client(&self) -> &d365_client::DataverseClient {
        match self {
            Source::Scan(s) => s.client(),
            Source::Join(j) => j.client(),
        }
    }
}

/// One input of the join: its source, the predicates re-checked above it (over the source's
/// columns), and where each of the input's columns is among the source's.
struct Input<'a> {
    source: Source<'a>,
    rechecks: Vec<Arc<dyn PhysicalExpr>>,
    to_scan: Vec<usize>,
}

/// The source below `plan` through filters, column projections and operators that keep the
/// schema, or `None` when something else is in the way.
fn input_of(plan: &Arc<dyn ExecutionPlan>) -> Option<Input<'_>> {
    let through = ["CooperativeExec", "CoalesceBatchesExec", "RepartitionExec", "FilterExec", "ProjectionExec"];
    let (source, passed) = crate::scan_path::source_through(plan, &through, |node| {
        if let Some(scan) = node.downcast_ref::<DataverseScanExec>() {
            return Some(Source::Scan(scan));
        }
        node.downcast_ref::<DataverseLinkJoinExec>().map(Source::Join)
    })?;
    let mut to_scan: Vec<usize> = (0..source.schema().fields().len()).collect();
    let mut rechecks = Vec::new();
    // Bottom up: each operator's columns in terms of the source's.
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
    Some(Input { source, rechecks, to_scan })
}

/// Whether `spec` is a lookup's GUID value (`_x_value`).
fn is_lookup(spec: &ColumnSpec) -> bool {
    spec.role == ColumnRole::Value
        && spec.filter == FilterKind::Guid
        && fetch_filter::attribute_of(&spec.property) != spec.property
}

/// Whether `spec` is the primary key of `table`.
fn is_pk(spec: &ColumnSpec, table: &TableSchema) -> bool {
    spec.role == ColumnRole::Value && spec.property == table.primary_key
}

/// The tree node and table column of the join key `expr` (a column of the input).
fn key_column<'q>(
    expr: &Arc<dyn PhysicalExpr>,
    input: &Input,
    query: &'q LinkQuery,
) -> Option<(usize, &'q ColumnSpec)> {
    let c = expr.downcast_ref::<Column>()?;
    let in_source = *input.to_scan.get(c.index())?;
    let (node, _) = (*query.columns.get(in_source)?)?;
    Some((node, query.column(in_source)?))
}

/// The page chains computing the join of `left` and `right` on `l = r` (key columns at tree
/// nodes `ln`, `rn`), or why there are none. Output columns: `left`'s, then `right`'s.
fn chains(
    join_type: JoinType,
    (left, lq, ln, l): (&Input, LinkQuery, usize, &ColumnSpec),
    (right, rq, rn, r): (&Input, LinkQuery, usize, &ColumnSpec),
) -> std::result::Result<Vec<LinkQuery>, String> {
    // `left`'s node `ln` points to `right`'s root, or `right`'s node `rn` to `left`'s root.
    let left_points = is_lookup(l) && rn == 0 && is_pk(r, &rq.nodes[0].table);
    let right_points = is_lookup(r) && ln == 0 && is_pk(l, &lq.nodes[0].table);
    let (left_len, right_len) = (lq.columns.len(), rq.columns.len());
    let optional = |input: &Input, q: &LinkQuery| -> std::result::Result<(), String> {
        if !input.rechecks.is_empty() {
            return Err("the optional side of the outer join has a filter that is re-checked locally".into());
        }
        if !q.all_outer() {
            return Err("the optional side of the outer join is an inner join itself".into());
        }
        Ok(())
    };
    // The rows of `kept` (a tree) that no row of `absent` (one table, its lookup `lookup`)
    // points to; `absent`'s columns NULL, on the side `absent_first` says.
    let unmatched =
        |mut kept: LinkQuery, absent: LinkQuery, absent_input: &Input, lookup: &ColumnSpec, absent_first| {
            if absent.nodes.len() != 1 {
                return Err("a one-to-many outer join whose optional side is a join itself".to_string());
            }
            optional(absent_input, &absent)?;
            let node = absent.nodes.into_iter().next().expect("one node");
            kept.unmatched = Some(Unmatched {
                from: fetch_filter::attribute_of(&lookup.property).to_string(),
                to: kept.nodes[0].table.primary_key.clone(),
                table: node.table,
                filter: node.filter,
            });
            let nulls = vec![None; absent.columns.len()];
            kept.columns = if absent_first { [nulls, kept.columns].concat() } else { [kept.columns, nulls].concat() };
            Ok(kept)
        };
    let attr = |spec: &ColumnSpec| fetch_filter::attribute_of(&spec.property).to_string();
    match join_type {
        JoinType::Inner if left_points => Ok(vec![lq.attach(ln, &attr(l), rq, false)]),
        JoinType::Inner if right_points => {
            let mut q = rq.attach(rn, &attr(r), lq, false);
            q.columns.rotate_left(right_len);
            Ok(vec![q])
        }
        JoinType::Left if left_points => {
            optional(right, &rq)?;
            Ok(vec![lq.attach(ln, &attr(l), rq, true)])
        }
        JoinType::Right if right_points => {
            optional(left, &lq)?;
            let mut q = rq.attach(rn, &attr(r), lq, true);
            q.columns.rotate_left(right_len);
            Ok(vec![q])
        }
        // One-to-many, keeping the side the lookup points to.
        JoinType::Left if right_points => {
            let mut inner = rq.clone().attach(rn, &attr(r), lq.clone(), false);
            inner.columns.rotate_left(right_len);
            Ok(vec![inner, unmatched(lq, rq, right, r, false)?])
        }
        JoinType::Right if left_points => {
            let inner = lq.clone().attach(ln, &attr(l), rq.clone(), false);
            debug_assert_eq!(inner.columns.len(), left_len + right_len);
            Ok(vec![inner, unmatched(rq, lq, left, l, true)?])
        }
        JoinType::Inner | JoinType::Left | JoinType::Right => {
            Err("the join is not a lookup equal to the primary key of the other side's first table".into())
        }
        _ => Err(format!("{join_type} joins are not pushed")),
    }
}

/// The FetchXML join replacing `join` (with its local re-checks and projection above), or why
/// there is none.
fn pushed(join: &HashJoinExec) -> std::result::Result<Option<Arc<dyn ExecutionPlan>>, String> {
    let (Some(left), Some(right)) = (input_of(join.left()), input_of(join.right())) else {
        return Ok(None);
    };
    let (lq, rq) = (left.source.query()?, right.source.query()?);
    if join.filter().is_some() {
        return Err("the join has a condition besides key equality".into());
    }
    let [(l_key, r_key)] = join.on() else { return Err("the join has more than one key".into()) };
    let (Some((ln, l_col)), Some((rn, r_col))) = (key_column(l_key, &left, &lq), key_column(r_key, &right, &rq)) else {
        return Err("the join keys are not plain columns".into());
    };
    let (l_col, r_col) = (l_col.clone(), r_col.clone());
    if !lq.filtered() && !rq.filtered() {
        return Err("neither table is filtered (two parallel reads joined locally are faster)".into());
    }
    let join_type = *join.join_type();
    let queries = chains(join_type, (&left, lq, ln, &l_col), (&right, rq, rn, &r_col))?;
    // The node reads both sources' columns; the re-checks and the join's own columns go above.
    let (left_len, right_len) = (left.source.schema().fields().len(), right.source.schema().fields().len());
    let (schema, _) = build_join_schema(&left.source.schema(), &right.source.schema(), &join_type);
    let columns = [left.source.columns(), right.source.columns()].concat();
    let mut plan: Arc<dyn ExecutionPlan> =
        Arc::new(DataverseLinkJoinExec::new(left.source.client().clone(), queries, Arc::new(schema), columns));
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
