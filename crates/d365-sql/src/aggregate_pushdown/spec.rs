//! What an aggregate asks of the service: the analysis of a DataFusion aggregate over a
//! [`DataverseScanExec`] into `$apply` requests whose rows are the aggregate's *partial
//! states* (see the module docs of [`super`]).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_expr::expressions::{CastExpr, Column, Literal};
use datafusion::physical_plan::PhysicalExpr;
use datafusion::physical_plan::aggregates::AggregateExec;

use super::fetch_aggregate::{self, FetchAggregate};
use crate::arrow_schema::{ColumnRole, ColumnSpec, FilterKind, TableSchema, ValueKind};
use crate::scan::DataverseScanExec;

/// Where one field of the partial-state schema comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateSource {
    /// A grouping column: the value (or its formatted label) of a grouped property.
    Group(usize),
    /// The number of rows of the group (`$count` of the main request).
    RowCount,
    /// The number of rows whose property is not null: `$count` of the request for that
    /// property (`filter(… and p ne null)`); the main request contributes 0.
    NonNullCount(String),
    /// `<property> with <method> as <alias>` of the main request.
    Aggregated {
        /// The alias in the response.
        alias: String,
    },
}

/// One aggregated value the main request computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyAggregate {
    /// The Web API property.
    pub property: String,
    /// `sum`, `min` or `max`.
    pub method: &'static str,
    /// Its alias in the response.
    pub alias: String,
    /// How the value is decoded (then cast to the state field's type).
    pub kind: ValueKind,
}

/// An aggregate the service can compute (see [`analyze`]).
#[derive(Debug, Clone)]
pub struct AggregateSpec {
    /// The table.
    pub table: Arc<TableSchema>,
    /// The scan's `$filter` (exact), if any.
    pub filter: Option<String>,
    /// The grouping columns, as the scan's column specs (values or formatted labels).
    pub groups: Vec<ColumnSpec>,
    /// The properties grouped by (`groupby((…))`), without repeats.
    pub group_properties: Vec<String>,
    /// Aggregated values of the main request.
    pub aggregates: Vec<ApplyAggregate>,
    /// Properties whose non-null rows are counted by a request of their own.
    pub non_null_counts: Vec<String>,
    /// The partial-state schema produced (the schema of a partial `AggregateExec`).
    pub schema: SchemaRef,
    /// The source of each field of `schema`.
    pub sources: Vec<StateSource>,
    /// Sent as FetchXML instead of `$apply` (when a group is a part of a date; see
    /// [`super::fetch_aggregate`]).
    pub fetch: Option<FetchAggregate>,
}

/// Why an aggregate stays local (for `--explain` and logs).
pub type Refusal = String;

/// The scan column behind a physical expression of the scan's output: a column, or a numeric
/// widening cast of one (`sum(int)` is planned as `sum(CAST(x AS Int64))`).
fn column_of<'a>(expr: &Arc<dyn PhysicalExpr>, scan: &'a DataverseScanExec) -> Option<&'a ColumnSpec> {
    let (col, cast_to) = if let Some(c) = expr.downcast_ref::<Column>() {
        (c, None)
    } else if let Some(cast) = expr.downcast_ref::<CastExpr>() {
        (cast.expr().downcast_ref::<Column>()?, Some(cast.cast_type().clone()))
    } else {
        return None;
    };
    let index = *scan.request().projection.get(col.index())?;
    let spec = scan.table().columns.get(index)?;
    if spec.name != col.name() {
        return None;
    }
    match cast_to {
        None => Some(spec),
        Some(to) => widening(spec.kind, &to).then_some(spec),
    }
}

/// Casts after which a sum, min or max computed by the service equals the local one.
fn widening(from: ValueKind, to: &DataType) -> bool {
    matches!(
        (from, to),
        (ValueKind::Int32, DataType::Int64 | DataType::Float64)
            | (ValueKind::Int64, DataType::Int64 | DataType::Float64)
            | (ValueKind::Float64, DataType::Float64)
    ) || matches!((from, to), (ValueKind::Decimal { scale }, DataType::Decimal128(_, s) | DataType::Decimal256(_, s)) if scale == *s)
}

/// A number column the service adds up (choices are numbers in SQL but not on the service).
fn is_number(spec: &ColumnSpec) -> bool {
    matches!(spec.kind, ValueKind::Int32 | ValueKind::Int64 | ValueKind::Float64 | ValueKind::Decimal { .. })
        && matches!(spec.attribute_type.as_str(), "Integer" | "BigInt" | "Decimal" | "Money" | "Double")
}

