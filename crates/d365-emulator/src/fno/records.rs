//! Resource paths under `/data/` and single records: `GET`, `POST` (create), `PATCH`, `PUT`,
//! `DELETE`, and `GET {Set}(key)/{Navigation}`.
//!
//! Writes run the entity's validation as F&O's validate chain would, and failures are 500
//! `AxODataWriteException` with an infolog-style message: a key that already exists, a
//! mandatory field left empty, a value not found in the table it relates to (e.g. a
//! `CustomerGroupId` the company does not have), an unknown company. Malformed bodies, unknown
//! properties, wrong types and bad enum members are 400. The server sets `ModifiedDateTime`
//! (and `CreatedDateTime` on create) and a new `RecVersion` on every write; clients cannot
//! set them. `dataAreaId` defaults to the caller's company. Reading one record of another
//! company than the caller's default needs `cross-company=true` (else 404, as reads are
//! company-scoped; unconfirmed for keyed reads); writes address the key's company directly.
//! Key properties cannot be changed by `PATCH`/`PUT` (400).

use super::error::{FnoError, FnoResult};
use super::keys::Key;
use super::model::{Entity, Field, NAMESPACE, Navigation, entity, entity_by_collection};
use super::query::{Options, columns, expand_into, read_rows, record_json, row_etag};
use super::values::{default_sql, from_json};
use super::{Ctx, json_response};
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rusqlite::types::Value as Sql;
use serde_json::{Map, Value};

