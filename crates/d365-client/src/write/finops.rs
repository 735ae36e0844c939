//! Writes to Finance & Operations data entities: `$batch` of POST / PATCH / DELETE parts
//! addressed by the entity's (composite) key, `{set}(dataAreaId='usmf',CustomerAccount='C1')`.
//!
//! - Each row is its own part outside any change set, so every row gets its own answer and a
//!   failing row (F&O reports business validation as HTTP 500 with an infolog) does not stop
//!   the others; [`WriteOptions::atomic`] puts all rows in one change set instead (all or none).
//! - Creates carry their key fields in the body (F&O keys are natural keys: no id is made up);
//!   updates and deletes need the row's key; an upsert is a PATCH, and the rows the service
//!   answers 404 (no such record) are created with a POST.
//! - A request whose answer is lost is repeated only when every part is idempotent (no
//!   creates); otherwise its rows are reported with the unknown outcome.
//! - Finance & Operations has no bulk messages and no bypass of business logic: other
//!   [`BulkMode`]s than `Auto`/`Batch`/`RowByRow`, and `bypass_plugins`, are refused before
//!   anything is sent.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::Method;
use serde_json::{Map, Value};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::wire::{PartAnswer, parse_batch, part_error};
use super::{BulkMode, MAX_CHUNK_SIZE, RowError, WriteError, WriteOp, WriteOptions, WriteReport, WriteRow};
use crate::client::{ApiRequest, DataverseClient};
use crate::error::ClientError;
use crate::metadata::EntityInfo;
use crate::records::{KeyValue, RecordKey, record_path};

/// Requests in flight when the options do not say (F&O sends no parallelism hint).
const DEFAULT_PARALLEL: usize = 4;

/// One row's request.
#[derive(Debug, Clone)]
struct Part {
    index: u64,
    key: Option<RecordKey>,
    method: &'static str,
    path: String,
    etag: Option<String>,
    body: Option<Map<String, Value>>,
}

/// The key fields of a row's key (alternate key parts) with their JSON values, for a create
/// body (a key part written as a raw literal is expected among the row's values already).
fn key_values(key: &RecordKey) -> Vec<(String, Option<Value>)> {
    match key {
        RecordKey::Alternate(parts) => parts
            .iter()
            .map(|(k, v)| {
                let json = match v {
                    KeyValue::String(s) => Some(Value::String(s.clone())),
                    KeyValue::Int(n) => Some(Value::from(*n)),
                    KeyValue::Guid(g) => Some(Value::String(g.to_string())),
                    KeyValue::Raw(_) => None,
                };
                (k.clone(), json)
            })
            .collect(),
        RecordKey::Id(_) => Vec::new(),
    }
}

/// The row's column a message names in quotes (`Field 'Customer group' …` names a label, so
/// only exact property names count).
fn column_in<'a>(message: &str, mut columns: impl Iterator<Item = &'a str>) -> Option<String> {
    let quoted: Vec<&str> = message.split('\'').skip(1).step_by(2).collect();
    columns.find(|c| quoted.iter().any(|q| q.eq_ignore_ascii_case(c))).map(str::to_string)
}

fn refused(row: &WriteRow, message: String) -> Box<RowError> {
    Box::new(RowError {
        index: row.index,
        key: row.key.clone(),
        id: None,
        status: None,
        code: String::new(),
        message,
        column: None,
    })
}

