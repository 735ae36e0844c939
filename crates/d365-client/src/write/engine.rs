//! Sending one chunk and accounting for each of its rows: bulk messages with bisection,
//! `$batch` with per-row answers, one atomic change set, or one request per row; unknown
//! outcomes settled by asking the service which rows landed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::Value;
use uuid::Uuid;

use super::recover::{Class, classify, garbled, refused, row_error};
use super::wire::{PartAnswer, parse_batch, part_error};
use super::{BulkMode, MAX_PARALLEL, RowError, WriteOp, WriteOptions, WriteRow};
use crate::client::DataverseClient;
use crate::error::ClientError;
use crate::metadata::EntityInfo;
use crate::query::encode_query_value;
use crate::records::RecordKey;

/// Rounds of "send, find out what landed, resend the rest" before giving up on a chunk.
const MAX_ROUNDS: u32 = 8;

/// A row ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub index: u64,
    pub key: Option<RecordKey>,
    /// The record id: assigned for creates, the key's id when keyed by id.
    pub id: Option<Uuid>,
    pub etag: Option<String>,
    /// Body values (creates include the primary key).
    pub values: serde_json::Map<String, Value>,
}

/// What became of a chunk's rows.
#[derive(Debug, Default)]
pub(crate) struct ChunkOutcome {
    pub written: u64,
    pub failed: Vec<RowError>,
    /// Rows whose fate is unknown because the write stopped.
    pub unresolved: Vec<u64>,
    /// The error that stops the write.
    pub abort: Option<ClientError>,
}

impl ChunkOutcome {
    fn add(&mut self, other: ChunkOutcome) {
        self.written += other.written;
        self.failed.extend(other.failed);
        self.unresolved.extend(other.unresolved);
        if self.abort.is_none() {
            self.abort = other.abort;
        }
    }

    fn stop(&mut self, e: ClientError, rows: &[Prepared]) {
        self.unresolved.extend(rows.iter().map(|r| r.index));
        if self.abort.is_none() {
            self.abort = Some(e);
        }
    }

    pub(crate) fn panicked(e: &tokio::task::JoinError) -> Self {
        Self { abort: Some(ClientError::InvalidArgument(format!("a write task failed: {e}"))), ..Default::default() }
    }
}

type Boxed = Pin<Box<dyn Future<Output = ChunkOutcome> + Send>>;

/// The shared state of one write.
#[derive(Debug)]
pub(crate) struct Engine {
    pub client: DataverseClient,
    pub set: String,
    pub logical: String,
    pub pk: String,
    pub op: WriteOp,
    pub options: WriteOptions,
    mode: BulkMode,
    auto: bool,
    bulk_refused: AtomicBool,
    bisections: AtomicU64,
    recovered: AtomicU64,
}

/// Picks the way rows are sent (see [`BulkMode::Auto`]).
pub(crate) async fn resolve_mode(
    client: &DataverseClient,
    entity: &EntityInfo,
    op: WriteOp,
    o: &WriteOptions,
) -> Result<BulkMode, ClientError> {
    if o.mode != BulkMode::Auto {
        return Ok(o.mode);
    }
    if o.atomic || o.optimistic || op == WriteOp::Delete {
        return Ok(BulkMode::Batch);
    }
    let message = format!("{}Multiple", op.name());
    let filter = format!("sdkmessageid/name eq '{message}' and primaryobjecttypecode eq '{}'", entity.logical_name);
    let path = format!("sdkmessagefilters?$select=sdkmessagefilterid&$filter={}", encode_query_value(&filter));
    match client.get_json(&path).await {
        Ok(body) => {
            let offered = body.get("value").and_then(Value::as_array).is_some_and(|v| !v.is_empty());
            Ok(if offered { BulkMode::BulkMessages } else { BulkMode::Batch })
        }
        // The probe is not readable here: try the message and fall back if it is refused.
        Err(e) if matches!(e.status(), Some(403 | 404 | 501)) => Ok(BulkMode::BulkMessages),
        Err(e) => Err(e),
    }
}

