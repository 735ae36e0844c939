//! `$expand`: single-valued navigation properties (nested object, `null` when the lookup is
//! empty, `/$ref` gives just `@odata.id`) and collection-valued ones (array, up to 5000 rows or
//! `$top` per parent, with `<nav>@odata.nextLink` to the related collection when rows were left
//! out). Nested expands are allowed in both, with Dataverse's restrictions: at most 15 expands,
//! only `$select`/`$filter` on single-valued or nested collection expands, `/$ref` only on lookups.

use super::Ctx;
use super::auth::Caller;
use super::error::{DvError, DvResult};
use super::filter_sql::{FilterEnv, translate_expr};
use super::query::{MAX_PAGE, Order, currency_symbols, row_currency_symbol, sql_error};
use super::rows::{Annotations, Projection};
use crate::schema::{Schema, Table};
use crate::store::codec::write_json_str;
use crate::store::ddl::q;
use d365_odata::{Direction, ExpandItem, Expr};
use rusqlite::Connection;
use rusqlite::types::Value as Sql;
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// Most `$expand` options one query may have.
const MAX_EXPANDS: usize = 15;

const ONLY_SELECT_FILTER: &str = "Only $select and $filter clause can be provided while doing $expand on many-to-one relationship or nested one-to-many relationship.";

/// One resolved expansion.
#[derive(Debug, Clone)]
struct Spec {
    nav: String,
    /// Table the expanded rows come from.
    target: String,
    /// Single-valued: the lookup column on the parent. Collection-valued: the lookup column on
    /// the child that points at the parent.
    lookup: String,
    collection: bool,
    is_ref: bool,
    select: Option<String>,
    filter: Option<Expr>,
    order: Vec<(String, bool)>,
    top: Option<usize>,
    nested: Vec<Spec>,
    /// Context-URL item (`primarycontactid(fullname)`).
    context: String,
}

/// The parsed `$expand` of a request.
#[derive(Debug, Default, Clone)]
pub struct Expands {
    specs: Vec<Spec>,
}

impl Expands {
    /// Whether nothing is expanded.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The `@odata.context` entries of the expansions.
    pub fn context_items(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.context.clone()).collect()
    }
}

/// Parses `$expand` against `table`, checking navigation names, nested options and read
/// privileges on the related tables.
pub fn parse(ctx: &Ctx, table: &Table, text: Option<&str>) -> DvResult<Expands> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(Expands::default()) };
    let items = d365_odata::parse_expand(text).map_err(|e| DvError::bad_query(e.message))?;
    let mut count = 0;
    let specs = resolve(&ctx.schema, &ctx.caller, table, &items, 0, &mut count)?;
    Ok(Expands { specs })
}