/// The request of `row` for `op` (`upsert_create`: the POST of an upsert's missing record).
fn part(set: &str, op: WriteOp, row: &WriteRow, optimistic: bool, upsert_create: bool) -> Result<Part, Box<RowError>> {
    let key = row.key.clone();
    if matches!(key, Some(RecordKey::Id(_))) {
        return Err(refused(
            row,
            "Finance & Operations records are addressed by their key fields, not by an id".into(),
        ));
    }
    let etag = if optimistic && op != WriteOp::Create { row.etag.clone() } else { None };
    if optimistic && matches!(op, WriteOp::Update | WriteOp::Delete) && etag.is_none() {
        return Err(refused(row, "optimistic write: the row has no etag (read it with its etag first)".into()));
    }
    let needs_key = |what: &str| refused(row, format!("the row has no key: {what} needs the entity's key fields"));
    Ok(match (op, upsert_create) {
        (WriteOp::Create, _) | (WriteOp::Upsert, true) => {
            let mut body = row.values.clone();
            if let Some(k) = &key {
                for (name, value) in key_values(k) {
                    if let Some(v) = value {
                        body.entry(name).or_insert(v);
                    }
                }
            }
            Part { index: row.index, key, method: "POST", path: set.to_string(), etag: None, body: Some(body) }
        }
        (WriteOp::Update, _) | (WriteOp::Upsert, false) => {
            let k = key.clone().ok_or_else(|| needs_key(op.name()))?;
            let mut body = row.values.clone();
            // Key fields cannot change in a PATCH (the service refuses it).
            for (name, _) in key_values(&k) {
                body.remove(&name);
            }
            Part { index: row.index, path: record_path(set, &k), key, method: "PATCH", etag, body: Some(body) }
        }
        (WriteOp::Delete, _) => {
            let k = key.clone().ok_or_else(|| needs_key("Delete"))?;
            Part { index: row.index, path: record_path(set, &k), key, method: "DELETE", etag, body: None }
        }
    })
}

