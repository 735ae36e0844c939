//! `POST [API]/$batch` (reference §8): a `multipart/mixed` body of HTTP requests, run in
//! order, answered as `multipart/mixed` in the same order. Change sets (nested
//! `multipart/mixed` parts) are atomic: their requests run on one connection inside one
//! transaction, `Content-ID: n` names each request, and `$n` in a later URL or `@odata.bind` /
//! `@odata.id` value refers to the record request n created. Without
//! `Prefer: odata.continue-on-error` processing stops at the first failure and the batch
//! answers with that failure's status; with it, every part answers with its own status.

use super::error::{DvError, DvResult};
use super::request::{Prefer, QueryOptions};
use super::{Ctx, route};
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most requests one batch may hold.
pub const MAX_REQUESTS: usize = 1000;

/// One HTTP request inside the batch.
pub(crate) struct Part {
    pub(crate) content_id: Option<String>,
    pub(crate) method: Method,
    pub(crate) target: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

pub(crate) enum Item {
    Single(Part),
    ChangeSet(Vec<Part>),
}

/// The boundary parameter of a `multipart/mixed` content type.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Splits a multipart body into its parts (each: header block and content).
fn split_parts<'a>(body: &'a str, boundary: &str) -> DvResult<Vec<&'a str>> {
    let delimiter = format!("--{boundary}");
    let mut sections = body.split(delimiter.as_str());
    sections.next(); // preamble
    let mut parts = Vec::new();
    let mut closed = false;
    for section in sections {
        if section.starts_with("--") {
            closed = true;
            break;
        }
        parts.push(section.strip_prefix("\r\n").or_else(|| section.strip_prefix('\n')).unwrap_or(section));
    }
    if !closed {
        return Err(DvError::bad_body(format!(
            "The batch body does not end with the closing delimiter '--{boundary}--'."
        )));
    }
    Ok(parts)
}

/// Splits a header block from what follows the blank line.
fn split_head(text: &str) -> (&str, &str) {
    if let Some(i) = text.find("\r\n\r\n") {
        (&text[..i], &text[i + 4..])
    } else if let Some(i) = text.find("\n\n") {
        (&text[..i], &text[i + 2..])
    } else {
        (text, "")
    }
}

fn parse_headers(block: &str) -> DvResult<HeaderMap> {
    let mut h = HeaderMap::new();
    for line in block.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| DvError::bad_body(format!("Malformed header line in the batch: '{line}'.")))?;
        let name = HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|_| DvError::bad_body(format!("Malformed header name in the batch: '{k}'.")))?;
        let value = HeaderValue::from_str(v.trim())
            .map_err(|_| DvError::bad_body(format!("Malformed header value in the batch: '{line}'.")))?;
        h.append(name, value);
    }
    Ok(h)
}

fn header_str<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Parses one `application/http` part: MIME headers, then the embedded HTTP request.
fn parse_http_part(text: &str) -> DvResult<Part> {
    let (mime, rest) = split_head(text);
    let mime = parse_headers(mime)?;
    let content_id = header_str(&mime, "content-id").map(str::to_string);
    let (head, body) = split_head(rest.trim_start_matches(['\r', '\n']));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or("").trim();
    let mut words = request_line.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Err(DvError::bad_body(format!(
            "The batch part's request line '{request_line}' is not 'METHOD URL HTTP/1.1'."
        )));
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| DvError::bad_body(format!("Unknown method '{method}' in the batch.")))?;
    let headers = parse_headers(&lines.collect::<Vec<_>>().join("\n"))?;
    let body = body.trim_end_matches(['\r', '\n']).as_bytes().to_vec();
    Ok(Part { content_id, method, target: target.to_string(), headers, body })
}

pub(crate) fn parse_items(body: &str, boundary: &str) -> DvResult<Vec<Item>> {
    let mut items = Vec::new();
    for part in split_parts(body, boundary)? {
        let (mime, rest) = split_head(part);
        let headers = parse_headers(mime)?;
        let ct = header_str(&headers, "content-type").unwrap_or("");
        if let Some(inner) = boundary_of(ct) {
            let mut parts = Vec::new();
            for p in split_parts(rest, &inner)? {
                let p = parse_http_part(p)?;
                if p.method == Method::GET {
                    return Err(DvError::bad_body("A change set cannot contain GET requests."));
                }
                parts.push(p);
            }
            items.push(Item::ChangeSet(parts));
        } else if ct.to_ascii_lowercase().starts_with("application/http") {
            items.push(Item::Single(parse_http_part(part)?));
        } else {
            return Err(DvError::bad_body(format!(
                "A batch part must be 'application/http' or a 'multipart/mixed' change set, not '{ct}'."
            )));
        }
    }
    Ok(items)
}