/// A resource path under `/data/`.
#[derive(Debug)]
pub enum DataPath {
    /// `{Set}`.
    Collection(&'static Entity),
    /// `{Set}/$count`.
    Count(&'static Entity),
    /// `{Set}({key})`.
    Record(&'static Entity, Key),
    /// `{Set}({key})/{Navigation}`.
    Navigation(&'static Entity, Key, &'static Navigation),
}

impl DataPath {
    /// Parses a decoded path (what follows `/data/`); `data_root` names it in errors.
    pub fn parse(path: &str, data_root: &str) -> FnoResult<Self> {
        let not_found = || FnoError::no_resource(&format!("{data_root}/{path}"));
        let name_end = path.find(['(', '/']).unwrap_or(path.len());
        let e = entity_by_collection(&path[..name_end]).ok_or_else(not_found)?;
        let rest = &path[name_end..];
        if rest.is_empty() {
            return Ok(DataPath::Collection(e));
        }
        if rest == "/$count" {
            return Ok(DataPath::Count(e));
        }
        let Some(inner) = rest.strip_prefix('(') else { return Err(not_found()) };
        let close = closing_paren(inner).ok_or_else(|| {
            FnoError::bad_request(format!("Bad Request - Error in query syntax: the key of '{path}' is not closed."))
        })?;
        let key = super::keys::parse(&inner[..close], e)?;
        match &inner[close + 1..] {
            "" => Ok(DataPath::Record(e, key)),
            nav => {
                let n = nav.strip_prefix('/').and_then(|n| e.navigation(n)).ok_or_else(not_found)?;
                Ok(DataPath::Navigation(e, key, n))
            }
        }
    }
}

/// The index of the `)` closing a key (quotes respected).
fn closing_paren(s: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            ')' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn record_url(ctx: &Ctx, e: &Entity, key: &Key) -> String {
    format!("{}/{}({})", ctx.data_root(), e.collection, key.url_text())
}

/// The key of a stored row.
fn key_of_row(e: &'static Entity, row: &[Sql]) -> Key {
    Key(e
        .keys
        .iter()
        .filter_map(|k| {
            let i = e.fields.iter().position(|f| f.name == *k)?;
            Some((&e.fields[i], row.get(i).cloned().unwrap_or(Sql::Null)))
        })
        .collect())
}

fn load(conn: &rusqlite::Connection, e: &Entity, key: &Key) -> FnoResult<Option<Vec<Sql>>> {
    let (cond, params) = key.condition();
    let sql = format!("SELECT {} FROM \"{}\" WHERE {cond}", columns(e), e.table());
    Ok(read_rows(conn, e, &sql, &params)?.into_iter().next())
}

fn not_found(e: &Entity, key: &Key) -> FnoError {
    FnoError::not_found(format!("No record of '{}' was found with the key ({}).", e.collection, key.url_text()))
}

/// Whether a keyed read of `key` is outside the caller's company (without `cross-company`).
fn other_company(ctx: &Ctx, e: &Entity, key: &Key) -> bool {
    e.company
        && !ctx.cross_company()
        && !matches!(key.get("dataAreaId"), Some(Sql::Text(c)) if c.eq_ignore_ascii_case(ctx.caller.company()))
}

fn entity_response(ctx: &Ctx, e: &Entity, status: StatusCode, rec: Map<String, Value>, etag: &str) -> Response {
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(format!("{}/$metadata#{}/$entity", ctx.data_root(), e.collection)),
    );
    body.extend(rec);
    let mut r = json_response(status, Value::Object(body).to_string());
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// `GET {Set}({key})`.
pub async fn retrieve(ctx: Ctx, e: &'static Entity, key: Key) -> FnoResult<Response> {
    let o = Options::parse(&ctx, e)?;
    if other_company(&ctx, e, &key) {
        return Err(not_found(e, &key));
    }
    let k = key.clone();
    let (rec, etag) = ctx
        .sql(move |conn| {
            let row = load(conn, e, &k)?.ok_or_else(|| not_found(e, &k))?;
            let mut recs = vec![record_json(e, &row, o.select.as_deref())];
            expand_into(conn, e, std::slice::from_ref(&row), &mut recs, &o.expand)?;
            Ok((recs.pop().unwrap_or_default(), row_etag(e, &row)))
        })
        .await?;
    Ok(entity_response(&ctx, e, StatusCode::OK, rec, &etag))
}

/// `GET {Set}({key})/{Navigation}`: the related record(s).
pub async fn navigate(ctx: Ctx, e: &'static Entity, key: Key, nav: &'static Navigation) -> FnoResult<Response> {
    if other_company(&ctx, e, &key) {
        return Err(not_found(e, &key));
    }
    let target = entity(nav.target).ok_or_else(|| FnoError::internal("navigation target missing"))?;
    let k = key.clone();
    let related = ctx
        .sql(move |conn| {
            let row = load(conn, e, &k)?.ok_or_else(|| not_found(e, &k))?;
            let mut conds = Vec::new();
            let mut params = Vec::new();
            for (a, b) in nav.constraints {
                let i = e.fields.iter().position(|f| f.name == *a).unwrap_or(0);
                conds.push(format!("\"{b}\" = ?"));
                params.push(row.get(i).cloned().unwrap_or(Sql::Null));
            }
            let keys: Vec<String> = target.keys.iter().map(|k| format!("\"{k}\"")).collect();
            let sql = format!(
                "SELECT {} FROM \"{}\" WHERE {} ORDER BY {} LIMIT {}",
                columns(target),
                target.table(),
                conds.join(" AND "),
                keys.join(", "),
                super::query::PAGE_SIZE
            );
            read_rows(conn, target, &sql, &params)
        })
        .await?;
    let records: Vec<Value> = related.iter().map(|r| Value::Object(record_json(target, r, None))).collect();
    if nav.many {
        let body = serde_json::json!({
            "@odata.context": format!("{}/$metadata#{}", ctx.data_root(), target.collection),
            "value": records,
        });
        return Ok(json_response(StatusCode::OK, body.to_string()));
    }
    match related.first() {
        Some(r) => {
            Ok(entity_response(&ctx, target, StatusCode::OK, record_json(target, r, None), &row_etag(target, r)))
        }
        None => Err(FnoError::not_found(format!("No related '{}' record was found.", nav.name))),
    }
}

/// The properties of a write body, converted and checked (400 for malformed input).
fn body_values(e: &'static Entity, body: &Bytes) -> FnoResult<Vec<(&'static Field, Sql)>> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|err| FnoError::bad_request(format!("The request body is not a valid JSON payload: {err}")))?;
    let Value::Object(map) = json else {
        return Err(FnoError::bad_request("The request body must be a JSON object of the entity's properties."));
    };
    let mut out = Vec::new();
    for (k, v) in &map {
        if k.contains('@') {
            continue; // annotations (`@odata.type`, `X@odata.type`)
        }
        if e.navigation(k).is_some() {
            return Err(FnoError::bad_request(format!("Deep inserts and updates through '{k}' are not supported.")));
        }
        let f = e.field(k).ok_or_else(|| {
            FnoError::bad_request(format!(
                "The property '{k}' does not exist on type '{NAMESPACE}.{}'. Make sure to only use property names \
                 that are defined by the type.",
                e.name
            ))
        })?;
        if f.system {
            continue; // maintained by the server
        }
        let mut value = from_json(f, e.name, v)?;
        if f.name == "dataAreaId"
            && let Sql::Text(s) = &value
        {
            value = Sql::Text(s.to_ascii_lowercase());
        }
        out.push((f, value));
    }
    Ok(out)
}

fn is_empty(v: &Sql) -> bool {
    matches!(v, Sql::Null) || matches!(v, Sql::Text(s) if s.trim().is_empty())
}

/// The entity's validation of a row about to be written (`values` in field order).
fn validate(conn: &rusqlite::Connection, e: &Entity, values: &[Sql]) -> FnoResult<()> {
    let infolog_error = |msg: String| FnoError::write_failed(e.internal, format!("Error: {msg}"));
    for (f, v) in e.fields.iter().zip(values) {
        if f.mandatory && is_empty(v) {
            return Err(infolog_error(format!("Field '{}' must be filled in.", f.label)));
        }
    }
    let company = e.fields.iter().position(|f| f.name == "dataAreaId").and_then(|i| values.get(i).cloned());
    if let Some(c) = &company {
        let known: i64 = conn
            .query_row("SELECT count(*) FROM \"LegalEntity\" WHERE \"LegalEntityId\" = ?", [c], |r| r.get(0))
            .map_err(super::sql_error)?;
        if known == 0 {
            let c = match c {
                Sql::Text(s) => s.clone(),
                _ => String::new(),
            };
            return Err(infolog_error(format!("Company '{c}' does not exist.")));
        }
    }
    for (f, v) in e.fields.iter().zip(values) {
        let Some((target, field)) = f.references else { continue };
        if is_empty(v) {
            continue;
        }
        let t = entity(target).ok_or_else(|| FnoError::internal("reference target missing"))?;
        let mut sql = format!("SELECT count(*) FROM \"{}\" WHERE \"{field}\" = ?", t.table());
        let mut params = vec![v.clone()];
        if let (true, Some(c)) = (t.company, &company) {
            sql.push_str(" AND \"dataAreaId\" = ?");
            params.push(c.clone());
        }
        let n: i64 =
            conn.query_row(&sql, rusqlite::params_from_iter(params.iter()), |r| r.get(0)).map_err(super::sql_error)?;
        if n == 0 {
            let shown = match v {
                Sql::Text(s) => s.clone(),
                other => format!("{other:?}"),
            };
            return Err(infolog_error(format!(
                "The value '{shown}' in field '{}' is not found in the relating table '{}'.",
                f.label, t.label
            )));
        }
    }
    Ok(())
}

fn new_rec_version(old: i64) -> i64 {
    loop {
        let v = i64::from(rand::random::<u32>() >> 1);
        if v > 1 && v != old {
            return v;
        }
    }
}

fn duplicate(e: &Entity, values: &[Sql]) -> FnoError {
    let keys: Vec<String> = e
        .keys
        .iter()
        .filter_map(|k| {
            let i = e.fields.iter().position(|f| f.name == *k)?;
            match values.get(i) {
                Some(Sql::Text(s)) => Some(s.clone()),
                Some(v) => Some(format!("{v:?}")),
                None => None,
            }
        })
        .collect();
    FnoError::write_failed(
        e.internal,
        format!(
            "Error: Cannot create a record in {} ({}). {}: {}. The record already exists.",
            e.label,
            e.internal,
            e.field(e.keys[e.keys.len() - 1]).map_or("Key", |f| f.label),
            keys.iter().rev().cloned().collect::<Vec<_>>().join(", ")
        ),
    )
}

fn insert_sql(e: &Entity) -> String {
    let marks = vec!["?"; e.fields.len() + 2].join(", ");
    format!("INSERT INTO \"{}\" ({}) VALUES ({marks})", e.table(), columns(e))
}

/// `POST {Set}`.
pub async fn create(ctx: Ctx, e: &'static Entity, body: Bytes) -> FnoResult<Response> {
    let given = body_values(e, &body)?;
    let now = ctx.state.clock.unix();
    let company = ctx.caller.company().to_string();
    let rec_id = ctx.state.fno.store.next_rec_id();
    let (row, key) = ctx
        .sql(move |conn| {
            let mut values: Vec<Sql> = e
                .fields
                .iter()
                .map(|f| match given.iter().find(|(g, _)| g.name == f.name) {
                    Some((_, v)) => v.clone(),
                    None if f.name == "dataAreaId" => Sql::Text(company.clone()),
                    None if f.system => Sql::Integer(now),
                    None => default_sql(f),
                })
                .collect();
            for (f, v) in e.fields.iter().zip(values.iter_mut()) {
                if f.system {
                    *v = Sql::Integer(now);
                }
            }
            validate(conn, e, &values)?;
            let key = key_of_row(e, &values);
            if load(conn, e, &key)?.is_some() {
                return Err(duplicate(e, &values));
            }
            values.push(Sql::Integer(rec_id));
            values.push(Sql::Integer(1));
            match conn.execute(&insert_sql(e), rusqlite::params_from_iter(values.iter())) {
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                    return Err(duplicate(e, &values));
                }
                Err(err) => return Err(super::sql_error(err)),
            }
            Ok((values, key))
        })
        .await?;
    let location = record_url(&ctx, e, &key);
    let etag = row_etag(e, &row);
    let minimal = prefers_minimal(&ctx);
    let mut r = if minimal {
        let mut r = StatusCode::NO_CONTENT.into_response();
        r.headers_mut().insert("Preference-Applied", HeaderValue::from_static("return=minimal"));
        if let Ok(v) = HeaderValue::from_str(&etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        r
    } else {
        entity_response(&ctx, e, StatusCode::CREATED, record_json(e, &row, None), &etag)
    };
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v.clone());
        r.headers_mut().insert("OData-EntityId", v);
    }
    Ok(r)
}

