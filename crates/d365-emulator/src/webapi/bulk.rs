//! Bulk operation messages (reference §9): `POST [API]/<set>/Microsoft.Dynamics.CRM.CreateMultiple`,
//! `UpdateMultiple` and `UpsertMultiple` with `{"Targets":[...]}`. Every target needs
//! `@odata.type` naming the set's table; the whole message is one transaction (standard
//! tables): any failing target rolls everything back and its error is the answer.
//! `DeleteMultiple` is for elastic tables only and is refused on standard tables, as Dataverse does.
//!
//! Not every table offers every message ([`crate::schema::messages`] says which do); clients
//! find out with the documented probe `GET sdkmessagefilters?$select=sdkmessagefilterid&$filter=
//! sdkmessageid/name eq @message and primaryobjecttypecode eq @table`, an ordinary query of the
//! platform table seeded from that same source. A message a table lacks is refused by
//! [`require_message`], for the bulk messages here and the single-record writes alike.

use super::error::{DvError, DvResult};
use super::path::{Key, Resource};
use super::query::{per_row_latency, table_for};
use super::records::{WriteInput, blocking, create_in, key_text, resolve_key, set_key_values, update_in, write_input};
use super::writes::{Op, parse_body};
use super::{Ctx, json_response};
use crate::schema::Table;
use crate::schema::messages::supports_message;
use crate::security::Access;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// The bulk messages this module answers.
pub const ACTIONS: &[&str] = &["CreateMultiple", "UpdateMultiple", "UpsertMultiple", "DeleteMultiple"];

/// The refusal of a message on a table without it. The code and text follow what the
/// platform is commonly seen to answer for a message a table lacks (unconfirmed in the docs).
fn unsupported(table: &Table, action: &str) -> DvError {
    DvError::new(
        StatusCode::BAD_REQUEST,
        "0x80040800",
        format!(
            "The '{action}' method does not support entities of type '{}'. MessageProcessorCache returned MessageProcessor.Empty.",
            table.logical_name
        ),
    )
}

/// Refuses message `name` (`Create`, `Update`, ...) on a table that does not offer it, with the
/// platform's answer; the platform tables offer only reads.
pub fn require_message(table: &Table, name: &str) -> DvResult<()> {
    if supports_message(table, name) { Ok(()) } else { Err(unsupported(table, name)) }
}

fn targets(table: &Table, body: &[u8]) -> DvResult<Vec<Map<String, Value>>> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| DvError::bad_body(format!("Invalid JSON in the request body. {e}")))?;
    let Some(Value::Array(items)) = json.get("Targets") else {
        return Err(DvError::bad_body("The request body must be {\"Targets\": [ ... ]}."));
    };
    if items.is_empty() {
        return Err(DvError::bad_body("Targets must contain at least one record."));
    }
    let expected = format!("Microsoft.Dynamics.CRM.{}", table.logical_name);
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(map) = item else {
                return Err(DvError::bad_body(format!("Targets[{i}] is not a JSON object.")));
            };
            match map.get("@odata.type").and_then(Value::as_str).map(|t| t.trim_start_matches('#')) {
                None => Err(DvError::bad_body(format!(
                    "Targets[{i}] has no '@odata.type'; every target must say its type ('{expected}')."
                ))),
                Some(t) if t != expected => Err(DvError::bad_body(format!(
                    "Targets[{i}] is of type '{t}', but all targets must be '{expected}'."
                ))),
                Some(_) => Ok(map.clone()),
            }
        })
        .collect()
}

