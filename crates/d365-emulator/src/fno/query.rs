//! Reading collections: `GET /data/{Set}` with `$filter`, `$select`, `$orderby`, `$top`,
//! `$skip`, `$count`, `$expand` (one level) and `cross-company`, and `GET /data/{Set}/$count`.
//! Everything runs in SQLite; rows come back in pages of at most [`PAGE_SIZE`] (server-driven
//! paging; `Prefer: odata.maxpagesize` is ignored: whether the real service honours it is
//! unconfirmed), the next link being the same URL with `$skip` advanced (and `$top` reduced
//! when the client gave one). Offsets, as on the real service: rows inserted or deleted while
//! a client pages can shift what later pages hold. Without `$orderby` rows come in key order.

use super::error::{FnoError, FnoResult};
use super::model::{Entity, Field, NAMESPACE, Navigation, entity};
use super::{Ctx, json_response};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rusqlite::types::Value as Sql;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Most rows one page holds.
pub const PAGE_SIZE: u64 = 10_000;

/// System query options the service knows.
const KNOWN: &[&str] = &["$filter", "$select", "$orderby", "$top", "$skip", "$count", "$expand", "$format"];

/// One level of `$expand`.
#[derive(Debug, Clone)]
pub struct Expand {
    /// The navigation property.
    pub nav: &'static Navigation,
    /// The related entity.
    pub target: &'static Entity,
    /// Nested `$select`.
    pub select: Option<Vec<&'static Field>>,
    /// Nested `$filter` as SQL with its parameters.
    pub filter: Option<(String, Vec<Sql>)>,
    /// Nested `$orderby`.
    pub orderby: Vec<(&'static Field, bool)>,
    /// Nested `$top` (per parent).
    pub top: Option<u64>,
}

/// The query options of a read.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `$filter` as SQL with its parameters.
    pub filter: Option<(String, Vec<Sql>)>,
    /// `$select`.
    pub select: Option<Vec<&'static Field>>,
    /// `$orderby`: (property, descending).
    pub orderby: Vec<(&'static Field, bool)>,
    /// `$top`.
    pub top: Option<u64>,
    /// `$skip`.
    pub skip: u64,
    /// `$count=true`.
    pub count: bool,
    /// `$expand`.
    pub expand: Vec<Expand>,
}

fn no_property(name: &str, e: &Entity) -> FnoError {
    FnoError::bad_request(format!("Could not find a property named '{name}' on type '{NAMESPACE}.{}'.", e.name))
}

/// The properties `$select` names; a navigation property named there (to go with its
/// `$expand`) selects nothing more.
fn select_of(items: &[String], e: &Entity) -> FnoResult<Vec<&'static Field>> {
    items
        .iter()
        .filter(|n| e.navigation(n.trim()).is_none())
        .map(|n| e.field(n.trim()).ok_or_else(|| no_property(n, e)))
        .collect()
}

fn orderby_of(items: &[d365_odata::OrderByItem], e: &Entity) -> FnoResult<Vec<(&'static Field, bool)>> {
    items
        .iter()
        .map(|i| Ok((super::filter::field_of(&i.expr, e)?, i.direction == d365_odata::Direction::Desc)))
        .collect()
}

fn odata_error(e: d365_odata::ParseError) -> FnoError {
    FnoError::bad_request(format!("The query specified in the URI is not valid. {e}"))
}

fn whole_number(name: &str, v: &str) -> FnoResult<u64> {
    d365_odata::parse_top(v).map_err(|_| {
        FnoError::bad_request(format!(
            "Invalid value '{v}' for {name} query option found. The {name} query option requires a non-negative integer value."
        ))
    })
}