impl Engine {
    pub(crate) fn new(
        client: DataverseClient,
        entity: &EntityInfo,
        op: WriteOp,
        options: WriteOptions,
        mode: BulkMode,
    ) -> Self {
        Self {
            client,
            set: entity.entity_set_name.clone().unwrap_or_default(),
            logical: entity.logical_name.clone(),
            pk: entity.primary_id_attribute.clone(),
            op,
            auto: options.mode == BulkMode::Auto,
            options,
            mode,
            bulk_refused: AtomicBool::new(false),
            bisections: AtomicU64::new(0),
            recovered: AtomicU64::new(0),
        }
    }

    pub(crate) fn bisections(&self) -> u64 {
        self.bisections.load(Ordering::Relaxed)
    }

    pub(crate) fn recovered(&self) -> u64 {
        self.recovered.load(Ordering::Relaxed)
    }

    /// Requests allowed in flight now: the option, else the service's latest `x-ms-dop-hint`
    /// (1 until a response has carried one).
    pub(crate) fn parallelism(&self) -> usize {
        let hint = self.client.server_hints().dop_hint.map(|h| h as usize);
        self.options.max_parallel.or(hint).unwrap_or(1).clamp(1, MAX_PARALLEL)
    }

    /// Checks a row and gives it its id; a row the client refuses comes back as its error.
    pub(crate) fn prepare(&self, row: WriteRow) -> Result<Prepared, Box<RowError>> {
        let WriteRow { index, key, etag, mut values } = row;
        let mut p = Prepared { index, key, id: None, etag, values: serde_json::Map::new() };
        let refuse = |p: &Prepared, m: String, c: Option<String>| Err(Box::new(refused(p, m, c)));
        match self.op {
            WriteOp::Create => {
                let id = match (&p.key, values.get(&self.pk)) {
                    (Some(RecordKey::Alternate(_)), _) => {
                        return refuse(
                            &p,
                            "a create takes no alternate key: use an upsert to write by alternate key".into(),
                            None,
                        );
                    }
                    (Some(RecordKey::Id(id)), _) => *id,
                    (None, Some(Value::String(s))) => match Uuid::try_parse(s.trim()) {
                        Ok(id) => id,
                        Err(_) => {
                            return refuse(&p, format!("'{}' is not a GUID: '{s}'", self.pk), Some(self.pk.clone()));
                        }
                    },
                    (None, Some(other)) => {
                        return refuse(
                            &p,
                            format!("'{}' must be a GUID string, not {other}", self.pk),
                            Some(self.pk.clone()),
                        );
                    }
                    (None, None) => Uuid::new_v4(),
                };
                values.insert(self.pk.clone(), Value::String(id.to_string()));
                p.id = Some(id);
            }
            WriteOp::Update | WriteOp::Upsert | WriteOp::Delete => {
                let Some(key) = &p.key else {
                    return refuse(
                        &p,
                        format!("the row has no key: {} needs the record's id or alternate key", self.op.name()),
                        None,
                    );
                };
                if let RecordKey::Id(id) = key {
                    p.id = Some(*id);
                }
                values.remove(&self.pk);
                if self.options.optimistic && self.op != WriteOp::Upsert && p.etag.is_none() {
                    return refuse(
                        &p,
                        "optimistic concurrency is on and the row carries no etag (read it with the record's @odata.etag)".into(),
                        None,
                    );
                }
                if self.op == WriteOp::Delete {
                    values.clear();
                }
            }
        }
        p.values = values;
        Ok(p)
    }

    fn mode_now(&self) -> BulkMode {
        if self.mode == BulkMode::BulkMessages && self.bulk_refused.load(Ordering::Relaxed) {
            BulkMode::Batch
        } else {
            self.mode
        }
    }

    /// Sends one chunk and accounts for every row.
    pub(crate) fn chunk(self: std::sync::Arc<Self>, rows: Vec<Prepared>) -> Boxed {
        Box::pin(async move {
            match self.mode_now() {
                BulkMode::BulkMessages => self.bulk(rows, false).await,
                BulkMode::RowByRow => self.row_by_row(rows).await,
                _ => self.batch(rows).await,
            }
        })
    }

