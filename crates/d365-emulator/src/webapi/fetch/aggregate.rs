//! `aggregate="true"` queries: `count`, `countcolumn` (with `distinct`), `sum`, `avg`, `min`,
//! `max`, and `groupby` (with `dategrouping` day / week / month / quarter / year, in UTC),
//! computed in SQLite. As documented: every aggregate needs an `alias`; null values are not
//! aggregated (a `sum` of none is 0, as the documentation's example shows); at most 50,000
//! source rows (or the query's lower `aggregatelimit`) may be aggregated, beyond that the
//! `AggregateQueryRecordLimit` error; rows carry no `@odata.etag`; null values (a null group,
//! an empty `min`) are omitted like every FetchXML null. `avg` of a whole-number column is a
//! whole number (SQL Server's integer average, as in the documentation's example: 3,911).
//! Week numbers count weeks starting on Sunday, week 1 holding January 1st (SQL Server's
//! `DATEPART(week, …)`, which gives the documentation's 12 for 3/25/2023).

use super::MAX_ROWS;
use super::errors;
use super::plan::Plan;
use super::read::want_count;
use crate::schema::{AttrKind, Column, Table};
use crate::store::codec::{formatted, storage_scale, write_json, write_json_str};
use crate::store::ddl::q;
use crate::webapi::Ctx;
use crate::webapi::apply::{AGGREGATE_LIMIT, unindexed};
use crate::webapi::error::{DvError, DvResult};
use crate::webapi::json_response;
use crate::webapi::query::{applied_preferences, currency_symbols, sql_error};
use crate::webapi::rows::{Annotations, lookup_name_sql};
use axum::http::StatusCode;
use axum::response::Response;
use d365_odata::fetchxml::{AggregateFn, DateGrouping, Fetch};
use rusqlite::types::Value as Sql;

const FORMATTED: &str = "OData.Community.Display.V1.FormattedValue";

/// One output column of an aggregate query.
struct Out<'s> {
    /// The alias (JSON property name).
    key: String,
    column: &'s Column,
    /// The SQL expression.
    sql: String,
    kind: OutKind,
}

#[derive(Clone, Copy, PartialEq)]
enum OutKind {
    Group,
    DatePart,
    Agg(AggregateFn),
}

fn date_part(g: DateGrouping, x: &str) -> DvResult<String> {
    let int = |fmt: &str| format!("CAST(strftime('{fmt}', {x}) AS INTEGER)");
    Ok(match g {
        DateGrouping::Day => int("%d"),
        DateGrouping::Month => int("%m"),
        DateGrouping::Year => int("%Y"),
        DateGrouping::Quarter => format!("(({} + 2) / 3)", int("%m")),
        DateGrouping::Week => {
            format!("(({} - 1 + CAST(strftime('%w', strftime('%Y-01-01', {x})) AS INTEGER)) / 7 + 1)", int("%j"))
        }
        DateGrouping::FiscalPeriod => return Err(errors::not_emulated("dategrouping='fiscal-period'")),
        DateGrouping::FiscalYear => return Err(errors::not_emulated("dategrouping='fiscal-year'")),
    })
}

fn numeric(c: &Column) -> bool {
    matches!(c.kind, AttrKind::Integer | AttrKind::BigInt | AttrKind::Decimal | AttrKind::Double | AttrKind::Money)
}