/// How an `UpdateMultiple` / `UpsertMultiple` target names its record: `@odata.id` (primary or
/// alternate key) or the primary key column.
fn target_key(table: &Table, map: &mut Map<String, Value>, i: usize) -> DvResult<Option<Key>> {
    if let Some(Value::String(id)) = map.remove("@odata.id") {
        let path = id.rsplit_once("/api/data/").map_or(id.as_str(), |(_, p)| p.split_once('/').map_or(p, |(_, r)| r));
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy().into_owned();
        return match super::path::parse(&decoded)? {
            Resource::Record { set, key } if set == table.set_name => Ok(Some(key)),
            _ => Err(DvError::bad_body(format!(
                "Targets[{i}]: '@odata.id' must address a record of '{}', like {}(<key>).",
                table.set_name, table.set_name
            ))),
        };
    }
    match map.remove(&table.primary_id) {
        Some(Value::String(s)) => uuid::Uuid::parse_str(&s)
            .map(|u| Some(Key::Id(u)))
            .map_err(|_| DvError::bad_body(format!("Targets[{i}]: '{}' is not a GUID: '{s}'.", table.primary_id))),
        Some(other) => {
            Err(DvError::bad_body(format!("Targets[{i}]: '{}' must be a GUID string, not {other}.", table.primary_id)))
        }
        None => Ok(None),
    }
}

/// Runs one bulk message.
pub async fn run(ctx: Ctx, set: &str, action: &str, body: Bytes) -> DvResult<Response> {
    let table = table_for(&ctx, set)?.clone();
    if action == "DeleteMultiple" {
        return Err(DvError::new(
            StatusCode::BAD_REQUEST,
            "0x80040216",
            "DeleteMultiple has not yet been implemented.",
        ));
    }
    require_message(&table, action)?;
    let items = targets(&table, &body)?;
    match action {
        "CreateMultiple" => ctx.caller.check(&table, Access::Create)?,
        "UpdateMultiple" => ctx.caller.check(&table, Access::Write)?,
        _ => {}
    }
    let n = items.len();
    let inputs: Vec<WriteInput> = (0..n).map(|_| write_input(&ctx)).collect();
    let schema = ctx.schema.clone();
    let caller = ctx.caller.clone();
    let creating = action == "CreateMultiple";
    let action = action.to_string();
    let t2 = table.clone();
    let ids = blocking(&ctx, move |c| {
        let tx = super::records::begin(c)?;
        let mut ids = Vec::with_capacity(items.len());
        for (i, (mut map, w)) in items.into_iter().zip(inputs).enumerate() {
            let id = match action.as_str() {
                "CreateMultiple" => {
                    let bytes = serde_json::to_vec(&map).map_err(|e| DvError::internal(e.to_string()))?;
                    let ch = parse_body(&schema, &t2, &bytes, Op::Create)?;
                    create_in(&tx, &schema, &t2, ch, &w, None)?
                }
                _ => {
                    let key = target_key(&t2, &mut map, i)?;
                    let existing = match &key {
                        Some(k) => resolve_key(&tx, &t2, k)?,
                        None => None,
                    };
                    let bytes = serde_json::to_vec(&map).map_err(|e| DvError::internal(e.to_string()))?;
                    match (existing, action.as_str()) {
                        (Some(id), _) => {
                            caller.check(&t2, Access::Write)?;
                            let mut ch = parse_body(&schema, &t2, &bytes, Op::Update)?;
                            update_in(&tx, &schema, &t2, &id, &mut ch, &w)?;
                            id
                        }
                        (None, "UpdateMultiple") => {
                            return Err(match &key {
                                Some(k) => DvError::record_not_found(&t2.logical_name, &key_text(k)),
                                None => DvError::bad_body(format!(
                                    "Targets[{i}] has no '{}': UpdateMultiple needs the key of every record.",
                                    t2.primary_id
                                )),
                            });
                        }
                        (None, _) => {
                            caller.check(&t2, Access::Create)?;
                            let mut ch = parse_body(&schema, &t2, &bytes, Op::Create)?;
                            let id = match &key {
                                Some(k) => {
                                    set_key_values(&t2, &mut ch, k)?;
                                    match k {
                                        Key::Id(u) => Some(u.to_string()),
                                        Key::Alternate(_) => None,
                                    }
                                }
                                None => None,
                            };
                            create_in(&tx, &schema, &t2, ch, &w, id)?
                        }
                    }
                }
            };
            ids.push(id);
        }
        tx.commit()?;
        Ok(ids)
    })
    .await?;
    per_row_latency(&ctx, n).await;
    if creating {
        let body = serde_json::json!({
            "@odata.context": format!("{}/$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse", ctx.api_root),
            "Ids": ids,
        });
        return Ok(json_response(StatusCode::OK, body.to_string()));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