/// The `$batch` of `parts`: one part each, or one change set (`atomic`).
fn batch(client: &DataverseClient, parts: &[Part], atomic: bool) -> Result<ApiRequest, ClientError> {
    let boundary = format!("batch_{}", Uuid::new_v4().simple());
    let cs = format!("changeset_{}", Uuid::new_v4().simple());
    let mut body = String::with_capacity(parts.len() * 256);
    if atomic {
        body.push_str(&format!("--{boundary}\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n"));
    }
    for (i, p) in parts.iter().enumerate() {
        let b = if atomic { &cs } else { &boundary };
        body.push_str(&format!("--{b}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"));
        body.push_str(&format!("Content-ID: {}\r\n", i + 1));
        body.push_str(&format!("\r\n{} {} HTTP/1.1\r\n", p.method, client.url(&p.path)?));
        if let Some(e) = &p.etag {
            body.push_str(&format!("If-Match: {e}\r\n"));
        }
        match &p.body {
            Some(values) => {
                let text = serde_json::to_string(values)
                    .map_err(|e| ClientError::InvalidArgument(format!("row {}: {e}", p.index)))?;
                body.push_str("Content-Type: application/json\r\n\r\n");
                body.push_str(&text);
                body.push_str("\r\n");
            }
            None => body.push_str("\r\n\r\n"),
        }
    }
    if atomic {
        body.push_str(&format!("--{cs}--\r\n"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    let mut req = ApiRequest::new(Method::POST, client.url("$batch")?)
        .header("Content-Type", &format!("multipart/mixed; boundary={boundary}"))?;
    req.body = Some(Bytes::from(body));
    Ok(req.idempotent(parts.iter().all(|p| p.method != "POST")))
}

/// What became of one batch's rows.
#[derive(Debug, Default)]
struct Outcome {
    written: u64,
    failed: Vec<RowError>,
    /// Upsert rows answered 404: to be created.
    missing: Vec<u64>,
    unresolved: Vec<u64>,
    abort: Option<ClientError>,
}

fn row_error(p: &Part, values: Option<&Map<String, Value>>, answer: &PartAnswer) -> RowError {
    let e = part_error(answer, p.method, &p.path);
    let (code, message) =
        e.service().map(|s| (s.code.clone().unwrap_or_default(), s.message.clone())).unwrap_or_default();
    let column = values.and_then(|v| column_in(&message, v.keys().map(String::as_str)));
    RowError { index: p.index, key: p.key.clone(), id: None, status: Some(answer.status), code, message, column }
}

async fn send(client: DataverseClient, parts: Vec<Part>, atomic: bool, upsert: bool) -> Outcome {
    let mut out = Outcome::default();
    let answers = match batch(&client, &parts, atomic) {
        Ok(req) => match client.send(&req).await.and_then(|resp| parse_batch(&req, &resp)) {
            Ok(a) => a,
            Err(e) => {
                out.unresolved = parts.iter().map(|p| p.index).collect();
                out.abort = Some(e);
                return out;
            }
        },
        Err(e) => {
            out.unresolved = parts.iter().map(|p| p.index).collect();
            out.abort = Some(e);
            return out;
        }
    };
    if atomic {
        // One change set: all answered 2xx, or one failing answer and nothing applied.
        if let Some(bad) = answers.iter().find(|a| a.status >= 400) {
            let culprit =
                bad.content_id.as_deref().and_then(|c| c.parse::<usize>().ok()).and_then(|i| parts.get(i - 1));
            for p in &parts {
                match culprit {
                    Some(c) if c.index == p.index => out.failed.push(row_error(p, p.body.as_ref(), bad)),
                    _ => out.failed.push(RowError {
                        index: p.index,
                        key: p.key.clone(),
                        id: None,
                        status: None,
                        code: String::new(),
                        message: "rolled back: another row of the change set failed".into(),
                        column: None,
                    }),
                }
            }
            let first = culprit.map(|c| row_error(c, c.body.as_ref(), bad));
            out.abort = Some(ClientError::InvalidArgument(match first {
                Some(e) => format!("atomic write rolled back: {e}"),
                None => "atomic write rolled back".into(),
            }));
            return out;
        }
        out.written = parts.len() as u64;
        return out;
    }
    if answers.len() != parts.len() {
        out.unresolved = parts.iter().map(|p| p.index).collect();
        out.abort = Some(ClientError::InvalidArgument(format!(
            "the $batch answer holds {} parts for {} requests",
            answers.len(),
            parts.len()
        )));
        return out;
    }
    for (p, a) in parts.iter().zip(&answers) {
        match a.status {
            200..=299 => out.written += 1,
            404 if upsert && p.method == "PATCH" => out.missing.push(p.index),
            401 | 403 => {
                out.abort.get_or_insert_with(|| part_error(a, p.method, &p.path));
                out.unresolved.push(p.index);
            }
            _ => out.failed.push(row_error(p, p.body.as_ref(), a)),
        }
    }
    out
}

fn check(o: &WriteOptions) -> Result<(), ClientError> {
    let bad = |m: &str| Err(ClientError::InvalidArgument(m.into()));
    match o.mode {
        BulkMode::BulkMessages => return bad("Finance & Operations has no bulk messages: use $batch (the default)"),
        BulkMode::RowByRow if o.atomic => {
            return bad("an atomic write is one $batch change set: it cannot be row by row");
        }
        _ => {}
    }
    if o.bypass_plugins {
        return bad("Finance & Operations has no bypass of business logic: drop the bypass option");
    }
    if o.caller_id.is_some() {
        return bad("Finance & Operations has no impersonation header: sign in as the user instead");
    }
    if !(1..=MAX_CHUNK_SIZE).contains(&o.chunk_size) {
        return bad("the chunk size is outside 1..=1000");
    }
    Ok(())
}

/// [`super::write`] for a Finance & Operations entity (see the module docs).
pub(super) async fn write<S, P>(
    client: &DataverseClient,
    entity: &EntityInfo,
    op: WriteOp,
    rows: S,
    options: &WriteOptions,
    progress: P,
) -> Result<WriteReport, WriteError>
where
    S: Stream<Item = WriteRow> + Send,
    P: Fn(&super::WriteProgress) + Send + Sync,
{
    let account = super::Accounting::start(client, &progress);
    let mode = if options.mode == BulkMode::RowByRow { BulkMode::RowByRow } else { BulkMode::Batch };
    let mut report = WriteReport::new(op, mode);
    if let Err(e) = check(options) {
        return Err(WriteError { error: e, report: Box::new(report) });
    }
    let set = entity.entity_set_name.clone().unwrap_or_default();
    let per_request = if mode == BulkMode::RowByRow { 1 } else { options.chunk_size };
    let parallel = options.max_parallel.unwrap_or(DEFAULT_PARALLEL).max(1);
    let mut rows = std::pin::pin!(rows);
    let mut by_index: std::collections::HashMap<u64, WriteRow> = std::collections::HashMap::new();
    let finish = |report: WriteReport| account.finish(report);
    let notify = |report: &WriteReport| account.notify(report);

    if options.atomic {
        let all = match super::collect_atomic(rows.as_mut(), &mut report).await {
            Ok(all) => all,
            Err(error) => return Err(WriteError { error, report: Box::new(finish(report)) }),
        };
        let mut parts = Vec::with_capacity(all.len());
        for row in &all {
            match part(&set, op, row, options.optimistic, false) {
                Ok(p) => parts.push(p),
                Err(e) => {
                    // Atomic: a row the client refuses fails the statement before anything is sent.
                    report.not_attempted = all.iter().map(|r| r.index).filter(|i| *i != e.index).collect();
                    let error = ClientError::InvalidArgument(format!("atomic write not sent: {e}"));
                    report.failed.push(*e);
                    return Err(WriteError { error, report: Box::new(finish(report)) });
                }
            }
        }
        report.parallelism = 1;
        report.chunks = u64::from(!parts.is_empty());
        if parts.is_empty() {
            return Ok(finish(report));
        }
        let out = send(client.clone(), parts, true, false).await;
        report.written += out.written;
        report.failed.extend(out.failed);
        notify(&report);
        return match out.abort {
            Some(error) => Err(WriteError { error, report: Box::new(finish(report)) }),
            None => Ok(finish(report)),
        };
    }

    let upsert = op == WriteOp::Upsert;
    let mut tasks: JoinSet<Outcome> = JoinSet::new();
    let mut buffer: VecDeque<Part> = VecDeque::new();
    let mut creates: VecDeque<Part> = VecDeque::new();
    let mut exhausted = false;
    let mut abort: Option<ClientError> = None;
    loop {
        while abort.is_none() && tasks.len() < parallel {
            while !exhausted && buffer.len() < per_request {
                match rows.next().await {
                    Some(row) => {
                        report.rows += 1;
                        match part(&set, op, &row, options.optimistic, false) {
                            Ok(p) => {
                                if upsert {
                                    by_index.insert(row.index, row);
                                }
                                buffer.push_back(p)
                            }
                            Err(e) => report.failed.push(*e),
                        }
                    }
                    None => exhausted = true,
                }
            }
            let queue = if creates.is_empty() { &mut buffer } else { &mut creates };
            if queue.is_empty() {
                break;
            }
            let n = queue.len().min(per_request);
            let chunk: Vec<Part> = queue.drain(..n).collect();
            report.chunks += 1;
            report.parallelism = report.parallelism.max(tasks.len() + 1);
            tasks.spawn(send(client.clone(), chunk, false, upsert));
        }
        let Some(done) = tasks.join_next().await else { break };
        let out = done.unwrap_or_else(|e| Outcome {
            abort: Some(ClientError::InvalidArgument(format!("a write task failed: {e}"))),
            ..Default::default()
        });
        report.written += out.written;
        report.failed.extend(out.failed);
        report.not_attempted.extend(out.unresolved);
        for index in out.missing {
            // An upsert of a record that does not exist yet: create it.
            if let Some(row) = by_index.get(&index) {
                match part(&set, op, row, false, true) {
                    Ok(p) => creates.push_back(p),
                    Err(e) => report.failed.push(*e),
                }
            }
        }
        if let Some(e) = out.abort {
            abort.get_or_insert(e);
        }
        notify(&report);
    }
    if let Some(error) = abort {
        report.not_attempted.extend(buffer.iter().chain(&creates).map(|p| p.index));
        return Err(WriteError { error, report: Box::new(finish(report)) });
    }
    Ok(finish(report))
}