fn resolve(
    schema: &Schema,
    caller: &Caller,
    table: &Table,
    items: &[ExpandItem],
    depth: usize,
    count: &mut usize,
) -> DvResult<Vec<Spec>> {
    let mut out = Vec::new();
    for item in items {
        *count += 1;
        if *count > MAX_EXPANDS {
            return Err(DvError::bad_query(format!(
                "The request has more than {MAX_EXPANDS} $expand options; reduce the number of related tables."
            )));
        }
        let nav = &item.navigation;
        let o = &item.options;
        let (target, lookup, collection) = if let Some(rel) = schema.single_nav(&table.logical_name, nav) {
            (rel.referenced_entity.clone(), rel.referencing_attribute.clone(), false)
        } else if let Some(rel) = schema.collection_nav(&table.logical_name, nav) {
            (rel.referencing_entity.clone(), rel.referencing_attribute.clone(), true)
        } else {
            return Err(DvError::unknown_property(nav, &table.logical_name));
        };
        if item.is_ref && collection {
            return Err(DvError::bad_query("Expand with $ref is only supported on lookup type navigation property."));
        }
        let has_nested_collection = o.expand.as_ref().is_some_and(|n| !n.is_empty());
        if (o.orderby.is_some() || o.top.is_some()) && (!collection || depth > 0 || has_nested_collection) {
            return Err(DvError::bad_query(ONLY_SELECT_FILTER));
        }
        let target_table =
            schema.table(&target).ok_or_else(|| DvError::internal(format!("navigation target {target} missing")))?;
        caller.check(target_table, crate::security::Access::Read)?;
        let select = o.select.as_ref().map(|s| s.join(","));
        let proj = Projection::new(target_table, select.as_deref(), Annotations::default())?;
        let mut order = Vec::new();
        for item in o.orderby.iter().flatten() {
            let Some(p) = item.expr.as_path().and_then(|p| p.single()) else {
                return Err(DvError::bad_query(format!("Ordering by '{}' is not supported in $expand.", item.expr)));
            };
            let c = target_table
                .column_by_property(p)
                .ok_or_else(|| DvError::unknown_property(p, &target_table.logical_name))?;
            order.push((c.logical_name.clone(), item.direction == Direction::Desc));
        }
        let nested = match &o.expand {
            Some(n) => resolve(schema, caller, target_table, n, depth + 1, count)?,
            None => Vec::new(),
        };
        let mut inner: Vec<String> = Vec::new();
        if proj.explicit {
            inner.push(proj.context_list());
        }
        inner.extend(nested.iter().map(|s| s.context.clone()));
        let context = if item.is_ref { nav.clone() } else { format!("{nav}({})", inner.join(",")) };
        out.push(Spec {
            nav: nav.clone(),
            target,
            lookup,
            collection,
            is_ref: item.is_ref,
            select,
            filter: o.filter.clone(),
            order,
            top: o.top.map(|t| usize::try_from(t).unwrap_or(MAX_PAGE)),
            nested,
            context,
        });
    }
    Ok(out)
}

/// What rendering expanded rows needs, owned so it can move into a blocking task.
#[derive(Clone)]
pub struct ExpandEnv {
    /// Tables.
    pub schema: Arc<Schema>,
    /// The caller (filters with `EqualUserId`).
    pub caller: Caller,
    /// Now.
    pub now: OffsetDateTime,
    /// `[API]` root for links.
    pub api_root: String,
    /// Annotations asked for.
    pub ann: Annotations,
}

impl ExpandEnv {
    /// The environment of a request.
    pub fn of(ctx: &Ctx) -> Self {
        Self {
            schema: ctx.schema.clone(),
            caller: ctx.caller.clone(),
            now: ctx.state.clock.now(),
            api_root: ctx.api_root.clone(),
            ann: Annotations::from_prefer(&ctx.prefer),
        }
    }

    fn filter_env(&self) -> FilterEnv<'_> {
        FilterEnv { schema: &self.schema, caller: &self.caller, now: self.now }
    }
}