/// The decoding kind for a state field of `data_type` (the value is cast to it afterwards).
fn decode_kind(data_type: &DataType) -> Option<ValueKind> {
    Some(match data_type {
        DataType::Int32 => ValueKind::Int32,
        DataType::Int64 | DataType::UInt64 => ValueKind::Int64,
        DataType::Float64 => ValueKind::Float64,
        // AVG of a Decimal128 keeps its running sum as a Decimal256.
        DataType::Decimal128(_, s) | DataType::Decimal256(_, s) => ValueKind::Decimal { scale: *s },
        DataType::Timestamp(_, _) => ValueKind::Timestamp,
        DataType::Date32 => ValueKind::Date32,
        _ => return None,
    })
}

/// Whether grouping by `spec` on the service gives the groups DataFusion would form. Text is
/// compared case-insensitively by the service and date-times cannot be grouped by `$apply`;
/// labels of choices group exactly (one label per value, merged locally when two values share
/// a label), lookup names and types are not returned for groups.
fn groupable(spec: &ColumnSpec) -> bool {
    match spec.role {
        ColumnRole::Value => matches!(
            spec.filter,
            FilterKind::Integer | FilterKind::Decimal | FilterKind::Float | FilterKind::Boolean | FilterKind::Guid
        ),
        ColumnRole::FormattedValue => {
            matches!(spec.attribute_type.as_str(), "Picklist" | "State" | "Status" | "Boolean")
        }
        ColumnRole::LookupLogicalName => false,
    }
}

/// Analyses `aggregate` (whose input is `scan`, possibly through pass-through operators)
/// into the `$apply` requests that compute its partial states, or says why it stays local.
pub fn analyze(
    aggregate: &AggregateExec,
    scan: &DataverseScanExec,
    partial: SchemaRef,
) -> Result<AggregateSpec, Refusal> {
    let request = scan.request();
    if scan.table().dialect == crate::arrow_schema::Dialect::FinOps {
        // No `$apply` and no FetchXML on Finance & Operations' OData service.
        return Err("Finance & Operations has no service-side aggregates".into());
    }
    if request.fetch.is_some() || !request.order_by.is_empty() {
        return Err("the scan below is limited or ordered".into());
    }
    if request.filter.as_ref().is_some_and(|f| !f.exact) {
        return Err("a filter is evaluated locally".into());
    }
    let group_by = aggregate.group_expr();
    if !group_by.is_single() || group_by.has_grouping_set() {
        return Err("grouping sets are computed locally".into());
    }
    let mut groups = Vec::new();
    let mut group_properties: Vec<String> = Vec::new();
    let mut sources = Vec::new();
    // Each group's FetchXML grouping: (property, dategrouping).
    let mut groupings: Vec<(String, Option<&'static str>)> = Vec::new();
    for (expr, _) in group_by.expr() {
        if let Some((arg, part)) = fetch_aggregate::date_part_of(expr) {
            let spec = column_of(arg, scan)
                .filter(|s| s.role == ColumnRole::Value && matches!(s.kind, ValueKind::Timestamp | ValueKind::Date32))
                .ok_or_else(|| "a date part of something other than a date column is grouped locally".to_string())?;
            sources.push(StateSource::Group(groups.len()));
            // The part arrives as a number (then cast to the group's type).
            groups.push(ColumnSpec { kind: ValueKind::Int64, ..spec.clone() });
            groupings.push((spec.property.clone(), Some(part)));
            continue;
        }
        let spec = expr
            .downcast_ref::<Column>()
            .and_then(|_| column_of(expr, scan))
            .ok_or_else(|| "a grouping expression is not a column or a year, month or day of a date".to_string())?;
        if !groupable(spec) {
            return Err(format!("grouping by '{}' is done locally (the service groups it differently)", spec.name));
        }
        if !group_properties.contains(&spec.property) {
            group_properties.push(spec.property.clone());
        }
        sources.push(StateSource::Group(groups.len()));
        groups.push(spec.clone());
        groupings.push((spec.property.clone(), None));
    }
    let fetch = if groupings.iter().any(|(_, part)| part.is_some()) {
        if request.filter.as_ref().is_some_and(|f| crate::join_pushdown::fetch_filter::fetch_filter(&f.text).is_none())
        {
            return Err("the filter has no FetchXML form (needed to group by a date part)".into());
        }
        Some(fetch_aggregate::fetch_groups(&mut groups, &groupings))
    } else {
        None
    };
    let mut aggregates: Vec<ApplyAggregate> = Vec::new();
    let mut non_null_counts: Vec<String> = Vec::new();
    let state_fields = &partial.fields()[groups.len()..];
    let mut next_field = 0usize;
    for (i, agg) in aggregate.aggr_expr().iter().enumerate() {
        if aggregate.filter_expr().get(i).is_some_and(Option::is_some) {
            return Err("an aggregate with FILTER is computed locally".into());
        }
        if agg.is_distinct() {
            return Err(format!("{} is computed locally (DISTINCT)", agg.name()));
        }
        if !agg.order_bys().is_empty() {
            return Err(format!("{} is computed locally (ordered aggregate)", agg.name()));
        }
        let args = agg.expressions();
        let function = agg.fun().name().to_ascii_lowercase();
        let n_states = match function.as_str() {
            "avg" => 2,
            "count" | "sum" | "min" | "max" => 1,
            other => return Err(format!("{other}() is computed locally")),
        };
        let fields = state_fields
            .get(next_field..next_field + n_states)
            .ok_or_else(|| "unexpected partial aggregate schema".to_string())?;
        next_field += n_states;
        // count(*) is planned as count(1).
        if function == "count"
            && args.len() == 1
            && args[0].downcast_ref::<Literal>().is_some_and(|l| !l.value().is_null())
        {
            sources.push(StateSource::RowCount);
            continue;
        }
        let [arg] = args.as_slice() else {
            return Err(format!("{} has several arguments", agg.name()));
        };
        let spec = column_of(arg, scan)
            .filter(|s| s.role == ColumnRole::Value)
            .ok_or_else(|| format!("{}: its argument is not a column of the table", agg.name()))?;
        let mut counted = |sources: &mut Vec<StateSource>| {
            if spec.property == scan.table().primary_key {
                sources.push(StateSource::RowCount);
            } else {
                if !non_null_counts.contains(&spec.property) {
                    non_null_counts.push(spec.property.clone());
                }
                sources.push(StateSource::NonNullCount(spec.property.clone()));
            }
        };
        let mut aggregated = |method: &'static str, field: &DataType, sources: &mut Vec<StateSource>| {
            let kind =
                decode_kind(field).ok_or_else(|| format!("{}: state type {field} is computed locally", agg.name()))?;
            let alias = match aggregates.iter().find(|a| a.property == spec.property && a.method == method) {
                Some(a) => a.alias.clone(),
                None => {
                    let alias = format!("a{}", aggregates.len());
                    aggregates.push(ApplyAggregate {
                        property: spec.property.clone(),
                        method,
                        alias: alias.clone(),
                        kind,
                    });
                    alias
                }
            };
            sources.push(StateSource::Aggregated { alias });
            Ok::<(), Refusal>(())
        };
        match function.as_str() {
            "count" => {
                if spec.filter == FilterKind::None {
                    return Err(format!("{}: counted locally", agg.name()));
                }
                counted(&mut sources);
            }
            "sum" | "avg" if !is_number(spec) => return Err(format!("{}: not a number column", agg.name())),
            "sum" => aggregated("sum", fields[0].data_type(), &mut sources)?,
            "avg" => {
                counted(&mut sources);
                aggregated("sum", fields[1].data_type(), &mut sources)?;
            }
            method => {
                // Text, GUIDs and choices order differently on the service.
                if !(is_number(spec) || matches!(spec.kind, ValueKind::Timestamp | ValueKind::Date32)) || !spec.sortable
                {
                    return Err(format!("{}: ordered differently by the service", agg.name()));
                }
                let method = if method == "min" { "min" } else { "max" };
                aggregated(method, fields[0].data_type(), &mut sources)?;
            }
        }
    }
    if next_field != state_fields.len() {
        return Err("unexpected partial aggregate schema".into());
    }
    Ok(AggregateSpec {
        table: Arc::new(scan.table().clone()),
        filter: request.filter.as_ref().map(|f| f.text.clone()),
        groups,
        group_properties,
        aggregates,
        non_null_counts,
        schema: partial,
        sources,
        fetch,
    })
}

