//! Single records: retrieve (by primary or alternate key, with `ETag` and conditional GET),
//! create (`204` + `OData-EntityId`, or `201` with `return=representation`), update and
//! upsert by `PATCH` (with `If-Match` / `If-None-Match`), delete, and single properties.

use super::error::{DvError, DvResult};
use super::path::{Key, KeyValue};
use super::query::{currency_symbols, per_row_latency, row_currency_symbol, sql_error, table_for};
use super::rows::{Annotations, Projection};
use super::writes::{Changes, Op, check_status, derive, parse_body};
use super::{Ctx, json_response};
use crate::schema::{Ownership, Table};
use crate::security::Access;
use crate::store::codec::{format_datetime, write_json};
use crate::store::ddl::q;
use crate::store::seed_ids::USD_ID;
use axum::body::Bytes;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

/// Runs blocking store work, on the connection of the `$batch` change set when the request is
/// part of one.
pub(super) async fn blocking<R: Send + 'static>(
    ctx: &Ctx,
    f: impl FnOnce(&mut Connection) -> DvResult<R> + Send + 'static,
) -> DvResult<R> {
    let state = ctx.state.clone();
    let pinned = ctx.pinned.clone();
    tokio::task::spawn_blocking(move || match pinned {
        Some(conn) => {
            let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
            Ok(f(&mut c))
        }
        None => state.store.with_conn(f),
    })
    .await
    .map_err(|e| DvError::internal(format!("store task failed: {e}")))?
    .map_err(sql_error)?
}

/// A write transaction: a real one, or a savepoint when the connection is already inside a
/// `$batch` change set (whose own transaction then decides).
pub(super) enum WriteTx<'c> {
    /// `BEGIN IMMEDIATE`, holding the write gate until it ends (the transaction is dropped,
    /// i.e. committed or rolled back, before the gate opens).
    Tx(rusqlite::Transaction<'c>, std::sync::MutexGuard<'static, ()>),
    /// `SAVEPOINT` inside a change set.
    Savepoint(rusqlite::Savepoint<'c>),
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            WriteTx::Tx(t, _) => t,
            WriteTx::Savepoint(s) => s,
        }
    }
}

impl WriteTx<'_> {
    /// Commits (or releases the savepoint).
    pub(super) fn commit(self) -> DvResult<()> {
        match self {
            WriteTx::Tx(t, _gate) => t.commit(),
            WriteTx::Savepoint(s) => s.commit(),
        }
        .map_err(sql_error)
    }
}

/// Single-request writers queue here, in turn, before taking SQLite's write lock. SQLite's own
/// busy handler polls with growing sleeps, so with many parallel writers (a client sending
/// eight `$batch` requests of 250 deletes) one of them could keep losing the race until its busy
/// timeout and answer "database is locked", which Dataverse would not.
static WRITE_GATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Starts a write transaction on `c`.
pub(super) fn begin(c: &mut Connection) -> DvResult<WriteTx<'_>> {
    if c.is_autocommit() {
        let gate = WRITE_GATE.lock().unwrap_or_else(|e| e.into_inner());
        c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map(|t| WriteTx::Tx(t, gate))
            .map_err(sql_error)
    } else {
        c.savepoint().map(WriteTx::Savepoint).map_err(sql_error)
    }
}

