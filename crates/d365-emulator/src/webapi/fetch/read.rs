//! Plain (non-aggregate) FetchXML queries: columns, ordering, `distinct`, `top`, and paging.
//!
//! Paging follows the documented models. With a `paging-cookie` for the previous page the
//! next page resumes after the cookie's `last` values (keyset paging on the ordering columns
//! plus the primary key, so no row is lost or repeated while rows change). Without one (or
//! when the cookie is for another page) it is simple paging by offset. Queries whose order
//! or joins make the root key ambiguous (ordering by a linked column, one-to-many joins,
//! `distinct`) return no paging cookie, as the documentation says some queries do.

use super::MAX_ROWS;
use super::errors;
use super::plan::{Output, Plan, outputs};
use crate::schema::{Column, Table};
use crate::store::codec::{formatted, write_json, write_json_str};
use crate::store::ddl::q;
use crate::webapi::Ctx;
use crate::webapi::error::{DvError, DvResult};
use crate::webapi::json_response;
use crate::webapi::paging::Cookie;
use crate::webapi::query::{
    COUNT_CAP, Order, applied_preferences, boundary_value, currency_symbols, keyset_condition, page_boundaries,
    per_row_latency, sql_error, sql_limit,
};
use crate::webapi::rows::{Annotations, lookup_name_sql};
use axum::http::StatusCode;
use axum::response::Response;
use d365_odata::fetchxml::Fetch;
use rusqlite::types::Value as Sql;

const FORMATTED: &str = "OData.Community.Display.V1.FormattedValue";
const COOKIE: &str = "Microsoft.Dynamics.CRM.fetchxmlpagingcookie";
const MORE: &str = "Microsoft.Dynamics.CRM.morerecords";

/// One `ORDER BY` key.
struct SortKey<'s> {
    sql: String,
    column: &'s Column,
    desc: bool,
    root: bool,
}

/// Whether `$count=true` was asked for (other values are refused).
pub fn want_count(ctx: &Ctx) -> DvResult<bool> {
    match ctx.query.get("$count") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(DvError::bad_query(format!("'{v}' is not a valid count option."))),
    }
}

fn sort_keys<'s>(fetch: &Fetch, plan: &Plan<'s>, outs: &[Output<'s>]) -> DvResult<Vec<SortKey<'s>>> {
    let mut keys: Vec<SortKey<'s>> = Vec::new();
    let mut add = |sql: String, column: &'s Column, desc: bool, root: bool| {
        if !keys.iter().any(|k| k.sql == sql) {
            keys.push(SortKey { sql, column, desc, root });
        }
    };
    let orders = std::iter::once((0usize, &fetch.entity.node.orders))
        .chain(plan.scopes.iter().enumerate().skip(1).filter_map(|(i, s)| s.node.map(|n| (i, &n.orders))));
    for (scope, list) in orders {
        for o in list {
            match (&o.attribute, &o.alias) {
                (Some(a), _) => {
                    let s = match &o.entityname {
                        Some(e) => plan.scope_by_alias(e)?,
                        None => &plan.scopes[scope],
                    };
                    let c = s.table.column(a).ok_or_else(|| errors::no_attribute(&s.table.logical_name, a))?;
                    add(format!("{}.{}", s.sql, q(&c.logical_name)), c, o.descending, s.sql == "t");
                }
                (None, Some(alias)) => {
                    let out = outs.iter().find(|x| x.key == *alias).ok_or_else(|| errors::no_alias(alias))?;
                    add(
                        format!("{}.{}", out.sql, q(&out.column.logical_name)),
                        out.column,
                        o.descending,
                        out.sql == "t",
                    );
                }
                (None, None) => {}
            }
        }
    }
    Ok(keys)
}

