//! Collection reads: `GET [API]/<set>?$select&$filter&$orderby&$top&$count&$expand`, paged
//! with `Prefer: odata.maxpagesize` and `$skiptoken` cookies, and `GET [API]/<set>/$count`.
//! Filters, ordering and paging run in SQLite with indexes.

use super::error::{DvError, DvResult};
use super::paging::{Boundary, Cookie, cookie_guid, encode_query_value, guid_from_cookie};
use super::rows::{Annotations, Projection};
use super::{Ctx, json_response};
use crate::schema::{Column, Table};
use crate::security::Access;
use crate::store::codec::sql_type;
use crate::store::ddl::q;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rusqlite::types::Value as Sql;

/// Every row of `sql` as `ncols` SQL values (the statement is cached on the connection).
pub fn select_rows(
    c: &rusqlite::Connection,
    sql: &str,
    params: &[Sql],
    ncols: usize,
) -> rusqlite::Result<Vec<Vec<Sql>>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows =
        stmt.query_map(rusqlite::params_from_iter(params.iter()), |r| (0..ncols).map(|i| r.get::<_, Sql>(i)).collect());
    rows?.collect()
}

/// Default and largest page size.
pub const MAX_PAGE: usize = 5000;

/// The `LIMIT` of a page query that returns `rows` rows: one more, to learn whether more
/// follow, and never under 16. SQLite (3.54) plans `ORDER BY x DESC, <key> LIMIT 2` over an
/// indexed `x` as a scan and sort of the whole table (0.8 s over a million accounts, against
/// 0.2 ms through the index for `LIMIT 3` or more); the rows past `rows + 1` are dropped.
pub fn sql_limit(rows: usize) -> usize {
    (rows + 1).max(16)
}

/// Cap of `@odata.count`.
pub const COUNT_CAP: i64 = 5000;

/// The table behind an entity set name, or the 404 Dataverse gives.
pub fn table_for<'a>(ctx: &'a Ctx, set: &str) -> DvResult<&'a Table> {
    ctx.schema.table_by_set(set).ok_or_else(|| DvError::segment_not_found(set))
}

/// One `$orderby` item.
#[derive(Debug, Clone)]
pub struct Order<'a> {
    /// The column.
    pub column: &'a Column,
    /// Descending.
    pub desc: bool,
}

/// Parses `$orderby` into columns of `table`; the primary key is appended as the last tie-breaker.
pub fn parse_orderby<'a>(
    table: &'a Table,
    text: Option<&str>,
    aliases: &[(String, String)],
) -> DvResult<Vec<Order<'a>>> {
    let mut out: Vec<Order<'a>> = Vec::new();
    if let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) {
        for item in text.split(',') {
            let mut words = item.split_whitespace();
            let mut prop = words
                .next()
                .ok_or_else(|| DvError::bad_query(format!("Syntax error in $orderby '{text}'.")))?
                .to_string();
            if prop.starts_with('@') {
                prop = aliases.iter().find(|(k, _)| *k == prop).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
            }
            let desc = match words.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => {
                    return Err(DvError::bad_query(format!("Syntax error: '{other}' in $orderby '{text}'.")));
                }
            };
            if words.next().is_some() {
                return Err(DvError::bad_query(format!("Syntax error in $orderby '{text}'.")));
            }
            if prop.contains('/') {
                return Err(DvError::bad_query(format!(
                    "Ordering by related table column '{prop}' is not supported in $orderby; use FetchXML."
                )));
            }
            let column =
                table.column_by_property(&prop).ok_or_else(|| DvError::unknown_property(&prop, &table.logical_name))?;
            if !out.iter().any(|o| o.column.logical_name == column.logical_name) {
                out.push(Order { column, desc });
            }
        }
    }
    if !out.iter().any(|o| o.column.is_primary_id) {
        out.push(Order { column: table.primary_id_column(), desc: false });
    }
    Ok(out)
}