/// Resolves a key to the record id (`None` when no such record exists).
pub(super) fn resolve_key(c: &Connection, table: &Table, key: &Key) -> DvResult<Option<String>> {
    let id_exists = |id: &str| -> DvResult<Option<String>> {
        c.query_row(
            &format!("SELECT {pk} FROM {} WHERE {pk} = ?", q(&table.logical_name), pk = q(&table.primary_id)),
            [id],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_error)
    };
    match key {
        Key::Id(id) => id_exists(&id.to_string()),
        Key::Alternate(parts) => {
            if let [(name, KeyValue::Bare(v))] = parts.as_slice()
                && *name == table.primary_id
            {
                let id =
                    uuid::Uuid::parse_str(v).map_err(|_| DvError::bad_query(format!("'{v}' is not a valid GUID.")))?;
                return id_exists(&id.to_string());
            }
            let mut names: Vec<String> = Vec::new();
            let mut conds = Vec::new();
            let mut params: Vec<Sql> = Vec::new();
            for (prop, value) in parts {
                let col = table
                    .column_by_property(prop)
                    .ok_or_else(|| DvError::unknown_property(prop, &table.logical_name))?;
                names.push(col.logical_name.clone());
                conds.push(format!("{} = ?", q(&col.logical_name)));
                params.push(match value {
                    KeyValue::Text(t) => Sql::Text(t.clone()),
                    KeyValue::Bare(b) if col.kind.is_lookup() => Sql::Text(b.to_lowercase()),
                    KeyValue::Bare(b) => b.parse::<i64>().map(Sql::Integer).unwrap_or_else(|_| Sql::Text(b.clone())),
                });
            }
            names.sort();
            let defined = table.keys.iter().any(|k| {
                let mut a = k.attributes.clone();
                a.sort();
                a == names
            });
            if !defined {
                return Err(DvError::bad_query(format!(
                    "The key specified in the URL ({}) is not an alternate key defined for entity '{}'.",
                    names.join(","),
                    table.logical_name
                )));
            }
            c.query_row(
                &format!(
                    "SELECT {} FROM {} WHERE {}",
                    q(&table.primary_id),
                    q(&table.logical_name),
                    conds.join(" AND ")
                ),
                params_from_iter(params.iter()),
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_error)
        }
    }
}

