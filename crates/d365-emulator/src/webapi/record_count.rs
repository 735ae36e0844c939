//! The `RetrieveTotalRecordCount` function: the number of rows of each named table.
//!
//! `GET RetrieveTotalRecordCount(EntityNames=['account','contact'])`, or with a parameter
//! alias (`EntityNames=@p1&@p1=['account']`; a JSON array is accepted there too). Dataverse
//! answers from a snapshot taken within the last 24 hours; the emulator counts when it is
//! called, which is such a snapshot. A table that does not exist is Dataverse's
//! `0x80041102`; a table the caller may not read is refused as a read would be.

use axum::http::StatusCode;
use axum::response::Response;

use super::error::{DvError, DvResult};
use super::fetch::errors::no_entity;
use super::query::sql_error;
use super::{Ctx, json_response};
use crate::security::Access;
use crate::store::ddl::q;

/// Answers `RetrieveTotalRecordCount(<args>)`.
pub async fn retrieve_total_record_count(ctx: &Ctx, args: Option<&str>) -> DvResult<Response> {
    let names = entity_names(ctx, args.unwrap_or(""))?;
    let mut tables = Vec::with_capacity(names.len());
    for name in &names {
        let table = ctx.schema.table(name).ok_or_else(|| no_entity(name))?;
        ctx.caller.check(table, Access::Read)?;
        tables.push(table.logical_name.clone());
    }
    let state = ctx.state.clone();
    let counts = tokio::task::spawn_blocking(move || {
        state.store.with_conn(|c| {
            tables
                .iter()
                .map(|t| c.query_row(&format!("SELECT count(*) FROM {}", q(t)), [], |r| r.get::<_, i64>(0)))
                .collect::<rusqlite::Result<Vec<i64>>>()
        })
    })
    .await
    .map_err(|e| DvError::internal(format!("count task failed: {e}")))?
    .and_then(|r| r)
    .map_err(sql_error)?;
    let body = serde_json::json!({
        "@odata.context": format!("{}/$metadata#Microsoft.Dynamics.CRM.RetrieveTotalRecordCountResponse", ctx.api_root),
        "EntityRecordCountCollection": {
            "Count": names.len(),
            "IsReadOnly": false,
            "Keys": names,
            "Values": counts,
        }
    });
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// The `EntityNames` parameter: inline, or through a parameter alias of the query string.
fn entity_names(ctx: &Ctx, args: &str) -> DvResult<Vec<String>> {
    let missing = || {
        DvError::bad_query(
            "The function RetrieveTotalRecordCount needs its parameter EntityNames, \
             e.g. RetrieveTotalRecordCount(EntityNames=['account','contact']).",
        )
    };
    let (name, value) = args.split_once('=').ok_or_else(missing)?;
    if name.trim() != "EntityNames" {
        return Err(DvError::bad_query(format!(
            "The function RetrieveTotalRecordCount has no parameter '{}'; it takes EntityNames.",
            name.trim()
        )));
    }
    let value = value.trim();
    let literal = match value.strip_prefix('@') {
        Some(_) => ctx
            .query
            .aliases()
            .into_iter()
            .find(|(k, _)| k == value)
            .map(|(_, v)| v)
            .ok_or_else(|| DvError::bad_query(format!("The parameter alias '{value}' has no value.")))?,
        None => value.to_string(),
    };
    parse_string_collection(&literal).ok_or_else(|| {
        DvError::bad_query(format!("EntityNames must be a collection of strings, like ['account']: '{literal}'."))
    })
}

/// `['a','b']` (OData literal, `''` escapes a quote) or `["a","b"]` (JSON).
fn parse_string_collection(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?.trim();
    if inner.is_empty() {
        return Some(Vec::new());
    }
    if inner.starts_with('"') {
        return serde_json::from_str(text.trim()).ok();
    }
    let chars: Vec<char> = inner.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        if chars.get(i) != Some(&'\'') {
            return None;
        }
        i += 1;
        let mut item = String::new();
        loop {
            match chars.get(i)? {
                '\'' if chars.get(i + 1) == Some(&'\'') => {
                    item.push('\'');
                    i += 2;
                }
                '\'' => {
                    i += 1;
                    break;
                }
                c => {
                    item.push(*c);
                    i += 1;
                }
            }
        }
        out.push(item);
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        match chars.get(i) {
            None => return Some(out),
            Some(',') => i += 1,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_string_collection as parse;

    #[test]
    fn collections_of_strings_parse_in_both_spellings() {
        assert_eq!(parse("['account', 'contact']"), Some(vec!["account".to_string(), "contact".to_string()]));
        assert_eq!(parse("[\"account\"]"), Some(vec!["account".to_string()]));
        assert_eq!(parse("['it''s']"), Some(vec!["it's".to_string()]));
        assert_eq!(parse("[]"), Some(vec![]));
        for bad in ["account", "['account'", "[account]", "['a' 'b']", "['a',]", "[\"a\""] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