impl Options {
    /// Reads and checks the query options of `ctx` for `entity`.
    pub fn parse(ctx: &Ctx, e: &'static Entity) -> FnoResult<Self> {
        for (i, (k, _)) in ctx.query.iter().enumerate() {
            if !k.starts_with('$') {
                continue;
            }
            if !KNOWN.contains(&k.as_str()) {
                return Err(FnoError::bad_request(format!("The query parameter '{k}' is not supported.")));
            }
            if ctx.query[..i].iter().any(|(p, _)| p == k) {
                return Err(FnoError::bad_request(format!(
                    "Query option '{k}' was specified more than once, but it must be specified at most once."
                )));
            }
        }
        if let Some(f) = ctx.param("$format") {
            let t = f.trim().to_ascii_lowercase();
            if !(t == "json" || t.starts_with("application/json")) {
                return Err(FnoError::bad_request(format!("The format '{f}' is not supported: use json.")));
            }
        }
        if let Some(v) = ctx.param("cross-company")
            && !matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "false")
        {
            return Err(FnoError::bad_request(format!(
                "'{v}' is not a valid value of cross-company: use true or false."
            )));
        }
        let mut o = Options::default();
        if let Some(f) = ctx.param("$filter") {
            let mut params = Vec::new();
            o.filter = Some((super::filter::translate(f, e, &mut params)?, params));
        }
        if let Some(s) = ctx.param("$select") {
            let items = d365_odata::parse_select(s).map_err(odata_error)?;
            o.select = Some(select_of(&items, e)?);
        }
        if let Some(s) = ctx.param("$orderby") {
            o.orderby =
                orderby_of(&d365_odata::parse_orderby(s, &d365_odata::Aliases::new()).map_err(odata_error)?, e)?;
        }
        if let Some(t) = ctx.param("$top") {
            o.top = Some(whole_number("$top", t)?);
        }
        if let Some(s) = ctx.param("$skip") {
            o.skip = whole_number("$skip", s)?;
        }
        if let Some(c) = ctx.param("$count") {
            o.count = d365_odata::parse_count(c).map_err(odata_error)?;
        }
        if let Some(x) = ctx.param("$expand") {
            for item in d365_odata::parse_expand(x).map_err(odata_error)? {
                o.expand.push(expand_of(&item, e)?);
            }
        }
        Ok(o)
    }
}

fn expand_of(item: &d365_odata::ExpandItem, e: &Entity) -> FnoResult<Expand> {
    let nav = e.navigation(&item.navigation).ok_or_else(|| {
        FnoError::bad_request(format!(
            "Could not find a navigation property named '{}' on type '{NAMESPACE}.{}'.",
            item.navigation, e.name
        ))
    })?;
    let target = entity(nav.target).ok_or_else(|| FnoError::internal("navigation target missing"))?;
    if item.is_ref {
        return Err(FnoError::bad_request("$ref is not supported in $expand."));
    }
    let o = &item.options;
    if o.expand.is_some() {
        return Err(FnoError::bad_request(
            "The query specified in the URI is not valid. $expand is supported for the first level only.",
        ));
    }
    let filter = match &o.filter {
        Some(f) => {
            let mut params = Vec::new();
            Some((super::filter::condition_of(f, target, &mut params)?, params))
        }
        None => None,
    };
    Ok(Expand {
        nav,
        target,
        select: o.select.as_deref().map(|s| select_of(s, target)).transpose()?,
        filter,
        orderby: o.orderby.as_deref().map(|v| orderby_of(v, target)).transpose()?.unwrap_or_default(),
        top: o.top,
    })
}

/// `SELECT` list of every column of `e` plus RecId and RecVersion.
pub fn columns(e: &Entity) -> String {
    let mut c: Vec<String> = e.fields.iter().map(|f| format!("\"{}\"", f.name)).collect();
    c.push("RecId".into());
    c.push("RecVersion".into());
    c.join(", ")
}