pub(super) fn key_text(key: &Key) -> String {
    match key {
        Key::Id(id) => id.to_string(),
        Key::Alternate(parts) => parts
            .iter()
            .map(|(k, v)| match v {
                KeyValue::Text(t) => format!("{k}='{t}'"),
                KeyValue::Bare(b) => format!("{k}={b}"),
            })
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Reads one record as JSON (with `@odata.context`) and its version.
fn read_record(
    c: &Connection,
    ctx_api: &str,
    schema: &crate::schema::Schema,
    proj: &Projection,
    table: &Table,
    id: &str,
    expand_context: &[String],
) -> DvResult<Option<(String, i64)>> {
    let cols = proj.sql_columns(schema, "t");
    let sql =
        format!("SELECT {} FROM {} t WHERE t.{} = ?", cols.join(", "), q(&table.logical_name), q(&table.primary_id));
    let n = cols.len();
    let row: Option<Vec<Sql>> = c
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row([id], |r| (0..n).map(|i| r.get::<_, Sql>(i)).collect()).optional())
        .map_err(sql_error)?;
    let Some(row) = row else { return Ok(None) };
    let version = match row[0] {
        Sql::Integer(v) => v,
        _ => 0,
    };
    let symbols = currency_symbols(c).map_err(sql_error)?;
    let mut obj = String::new();
    proj.write_row(&mut obj, &row, row_currency_symbol(table, proj, &row, &symbols), true);
    let mut items: Vec<String> = Vec::new();
    if proj.explicit {
        items.push(proj.context_list());
    }
    items.extend(expand_context.iter().cloned());
    let list = if items.is_empty() { String::new() } else { format!("({})", items.join(",")) };
    let mut ctx_json = String::new();
    crate::store::codec::write_json_str(
        &mut ctx_json,
        &format!("{ctx_api}/$metadata#{}{list}/$entity", table.set_name),
    );
    let body = format!("{{\"@odata.context\":{ctx_json},{}", &obj[1..]);
    Ok(Some((body, version)))
}

fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// `GET [API]/<set>(<key>)`.
pub async fn retrieve(ctx: Ctx, set: &str, key: Key) -> DvResult<Response> {
    let table = table_for(&ctx, set)?.clone();
    ctx.caller.check(&table, Access::Read)?;
    ctx.query.refuse_unsupported()?;
    let expands = super::expand::parse(&ctx, &table, ctx.query.get("$expand"))?;
    let expand_env = super::expand::ExpandEnv::of(&ctx);
    let ann = Annotations::from_prefer(&ctx.prefer);
    let select = ctx.query.get("$select").map(str::to_string);
    let schema = ctx.schema.clone();
    let api = ctx.api_root.clone();
    let if_none_match = ctx.headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
    let annotations_asked = ctx.prefer.annotations_raw.is_some();
    let t2 = table.clone();
    let result = blocking(&ctx, move |c| {
        let table = schema.table(&t2.logical_name).expect("table exists");
        let proj = Projection::new(table, select.as_deref(), ann)?;
        let Some(id) = resolve_key(c, table, &key)? else {
            return Err(DvError::record_not_found(&table.logical_name, &key_text(&key)));
        };
        let (mut body, version) = read_record(c, &api, &schema, &proj, table, &id, &expands.context_items())?
            .ok_or_else(|| DvError::record_not_found(&table.logical_name, &id))?;
        if !expands.is_empty() {
            let extra = super::expand::fragments(c, &expand_env, table, std::slice::from_ref(&id), &expands)?;
            if let Some(extra) = extra.first().filter(|e| !e.is_empty()) {
                body.pop();
                body.push(',');
                body.push_str(extra);
                body.push('}');
            }
        }
        Ok((body, version))
    })
    .await?;
    let (body, version) = result;
    if let Some(inm) = if_none_match
        && !annotations_asked
        && inm.trim() == etag(version)
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    per_row_latency(&ctx, 1).await;
    let mut resp = json_response(StatusCode::OK, body);
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    super::query::applied_preferences(&ctx, &mut resp, None);
    Ok(resp)
}

/// Platform-set columns of a new record.
fn creation_columns(
    ctx_user: &str,
    on_behalf: Option<&str>,
    bu: &str,
    table: &Table,
    ch: &mut Changes,
    now: &str,
    version: i64,
) {
    // Data migration: a create that sets `overriddencreatedon` gets that instant as its
    // `createdon`, and `overriddencreatedon` keeps when the record was really created.
    if let Some(migrated) = ch.get("overriddencreatedon").filter(|v| !matches!(v, Sql::Null)).cloned() {
        ch.set("createdon", migrated);
        ch.set("overriddencreatedon", Sql::Text(now.into()));
    }
    let mut set_default = |c: &str, v: Sql| {
        if table.column(c).is_some() && ch.get(c).is_none() {
            ch.set(c, v);
        }
    };
    set_default("createdon", Sql::Text(now.into()));
    set_default("modifiedon", Sql::Text(now.into()));
    set_default("createdby", Sql::Text(ctx_user.into()));
    set_default("modifiedby", Sql::Text(ctx_user.into()));
    if let Some(d) = on_behalf {
        set_default("createdonbehalfby", Sql::Text(d.into()));
        set_default("modifiedonbehalfby", Sql::Text(d.into()));
    }
    set_default("statecode", Sql::Integer(0));
    // Teams and users land in the caller's business unit unless the request binds one.
    set_default("businessunitid", Sql::Text(bu.into()));
    if table.ownership == Ownership::UserOwned {
        set_default("ownerid", Sql::Text(ctx_user.into()));
        set_default("ownerid_type", Sql::Text("systemuser".into()));
        set_default("owningbusinessunit", Sql::Text(bu.into()));
    }
    if table.columns.iter().any(|c| c.kind == crate::schema::AttrKind::Money) {
        set_default("transactioncurrencyid", Sql::Text(USD_ID.into()));
        set_default("exchangerate", Sql::Integer(10_000_000_000));
    }
    ch.set("versionnumber", Sql::Integer(version));
}

/// Sets `owninguser`/`owningteam` from `ownerid`.
fn owner_split(table: &Table, ch: &mut Changes) {
    if table.ownership != Ownership::UserOwned {
        return;
    }
    if let (Some(id), Some(kind)) = (ch.get("ownerid").cloned(), ch.get("ownerid_type").cloned()) {
        let is_team = matches!(&kind, Sql::Text(k) if k == "team");
        ch.set("owninguser", if is_team { Sql::Null } else { id.clone() });
        ch.set("owningteam", if is_team { id } else { Sql::Null });
    }
}

fn check_bound(c: &Connection, schema: &crate::schema::Schema, ch: &Changes) -> DvResult<()> {
    for (target, id) in &ch.bound {
        let t = schema.table(target).expect("bound target exists");
        let found: Option<i64> = c
            .query_row(&format!("SELECT 1 FROM {} WHERE {} = ?", q(&t.logical_name), q(&t.primary_id)), [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql_error)?;
        if found.is_none() {
            return Err(DvError::record_not_found(target, id));
        }
    }
    Ok(())
}

fn constraint_error(table: &Table, e: rusqlite::Error) -> DvError {
    let text = e.to_string();
    if text.contains("UNIQUE constraint failed") {
        if let Some(k) = table.keys.iter().find(|k| k.attributes.iter().any(|a| text.contains(&format!(".{a}")))) {
            return DvError::new(
                StatusCode::PRECONDITION_FAILED,
                "0x80040237",
                format!(
                    "A record that has the attribute values {} already exists. The entity key {} requires that this set of attributes contains unique values. Select unique values and try again.",
                    k.attributes.join(", "),
                    k.logical_name
                ),
            );
        }
        return DvError::new(StatusCode::PRECONDITION_FAILED, "0x80040237", "Cannot insert duplicate key.");
    }
    sql_error(e)
}

fn insert(c: &Connection, table: &Table, ch: &Changes) -> DvResult<()> {
    let cols: Vec<String> = ch.values.iter().map(|(k, _)| q(k)).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        q(&table.logical_name),
        cols.join(", "),
        vec!["?"; cols.len()].join(", ")
    );
    c.execute(&sql, params_from_iter(ch.values.iter().map(|(_, v)| v))).map_err(|e| constraint_error(table, e))?;
    Ok(())
}

/// Everything a write needs from the request, movable into a blocking task.
pub(super) struct WriteInput {
    pub(super) user: String,
    pub(super) on_behalf: Option<String>,
    pub(super) bu: String,
    pub(super) now: String,
    pub(super) version: i64,
}

pub(super) fn write_input(ctx: &Ctx) -> WriteInput {
    WriteInput {
        user: ctx.caller.user.systemuserid.clone(),
        on_behalf: ctx.caller.on_behalf_of().map(str::to_string),
        bu: ctx.caller.user.business_unit.clone(),
        now: format_datetime(ctx.state.clock.now()),
        version: ctx.state.store.next_version(),
    }
}

/// Dataverse enforces `SystemRequired` on create (application-required columns are left to
/// the apps): a create that leaves one without a value, and without a platform default, fails.
fn check_required(table: &Table, ch: &Changes) -> DvResult<()> {
    let missing = table.columns.iter().find(|c| {
        c.required == crate::schema::RequiredLevel::SystemRequired
            && c.valid_for_create
            && matches!(ch.get(&c.logical_name), None | Some(Sql::Null))
    });
    match missing {
        Some(c) => Err(DvError::validation(format!(
            "The '{}' attribute of the '{}' entity is required and has no value: send a value for it when creating the record.",
            c.logical_name, table.logical_name
        ))),
        None => Ok(()),
    }
}

pub(super) fn create_in(
    c: &Connection,
    schema: &crate::schema::Schema,
    table: &Table,
    mut ch: Changes,
    w: &WriteInput,
    id: Option<String>,
) -> DvResult<String> {
    let id = match (id, ch.get(&table.primary_id)) {
        (Some(id), _) => id,
        (None, Some(Sql::Text(t))) => t.clone(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    ch.set(&table.primary_id, Sql::Text(id.clone()));
    creation_columns(&w.user, w.on_behalf.as_deref(), &w.bu, table, &mut ch, &w.now, w.version);
    derive(table, &mut ch, None);
    check_required(table, &ch)?;
    if let (Some(s), Some(st)) = (ch.get("statecode").cloned(), ch.get("statuscode").cloned()) {
        check_status(table, &s, &st)?;
    }
    owner_split(table, &mut ch);
    check_bound(c, schema, &ch)?;
    insert(c, table, &ch)?;
    Ok(id)
}

fn entity_id_header(resp: &mut Response, api: &str, table: &Table, id: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("{api}/{}({id})", table.set_name)) {
        resp.headers_mut().insert("OData-EntityId", v);
    }
}

/// `POST [API]/<set>`.
pub async fn create(ctx: Ctx, set: &str, body: Bytes) -> DvResult<Response> {
    let table = table_for(&ctx, set)?.clone();
    super::bulk::require_message(&table, "Create")?;
    ctx.caller.check(&table, Access::Create)?;
    let ch = parse_body(&ctx.schema, &table, &body, Op::Create)?;
    let w = write_input(&ctx);
    let schema = ctx.schema.clone();
    let t2 = table.clone();
    let representation = ctx.prefer.return_representation;
    let select = ctx.query.get("$select").map(str::to_string);
    let ann = Annotations::from_prefer(&ctx.prefer);
    let api = ctx.api_root.clone();
    let (id, repr) = blocking(&ctx, move |c| {
        let tx = begin(c)?;
        let id = create_in(&tx, &schema, &t2, ch, &w, None)?;
        let repr = if representation {
            let proj = Projection::new(&t2, select.as_deref(), ann)?;
            read_record(&tx, &api, &schema, &proj, &t2, &id, &[])?
        } else {
            None
        };
        tx.commit()?;
        Ok((id, repr))
    })
    .await?;
    per_row_latency(&ctx, 1).await;
    Ok(match repr {
        Some((body, version)) => {
            let mut r = json_response(StatusCode::CREATED, body);
            r.headers_mut().insert("Preference-Applied", HeaderValue::from_static("return=representation"));
            if let Ok(v) = HeaderValue::from_str(&etag(version)) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r
        }
        None => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            entity_id_header(&mut r, &ctx.api_root, &table, &id);
            r
        }
    })
}

/// `PATCH [API]/<set>(<key>)`: update, or upsert when the record does not exist.
pub async fn update(ctx: Ctx, set: &str, key: Key, body: Bytes) -> DvResult<Response> {
    let table = table_for(&ctx, set)?.clone();
    let if_match = ctx.headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string());
    let if_none_match =
        ctx.headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string());
    // `If-Match: *` makes the PATCH an Update; otherwise it is an Upsert.
    super::bulk::require_message(&table, if if_match.as_deref() == Some("*") { "Update" } else { "Upsert" })?;
    let schema = ctx.schema.clone();
    let t2 = table.clone();
    let w = write_input(&ctx);
    let caller = ctx.caller.clone();
    let representation = ctx.prefer.return_representation;
    let select = ctx.query.get("$select").map(str::to_string);
    let ann = Annotations::from_prefer(&ctx.prefer);
    let api = ctx.api_root.clone();
    let (id, repr) = blocking(&ctx, move |c| {
        let tx = begin(c)?;
        let existing = resolve_key(&tx, &t2, &key)?;
        let id = match existing {
            None => {
                if if_match.as_deref() == Some("*") {
                    return Err(DvError::record_not_found(&t2.logical_name, &key_text(&key)));
                }
                caller.check(&t2, Access::Create)?;
                let mut ch = parse_body(&schema, &t2, &body, Op::Create)?;
                set_key_values(&t2, &mut ch, &key)?;
                let id = match &key {
                    Key::Id(id) => Some(id.to_string()),
                    Key::Alternate(_) => None,
                };
                create_in(&tx, &schema, &t2, ch, &w, id)?
            }
            Some(id) => {
                if if_none_match.as_deref() == Some("*") {
                    return Err(DvError::new(
                        StatusCode::PRECONDITION_FAILED,
                        "0x80040237",
                        "A record with matching key values already exists.",
                    ));
                }
                caller.check(&t2, Access::Write)?;
                let current: i64 = tx
                    .query_row(
                        &format!("SELECT versionnumber FROM {} WHERE {} = ?", q(&t2.logical_name), q(&t2.primary_id)),
                        [&id],
                        |r| r.get(0),
                    )
                    .map_err(sql_error)?;
                if let Some(m) = if_match.as_deref().filter(|m| *m != "*")
                    && m != etag(current)
                {
                    return Err(DvError::new(
                        StatusCode::PRECONDITION_FAILED,
                        "0x80060882",
                        "The version of the existing record doesn't match the RowVersion property provided.",
                    ));
                }
                let mut ch = parse_body(&schema, &t2, &body, Op::Update)?;
                update_in(&tx, &schema, &t2, &id, &mut ch, &w)?;
                id
            }
        };
        let repr = if representation {
            let proj = Projection::new(&t2, select.as_deref(), ann)?;
            read_record(&tx, &api, &schema, &proj, &t2, &id, &[])?
        } else {
            None
        };
        tx.commit()?;
        Ok((id, repr))
    })
    .await?;
    per_row_latency(&ctx, 1).await;
    Ok(match repr {
        Some((body, version)) => {
            let mut r = json_response(StatusCode::OK, body);
            r.headers_mut().insert("Preference-Applied", HeaderValue::from_static("return=representation"));
            if let Ok(v) = HeaderValue::from_str(&etag(version)) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r
        }
        None => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            entity_id_header(&mut r, &ctx.api_root, &table, &id);
            r
        }
    })
}