fn outputs<'s>(fetch: &'s Fetch, plan: &Plan<'s>) -> DvResult<Vec<Out<'s>>> {
    let mut out: Vec<Out<'s>> = Vec::new();
    let nodes = std::iter::once((&plan.scopes[0], &fetch.entity.node))
        .chain(plan.scopes.iter().skip(1).filter_map(|s| s.node.map(|n| (s, n))));
    for (scope, node) in nodes {
        if node.all_attributes {
            return Err(errors::aggregate("The all-attributes element cannot be used in an aggregate query."));
        }
        for a in &node.attributes {
            let c =
                scope.table.column(&a.name).ok_or_else(|| errors::no_attribute(&scope.table.logical_name, &a.name))?;
            let col = format!("{}.{}", scope.sql, q(&c.logical_name));
            let (sql, kind) = match (a.aggregate, a.groupby) {
                (Some(_), true) => {
                    return Err(errors::aggregate(format!(
                        "The attribute '{}' cannot be both aggregated and grouped by.",
                        a.name
                    )));
                }
                (None, false) => {
                    return Err(errors::aggregate(
                        "An attribute can not be requested when an aggregate operation has been specified and its neither groupby nor aggregate.",
                    ));
                }
                (None, true) => match a.dategrouping {
                    Some(g) => {
                        if !matches!(c.kind, AttrKind::DateTime | AttrKind::DateOnly) {
                            return Err(errors::aggregate(format!(
                                "dategrouping requires a date and time attribute; '{}' is not one.",
                                a.name
                            )));
                        }
                        (date_part(g, &col)?, OutKind::DatePart)
                    }
                    None => (col, OutKind::Group),
                },
                (Some(f), false) => {
                    if a.alias.is_none() {
                        return Err(errors::aggregate(format!("The aggregate attribute '{}' needs an alias.", a.name)));
                    }
                    let ok = match f {
                        AggregateFn::Count | AggregateFn::CountColumn => true,
                        AggregateFn::Sum | AggregateFn::Avg => numeric(c),
                        AggregateFn::Min | AggregateFn::Max => {
                            numeric(c) || matches!(c.kind, AttrKind::DateTime | AttrKind::DateOnly)
                        }
                    };
                    if !ok {
                        return Err(errors::aggregate(format!(
                            "The aggregate function '{}' cannot be applied to the attribute '{}' of type '{}'.",
                            f.as_str(),
                            a.name,
                            c.kind.attribute_type()
                        )));
                    }
                    let sql = match f {
                        AggregateFn::Count => "count(*)".to_string(),
                        AggregateFn::CountColumn if a.distinct => format!("count(DISTINCT {col})"),
                        AggregateFn::CountColumn => format!("count({col})"),
                        AggregateFn::Sum => format!("coalesce(sum({col}), 0)"),
                        AggregateFn::Avg if matches!(c.kind, AttrKind::Integer | AttrKind::BigInt) => {
                            format!("CAST(avg({col}) AS INTEGER)")
                        }
                        AggregateFn::Avg => format!("avg({col})"),
                        AggregateFn::Min => format!("min({col})"),
                        AggregateFn::Max => format!("max({col})"),
                    };
                    (sql, OutKind::Agg(f))
                }
            };
            let key = a.alias.clone().unwrap_or_else(|| {
                if scope.sql == "t" { c.property_name() } else { format!("{}.{}", scope.alias, c.logical_name) }
            });
            if out.iter().any(|o| o.key == key) {
                return Err(errors::duplicate_alias(&key));
            }
            out.push(Out { key, column: c, sql, kind });
        }
    }
    if out.is_empty() {
        return Err(errors::aggregate("An aggregate query needs at least one aggregate or groupby attribute."));
    }
    Ok(out)
}

/// Runs an aggregate query.
pub async fn run(ctx: &Ctx, table: &Table, fetch: &Fetch, plan: Plan<'_>) -> DvResult<Response> {
    if want_count(ctx)? {
        return Err(errors::invalid("The query parameter $count cannot be combined with an aggregate fetchXml query."));
    }
    let ann = Annotations::from_prefer(&ctx.prefer);
    let outs = outputs(fetch, &plan)?;
    let schema = ctx.schema.clone();
    let mut select: Vec<String> = Vec::new();
    for o in &outs {
        select.push(o.sql.clone());
        if o.kind == OutKind::Group && o.column.kind.is_lookup() {
            let alias = o.sql.split('.').next().unwrap_or("t").to_string();
            select.push(if o.column.is_polymorphic() {
                format!("{alias}.{}", q(&format!("{}_type", o.column.logical_name)))
            } else {
                "NULL".into()
            });
            select.push(if ann.formatted { lookup_name_sql(&schema, o.column, &alias) } else { "NULL".into() });
        }
    }
    let groups: Vec<&str> =
        outs.iter().filter(|o| !matches!(o.kind, OutKind::Agg(_))).map(|o| o.sql.as_str()).collect();
    let mut order: Vec<String> = Vec::new();
    let all_orders = std::iter::once(&fetch.entity.node.orders)
        .chain(plan.scopes.iter().skip(1).filter_map(|s| s.node.map(|n| &n.orders)));
    for list in all_orders {
        for o in list {
            let target = match (&o.alias, &o.attribute) {
                (Some(alias), _) => outs.iter().find(|x| x.key == *alias).ok_or_else(|| errors::no_alias(alias))?,
                (None, Some(attr)) => outs
                    .iter()
                    .find(|x| x.kind == OutKind::Group && x.column.logical_name == *attr)
                    .ok_or_else(|| errors::aggregate(format!("Ordering an aggregate query by attribute '{attr}' needs a groupby attribute of that name; order by alias instead.")))?,
                (None, None) => continue,
            };
            order.push(format!("{}{}", target.sql, if o.descending { " DESC" } else { "" }));
        }
    }
    order.extend(groups.iter().map(|g| g.to_string()));
    let limit = i64::from(fetch.aggregate_limit.unwrap_or(u32::MAX)).min(AGGREGATE_LIMIT);
    let (page_size, page) = match fetch.top {
        Some(t) => (t as usize, 1usize),
        None => (fetch.count.unwrap_or(MAX_ROWS).min(MAX_ROWS) as usize, fetch.page.unwrap_or(1) as usize),
    };
    let conds = if plan.conds.is_empty() { String::new() } else { format!(" WHERE {}", plan.conds.join(" AND ")) };
    let from = format!("FROM {} t{}{conds}", q(&table.logical_name), plan.joins);
    let count_sql = format!("SELECT count(*) FROM (SELECT 1 {from} LIMIT {})", limit + 1);
    let group_by = if groups.is_empty() { String::new() } else { format!(" GROUP BY {}", unindexed(&groups)) };
    let order_by = if order.is_empty() { String::new() } else { format!(" ORDER BY {}", unindexed(&order)) };
    let sql = format!(
        "SELECT {} {from}{group_by}{order_by} LIMIT {} OFFSET {}",
        select.join(", "),
        page_size + 1,
        (page - 1) * page_size
    );
    let mut params = plan.join_params.clone();
    params.extend(plan.where_params.iter().cloned());
    let ncols = select.len();
    let state = ctx.state.clone();
    let (source_rows, rows, symbols) = tokio::task::spawn_blocking(move || {
        state.store.with_conn(|c| -> rusqlite::Result<_> {
            let n: i64 = c.query_row(&count_sql, rusqlite::params_from_iter(params.iter()), |r| r.get(0))?;
            if n > limit {
                return Ok((n, Vec::new(), Vec::new()));
            }
            let rows = crate::webapi::query::select_rows(c, &sql, &params, ncols)?;
            Ok((n, rows, currency_symbols(c)?))
        })
    })
    .await
    .map_err(|e| DvError::internal(format!("aggregate task failed: {e}")))?
    .and_then(|r| r)
    .map_err(sql_error)?;
    if source_rows > limit {
        return Err(errors::aggregate_limit());
    }
    let more = rows.len() > page_size;
    let rows = &rows[..rows.len().min(page_size)];
    let symbol = symbols.first().map(|(_, s)| s.as_str()).unwrap_or("$");
    let mut body = String::from("{\"@odata.context\":");
    write_json_str(&mut body, &format!("{}/$metadata#{}", ctx.api_root, table.set_name));
    if more && fetch.top.is_none() && ctx.prefer.wants("Microsoft.Dynamics.CRM.morerecords") {
        body.push_str(",\"@Microsoft.Dynamics.CRM.morerecords\":true");
    }
    body.push_str(",\"value\":[");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        write_row(&mut body, &outs, row, ann, symbol);
    }
    body.push_str("]}");
    let mut resp = json_response(StatusCode::OK, body);
    applied_preferences(ctx, &mut resp, None);
    Ok(resp)
}