    /// Bulk message; on a row error the chunk is bisected; on an unknown outcome of a create the
    /// landed ids are asked for and only the rest is resent.
    /// `lost`: an earlier attempt of these rows may have been applied.
    fn bulk(self: std::sync::Arc<Self>, rows: Vec<Prepared>, lost: bool) -> Boxed {
        Box::pin(async move {
            let mut out = ChunkOutcome::default();
            let mut pending = rows;
            let mut lost = lost;
            for _ in 0..MAX_ROUNDS {
                if pending.is_empty() {
                    return out;
                }
                let result = match self.bulk_request(&pending) {
                    Ok(req) => self.client.execute(&req, |_| Ok(())).await,
                    Err(e) => Err(e),
                };
                let e = match result {
                    Ok(()) => {
                        out.written += pending.len() as u64;
                        return out;
                    }
                    Err(e) => e,
                };
                match classify(&e) {
                    Class::Unknown => {
                        lost = true;
                        if let Err(e) = self.settle(&mut pending, &mut out).await {
                            out.stop(e, &pending);
                            return out;
                        }
                    }
                    Class::NotSupported if self.auto => {
                        self.bulk_refused.store(true, Ordering::Relaxed);
                        out.add(self.clone().batch(pending).await);
                        return out;
                    }
                    // Bulk messages were asked for and the table has none: no chunk can succeed.
                    Class::NotSupported => {
                        out.failed.extend(pending.iter().map(|r| row_error(r, &e)));
                        out.abort = Some(e);
                        return out;
                    }
                    // A 4xx whose body is not a Dataverse error (cut on the way): the write was
                    // not applied; ask again for the real answer.
                    Class::Row if garbled(&e) => {}
                    Class::Row => {
                        if pending.len() == 1 {
                            if self.applied_by_lost_attempt(&pending[0], &e, lost).await {
                                out.written += 1;
                                self.recovered.fetch_add(1, Ordering::Relaxed);
                            } else {
                                out.failed.push(row_error(&pending[0], &e));
                            }
                            return out;
                        }
                        self.bisections.fetch_add(1, Ordering::Relaxed);
                        let right = pending.split_off(pending.len() / 2);
                        out.add(self.clone().bulk(pending, lost).await);
                        if out.abort.is_some() {
                            out.unresolved.extend(right.iter().map(|r| r.index));
                            return out;
                        }
                        out.add(self.clone().bulk(right, lost).await);
                        return out;
                    }
                    Class::Stop => {
                        out.stop(e, &pending);
                        return out;
                    }
                }
            }
            let e = ClientError::InvalidArgument(format!(
                "the outcome of {} rows stayed unknown after {MAX_ROUNDS} attempts",
                pending.len()
            ));
            out.stop(e, &pending);
            out
        })
    }