/// Fetches the expansions for a page of rows; one JSON fragment (`"nav":{...},...`) per row.
/// `rows` hold the order columns from `order_start` on, the primary key among them.
pub async fn fetch(
    ctx: &Ctx,
    table: &Table,
    expands: &Expands,
    rows: &[Vec<Sql>],
    order_start: usize,
    order: &[Order<'_>],
) -> DvResult<Vec<String>> {
    if expands.is_empty() || rows.is_empty() {
        return Ok(Vec::new());
    }
    let pk_at = order
        .iter()
        .position(|o| o.column.is_primary_id)
        .ok_or_else(|| DvError::internal("the ordering lacks the primary key"))?;
    let ids: Vec<String> = rows
        .iter()
        .map(|r| match &r[order_start + pk_at] {
            Sql::Text(t) => t.clone(),
            _ => String::new(),
        })
        .collect();
    let env = ExpandEnv::of(ctx);
    let table = table.logical_name.clone();
    let expands = expands.clone();
    let state = ctx.state.clone();
    tokio::task::spawn_blocking(move || {
        state.store.with_conn(|c| {
            let table = env.schema.table(&table).ok_or_else(|| DvError::internal("table vanished"))?;
            fragments(c, &env, table, &ids, &expands)
        })
    })
    .await
    .map_err(|e| DvError::internal(format!("expand task failed: {e}")))?
    .map_err(sql_error)?
}

/// The expansion fragments of the rows `ids` of `table` (same order as `ids`).
pub fn fragments(
    c: &Connection,
    env: &ExpandEnv,
    table: &Table,
    ids: &[String],
    expands: &Expands,
) -> DvResult<Vec<String>> {
    let mut out = vec![String::new(); ids.len()];
    for spec in &expands.specs {
        let parts =
            if spec.collection { collection(c, env, table, ids, spec)? } else { single(c, env, table, ids, spec)? };
        for (o, p) in out.iter_mut().zip(parts) {
            if !o.is_empty() {
                o.push(',');
            }
            o.push_str(&p);
        }
    }
    Ok(out)
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// Rows of `target` rendered as JSON objects (with nested expansions), keyed by primary key.
fn render_rows(
    c: &Connection,
    env: &ExpandEnv,
    target: &Table,
    spec: &Spec,
    sql_tail: &str,
    params: Vec<Sql>,
    extra_cols: &[String],
) -> DvResult<Vec<(Vec<Sql>, String)>> {
    let proj = Projection::new(target, spec.select.as_deref(), env.ann)?;
    let mut cols = proj.sql_columns(&env.schema, "e");
    let n_proj = cols.len();
    cols.push(format!("e.{}", q(&target.primary_id)));
    cols.extend(extra_cols.iter().cloned());
    let sql = format!("SELECT {} FROM {} e {sql_tail}", cols.join(", "), q(&target.logical_name));
    let n = cols.len();
    let mut stmt = c.prepare_cached(&sql).map_err(sql_error)?;
    let rows: Vec<Vec<Sql>> = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |r| (0..n).map(|i| r.get::<_, Sql>(i)).collect())
        .map_err(sql_error)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_error)?;
    let symbols = currency_symbols(c).map_err(sql_error)?;
    let ids: Vec<String> = rows
        .iter()
        .map(|r| match &r[n_proj] {
            Sql::Text(t) => t.clone(),
            _ => String::new(),
        })
        .collect();
    let nested = fragments(c, env, target, &ids, &Expands { specs: spec.nested.clone() })?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let mut obj = String::new();
        proj.write_row(&mut obj, &row[..n_proj], row_currency_symbol(target, &proj, &row[..n_proj], &symbols), true);
        if let Some(extra) = nested.get(i).filter(|e| !e.is_empty()) {
            obj.pop();
            obj.push(',');
            obj.push_str(extra);
            obj.push('}');
        }
        out.push((row[n_proj..].to_vec(), obj));
    }
    Ok(out)
}