fn prefer_has(ctx: &Ctx, what: &str) -> bool {
    ctx.headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(what))
}

fn prefers_minimal(ctx: &Ctx) -> bool {
    prefer_has(ctx, "return=minimal")
}

fn check_if_match(ctx: &Ctx, etag: &str) -> FnoResult<()> {
    if let Some(m) = ctx.headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        let ok = m.split(',').map(str::trim).any(|t| t == "*" || t == etag);
        if !ok {
            return Err(FnoError::precondition_failed());
        }
    }
    Ok(())
}

fn same(a: &Sql, b: &Sql) -> bool {
    match (a, b) {
        (Sql::Text(x), Sql::Text(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

/// `PATCH {Set}({key})` (or `PUT` with `replace`: unnamed properties get their defaults).
pub async fn update(ctx: Ctx, e: &'static Entity, key: Key, body: Bytes, replace: bool) -> FnoResult<Response> {
    let given = body_values(e, &body)?;
    for (f, v) in &given {
        if key.get(f.name).is_some_and(|k| !same(k, v)) {
            return Err(FnoError::bad_request(format!("The key property '{}' cannot be modified.", f.name)));
        }
    }
    let now = ctx.state.clock.unix();
    let c2 = ctx.clone();
    let k = key.clone();
    let row = ctx
        .sql(move |conn| {
            let old = load(conn, e, &k)?.ok_or_else(|| not_found(e, &k))?;
            check_if_match(&c2, &row_etag(e, &old))?;
            let mut values: Vec<Sql> = old[..e.fields.len()].to_vec();
            for (i, f) in e.fields.iter().enumerate() {
                if let Some((_, v)) = given.iter().find(|(g, _)| g.name == f.name) {
                    values[i] = v.clone();
                } else if replace && !f.system && !e.is_key(f.name) {
                    values[i] = default_sql(f);
                }
                if f.system && f.name == "ModifiedDateTime" {
                    values[i] = Sql::Integer(now);
                }
            }
            validate(conn, e, &values)?;
            let version = new_rec_version(match old.get(e.fields.len() + 1) {
                Some(Sql::Integer(v)) => *v,
                _ => 0,
            });
            let sets: Vec<String> = e.fields.iter().map(|f| format!("\"{}\" = ?", f.name)).collect();
            let (cond, key_params) = k.condition();
            let sql = format!("UPDATE \"{}\" SET {}, RecVersion = ? WHERE {cond}", e.table(), sets.join(", "));
            let mut params = values.clone();
            params.push(Sql::Integer(version));
            params.extend(key_params);
            conn.execute(&sql, rusqlite::params_from_iter(params.iter())).map_err(super::sql_error)?;
            values.push(old.get(e.fields.len()).cloned().unwrap_or(Sql::Null));
            values.push(Sql::Integer(version));
            Ok(values)
        })
        .await?;
    let etag = row_etag(e, &row);
    if prefer_has(&ctx, "return=representation") {
        let mut r = entity_response(&ctx, e, StatusCode::OK, record_json(e, &row, None), &etag);
        r.headers_mut().insert("Preference-Applied", HeaderValue::from_static("return=representation"));
        return Ok(r);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Ok(r)
}

/// `DELETE {Set}({key})`.
pub async fn delete(ctx: Ctx, e: &'static Entity, key: Key) -> FnoResult<Response> {
    let c2 = ctx.clone();
    ctx.sql(move |conn| {
        let old = load(conn, e, &key)?.ok_or_else(|| not_found(e, &key))?;
        check_if_match(&c2, &row_etag(e, &old))?;
        let (cond, params) = key.condition();
        conn.execute(&format!("DELETE FROM \"{}\" WHERE {cond}", e.table()), rusqlite::params_from_iter(params.iter()))
            .map_err(super::sql_error)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
