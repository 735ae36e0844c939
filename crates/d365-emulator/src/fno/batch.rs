//! `POST /data/$batch`: a `multipart/mixed` body of requests (the multipart reading is the
//! Dataverse side's, [`crate::webapi::batch`]). A change set is atomic: its requests run in one
//! transaction on one connection, and when one fails none is applied; the change set's answer
//! then holds only the failing request's response. The batch itself answers 200 with every
//! outcome inside, and later parts still run (as the F&O samples show). `Content-ID: n` names
//! a change-set request, and a later URL starting `$n` refers to the record it created.

use super::error::{FnoError, FnoResult};
use super::{Ctx, route_data};
use crate::webapi::batch::{Answer, Item, Part, boundary, parse_items, push_http, render};
use axum::body::Bytes;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most requests one batch may hold (the service-protection documentation's figure).
pub const MAX_REQUESTS: usize = 5000;

/// `POST /data/$batch`.
pub async fn run(ctx: Ctx, body: Bytes) -> FnoResult<Response> {
    let ct = ctx.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let b = boundary(ct).ok_or_else(|| {
        FnoError::bad_request("A $batch request needs 'Content-Type: multipart/mixed; boundary=batch_<id>'.")
    })?;
    let text = std::str::from_utf8(&body).map_err(|_| FnoError::bad_request("The batch body is not UTF-8 text."))?;
    let items = parse_items(text, &b).map_err(|e| FnoError::bad_request(e.message))?;
    let total: usize = items.iter().map(|i| if let Item::ChangeSet(p) = i { p.len() } else { 1 }).sum();
    if total > MAX_REQUESTS {
        return Err(FnoError::bad_request(format!(
            "The batch holds {total} requests; the limit is {MAX_REQUESTS}. Split it into several batches."
        )));
    }
    let out_boundary = format!("batchresponse_{}", uuid::Uuid::new_v4());
    let mut out = String::new();
    for item in items {
        match item {
            Item::Single(part) => {
                let cid = part.content_id.clone();
                let answer = render(execute(&ctx, part, None).await, cid).await;
                push_http(&mut out, &out_boundary, &answer);
            }
            Item::ChangeSet(parts) => {
                let answers = change_set(&ctx, parts).await?;
                let cs = format!("changesetresponse_{}", uuid::Uuid::new_v4());
                let mut inner = String::new();
                for a in &answers {
                    push_http(&mut inner, &cs, a);
                }
                inner.push_str(&format!("--{cs}--\r\n"));
                out.push_str(&format!(
                    "--{out_boundary}\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n{inner}"
                ));
            }
        }
    }
    out.push_str(&format!("--{out_boundary}--\r\n"));
    let mut resp = (StatusCode::OK, out).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/mixed; boundary={out_boundary}")) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

/// What follows `/data/` in a part's URL (absolute, root-relative or relative).
fn data_path(target: &str) -> String {
    let t = target.trim();
    match t.find("/data/") {
        Some(i) => t[i + "/data/".len()..].to_string(),
        None => t.trim_start_matches('/').to_string(),
    }
}

async fn execute(outer: &Ctx, part: Part, pinned: Option<Arc<Mutex<rusqlite::Connection>>>) -> Response {
    let target = data_path(&part.target);
    let (path, query) = target.split_once('?').map_or((target.as_str(), ""), |(p, q)| (p, q));
    if path == "$batch" {
        return FnoError::bad_request("Batches cannot be nested.").into_response();
    }
    let ctx = Ctx {
        headers: part.headers,
        query: form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
        raw_query: query.to_string(),
        pinned,
        ..outer.clone()
    };
    Box::pin(route_data(ctx, part.method, path, Bytes::from(part.body)))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Runs a change set in one transaction: all its requests apply, or none does.
async fn change_set(ctx: &Ctx, parts: Vec<Part>) -> FnoResult<Vec<Answer>> {
    let state = ctx.state.clone();
    let conn = tokio::task::spawn_blocking(move || -> rusqlite::Result<rusqlite::Connection> {
        let c = state.fno.store.open_connection()?;
        c.execute_batch("BEGIN IMMEDIATE")?;
        Ok(c)
    })
    .await
    .map_err(|e| FnoError::internal(format!("batch task failed: {e}")))?
    .map_err(super::sql_error)?;
    let conn = Arc::new(Mutex::new(conn));
    let mut created: HashMap<String, String> = HashMap::new();
    let mut answers = Vec::new();
    let mut ok = true;
    for mut part in parts {
        let cid = part.content_id.clone();
        if part.method == Method::GET {
            ok = false;
            answers = vec![
                render(FnoError::bad_request("A change set cannot contain GET requests.").into_response(), cid).await,
            ];
            break;
        }
        if let Some(r) = part.target.trim().strip_prefix('$') {
            let (id, rest) = r.split_once('/').unwrap_or((r, ""));
            match created.get(id) {
                Some(uri) => part.target = if rest.is_empty() { uri.clone() } else { format!("{uri}/{rest}") },
                None => {
                    ok = false;
                    let e = FnoError::bad_request(format!(
                        "Content-ID reference '${id}' does not exist in the change set."
                    ));
                    answers = vec![render(e.into_response(), cid).await];
                    break;
                }
            }
        }
        let answer = render(execute(ctx, part, Some(conn.clone())).await, cid).await;
        if !answer.status.is_success() {
            ok = false;
            answers = vec![answer];
            break;
        }
        if let (Some(id), Some(uri)) = (&answer.content_id, &answer.entity_id) {
            created.insert(id.clone(), uri.clone());
        }
        answers.push(answer);
    }
    let end = if ok { "COMMIT" } else { "ROLLBACK" };
    tokio::task::spawn_blocking(move || {
        let c = conn.lock().unwrap_or_else(|e| e.into_inner());
        c.execute_batch(end)
    })
    .await
    .map_err(|e| FnoError::internal(format!("batch task failed: {e}")))?
    .map_err(super::sql_error)?;
    Ok(answers)
}