fn boundary_of(ct: &str) -> Option<String> {
    boundary(ct)
}

/// The outcome of one part, as text for the response.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) content_id: Option<String>,
    pub(crate) text: String,
    pub(crate) entity_id: Option<String>,
}

pub(crate) async fn render(resp: Response, content_id: Option<String>) -> Answer {
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut text = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let mut entity_id = None;
    for (k, v) in &parts.headers {
        let keep = matches!(
            k.as_str(),
            "content-type"
                | "odata-version"
                | "odata-entityid"
                | "etag"
                | "location"
                | "preference-applied"
                | "retry-after"
        );
        if keep && let Ok(v) = v.to_str() {
            text.push_str(&format!("{}: {v}\r\n", canonical(k.as_str())));
            if k.as_str() == "odata-entityid" {
                entity_id = Some(v.to_string());
                if !parts.headers.contains_key(header::LOCATION) {
                    text.push_str(&format!("Location: {v}\r\n"));
                }
            }
        }
    }
    text.push_str("\r\n");
    text.push_str(&String::from_utf8_lossy(&bytes));
    Answer { status, content_id, text, entity_id }
}

fn canonical(name: &str) -> &str {
    match name {
        "content-type" => "Content-Type",
        "odata-version" => "OData-Version",
        "odata-entityid" => "OData-EntityId",
        "etag" => "ETag",
        "location" => "Location",
        "preference-applied" => "Preference-Applied",
        "retry-after" => "Retry-After",
        other => other,
    }
}

/// Replaces `$n` references by the URIs created earlier in the change set.
fn resolve_refs(part: &mut Part, created: &HashMap<String, String>) -> DvResult<()> {
    if let Some(r) = part.target.strip_prefix('$') {
        let (id, rest) = r.split_once('/').map_or((r, ""), |(a, b)| (a, b));
        let uri = created.get(id).ok_or_else(|| {
            DvError::bad_body(format!("Content-ID Reference: '${id}' does not exist in the batch context."))
        })?;
        part.target = if rest.is_empty() { uri.clone() } else { format!("{uri}/{rest}") };
    }
    if part.body.windows(2).any(|w| w == b"\"$")
        && let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&part.body)
    {
        {
            if let Some(map) = json.as_object_mut() {
                for (k, v) in map.iter_mut() {
                    if (k.ends_with("@odata.bind") || k == "@odata.id")
                        && let Some(s) = v.as_str().and_then(|s| s.strip_prefix('$'))
                    {
                        let uri = created.get(s).ok_or_else(|| {
                            DvError::bad_body(format!(
                                "Content-ID Reference: '${s}' does not exist in the batch context."
                            ))
                        })?;
                        *v = serde_json::Value::String(uri.clone());
                    }
                }
            }
            part.body = serde_json::to_vec(&json).unwrap_or_default();
        }
    }
    Ok(())
}