/// Reads a cookie boundary back into the SQL value of `column`.
pub(super) fn boundary_value(column: &Column, v: &Option<String>) -> DvResult<Sql> {
    let bad = || {
        DvError::bad_query("The $skiptoken paging cookie does not match this query. Follow @odata.nextLink unchanged.")
    };
    Ok(match v {
        None => Sql::Null,
        Some(v) if column.is_primary_id || column.kind.is_lookup() => Sql::Text(guid_from_cookie(v)),
        Some(v) => match sql_type(column) {
            "INTEGER" => Sql::Integer(v.parse().map_err(|_| bad())?),
            "REAL" => Sql::Real(v.parse().map_err(|_| bad())?),
            _ => Sql::Text(v.clone()),
        },
    })
}

pub(super) fn boundary_text(column: &Column, v: &Sql) -> Option<String> {
    match v {
        Sql::Null => None,
        Sql::Integer(i) => Some(i.to_string()),
        Sql::Real(f) => Some(format!("{f:?}")),
        Sql::Text(t) if column.is_primary_id || column.kind.is_lookup() => Some(cookie_guid(t)),
        Sql::Text(t) => Some(t.clone()),
        Sql::Blob(_) => None,
    }
}

/// The paging-cookie boundaries of a page: the values of the ordering `columns` in its first
/// and last rows, where they start at index `start`.
pub(super) fn page_boundaries<'c>(
    columns: impl IntoIterator<Item = &'c Column>,
    first: &[Sql],
    last: &[Sql],
    start: usize,
) -> Vec<Boundary> {
    columns
        .into_iter()
        .enumerate()
        .map(|(i, column)| Boundary {
            column: column.logical_name.clone(),
            last: boundary_text(column, &last[start + i]),
            first: boundary_text(column, &first[start + i]),
        })
        .collect()
}

/// The keyset condition "row comes after the boundary" for the ordering, with SQLite's NULL
/// order (first ascending, last descending).
pub fn keyset_condition(alias: &str, order: &[Order], values: &[Sql], params: &mut Vec<Sql>) -> String {
    let mut ors = Vec::new();
    for i in 0..order.len() {
        let mut ands = Vec::new();
        for (o, v) in order[..i].iter().zip(values) {
            let col = format!("{alias}.{}", q(&o.column.logical_name));
            if matches!(v, Sql::Null) {
                ands.push(format!("{col} IS NULL"));
            } else {
                params.push(v.clone());
                ands.push(format!("{col} = ?"));
            }
        }
        let o = &order[i];
        let col = format!("{alias}.{}", q(&o.column.logical_name));
        let after = match (&values[i], o.desc) {
            (Sql::Null, false) => Some(format!("{col} IS NOT NULL")),
            (Sql::Null, true) => None,
            (v, false) => {
                params.push(v.clone());
                Some(format!("{col} > ?"))
            }
            (v, true) => {
                params.push(v.clone());
                Some(format!("({col} < ? OR {col} IS NULL)"))
            }
        };
        if let Some(a) = after {
            ands.push(a);
            ors.push(format!("({})", ands.join(" AND ")));
        }
    }
    if ors.is_empty() { "0".into() } else { format!("({})", ors.join(" OR ")) }
}