/// An upsert by alternate key creates the record with the key values set.
pub(super) fn set_key_values(table: &Table, ch: &mut Changes, key: &Key) -> DvResult<()> {
    if let Key::Alternate(parts) = key {
        for (prop, v) in parts {
            if let Some(col) = table.column_by_property(prop).filter(|c| !c.kind.is_lookup()) {
                let json = match v {
                    KeyValue::Text(t) => serde_json::Value::String(t.clone()),
                    KeyValue::Bare(b) => serde_json::from_str(b).unwrap_or(serde_json::Value::String(b.clone())),
                };
                let sql = crate::store::codec::from_json(col, &table.logical_name, &json)
                    .map_err(|_| DvError::bad_query(format!("Invalid key value for '{prop}'.")))?;
                ch.set(&col.logical_name, sql);
            }
        }
    }
    Ok(())
}

pub(super) fn update_in(
    c: &Connection,
    schema: &crate::schema::Schema,
    table: &Table,
    id: &str,
    ch: &mut Changes,
    w: &WriteInput,
) -> DvResult<()> {
    let read = |col: &str| -> Sql {
        if table.column(col).is_none() {
            return Sql::Null;
        }
        c.query_row(
            &format!("SELECT {} FROM {} WHERE {} = ?", q(col), q(&table.logical_name), q(&table.primary_id)),
            [id],
            |r| r.get(0),
        )
        .unwrap_or(Sql::Null)
    };
    derive(table, ch, Some(&read));
    let state = ch.get("statecode").cloned().unwrap_or_else(|| read("statecode"));
    if let Some(status) = ch.get("statuscode").cloned() {
        check_status(table, &state, &status)?;
    }
    owner_split(table, ch);
    check_bound(c, schema, ch)?;
    for (col, v) in [
        ("modifiedon", Sql::Text(w.now.clone())),
        ("modifiedby", Sql::Text(w.user.clone())),
        ("versionnumber", Sql::Integer(w.version)),
    ] {
        if table.column(col).is_some() {
            ch.set(col, v);
        }
    }
    if table.column("modifiedonbehalfby").is_some() {
        ch.set("modifiedonbehalfby", w.on_behalf.clone().map(Sql::Text).unwrap_or(Sql::Null));
    }
    let sets: Vec<String> = ch.values.iter().map(|(k, _)| format!("{} = ?", q(k))).collect();
    let mut params: Vec<Sql> = ch.values.iter().map(|(_, v)| v.clone()).collect();
    params.push(Sql::Text(id.to_string()));
    c.execute(
        &format!("UPDATE {} SET {} WHERE {} = ?", q(&table.logical_name), sets.join(", "), q(&table.primary_id)),
        params_from_iter(params.iter()),
    )
    .map_err(|e| constraint_error(table, e))?;
    Ok(())
}