/// Runs a plain query.
pub async fn run(ctx: &Ctx, table: &Table, fetch: &Fetch, plan: Plan<'_>) -> DvResult<Response> {
    let ann = Annotations::from_prefer(&ctx.prefer);
    let outs = outputs(&plan, &fetch.entity.node, fetch.distinct)?;
    let mut keys = sort_keys(fetch, &plan, &outs)?;
    let cookie_able = !fetch.distinct && !plan.multiplying && keys.iter().all(|k| k.root);
    if fetch.distinct {
        for o in &outs {
            let sql = format!("{}.{}", o.sql, q(&o.column.logical_name));
            if !keys.iter().any(|k| k.sql == sql) {
                keys.push(SortKey { sql, column: o.column, desc: false, root: o.sql == "t" });
            }
        }
    } else {
        let pk = table.primary_id_column();
        if !keys.iter().any(|k| k.root && k.column.is_primary_id) {
            keys.push(SortKey { sql: format!("t.{}", q(&pk.logical_name)), column: pk, desc: false, root: true });
        }
        // Each root row appears once unless a link multiplies it: then the linked keys make
        // the order total for paging by page number. (A paging cookie holds root keys only.)
        for s in plan.scopes[1..].iter().filter(|_| !cookie_able) {
            let pk = s.table.primary_id_column();
            keys.push(SortKey {
                sql: format!("{}.{}", s.sql, q(&pk.logical_name)),
                column: pk,
                desc: false,
                root: false,
            });
        }
    }
    let (limit, page) = match fetch.top {
        Some(top) => (top as usize, 1),
        None => (fetch.count.unwrap_or(MAX_ROWS).min(MAX_ROWS) as usize, fetch.page.unwrap_or(1)),
    };
    let paged = fetch.top.is_none();
    // Keyset resume from the previous page's cookie; offset paging otherwise.
    let root_order: Vec<Order<'_>> = keys.iter().map(|k| Order { column: k.column, desc: k.desc }).collect();
    let cookie = fetch
        .paging_cookie
        .as_deref()
        .filter(|_| cookie_able && paged && page > 1)
        .and_then(|c| Cookie::from_fetch_paging_cookie(page, c))
        .filter(|c| {
            c.boundaries.len() == keys.len()
                && c.boundaries.iter().zip(&keys).all(|(b, k)| b.column == k.column.logical_name)
        });
    let mut params = plan.join_params.clone();
    params.extend(plan.where_params.iter().cloned());
    let count_params = params.clone();
    let mut conds = plan.conds.clone();
    if let Some(c) = &cookie {
        let values = c
            .boundaries
            .iter()
            .zip(&keys)
            .map(|(b, k)| boundary_value(k.column, &b.last))
            .collect::<DvResult<Vec<_>>>()
            .map_err(|_| errors::invalid("The paging-cookie does not match this query."))?;
        conds.push(keyset_condition("t", &root_order, &values, &mut params));
    }
    let where_sql =
        |conds: &[String]| if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
    let schema = ctx.schema.clone();
    let mut cols: Vec<String> = Vec::new();
    if !fetch.distinct {
        cols.push("t.\"versionnumber\"".into());
    }
    for o in &outs {
        cols.push(format!("{}.{}", o.sql, q(&o.column.logical_name)));
        if o.column.kind.is_lookup() {
            if o.column.is_polymorphic() {
                cols.push(format!("{}.{}", o.sql, q(&format!("{}_type", o.column.logical_name))));
            }
            if ann.formatted {
                cols.push(lookup_name_sql(&schema, o.column, &o.sql));
            }
        }
    }
    let order_start = cols.len();
    if cookie_able {
        cols.extend(keys.iter().map(|k| k.sql.clone()));
    }
    let order_by: Vec<String> =
        keys.iter().map(|k| format!("{}{}", k.sql, if k.desc { " DESC" } else { "" })).collect();
    let offset = if cookie.is_some() || !paged { 0 } else { (page as usize - 1) * limit };
    let from = format!("FROM {} t{}", q(&table.logical_name), plan.joins);
    let distinct = if fetch.distinct { "DISTINCT " } else { "" };
    let sql = format!(
        "SELECT {distinct}{} {from}{} ORDER BY {} LIMIT {} OFFSET {offset}",
        cols.join(", "),
        where_sql(&conds),
        order_by.join(", "),
        sql_limit(limit)
    );
    let want_count = want_count(ctx)?;
    let count_sql = (want_count || fetch.return_total_record_count).then(|| {
        let inner = if fetch.distinct { format!("DISTINCT {}", cols.join(", ")) } else { "1".into() };
        format!("SELECT count(*) FROM (SELECT {inner} {from}{} LIMIT {})", where_sql(&plan.conds), COUNT_CAP + 1)
    });
    let state = ctx.state.clone();
    let ncols = cols.len();
    let (rows, count, symbols) = tokio::task::spawn_blocking(move || {
        state.store.with_conn(|c| -> rusqlite::Result<_> {
            let rows = crate::webapi::query::select_rows(c, &sql, &params, ncols)?;
            let count = match count_sql {
                Some(s) => {
                    Some(c.query_row(&s, rusqlite::params_from_iter(count_params.iter()), |r| r.get::<_, i64>(0))?)
                }
                None => None,
            };
            Ok((rows, count, currency_symbols(c)?))
        })
    })
    .await
    .map_err(|e| DvError::internal(format!("query task failed: {e}")))?
    .and_then(|r| r)
    .map_err(sql_error)?;

    let more = rows.len() > limit;
    let rows = &rows[..rows.len().min(limit)];
    let mut body = String::with_capacity(rows.len() * 600 + 256);
    body.push_str("{\"@odata.context\":");
    let root_keys: Vec<&str> = outs.iter().filter(|o| o.sql == "t").map(|o| o.key.as_str()).collect();
    write_json_str(&mut body, &format!("{}/$metadata#{}({})", ctx.api_root, table.set_name, root_keys.join(",")));
    if let Some(n) = count {
        if want_count {
            body.push_str(&format!(",\"@odata.count\":{}", n.min(COUNT_CAP)));
        }
        if ctx.prefer.wants("Microsoft.Dynamics.CRM.totalrecordcount") {
            body.push_str(&format!(",\"@Microsoft.Dynamics.CRM.totalrecordcount\":{}", n.min(COUNT_CAP)));
        }
        if ctx.prefer.wants("Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded") {
            body.push_str(&format!(",\"@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded\":{}", n > COUNT_CAP));
        }
    }
    if more && paged {
        if cookie_able
            && ctx.prefer.wants(COOKIE)
            && let (Some(first), Some(last)) = (rows.first(), rows.last())
        {
            let next = Cookie {
                page_number: page + 1,
                boundaries: page_boundaries(keys.iter().map(|k| k.column), first, last, order_start),
                tracking: None,
            };
            body.push_str(&format!(",\"@{COOKIE}\":"));
            write_json_str(&mut body, &next.to_fetchxml_annotation());
        }
        if ctx.prefer.wants(MORE) {
            body.push_str(&format!(",\"@{MORE}\":true"));
        }
    }
    body.push_str(",\"value\":[");
    let default_symbol = symbols.first().map(|(_, s)| s.as_str()).unwrap_or("$");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        write_row(&mut body, &outs, row, !fetch.distinct, ann, &symbols, default_symbol);
    }
    body.push_str("]}");
    per_row_latency(ctx, rows.len()).await;
    let mut resp = json_response(StatusCode::OK, body);
    applied_preferences(ctx, &mut resp, None);
    Ok(resp)
}