impl AggregateSpec {
    /// The `$apply` text of the main request over the rows matching `extra` (a part's range)
    /// besides the scan's filter.
    pub fn main_apply(&self, extra: Option<&str>) -> String {
        let mut items = vec!["$count as c".to_string()];
        items.extend(self.aggregates.iter().map(|a| format!("{} with {} as {}", a.property, a.method, a.alias)));
        self.apply(extra, None, &items.join(","))
    }

    /// The `$apply` text counting the rows where `property` is not null.
    pub fn count_apply(&self, property: &str, extra: Option<&str>) -> String {
        let not_null = format!("{property} ne null");
        self.apply(extra, Some(&not_null), "$count as c")
    }

    fn apply(&self, extra: Option<&str>, more: Option<&str>, aggregate: &str) -> String {
        let conditions: Vec<&str> = [self.filter.as_deref(), extra, more].into_iter().flatten().collect();
        let filter = match conditions.as_slice() {
            [] => String::new(),
            [one] => format!("filter({one})/"),
            many => format!("filter({})/", many.iter().map(|c| format!("({c})")).collect::<Vec<_>>().join(" and ")),
        };
        if self.group_properties.is_empty() {
            format!("{filter}aggregate({aggregate})")
        } else {
            format!("{filter}groupby(({}),aggregate({aggregate}))", self.group_properties.join(","))
        }
    }

    /// Whether a group column is a formatted label (the request then asks for annotations).
    pub fn needs_formatted_values(&self) -> bool {
        self.groups.iter().any(|g| g.role == ColumnRole::FormattedValue)
    }
}