/// `DELETE [API]/<set>(<key>)`.
pub async fn delete(ctx: Ctx, set: &str, key: Key) -> DvResult<Response> {
    let table = table_for(&ctx, set)?.clone();
    super::bulk::require_message(&table, "Delete")?;
    ctx.caller.check(&table, Access::Delete)?;
    let if_match = ctx.headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string());
    let schema = ctx.schema.clone();
    let w = write_input(&ctx);
    blocking(&ctx, move |c| {
        let tx = begin(c)?;
        let id = resolve_key(&tx, &table, &key)?
            .ok_or_else(|| DvError::record_not_found(&table.logical_name, &key_text(&key)))?;
        if let Some(m) = if_match.as_deref().filter(|m| *m != "*") {
            let current: i64 = tx
                .query_row(
                    &format!("SELECT versionnumber FROM {} WHERE {} = ?", q(&table.logical_name), q(&table.primary_id)),
                    [&id],
                    |r| r.get(0),
                )
                .map_err(sql_error)?;
            if m != etag(current) {
                return Err(DvError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "0x80060882",
                    "The version of the existing record doesn't match the RowVersion property provided.",
                ));
            }
        }
        tx.execute(&format!("DELETE FROM {} WHERE {} = ?", q(&table.logical_name), q(&table.primary_id)), [&id])
            .map_err(sql_error)?;
        tx.execute(
            "INSERT INTO _deleted(entity, id, version, deletedon) VALUES (?, ?, ?, ?)",
            rusqlite::params![table.logical_name, id, w.version, w.now],
        )
        .map_err(sql_error)?;
        // Relationships behave as "remove link": lookups that pointed here are cleared.
        for rel in schema.one_to_many(&table.logical_name) {
            let other = schema.table(&rel.referencing_entity).expect("referencing table exists");
            let col = other.column(&rel.referencing_attribute).expect("lookup column exists");
            let mut sql = format!("UPDATE {} SET {} = NULL", q(&other.logical_name), q(&col.logical_name));
            if col.is_polymorphic() {
                sql.push_str(&format!(
                    ", {} = NULL WHERE {} = ? AND {} = ?",
                    q(&format!("{}_type", col.logical_name)),
                    q(&col.logical_name),
                    q(&format!("{}_type", col.logical_name))
                ));
                tx.execute(&sql, rusqlite::params![id, table.logical_name]).map_err(sql_error)?;
            } else {
                sql.push_str(&format!(" WHERE {} = ?", q(&col.logical_name)));
                tx.execute(&sql, [&id]).map_err(sql_error)?;
            }
        }
        tx.commit()?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Requests under one record: a property (`GET`, `PUT`, `DELETE`), `/$value`, or a
/// single-valued navigation property (`GET`).
pub async fn part(
    ctx: Ctx,
    method: Method,
    set: &str,
    key: Key,
    segments: Vec<String>,
    body: Bytes,
) -> DvResult<Response> {
    let table = table_for(&ctx, set)?.clone();
    let prop = segments[0].clone();
    let raw_value = segments.get(1).map(String::as_str) == Some("$value");
    if segments.len() > 2 || (segments.len() == 2 && !raw_value) {
        return Err(DvError::new(
            StatusCode::NOT_IMPLEMENTED,
            "0x80040216",
            format!("The path segment '{}' is not implemented by this emulator build yet.", segments[1..].join("/")),
        ));
    }
    let Some(col) = table.column_by_property(&prop).cloned() else {
        if method != Method::GET {
            return Err(DvError::method_not_allowed(
                "Navigation properties can only be read (GET) here; use @odata.bind or $ref to change them.",
            ));
        }
        return navigate(ctx, table, key, &prop).await;
    };
    match method {
        Method::GET => {
            ctx.caller.check(&table, Access::Read)?;
            let t2 = table.clone();
            let c2 = col.clone();
            let v: Sql = blocking(&ctx, move |c| {
                let id = resolve_key(c, &t2, &key)?
                    .ok_or_else(|| DvError::record_not_found(&t2.logical_name, &key_text(&key)))?;
                c.query_row(
                    &format!(
                        "SELECT {} FROM {} WHERE {} = ?",
                        q(&c2.logical_name),
                        q(&t2.logical_name),
                        q(&t2.primary_id)
                    ),
                    [&id],
                    |r| r.get(0),
                )
                .map_err(sql_error)
            })
            .await?;
            if raw_value {
                let text = match &v {
                    Sql::Null => return Ok(StatusCode::NO_CONTENT.into_response()),
                    Sql::Text(t) => t.clone(),
                    other => {
                        let mut s = String::new();
                        write_json(&mut s, &col, other);
                        s
                    }
                };
                let mut r = (StatusCode::OK, text).into_response();
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                return Ok(r);
            }
            let mut value = String::new();
            write_json(&mut value, &col, &v);
            let mut ctx_json = String::new();
            crate::store::codec::write_json_str(
                &mut ctx_json,
                &format!(
                    "{}/$metadata#{}({})/{}",
                    ctx.api_root,
                    table.set_name,
                    key_text_for_context(&ctx, &table),
                    prop
                ),
            );
            Ok(json_response(StatusCode::OK, format!("{{\"@odata.context\":{ctx_json},\"value\":{value}}}")))
        }
        Method::PUT | Method::DELETE => {
            if col.kind.is_lookup() {
                return Err(DvError::bad_query(format!("Use '{prop}/$ref' or '@odata.bind' to change a lookup.")));
            }
            let value = if method == Method::PUT {
                let json: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| DvError::bad_body(format!("Invalid JSON. {e}")))?;
                json.get("value").cloned().ok_or_else(|| DvError::bad_body("The body must be {\"value\": ...}."))?
            } else {
                serde_json::Value::Null
            };
            let patch = serde_json::json!({ col.logical_name.clone(): value }).to_string();
            let resp = update_existing(ctx, table, key, patch.into_bytes()).await?;
            Ok(resp)
        }
        _ => Err(DvError::method_not_allowed("The requested resource does not support this http method.")),
    }
}

