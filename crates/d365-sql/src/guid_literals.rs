//! GUIDs compared as values, not as text: a string compared with a GUID column (`accountid`,
//! a lookup such as `parentcustomerid`) is rewritten to the canonical form the column holds
//! (lower case, hyphenated, no braces) before the query is planned, so
//! `WHERE accountid = '{0000002A-…}'` finds the row whether the filter is sent to the service
//! (which compares GUIDs as values) or evaluated locally. Only literals that are GUIDs are
//! touched, and only in `=`, `<>`, `IN` and `NOT IN` against such a column.

use std::collections::HashSet;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

use crate::arrow_schema::FilterKind;
use crate::filter_pushdown::canonical_guid;
use crate::table_provider::DataverseTable;

/// The analyzer rule (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct GuidLiterals;

impl AnalyzerRule for GuidLiterals {
    fn name(&self) -> &str {
        "d365_guid_literals"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let mut guids = HashSet::new();
        guid_columns(&plan, &mut guids);
        if guids.is_empty() {
            return Ok(plan);
        }
        plan.transform_up_with_subqueries(|node| node.map_expressions(|e| e.transform_up(|e| rewrite(e, &guids))))
            .map(|t| t.data)
    }
}

/// The columns (as the expressions above name them) that hold a Dataverse GUID: those of the
/// tables' scans, and what aliases and projections rename them to.
fn guid_columns(plan: &LogicalPlan, out: &mut HashSet<Column>) {
    for input in plan.inputs() {
        guid_columns(input, out);
    }
    // Subqueries in expressions (`WHERE x IN (SELECT …)`) have their own scans.
    let _ = plan.apply_subqueries(|sub| {
        guid_columns(sub, out);
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    match plan {
        LogicalPlan::TableScan(scan) => {
            let Ok(provider) = source_as_provider(&scan.source) else { return };
            let Some(table) = provider.downcast_ref::<DataverseTable>() else { return };
            let schema = table.table_schema();
            for (qualifier, field) in scan.projected_schema.iter() {
                let guid = schema.columns.iter().any(|c| c.name == *field.name() && c.filter == FilterKind::Guid);
                if guid {
                    out.insert(Column::from((qualifier, field)));
                }
            }
        }
        LogicalPlan::SubqueryAlias(alias) => {
            let renamed: Vec<Column> = alias
                .input
                .schema()
                .columns()
                .into_iter()
                .zip(alias.schema.columns())
                .filter(|(inner, _)| out.contains(inner))
                .map(|(_, outer)| outer)
                .collect();
            out.extend(renamed);
        }
        LogicalPlan::Projection(projection) => {
            let renamed: Vec<Column> = projection
                .expr
                .iter()
                .zip(projection.schema.columns())
                .filter(|(e, _)| matches!((*e).clone().unalias(), Expr::Column(c) if out.contains(&c)))
                .map(|(_, outer)| outer)
                .collect();
            out.extend(renamed);
        }
        _ => {}
    }
}

fn is_guid_column(e: &Expr, guids: &HashSet<Column>) -> bool {
    matches!(e, Expr::Column(c) if guids.contains(c))
}

/// The canonical form of a string literal that is a GUID written another way; `None` leaves it.
fn canonical(e: &Expr) -> Option<Expr> {
    if let Expr::Cast(cast) = e {
        let inner = canonical(&cast.expr)?;
        return Some(Expr::Cast(datafusion::logical_expr::Cast { expr: Box::new(inner), field: cast.field.clone() }));
    }
    let Expr::Literal(value, metadata) = e else { return None };
    let text = match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => s,
        _ => return None,
    };
    let c = canonical_guid(text).filter(|c| c != text)?;
    let value = match value {
        ScalarValue::Utf8(_) => ScalarValue::Utf8(Some(c)),
        ScalarValue::LargeUtf8(_) => ScalarValue::LargeUtf8(Some(c)),
        _ => ScalarValue::Utf8View(Some(c)),
    };
    Some(Expr::Literal(value, metadata.clone()))
}

fn rewrite(e: Expr, guids: &HashSet<Column>) -> Result<Transformed<Expr>> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: op @ (Operator::Eq | Operator::NotEq), right }) => {
            let (l, r) = if is_guid_column(&left, guids) {
                (None, canonical(&right))
            } else if is_guid_column(&right, guids) {
                (canonical(&left), None)
            } else {
                (None, None)
            };
            if l.is_none() && r.is_none() {
                return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })));
            }
            let left = l.map(Box::new).unwrap_or(left);
            let right = r.map(Box::new).unwrap_or(right);
            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr { left, op, right })))
        }
        Expr::InList(InList { expr, list, negated }) if is_guid_column(&expr, guids) => {
            let mut changed = false;
            let list = list
                .into_iter()
                .map(|item| match canonical(&item) {
                    Some(c) => {
                        changed = true;
                        c
                    }
                    None => item,
                })
                .collect();
            let e = Expr::InList(InList { expr, list, negated });
            Ok(if changed { Transformed::yes(e) } else { Transformed::no(e) })
        }
        other => Ok(Transformed::no(other)),
    }
}