fn order_sql(alias: &str, order: &[Order]) -> String {
    order
        .iter()
        .map(|o| format!("{alias}.{}{}", q(&o.column.logical_name), if o.desc { " DESC" } else { "" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$top` as a number.
pub fn parse_top(text: Option<&str>) -> DvResult<Option<usize>> {
    text.map(|t| {
        t.trim().parse::<usize>().map_err(|_| DvError::bad_query(format!("Invalid value '{t}' for $top query option found. The $top query option requires a non-negative integer value.")))
    })
    .transpose()
}

/// Translates `$filter` (if any) to SQL over alias `t`.
pub fn where_clause(ctx: &Ctx, table: &Table, params: &mut Vec<Sql>) -> DvResult<Option<String>> {
    match ctx.query.get("$filter").map(str::trim).filter(|f| !f.is_empty()) {
        None => Ok(None),
        Some(f) => super::filter_sql::translate(filter_env(ctx), table, "t", f, &ctx.query.aliases(), params).map(Some),
    }
}

/// The filter environment of a request.
pub fn filter_env(ctx: &Ctx) -> super::filter_sql::FilterEnv<'_> {
    super::filter_sql::FilterEnv { schema: &ctx.schema, caller: &ctx.caller, now: ctx.state.clock.now() }
}

/// Restricts a collection read to the rows related to one record (`accounts(<id>)/contact_customer_accounts`).
pub struct Scope {
    /// The lookup column of the listed table that points at the record.
    pub lookup: String,
    /// The record's id.
    pub parent_id: String,
    /// The resource path the client used (the base of next links).
    pub path: String,
}

/// `GET [API]/<set>`.
pub async fn collection(ctx: Ctx, set: &str) -> DvResult<Response> {
    collection_in(ctx, set, None).await
}

/// `GET [API]/<set>`, or a collection-valued navigation property of one record.
pub async fn collection_in(ctx: Ctx, set: &str, scope: Option<Scope>) -> DvResult<Response> {
    let table = table_for(&ctx, set)?;
    ctx.query.refuse_unsupported()?;
    ctx.caller.check(table, Access::Read)?;
    if ctx.query.get("$deltatoken").is_some() {
        return super::changes::delta(&ctx, table).await;
    }
    if ctx.query.get("$apply").is_some() {
        return super::apply::run(&ctx, table).await;
    }
    if ctx.query.get("fetchXml").is_some() {
        return super::fetch::run(&ctx, table).await;
    }
    let ann = Annotations::from_prefer(&ctx.prefer);
    let proj = Projection::new(table, ctx.query.get("$select"), ann)?;
    let aliases = ctx.query.aliases();
    let order = parse_orderby(table, ctx.query.get("$orderby"), &aliases)?;
    let top = parse_top(ctx.query.get("$top"))?;
    if ctx.prefer.max_page_size == Some(0) {
        return Err(DvError::bad_query("The odata.maxpagesize preference must be a positive integer."));
    }
    let page_pref = ctx.prefer.honoured_page_size();
    let page_size = page_pref.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    // With a maxpagesize preference Dataverse ignores $top.
    let limit = match (page_pref, top) {
        (None, Some(t)) => t.min(MAX_PAGE),
        _ => page_size,
    };
    let paged = !(page_pref.is_none() && top.is_some());
    let cookie = ctx.query.get("$skiptoken").map(Cookie::parse).transpose()?;
    // A change-tracking read: its delta token is the version when the read started.
    let tracking = match cookie.as_ref().and_then(|c| c.tracking) {
        Some(v) => Some(v),
        None if ctx.prefer.track_changes => Some(ctx.state.store.current_version()),
        None => None,
    };
    if tracking.is_some() {
        super::changes::check_request(&ctx, table)?;
    }
    let want_count = match ctx.query.get("$count") {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(DvError::bad_query(format!("'{v}' is not a valid count option."))),
    };
    let expand = super::expand::parse(&ctx, table, ctx.query.get("$expand"))?;

    let mut params = Vec::new();
    let mut filter = where_clause(&ctx, table, &mut params)?;
    if let Some(scope) = &scope {
        let cond = format!("t.{} = ?", q(&scope.lookup));
        params.push(Sql::Text(scope.parent_id.clone()));
        filter = Some(match filter {
            Some(f) => format!("{f} AND {cond}"),
            None => cond,
        });
    }
    let filter_params = params.clone();
    let mut conds: Vec<String> = filter.iter().cloned().collect();
    if let Some(c) = &cookie {
        if c.boundaries.len() != order.len()
            || c.boundaries.iter().zip(&order).any(|(b, o)| b.column != o.column.logical_name)
        {
            return Err(DvError::bad_query(
                "The $skiptoken paging cookie does not match this query's ordering. Follow @odata.nextLink unchanged.",
            ));
        }
        let values = c
            .boundaries
            .iter()
            .zip(&order)
            .map(|(b, o)| boundary_value(o.column, &b.last))
            .collect::<DvResult<Vec<_>>>()?;
        conds.push(keyset_condition("t", &order, &values, &mut params));
    }
    let where_sql = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
    let schema = ctx.schema.clone();
    let mut cols = proj.sql_columns(&schema, "t");
    let order_cols_start = cols.len();
    for o in &order {
        cols.push(format!("t.{}", q(&o.column.logical_name)));
    }
    let sql = format!(
        "SELECT {} FROM {} t{where_sql} ORDER BY {} LIMIT {}",
        cols.join(", "),
        q(&table.logical_name),
        order_sql("t", &order),
        sql_limit(limit)
    );
    let count_sql = want_count.then(|| {
        format!(
            "SELECT count(*) FROM (SELECT 1 FROM {} t{} LIMIT {})",
            q(&table.logical_name),
            filter.as_ref().map(|f| format!(" WHERE {f}")).unwrap_or_default(),
            COUNT_CAP + 1
        )
    });
    let state = ctx.state.clone();
    let ncols = cols.len();
    let (rows, count, symbols) = tokio::task::spawn_blocking(move || {
        state.store.with_conn(|c| -> rusqlite::Result<_> {
            let rows = select_rows(c, &sql, &params, ncols)?;
            let count = match count_sql {
                Some(s) => {
                    Some(c.query_row(&s, rusqlite::params_from_iter(filter_params.iter()), |r| r.get::<_, i64>(0))?)
                }
                None => None,
            };
            let symbols = currency_symbols(c)?;
            Ok((rows, count, symbols))
        })
    })
    .await
    .map_err(|e| DvError::internal(format!("query task failed: {e}")))?
    .and_then(|r| r)
    .map_err(sql_error)?;

    let more = rows.len() > limit;
    let rows = &rows[..rows.len().min(limit)];
    let expanded = super::expand::fetch(&ctx, table, &expand, rows, order_cols_start, &order).await?;
    let mut body = String::with_capacity(rows.len() * 600 + 256);
    body.push_str("{\"@odata.context\":");
    let list =
        if proj.explicit || !expand.is_empty() { format!("({})", context_list(&proj, &expand)) } else { String::new() };
    crate::store::codec::write_json_str(&mut body, &format!("{}/$metadata#{}{}", ctx.api_root, table.set_name, list));
    if let Some(n) = count {
        body.push_str(&format!(",\"@odata.count\":{}", n.min(COUNT_CAP)));
        if ctx.prefer.wants("Microsoft.Dynamics.CRM.totalrecordcount") {
            body.push_str(&format!(",\"@Microsoft.Dynamics.CRM.totalrecordcount\":{}", n.min(COUNT_CAP)));
        }
        if ctx.prefer.wants("Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded") {
            body.push_str(&format!(",\"@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded\":{}", n > COUNT_CAP));
        }
    } else if ctx.prefer.wants("Microsoft.Dynamics.CRM.totalrecordcount") {
        body.push_str(",\"@Microsoft.Dynamics.CRM.totalrecordcount\":-1,\"@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded\":false");
    }
    body.push_str(",\"value\":[");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let symbol = row_currency_symbol(table, &proj, row, &symbols);
        let mut obj = String::new();
        proj.write_row(&mut obj, &row[..order_cols_start], symbol, true);
        if let Some(extra) = expanded.get(i).filter(|e| !e.is_empty()) {
            obj.pop();
            obj.push(',');
            obj.push_str(extra);
            obj.push('}');
        }
        body.push_str(&obj);
    }
    body.push(']');
    if more && paged {
        let last = rows.last().expect("more implies a row");
        let first = rows.first().expect("more implies a row");
        let next = Cookie {
            page_number: cookie.as_ref().map(|c| c.page_number + 1).unwrap_or(2),
            boundaries: page_boundaries(order.iter().map(|o| o.column), first, last, order_cols_start),
            tracking,
        };
        let base = scope.as_ref().map(|s| s.path.as_str()).unwrap_or(&table.set_name);
        let link = format!("{}/{base}?{}", ctx.api_root, with_skiptoken(&ctx.raw_query, &next.to_xml()));
        body.push_str(",\"@odata.nextLink\":");
        crate::store::codec::write_json_str(&mut body, &link);
    } else if let Some(version) = tracking {
        body.push_str(",\"@odata.deltaLink\":");
        crate::store::codec::write_json_str(&mut body, &super::changes::delta_link(&ctx, table, version));
    }
    body.push('}');
    per_row_latency(&ctx, rows.len()).await;
    let mut resp = json_response(StatusCode::OK, body);
    applied_preferences(&ctx, &mut resp, page_pref.map(|_| page_size));
    if tracking.is_some() {
        super::changes::applied(&mut resp);
    }
    Ok(resp)
}

fn context_list(proj: &Projection, expand: &super::expand::Expands) -> String {
    let mut items: Vec<String> = Vec::new();
    let base = proj.context_list();
    if !base.is_empty() {
        items.push(base);
    }
    items.extend(expand.context_items());
    items.join(",")
}

/// Adds `Preference-Applied` for the preferences honoured.
pub fn applied_preferences(ctx: &Ctx, resp: &mut Response, page_size: Option<usize>) {
    let h = resp.headers_mut();
    if let Some(n) = page_size
        && let Ok(v) = HeaderValue::from_str(&format!("odata.maxpagesize={n}"))
    {
        h.append("Preference-Applied", v);
    }
    if let Some(raw) = &ctx.prefer.annotations_raw
        && let Ok(v) = HeaderValue::from_str(&format!("odata.include-annotations=\"{raw}\""))
    {
        h.append("Preference-Applied", v);
    }
}

/// Sleeps the configured per-row cost.
pub async fn per_row_latency(ctx: &Ctx, rows: usize) {
    let d = ctx.state.options.latency_per_row * rows as u32;
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// The request's query string with `$skiptoken` replaced.
fn with_skiptoken(raw_query: &str, cookie_xml: &str) -> String {
    let mut parts: Vec<&str> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let key = p.split('=').next().unwrap_or("");
            let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
            key != "$skiptoken"
        })
        .collect();
    let token = format!("$skiptoken={}", encode_query_value(cookie_xml));
    parts.push(&token);
    parts.join("&")
}

/// Currency symbols by currency id.
pub fn currency_symbols(c: &rusqlite::Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt =
        c.prepare_cached("SELECT transactioncurrencyid, coalesce(currencysymbol, '') FROM transactioncurrency")?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}

/// The currency symbol of a row (money formatting).
pub fn row_currency_symbol<'s>(
    table: &Table,
    proj: &Projection,
    row: &[Sql],
    symbols: &'s [(String, String)],
) -> &'s str {
    let default = symbols.first().map(|(_, s)| s.as_str()).unwrap_or("$");
    if !proj.ann.formatted || table.column("transactioncurrencyid").is_none() {
        return default;
    }
    // Find the currency id in the row: sql_columns writes version, then each column (+ type/name extras).
    let mut i = 1;
    for c in &proj.columns {
        if c.logical_name == "transactioncurrencyid" {
            if let Sql::Text(id) = &row[i] {
                return symbols.iter().find(|(k, _)| k == id).map(|(_, s)| s.as_str()).unwrap_or(default);
            }
            return default;
        }
        i += 1;
        if c.kind.is_lookup() {
            i += c.is_polymorphic() as usize + proj.ann.formatted as usize;
        }
    }
    default
}

/// Maps a SQLite failure to a Dataverse 500 with the detail kept.
pub fn sql_error(e: rusqlite::Error) -> DvError {
    DvError::internal(format!("Generic SQL error: {e}"))
}

/// `GET [API]/<set>/$count`: the number of rows as `text/plain` (capped at 5000).
pub async fn count(ctx: Ctx, set: &str) -> DvResult<Response> {
    let table = table_for(&ctx, set)?;
    ctx.caller.check(table, Access::Read)?;
    let mut params = Vec::new();
    let filter = where_clause(&ctx, table, &mut params)?;
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM {} t{} LIMIT {})",
        q(&table.logical_name),
        filter.map(|f| format!(" WHERE {f}")).unwrap_or_default(),
        COUNT_CAP
    );
    let state = ctx.state.clone();
    let n = tokio::task::spawn_blocking(move || {
        state.store.with_conn(|c| c.query_row(&sql, rusqlite::params_from_iter(params.iter()), |r| r.get::<_, i64>(0)))
    })
    .await
    .map_err(|e| DvError::internal(format!("query task failed: {e}")))?
    .and_then(|r| r)
    .map_err(sql_error)?;
    let mut resp = (StatusCode::OK, format!("\u{feff}{n}")).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}