    /// After an unknown outcome: creates and deletes keyed by id are looked up (a created id
    /// that exists, or a deleted id that is gone, counts as written and leaves `pending`);
    /// other rows are simply sent again (they are idempotent, or their resend is checked).
    async fn settle(&self, pending: &mut Vec<Prepared>, out: &mut ChunkOutcome) -> Result<(), ClientError> {
        if !matches!(self.op, WriteOp::Create | WriteOp::Delete) {
            return Ok(());
        }
        let ids: Vec<Uuid> = pending.iter().filter_map(|r| r.id).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let existing = self.existing(&ids).await?;
        let landed = |r: &Prepared| match (self.op, r.id) {
            (WriteOp::Create, Some(id)) => existing.contains(&id),
            (WriteOp::Delete, Some(id)) => !existing.contains(&id),
            _ => false,
        };
        let before = pending.len();
        pending.retain(|r| !landed(r));
        let n = (before - pending.len()) as u64;
        out.written += n;
        self.recovered.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// `$batch`, one part per row, every part answering.
    fn batch(self: std::sync::Arc<Self>, rows: Vec<Prepared>) -> Boxed {
        Box::pin(async move {
            let mut out = ChunkOutcome::default();
            let mut pending = rows;
            let mut lost = false;
            for _ in 0..MAX_ROUNDS {
                if pending.is_empty() {
                    return out;
                }
                let answers = match self.batch_request(&pending, false) {
                    Ok(req) => self.client.execute(&req, |r| parse_batch(&req, &r)).await,
                    Err(e) => Err(e),
                };
                let e = match answers {
                    Ok(answers) if answers.len() == pending.len() => {
                        let path = crate::client::path_of(&self.client.url("$batch").expect("batch URL"));
                        for (row, answer) in pending.iter().zip(&answers) {
                            self.account_part(row, answer, lost, &path, &mut out).await;
                        }
                        return out;
                    }
                    Ok(answers) => ClientError::Decode {
                        method: "POST".into(),
                        path: "$batch".into(),
                        message: format!("{} answers for {} requests", answers.len(), pending.len()),
                    },
                    Err(e) => e,
                };
                match classify(&e) {
                    Class::Unknown => {
                        lost = true;
                        if let Err(e) = self.settle(&mut pending, &mut out).await {
                            out.stop(e, &pending);
                            return out;
                        }
                    }
                    Class::Row | Class::NotSupported if garbled(&e) => {}
                    // The batch as a whole was refused (too large, malformed by a row): halve it.
                    Class::Row | Class::NotSupported if pending.len() > 1 => {
                        self.bisections.fetch_add(1, Ordering::Relaxed);
                        let right = pending.split_off(pending.len() / 2);
                        out.add(self.clone().batch(pending).await);
                        if out.abort.is_some() {
                            out.unresolved.extend(right.iter().map(|r| r.index));
                            return out;
                        }
                        out.add(self.clone().batch(right).await);
                        return out;
                    }
                    Class::Row | Class::NotSupported => {
                        out.failed.push(row_error(&pending[0], &e));
                        return out;
                    }
                    Class::Stop => {
                        out.stop(e, &pending);
                        return out;
                    }
                }
            }
            let e = ClientError::InvalidArgument(format!(
                "the outcome of {} rows stayed unknown after {MAX_ROUNDS} attempts",
                pending.len()
            ));
            out.stop(e, &pending);
            out
        })
    }

    /// One row's answer inside a batch. `lost`: an earlier attempt of the batch may have applied
    /// the row already.
    async fn account_part(&self, row: &Prepared, answer: &PartAnswer, lost: bool, path: &str, out: &mut ChunkOutcome) {
        if (200..300).contains(&answer.status) {
            out.written += 1;
            return;
        }
        let e = part_error(answer, "POST", path);
        if self.applied_by_lost_attempt(row, &e, lost).await {
            out.written += 1;
            self.recovered.fetch_add(1, Ordering::Relaxed);
            return;
        }
        out.failed.push(row_error(row, &e));
        if classify(&e) == Class::Stop && out.abort.is_none() {
            out.abort = Some(e);
        }
    }

    /// Whether an error of a resent row is the trace of its own lost earlier attempt: a create
    /// refused as a duplicate while a record holds its (client-assigned) id (the lost attempt
    /// committed after the existence check, e.g. after a timeout), a delete that finds the
    /// record gone, or an optimistic write whose etag no longer matches because the record now
    /// holds exactly the row's values.
    async fn applied_by_lost_attempt(&self, row: &Prepared, e: &ClientError, lost: bool) -> bool {
        if !lost {
            return false;
        }
        match (self.op, e.status()) {
            // The id was assigned here: if a record has it, the lost attempt created it.
            (WriteOp::Create, Some(412)) => match row.id {
                Some(id) => self.existing(&[id]).await.is_ok_and(|found| found.contains(&id)),
                None => false,
            },
            (WriteOp::Delete, Some(404)) => true,
            (WriteOp::Update | WriteOp::Upsert, Some(412)) if self.options.optimistic => self.holds_values(row).await,
            _ => false,
        }
    }

    /// One change set holding every row: all written, or none.
    pub(crate) fn atomic(self: std::sync::Arc<Self>, rows: Vec<Prepared>) -> Boxed {
        Box::pin(async move {
            let mut out = ChunkOutcome::default();
            for _ in 0..MAX_ROUNDS {
                let answers = match self.batch_request(&rows, true) {
                    Ok(req) => self.client.execute(&req, |r| parse_batch(&req, &r)).await,
                    Err(e) => Err(e),
                };
                let e = match answers {
                    Ok(answers)
                        if answers.len() == rows.len() && answers.iter().all(|a| (200..300).contains(&a.status)) =>
                    {
                        out.written = rows.len() as u64;
                        return out;
                    }
                    Ok(answers) => match answers.iter().find(|a| !(200..300).contains(&a.status)) {
                        Some(failed) => {
                            let path = crate::client::path_of(&self.client.url("$batch").expect("batch URL"));
                            let e = part_error(failed, "POST", &path);
                            let culprit = failed
                                .content_id
                                .as_deref()
                                .and_then(|c| c.trim().parse::<usize>().ok())
                                .and_then(|n| rows.get(n.wrapping_sub(1)));
                            for r in &rows {
                                if culprit.is_some_and(|c| c.index == r.index) {
                                    out.failed.push(row_error(r, &e));
                                } else {
                                    let reason = match culprit {
                                        Some(c) => format!(
                                            "not written: the write is atomic and row {} failed, so the change set was rolled back",
                                            c.index
                                        ),
                                        None => "not written: the write is atomic and the change set was rolled back"
                                            .to_string(),
                                    };
                                    out.failed.push(refused(r, reason, None));
                                }
                            }
                            out.abort = Some(e);
                            return out;
                        }
                        None => ClientError::Decode {
                            method: "POST".into(),
                            path: "$batch".into(),
                            message: format!("{} answers for {} requests", answers.len(), rows.len()),
                        },
                    },
                    Err(e) => e,
                };
                match classify(&e) {
                    Class::Unknown => {
                        // One transaction: either every row landed or none did.
                        let ids: Vec<Uuid> = rows.iter().filter_map(|r| r.id).collect();
                        if matches!(self.op, WriteOp::Create | WriteOp::Delete) && ids.len() == rows.len() {
                            match self.existing(&ids).await {
                                Ok(found) => {
                                    let landed =
                                        if self.op == WriteOp::Create { found.len() } else { ids.len() - found.len() };
                                    if landed == rows.len() {
                                        out.written = rows.len() as u64;
                                        self.recovered.fetch_add(out.written, Ordering::Relaxed);
                                        return out;
                                    }
                                }
                                Err(e) => {
                                    out.stop(e, &rows);
                                    return out;
                                }
                            }
                        }
                    }
                    _ => {
                        for r in &rows {
                            out.failed.push(row_error(r, &e));
                        }
                        out.abort = Some(e);
                        return out;
                    }
                }
            }
            out.stop(
                ClientError::InvalidArgument(format!(
                    "the outcome of the atomic write stayed unknown after {MAX_ROUNDS} attempts"
                )),
                &rows,
            );
            out
        })
    }

    /// One request per row, in order.
    fn row_by_row(self: std::sync::Arc<Self>, rows: Vec<Prepared>) -> Boxed {
        Box::pin(async move {
            let mut out = ChunkOutcome::default();
            for (i, row) in rows.iter().enumerate() {
                let mut lost = false;
                let mut done = false;
                for _ in 0..MAX_ROUNDS {
                    let result = match self.single_request(row) {
                        Ok(req) => self.client.execute(&req, |_| Ok(())).await,
                        Err(e) => Err(e),
                    };
                    let e = match result {
                        Ok(()) => {
                            out.written += 1;
                            done = true;
                            break;
                        }
                        Err(e) => e,
                    };
                    match classify(&e) {
                        Class::Unknown => {
                            lost = true;
                            let mut one = vec![row.clone()];
                            if let Err(e) = self.settle(&mut one, &mut out).await {
                                out.stop(e, &rows[i..]);
                                return out;
                            }
                            if one.is_empty() {
                                done = true;
                                break;
                            }
                        }
                        Class::Stop => {
                            out.stop(e, &rows[i..]);
                            return out;
                        }
                        Class::Row | Class::NotSupported if garbled(&e) => {}
                        Class::Row | Class::NotSupported => {
                            if self.applied_by_lost_attempt(row, &e, lost).await {
                                out.written += 1;
                                self.recovered.fetch_add(1, Ordering::Relaxed);
                            } else {
                                out.failed.push(row_error(row, &e));
                            }
                            done = true;
                            break;
                        }
                    }
                }
                if !done {
                    out.stop(
                        ClientError::InvalidArgument(format!(
                            "the outcome of row {} stayed unknown after {MAX_ROUNDS} attempts",
                            row.index
                        )),
                        &rows[i..],
                    );
                    return out;
                }
            }
            out
        })
    }
}