/// `GET [API]/<set>(<key>)/<nav>`: the related record of a lookup, or the related rows of a
/// 1:N relationship (a collection, paged like any other).
async fn navigate(ctx: Ctx, table: Table, key: Key, nav: &str) -> DvResult<Response> {
    ctx.caller.check(&table, Access::Read)?;
    let schema = ctx.schema.clone();
    let single = schema.single_nav(&table.logical_name, nav).cloned();
    let many = schema.collection_nav(&table.logical_name, nav).cloned();
    if single.is_none() && many.is_none() {
        return Err(DvError::segment_not_found(nav));
    }
    let t2 = table.clone();
    let k2 = key.clone();
    let lookup = single.as_ref().map(|r| r.referencing_attribute.clone());
    let (id, target_id): (String, Option<String>) = blocking(&ctx, move |c| {
        let id =
            resolve_key(c, &t2, &k2)?.ok_or_else(|| DvError::record_not_found(&t2.logical_name, &key_text(&k2)))?;
        let target = match lookup {
            Some(l) => c
                .query_row(
                    &format!("SELECT {} FROM {} WHERE {} = ?", q(&l), q(&t2.logical_name), q(&t2.primary_id)),
                    [&id],
                    |r| r.get::<_, Option<String>>(0),
                )
                .map_err(sql_error)?,
            None => None,
        };
        Ok((id, target))
    })
    .await?;
    if let Some(rel) = many {
        let child =
            schema.table(&rel.referencing_entity).ok_or_else(|| DvError::internal("relationship source missing"))?;
        let scope = super::query::Scope {
            lookup: rel.referencing_attribute.clone(),
            parent_id: id.clone(),
            path: format!("{}({id})/{nav}", table.set_name),
        };
        return super::query::collection_in(ctx, &child.set_name, Some(scope)).await;
    }
    let rel = single.ok_or_else(|| DvError::internal("navigation vanished"))?;
    let target = schema.table(&rel.referenced_entity).ok_or_else(|| DvError::internal("navigation target missing"))?;
    let Some(target_id) = target_id else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let uuid = uuid::Uuid::parse_str(&target_id).map_err(|_| DvError::internal("stored lookup is not a GUID"))?;
    // A polymorphic lookup may point at another table than this navigation property's.
    let set = target.set_name.clone();
    match retrieve(ctx, &set, Key::Id(uuid)).await {
        Err(e) if e.status == StatusCode::NOT_FOUND => Ok(StatusCode::NO_CONTENT.into_response()),
        other => other,
    }
}

fn key_text_for_context(_ctx: &Ctx, _table: &Table) -> String {
    String::from("$id")
}

async fn update_existing(ctx: Ctx, table: Table, key: Key, body: Vec<u8>) -> DvResult<Response> {
    let mut ctx = ctx;
    ctx.headers.insert(header::IF_MATCH, HeaderValue::from_static("*"));
    let set = table.set_name.clone();
    let r = update(ctx, &set, key, Bytes::from(body)).await?;
    Ok(if r.status() == StatusCode::NO_CONTENT { StatusCode::NO_CONTENT.into_response() } else { r })
}