/// `ORDER BY` of `orderby` then the keys (a total order, so pages do not overlap).
fn order_sql(e: &Entity, orderby: &[(&'static Field, bool)]) -> String {
    let mut items: Vec<String> =
        orderby.iter().map(|(f, desc)| format!("\"{}\" {}", f.name, if *desc { "DESC" } else { "ASC" })).collect();
    items.extend(e.keys.iter().filter(|k| !orderby.iter().any(|(f, _)| f.name == **k)).map(|k| format!("\"{k}\"")));
    items.join(", ")
}

/// Reads all columns of the rows `sql` selects.
pub fn read_rows(conn: &rusqlite::Connection, e: &Entity, sql: &str, params: &[Sql]) -> FnoResult<Vec<Vec<Sql>>> {
    let n = e.fields.len() + 2;
    let mut stmt = conn.prepare_cached(sql).map_err(super::sql_error)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |r| (0..n).map(|i| r.get::<_, Sql>(i)).collect())
        .map_err(super::sql_error)?;
    rows.collect::<Result<Vec<Vec<Sql>>, _>>().map_err(super::sql_error)
}

fn int(v: Option<&Sql>) -> i64 {
    match v {
        Some(Sql::Integer(i)) => *i,
        _ => 0,
    }
}

/// The ETag of a row read by [`read_rows`].
pub fn row_etag(e: &Entity, row: &[Sql]) -> String {
    super::values::etag(int(row.get(e.fields.len() + 1)), int(row.get(e.fields.len())))
}

/// A record as JSON: `@odata.etag`, then the (selected) properties in the entity's order.
pub fn record_json(e: &Entity, row: &[Sql], select: Option<&[&'static Field]>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("@odata.etag".into(), Value::String(row_etag(e, row)));
    for (i, f) in e.fields.iter().enumerate() {
        if select.is_none_or(|s| s.iter().any(|x| x.name == f.name)) {
            super::values::put_json(&mut m, f, row.get(i).unwrap_or(&Sql::Null));
        }
    }
    m
}

/// The WHERE clause of a read of `e`: company scope and `$filter`.
pub fn where_sql(ctx: &Ctx, e: &Entity, filter: Option<&(String, Vec<Sql>)>) -> (String, Vec<Sql>) {
    let mut conds = Vec::new();
    let mut params = Vec::new();
    if e.company && !ctx.cross_company() {
        conds.push("\"dataAreaId\" = ?".to_string());
        params.push(Sql::Text(ctx.caller.company().to_string()));
    }
    if let Some((sql, p)) = filter {
        conds.push(sql.clone());
        params.extend(p.iter().cloned());
    }
    if conds.is_empty() { (String::new(), params) } else { (format!(" WHERE {}", conds.join(" AND ")), params) }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Adds the expanded navigation properties to `records` (built from `rows`).
pub fn expand_into(
    conn: &rusqlite::Connection,
    e: &Entity,
    rows: &[Vec<Sql>],
    records: &mut [Map<String, Value>],
    expands: &[Expand],
) -> FnoResult<()> {
    for x in expands {
        let here: Vec<usize> =
            x.nav.constraints.iter().filter_map(|(a, _)| e.fields.iter().position(|f| f.name == *a)).collect();
        let there: Vec<usize> =
            x.nav.constraints.iter().filter_map(|(_, b)| x.target.fields.iter().position(|f| f.name == *b)).collect();
        let group_key = |row: &[Sql], idx: &[usize]| -> String {
            idx.iter()
                .map(|i| match row.get(*i) {
                    Some(Sql::Text(s)) => s.to_lowercase(),
                    Some(v) => format!("{v:?}"),
                    None => String::new(),
                })
                .collect::<Vec<_>>()
                .join("\u{1}")
        };
        let mut found: HashMap<String, Vec<Vec<Sql>>> = HashMap::new();
        let cols: Vec<String> = x.nav.constraints.iter().map(|(_, b)| format!("\"{b}\"")).collect();
        for chunk in rows.chunks(400) {
            let tuple = format!("({})", vec!["?"; cols.len()].join(", "));
            let mut params: Vec<Sql> = Vec::new();
            for r in chunk {
                params.extend(here.iter().map(|i| r.get(*i).cloned().unwrap_or(Sql::Null)));
            }
            let mut sql = format!(
                "SELECT {} FROM \"{}\" WHERE ({}) IN (VALUES {})",
                columns(x.target),
                x.target.table(),
                cols.join(", "),
                vec![tuple; chunk.len()].join(", ")
            );
            if let Some((f, p)) = &x.filter {
                sql.push_str(&format!(" AND {f}"));
                params.extend(p.iter().cloned());
            }
            sql.push_str(&format!(" ORDER BY {}", order_sql(x.target, &x.orderby)));
            for row in read_rows(conn, x.target, &sql, &params)? {
                found.entry(group_key(&row, &there)).or_default().push(row);
            }
        }
        for (row, rec) in rows.iter().zip(records.iter_mut()) {
            let related = found.get(&group_key(row, &here)).map(Vec::as_slice).unwrap_or_default();
            let take = x.top.map_or(related.len(), |t| related.len().min(usize::try_from(t).unwrap_or(usize::MAX)));
            let items: Vec<Value> =
                related[..take].iter().map(|r| Value::Object(record_json(x.target, r, x.select.as_deref()))).collect();
            let v = if x.nav.many { Value::Array(items) } else { items.into_iter().next().unwrap_or(Value::Null) };
            rec.insert(x.nav.name.to_string(), v);
        }
    }
    Ok(())
}

/// The `@odata.context` of a collection read.
fn context(ctx: &Ctx, e: &Entity, o: &Options) -> String {
    let mut items: Vec<String> = o.select.iter().flatten().map(|f| f.name.to_string()).collect();
    items.extend(o.expand.iter().map(|x| format!("{}()", x.nav.name)));
    let tail = if items.is_empty() { String::new() } else { format!("({})", items.join(",")) };
    format!("{}/$metadata#{}{tail}", ctx.data_root(), e.collection)
}

/// The next link: the request URL with `$skip` (and `$top`, when the client gave one) replaced.
fn next_link(ctx: &Ctx, e: &Entity, skip: u64, top: Option<u64>) -> String {
    let mut parts: Vec<String> = ctx
        .raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let key = p.split('=').next().unwrap_or("");
            let k = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
            k != "$skip" && k != "$top"
        })
        .map(str::to_string)
        .collect();
    parts.push(format!("$skip={skip}"));
    if let Some(t) = top {
        parts.push(format!("$top={t}"));
    }
    format!("{}/{}?{}", ctx.data_root(), e.collection, parts.join("&"))
}

/// `GET /data/{Set}`.
pub async fn collection(ctx: Ctx, e: &'static Entity) -> FnoResult<Response> {
    let o = Options::parse(&ctx, e)?;
    let (where_clause, params) = where_sql(&ctx, e, o.filter.as_ref());
    let wanted = o.top.unwrap_or(u64::MAX);
    let take = wanted.min(PAGE_SIZE);
    let more_possible = wanted > take;
    let sql = format!(
        "SELECT {} FROM \"{}\"{where_clause} ORDER BY {} LIMIT {} OFFSET {}",
        columns(e),
        e.table(),
        order_sql(e, &o.orderby),
        clamp(take + u64::from(more_possible)),
        clamp(o.skip)
    );
    let count_sql = o.count.then(|| format!("SELECT count(*) FROM \"{}\"{where_clause}", e.table()));
    let expands = o.expand.clone();
    let select = o.select.clone();
    let (more, total, records) = ctx
        .sql(move |conn| {
            let mut rows = read_rows(conn, e, &sql, &params)?;
            let more = rows.len() as u64 > take;
            rows.truncate(usize::try_from(take).unwrap_or(usize::MAX));
            let total: Option<i64> = match count_sql {
                Some(c) => Some(
                    conn.query_row(&c, rusqlite::params_from_iter(params.iter()), |r| r.get(0))
                        .map_err(super::sql_error)?,
                ),
                None => None,
            };
            let mut records: Vec<Map<String, Value>> =
                rows.iter().map(|r| record_json(e, r, select.as_deref())).collect();
            expand_into(conn, e, &rows, &mut records, &expands)?;
            Ok((more, total, records))
        })
        .await?;
    let per_row = ctx.state.options.latency_per_row * u32::try_from(records.len()).unwrap_or(u32::MAX);
    if !per_row.is_zero() {
        tokio::time::sleep(per_row).await;
    }
    let mut body = Map::new();
    body.insert("@odata.context".into(), Value::String(context(&ctx, e, &o)));
    if let Some(t) = total {
        body.insert("@odata.count".into(), Value::from(t));
    }
    body.insert("value".into(), Value::Array(records.into_iter().map(Value::Object).collect()));
    if more {
        let next_top = o.top.map(|t| t - take);
        body.insert("@odata.nextLink".into(), Value::String(next_link(&ctx, e, o.skip.saturating_add(take), next_top)));
    }
    Ok(json_response(StatusCode::OK, Value::Object(body).to_string()))
}

/// `GET /data/{Set}/$count`: the number of rows the filter selects, as text.
pub async fn count(ctx: Ctx, e: &'static Entity) -> FnoResult<Response> {
    let o = Options::parse(&ctx, e)?;
    let (where_clause, params) = where_sql(&ctx, e, o.filter.as_ref());
    let sql = format!("SELECT count(*) FROM \"{}\"{where_clause}", e.table());
    let n: i64 = ctx
        .sql(move |conn| {
            conn.query_row(&sql, rusqlite::params_from_iter(params.iter()), |r| r.get(0)).map_err(super::sql_error)
        })
        .await?;
    let mut r = (StatusCode::OK, n.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(r)
}