/// Runs one request of the batch as the batch's caller.
async fn execute(outer: &Ctx, part: Part, pinned: Option<Arc<Mutex<rusqlite::Connection>>>) -> Response {
    let target = part.target.trim();
    let path_and_query = match target.find("/api/data/") {
        Some(i) => target[i + "/api/data/".len()..].split_once('/').map_or("", |(_, r)| r).to_string(),
        None => target.trim_start_matches('/').to_string(),
    };
    let (path, query) = path_and_query.split_once('?').map_or((path_and_query.as_str(), None), |(p, q)| (p, Some(q)));
    let result: DvResult<Response> = async {
        let decoded = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| DvError::bad_query("The request URL is not valid UTF-8."))?
            .into_owned();
        let resource = super::path::parse(&decoded)?;
        if matches!(resource, super::path::Resource::Batch) {
            return Err(DvError::bad_body("Batches cannot be nested."));
        }
        let ctx = Ctx {
            // Each request of a batch sees the columns created by the requests before it.
            schema: outer.state.schema(),
            state: outer.state.clone(),
            caller: outer.caller.clone(),
            query: QueryOptions::parse(query)?,
            prefer: Prefer::from_headers(&part.headers),
            headers: part.headers,
            raw_query: query.unwrap_or("").to_string(),
            api_root: outer.api_root.clone(),
            pinned,
        };
        Box::pin(route(ctx, &part.method, resource, Bytes::from(part.body))).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST [API]/$batch`.
pub async fn run(ctx: Ctx, body: Bytes) -> DvResult<Response> {
    let ct = header_str(&ctx.headers, "content-type").unwrap_or("");
    let b = boundary(ct).ok_or_else(|| {
        DvError::bad_body("A $batch request needs 'Content-Type: multipart/mixed; boundary=batch_<id>'.")
    })?;
    let text = std::str::from_utf8(&body).map_err(|_| DvError::bad_body("The batch body is not UTF-8 text."))?;
    let items = parse_items(text, &b)?;
    let total: usize = items.iter().map(|i| if let Item::ChangeSet(p) = i { p.len() } else { 1 }).sum();
    if total > MAX_REQUESTS {
        return Err(DvError::bad_body(format!(
            "The batch holds {total} requests; the limit is {MAX_REQUESTS}. Split it into several batches."
        )));
    }
    let continue_on_error = ctx.prefer.continue_on_error;
    let out_boundary = format!("batchresponse_{}", uuid::Uuid::new_v4());
    let mut out = String::new();
    let mut failed: Option<StatusCode> = None;
    for item in items {
        match item {
            Item::Single(part) => {
                let answer = render(execute(&ctx, part, None).await, None).await;
                let failure = !answer.status.is_success();
                if failure && !continue_on_error {
                    out.clear();
                    failed = Some(answer.status);
                }
                push_http(&mut out, &out_boundary, &answer);
                if failure && !continue_on_error {
                    break;
                }
            }
            Item::ChangeSet(parts) => {
                let (answers, ok) = change_set(&ctx, parts).await?;
                let cs_boundary = format!("changesetresponse_{}", uuid::Uuid::new_v4());
                let mut inner = String::new();
                for a in &answers {
                    push_http(&mut inner, &cs_boundary, a);
                }
                inner.push_str(&format!("--{cs_boundary}--\r\n"));
                if !ok && !continue_on_error {
                    out.clear();
                    failed = answers.last().map(|a| a.status);
                }
                out.push_str(&format!(
                    "--{out_boundary}\r\nContent-Type: multipart/mixed; boundary={cs_boundary}\r\n\r\n{inner}"
                ));
                if !ok && !continue_on_error {
                    break;
                }
            }
        }
    }
    out.push_str(&format!("--{out_boundary}--\r\n"));
    let mut resp = (failed.unwrap_or(StatusCode::OK), out).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/mixed; boundary={out_boundary}")) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if continue_on_error {
        resp.headers_mut().insert("Preference-Applied", HeaderValue::from_static("odata.continue-on-error"));
    }
    Ok(resp)
}

pub(crate) fn push_http(out: &mut String, boundary: &str, a: &Answer) {
    out.push_str(&format!("--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"));
    if let Some(id) = &a.content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&a.text);
    out.push_str("\r\n");
}

/// Runs a change set in one transaction on one connection. Returns the answers (only the
/// failing one when it fails) and whether it committed.
async fn change_set(ctx: &Ctx, parts: Vec<Part>) -> DvResult<(Vec<Answer>, bool)> {
    let state = ctx.state.clone();
    let conn = tokio::task::spawn_blocking(move || -> rusqlite::Result<rusqlite::Connection> {
        let c = state.store.open_connection()?;
        c.execute_batch("BEGIN IMMEDIATE")?;
        Ok(c)
    })
    .await
    .map_err(|e| DvError::internal(format!("batch task failed: {e}")))?
    .map_err(super::query::sql_error)?;
    let conn = Arc::new(Mutex::new(conn));
    let mut created: HashMap<String, String> = HashMap::new();
    let mut answers = Vec::new();
    let mut ok = true;
    for mut part in parts {
        let content_id = part.content_id.clone();
        let answer = match resolve_refs(&mut part, &created) {
            Ok(()) => render(execute(ctx, part, Some(conn.clone())).await, content_id).await,
            Err(e) => render(e.into_response(), content_id).await,
        };
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
    let result = tokio::task::spawn_blocking(move || {
        let c = conn.lock().unwrap_or_else(|e| e.into_inner());
        c.execute_batch(end)
    })
    .await
    .map_err(|e| DvError::internal(format!("batch task failed: {e}")))?;
    result.map_err(super::query::sql_error)?;
    Ok((answers, ok))
}