fn single(c: &Connection, env: &ExpandEnv, table: &Table, ids: &[String], spec: &Spec) -> DvResult<Vec<String>> {
    let target = env.schema.table(&spec.target).ok_or_else(|| DvError::internal("navigation target missing"))?;
    // Parent id → lookup value.
    let sql = format!(
        "SELECT {pk}, {lk} FROM {t} WHERE {pk} IN ({})",
        placeholders(ids.len()),
        pk = q(&table.primary_id),
        lk = q(&spec.lookup),
        t = q(&table.logical_name)
    );
    let mut stmt = c.prepare(&sql).map_err(sql_error)?;
    let links: HashMap<String, String> = stmt
        .query_map(rusqlite::params_from_iter(ids.iter()), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .map_err(sql_error)?
        .filter_map(|r| match r {
            Ok((a, Some(b))) => Some(Ok((a, b))),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_error)?;
    let mut targets: Vec<String> = links.values().cloned().collect();
    targets.sort();
    targets.dedup();
    let mut by_id: HashMap<String, String> = HashMap::new();
    if !targets.is_empty() {
        let mut params: Vec<Sql> = targets.iter().map(|t| Sql::Text(t.clone())).collect();
        let mut tail = format!("WHERE e.{} IN ({})", q(&target.primary_id), placeholders(targets.len()));
        if let Some(f) = &spec.filter {
            tail.push_str(&format!(" AND {}", translate_expr(env.filter_env(), target, "e", f, &mut params)?));
        }
        if spec.is_ref {
            let sql = format!("SELECT e.{} FROM {} e {tail}", q(&target.primary_id), q(&target.logical_name));
            let mut stmt = c.prepare(&sql).map_err(sql_error)?;
            for id in stmt
                .query_map(rusqlite::params_from_iter(params.iter()), |r| r.get::<_, String>(0))
                .map_err(sql_error)?
            {
                let id = id.map_err(sql_error)?;
                let mut obj = String::from("{\"@odata.id\":");
                write_json_str(&mut obj, &format!("{}/{}({id})", env.api_root, target.set_name));
                obj.push('}');
                by_id.insert(id, obj);
            }
        } else {
            for (rest, obj) in render_rows(c, env, target, spec, &tail, params, &[])? {
                if let Some(Sql::Text(id)) = rest.first() {
                    by_id.insert(id.clone(), obj);
                }
            }
        }
    }
    Ok(ids
        .iter()
        .map(|id| {
            let value = links.get(id).and_then(|t| by_id.get(t)).map(String::as_str).unwrap_or("null");
            let mut s = String::new();
            write_json_str(&mut s, &spec.nav);
            s.push(':');
            s.push_str(value);
            s
        })
        .collect())
}

fn collection(c: &Connection, env: &ExpandEnv, table: &Table, ids: &[String], spec: &Spec) -> DvResult<Vec<String>> {
    let child = env.schema.table(&spec.target).ok_or_else(|| DvError::internal("navigation source missing"))?;
    let limit = spec.top.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let mut params: Vec<Sql> = ids.iter().map(|t| Sql::Text(t.clone())).collect();
    let mut cond = format!("e.{} IN ({})", q(&spec.lookup), placeholders(ids.len()));
    if let Some(f) = &spec.filter {
        cond.push_str(&format!(" AND {}", translate_expr(env.filter_env(), child, "e", f, &mut params)?));
    }
    let mut order: Vec<String> =
        spec.order.iter().map(|(col, desc)| format!("e.{}{}", q(col), if *desc { " DESC" } else { "" })).collect();
    order.push(format!("e.{}", q(&child.primary_id)));
    let order = order.join(", ");
    // Rank rows per parent so at most limit + 1 come back for each (the extra one tells that
    // rows were left out).
    let rank = format!("ROW_NUMBER() OVER (PARTITION BY e.{} ORDER BY {order})", q(&spec.lookup));
    let inner_pk = format!("e.{}", q(&child.primary_id));
    let tail = format!(
        "WHERE {inner_pk} IN (SELECT k FROM (SELECT {inner_pk} AS k, {rank} AS n FROM {} e WHERE {cond}) WHERE n <= {}) ORDER BY {order}",
        q(&child.logical_name),
        limit + 1
    );
    let rendered = render_rows(c, env, child, spec, &tail, params, &[format!("e.{}", q(&spec.lookup))])?;
    let mut per_parent: HashMap<String, Vec<String>> = HashMap::new();
    for (rest, obj) in rendered {
        if let Some(Sql::Text(parent)) = rest.get(1) {
            per_parent.entry(parent.clone()).or_default().push(obj);
        }
    }
    let parent_set = &table.set_name;
    Ok(ids
        .iter()
        .map(|id| {
            let rows = per_parent.remove(id).unwrap_or_default();
            let more = rows.len() > limit;
            let mut s = String::new();
            write_json_str(&mut s, &spec.nav);
            s.push_str(":[");
            s.push_str(&rows[..rows.len().min(limit)].join(","));
            s.push(']');
            if more {
                let mut opts = Vec::new();
                if let Some(sel) = &spec.select {
                    opts.push(format!("$select={sel}"));
                }
                if let Some(f) = &spec.filter {
                    opts.push(format!("$filter={}", super::paging::encode_query_value(&f.to_string())));
                }
                let link = format!(
                    "{}/{parent_set}({id})/{}{}{}",
                    env.api_root,
                    spec.nav,
                    if opts.is_empty() { "" } else { "?" },
                    opts.join("&")
                );
                s.push(',');
                write_json_str(&mut s, &format!("{}@odata.nextLink", spec.nav));
                s.push(':');
                write_json_str(&mut s, &link);
            }
            s
        })
        .collect())
}
