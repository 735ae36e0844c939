//! FetchXML over the Web API: `GET [API]/<entityset>?fetchXml=<url-encoded FetchXML>`.
//!
//! The query is parsed by `d365_odata::fetchxml`, resolved against the schema ([`plan`]:
//! tables, link-entity joins and aliases, read privileges on every table it touches),
//! translated to one SQLite statement ([`condition`] for filters, [`read`] for plain
//! queries with paging, [`aggregate`] for `aggregate="true"`) and answered like Dataverse:
//! null columns omitted, linked columns as `"<alias>.<column>"`, formatted-value and lookup
//! annotations on request, `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie` and
//! `@Microsoft.Dynamics.CRM.morerecords` when the `Prefer` header asks for them.
//!
//! Only `$count` may accompany `fetchXml`; other query options are refused.

pub mod aggregate;
pub mod condition;
pub mod errors;
pub mod plan;
pub mod read;

use super::Ctx;
use super::error::DvResult;
use super::query::filter_env;
use crate::schema::Table;
use axum::response::Response;
use d365_odata::fetchxml::{Fetch, Node, parse_fetchxml};

/// Largest `top` and page size (`count`; larger values are capped to it).
pub const MAX_ROWS: u32 = 5000;

/// Options that cannot accompany `fetchXml`.
const REFUSED_OPTIONS: &[&str] =
    &["$select", "$filter", "$orderby", "$top", "$expand", "$apply", "$skiptoken", "$deltatoken"];

/// Runs the `fetchXml` query of a collection read of `table`.
pub async fn run(ctx: &Ctx, table: &Table) -> DvResult<Response> {
    for opt in REFUSED_OPTIONS {
        if ctx.query.get(opt).is_some() {
            return Err(errors::invalid(format!("The query parameter {opt} cannot be combined with fetchXml.")));
        }
    }
    let text = ctx.query.get("fetchXml").unwrap_or("");
    let fetch = parse_fetchxml(text).map_err(errors::parse)?;
    check(ctx, table, &fetch)?;
    let env = filter_env(ctx);
    let plan = plan::Plan::build(env, table, &fetch.entity)?;
    if fetch.aggregate {
        aggregate::run(ctx, table, &fetch, plan).await
    } else {
        read::run(ctx, table, &fetch, plan).await
    }
}

/// Checks that do not need the plan: the table, and attribute combinations.
fn check(ctx: &Ctx, table: &Table, fetch: &Fetch) -> DvResult<()> {
    let name = &fetch.entity.name;
    if *name != table.logical_name {
        return Err(match ctx.schema.table(name) {
            None => errors::no_entity(name),
            Some(_) => errors::entity_mismatch(name, &table.set_name),
        });
    }
    if fetch.datasource.as_deref().is_some_and(|d| d.eq_ignore_ascii_case("retained")) {
        return Err(errors::not_emulated("datasource='retained'"));
    }
    if let Some(top) = fetch.top {
        if top > MAX_ROWS {
            return Err(errors::invalid(format!("The top attribute value {top} exceeds the maximum of 5000.")));
        }
        if fetch.page.is_some() {
            return Err(errors::invalid("The top attribute can't be specified with paging attribute page."));
        }
    }
    fn walk(n: &Node) -> DvResult<()> {
        for a in &n.attributes {
            if a.rowaggregate.is_some() {
                return Err(errors::not_emulated("rowaggregate"));
            }
        }
        n.links.iter().try_for_each(|l| walk(&l.node))
    }
    walk(&fetch.entity.node)
}