/// Writes one row: `@odata.etag`, then each non-null output with its annotations.
fn write_row(
    out: &mut String,
    outs: &[Output<'_>],
    row: &[Sql],
    etag: bool,
    ann: Annotations,
    symbols: &[(String, String)],
    default_symbol: &str,
) {
    out.push('{');
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !first {
            out.push(',');
        }
        first = false;
    };
    let mut i = 0;
    if etag {
        if let Sql::Integer(v) = &row[0] {
            sep(out);
            out.push_str(&format!("\"@odata.etag\":\"W/\\\"{v}\\\"\""));
        }
        i = 1;
    }
    // The root row's currency, for money values.
    let symbol = outs
        .iter()
        .zip(value_positions(outs, etag, ann))
        .find(|(o, _)| o.sql == "t" && o.column.logical_name == "transactioncurrencyid")
        .and_then(|(_, p)| match &row[p] {
            Sql::Text(id) => symbols.iter().find(|(k, _)| k == id).map(|(_, s)| s.as_str()),
            _ => None,
        })
        .unwrap_or(default_symbol);
    for o in outs {
        let v = &row[i];
        i += 1;
        let key = &o.key;
        if o.column.kind.is_lookup() {
            let target = if o.column.is_polymorphic() {
                let t = match &row[i] {
                    Sql::Text(t) => Some(t.clone()),
                    _ => None,
                };
                i += 1;
                t
            } else {
                o.column.targets.first().cloned()
            };
            let name = if ann.formatted {
                i += 1;
                match &row[i - 1] {
                    Sql::Text(t) => Some(t.clone()),
                    _ => None,
                }
            } else {
                None
            };
            if matches!(v, Sql::Null) {
                continue;
            }
            if ann.associated_nav
                && let Some(t) = &target
                && let Some(nav) = o.column.lookup_navs.iter().find(|n| &n.target == t)
            {
                annotation(out, &mut sep, key, "Microsoft.Dynamics.CRM.associatednavigationproperty", &nav.nav);
            }
            if ann.lookup_logical_name
                && let Some(t) = &target
            {
                annotation(out, &mut sep, key, "Microsoft.Dynamics.CRM.lookuplogicalname", t);
            }
            if let Some(n) = name {
                annotation(out, &mut sep, key, FORMATTED, &n);
            }
        } else {
            if matches!(v, Sql::Null) {
                continue;
            }
            if ann.formatted
                && let Some(f) = formatted(o.column, v, symbol)
            {
                annotation(out, &mut sep, key, FORMATTED, &f);
            }
        }
        sep(out);
        write_json_str(out, key);
        out.push(':');
        write_json(out, o.column, v);
    }
    out.push('}');
}

fn annotation(out: &mut String, sep: &mut impl FnMut(&mut String), key: &str, term: &str, value: &str) {
    sep(out);
    write_json_str(out, &format!("{key}@{term}"));
    out.push(':');
    write_json_str(out, value);
}

/// The row position of each output's value.
fn value_positions(outs: &[Output<'_>], etag: bool, ann: Annotations) -> Vec<usize> {
    let mut i = usize::from(etag);
    outs.iter()
        .map(|o| {
            let p = i;
            i += 1;
            if o.column.kind.is_lookup() {
                i += usize::from(o.column.is_polymorphic()) + usize::from(ann.formatted);
            }
            p
        })
        .collect()
}