fn group_thousands(i: i64) -> String {
    let digits = i.unsigned_abs().to_string();
    let mut out = String::new();
    for (n, ch) in digits.chars().enumerate() {
        if n > 0 && (digits.len() - n).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if i < 0 { format!("-{out}") } else { out }
}

fn write_row(body: &mut String, outs: &[Out<'_>], row: &[Sql], ann: Annotations, symbol: &str) {
    body.push('{');
    let mut first = true;
    let mut field = |body: &mut String, key: &str, value: &dyn Fn(&mut String)| {
        if !first {
            body.push(',');
        }
        first = false;
        write_json_str(body, key);
        body.push(':');
        value(body);
    };
    let mut i = 0;
    for o in outs {
        let v = row[i].clone();
        i += 1;
        let (target, name) = if o.kind == OutKind::Group && o.column.kind.is_lookup() {
            i += 2;
            let text = |x: &Sql| match x {
                Sql::Text(t) => Some(t.clone()),
                _ => None,
            };
            (text(&row[i - 2]).or_else(|| o.column.targets.first().cloned()), text(&row[i - 1]))
        } else {
            (None, None)
        };
        if matches!(v, Sql::Null) {
            continue;
        }
        // The stored form of the value (averages of money / decimal come back as reals).
        let value = match (o.kind, &v, storage_scale(o.column)) {
            (OutKind::Agg(AggregateFn::Avg), Sql::Real(f), Some(_)) => Sql::Integer(f.round() as i64),
            _ => v,
        };
        let fmt = match o.kind {
            OutKind::Agg(AggregateFn::Count | AggregateFn::CountColumn) | OutKind::DatePart => match &value {
                Sql::Integer(n) => Some(group_thousands(*n)),
                _ => None,
            },
            _ if o.column.kind.is_lookup() => name.clone(),
            _ => formatted(o.column, &value, symbol),
        };
        if ann.lookup_logical_name
            && let Some(t) = &target
        {
            field(body, &format!("{}@Microsoft.Dynamics.CRM.lookuplogicalname", o.key), &|b| write_json_str(b, t));
        }
        if ann.formatted
            && let Some(f) = &fmt
        {
            field(body, &format!("{}@{FORMATTED}", o.key), &|b| write_json_str(b, f));
        }
        match o.kind {
            OutKind::Group => field(body, &o.key, &|b| write_json(b, o.column, &value)),
            _ => match (&value, o.kind) {
                (Sql::Integer(n), OutKind::Agg(AggregateFn::Count | AggregateFn::CountColumn) | OutKind::DatePart) => {
                    field(body, &o.key, &|b| b.push_str(&n.to_string()))
                }
                _ => field(body, &o.key, &|b| write_json(b, o.column, &value)),
            },
        }
    }
    body.push('}');
}
