//! What goes over the wire for a write: bulk-message bodies, single-row requests, `$batch`
//! bodies (parts, change sets) and the parsing of `$batch` answers.

use bytes::Bytes;
use reqwest::Method;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::WriteOp;
use super::engine::{Engine, Prepared};
use crate::client::{ApiRequest, ApiResponse};
use crate::error::{ClientError, ServiceError, body_excerpt, parse_error_body};
use crate::query::{PATH_SEGMENT, encode_query_value};
use crate::records::record_path;

/// The bypass header (see [`super::WriteOptions::bypass_plugins`]).
pub(super) const BYPASS_HEADER: (&str, &str) = ("MSCRM.BypassBusinessLogicExecution", "CustomSync,CustomAsync");

/// One answer inside a `$batch` response.
#[derive(Debug, Clone)]
pub(super) struct PartAnswer {
    /// `Content-ID` of the part (change sets).
    pub content_id: Option<String>,
    /// HTTP status of the part.
    pub status: u16,
    /// Body of the part.
    pub body: String,
}

impl Engine {
    /// Headers every write request carries (bypass, impersonation).
    pub(super) fn common_headers(&self, mut req: ApiRequest) -> Result<ApiRequest, ClientError> {
        if self.options.bypass_plugins {
            req = req.header(BYPASS_HEADER.0, BYPASS_HEADER.1)?;
        }
        if let Some(id) = self.options.caller_id {
            req = req.header("MSCRMCallerID", &id.to_string())?;
        }
        Ok(req)
    }

    /// The `If-Match` of a row's update / upsert / delete, if any.
    fn if_match(&self, row: &Prepared) -> Option<String> {
        match self.op {
            WriteOp::Create => None,
            _ if self.options.optimistic => row.etag.clone(),
            WriteOp::Update => Some("*".into()),
            WriteOp::Upsert | WriteOp::Delete => None,
        }
    }

    /// Whether repeating a row's request after a lost answer is harmless.
    pub(super) fn row_idempotent(&self, row: &Prepared) -> bool {
        match self.op {
            WriteOp::Create | WriteOp::Delete => false,
            WriteOp::Update | WriteOp::Upsert => self.if_match(row).is_none_or(|m| m == "*"),
        }
    }

    fn set_path(&self) -> String {
        percent_encoding::utf8_percent_encode(&self.set, PATH_SEGMENT).to_string()
    }

    fn row_path(&self, row: &Prepared) -> String {
        match &row.key {
            Some(key) => record_path(&self.set, key),
            None => self.set_path(),
        }
    }

    /// `POST <set>/Microsoft.Dynamics.CRM.<Op>Multiple` with the rows as `Targets`.
    pub(super) fn bulk_request(&self, rows: &[Prepared]) -> Result<ApiRequest, ClientError> {
        let message = match self.op {
            WriteOp::Create => "CreateMultiple",
            WriteOp::Update => "UpdateMultiple",
            WriteOp::Upsert => "UpsertMultiple",
            WriteOp::Delete => {
                return Err(ClientError::InvalidArgument("no bulk message deletes standard tables".into()));
            }
        };
        let odata_type = Value::String(format!("Microsoft.Dynamics.CRM.{}", self.logical));
        let targets: Vec<Value> = rows
            .iter()
            .map(|row| {
                let mut t = Map::with_capacity(row.values.len() + 2);
                t.insert("@odata.type".into(), odata_type.clone());
                match (&row.key, row.id) {
                    (_, Some(id)) => {
                        t.insert(self.pk.clone(), Value::String(id.to_string()));
                    }
                    (Some(key), None) => {
                        t.insert("@odata.id".into(), Value::String(format!("{}{}", self.set, key.to_odata())));
                    }
                    (None, None) => {}
                }
                for (k, v) in &row.values {
                    t.entry(k.clone()).or_insert_with(|| v.clone());
                }
                Value::Object(t)
            })
            .collect();
        let url = self.client.url(&format!("{}/Microsoft.Dynamics.CRM.{message}", self.set_path()))?;
        let body = serde_json::json!({ "Targets": targets });
        // Updates and upserts give the same result when repeated; creates do not (the writer
        // settles a lost create by asking which ids exist).
        let req = ApiRequest::new(Method::POST, url).json(&body)?.idempotent(self.op != WriteOp::Create);
        self.common_headers(req)
    }

    /// One row as a single request (row-by-row mode).
    pub(super) fn single_request(&self, row: &Prepared) -> Result<ApiRequest, ClientError> {
        let (method, body) = match self.op {
            WriteOp::Create => (Method::POST, Some(&row.values)),
            WriteOp::Update | WriteOp::Upsert => (Method::PATCH, Some(&row.values)),
            WriteOp::Delete => (Method::DELETE, None),
        };
        let mut req = ApiRequest::new(method, self.client.url(&self.row_path(row))?);
        if let Some(b) = body {
            req = req.json(&Value::Object(b.clone()))?;
        }
        if let Some(m) = self.if_match(row) {
            req = req.header("If-Match", &m)?;
        }
        req = req.idempotent(self.row_idempotent(row));
        self.common_headers(req)
    }

    /// A `$batch` of the rows: one part each, or one change set holding them all (`atomic`).
    /// Always `Prefer: odata.continue-on-error`, so every part (or the change set) answers.
    pub(super) fn batch_request(&self, rows: &[Prepared], change_set: bool) -> Result<ApiRequest, ClientError> {
        let boundary = format!("batch_{}", Uuid::new_v4().simple());
        let cs_boundary = format!("changeset_{}", Uuid::new_v4().simple());
        let mut body = String::with_capacity(rows.len() * 256);
        if change_set {
            body.push_str(&format!("--{boundary}\r\nContent-Type: multipart/mixed; boundary={cs_boundary}\r\n\r\n"));
        }
        for (i, row) in rows.iter().enumerate() {
            let b = if change_set { &cs_boundary } else { &boundary };
            body.push_str(&format!("--{b}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"));
            if change_set {
                body.push_str(&format!("Content-ID: {}\r\n", i + 1));
            }
            let (method, json) = match self.op {
                WriteOp::Create => ("POST", Some(&row.values)),
                WriteOp::Update | WriteOp::Upsert => ("PATCH", Some(&row.values)),
                WriteOp::Delete => ("DELETE", None),
            };
            let url = self.client.url(&self.row_path(row))?;
            body.push_str(&format!("\r\n{method} {url} HTTP/1.1\r\n"));
            if let Some(m) = self.if_match(row) {
                body.push_str(&format!("If-Match: {m}\r\n"));
            }
            if self.options.bypass_plugins {
                body.push_str(&format!("{}: {}\r\n", BYPASS_HEADER.0, BYPASS_HEADER.1));
            }
            match json {
                Some(values) => {
                    let text = serde_json::to_string(values)
                        .map_err(|e| ClientError::InvalidArgument(format!("row {}: {e}", row.index)))?;
                    body.push_str("Content-Type: application/json; type=entry\r\n\r\n");
                    body.push_str(&text);
                    body.push_str("\r\n");
                }
                None => body.push_str("\r\n\r\n"),
            }
        }
        if change_set {
            body.push_str(&format!("--{cs_boundary}--\r\n"));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        let mut req = ApiRequest::new(Method::POST, self.client.url("$batch")?)
            .header("Content-Type", &format!("multipart/mixed; boundary={boundary}"))?
            .header("Prefer", "odata.continue-on-error")?;
        req.body = Some(Bytes::from(body));
        req = req.idempotent(rows.iter().all(|r| self.row_idempotent(r)));
        self.common_headers(req)
    }

    /// The existence probe of a group of ids: `GET <set>?$select=<pk>&$filter=In(...)`.
    pub(super) fn exists_path(&self, ids: &[Uuid]) -> String {
        let values: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
        let filter =
            format!("Microsoft.Dynamics.CRM.In(PropertyName='{}',PropertyValues=[{}])", self.pk, values.join(","));
        format!("{}?$select={}&$filter={}", self.set_path(), encode_query_value(&self.pk), encode_query_value(&filter))
    }
}

/// The boundary of a `multipart/mixed` content type.
fn boundary_of(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_string())
    })
}

fn split_head(text: &str) -> (&str, &str) {
    if let Some(i) = text.find("\r\n\r\n") {
        (&text[..i], &text[i + 4..])
    } else if let Some(i) = text.find("\n\n") {
        (&text[..i], &text[i + 2..])
    } else {
        (text, "")
    }
}

fn header<'a>(block: &'a str, name: &str) -> Option<&'a str> {
    block.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The parts between `--boundary` lines; `None` when the closing delimiter is missing (a cut
/// body).
fn parts<'a>(body: &'a str, boundary: &str) -> Option<Vec<&'a str>> {
    let delimiter = format!("--{boundary}");
    let mut sections = body.split(delimiter.as_str());
    sections.next();
    let mut out = Vec::new();
    for s in sections {
        if s.starts_with("--") {
            return Some(out);
        }
        out.push(s.strip_prefix("\r\n").or_else(|| s.strip_prefix('\n')).unwrap_or(s));
    }
    None
}

fn parse_level(body: &str, boundary: &str, out: &mut Vec<PartAnswer>) -> Option<()> {
    for part in parts(body, boundary)? {
        let (mime, rest) = split_head(part);
        let ct = header(mime, "content-type").unwrap_or("");
        if let Some(inner) = boundary_of(ct) {
            parse_level(rest, &inner, out)?;
            continue;
        }
        let content_id = header(mime, "content-id").map(str::to_string);
        let (head, body) = split_head(rest.trim_start_matches(['\r', '\n']));
        let status_line = head.lines().next()?;
        let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
        out.push(PartAnswer { content_id, status, body: body.trim_end_matches(['\r', '\n']).to_string() });
    }
    Some(())
}

/// Parses a `$batch` answer into its parts, in order (change-set parts inline). A body that is
/// not a complete multipart document is a [`ClientError::Decode`] (so the retry policy repeats
/// an idempotent batch whose answer was cut).
pub(super) fn parse_batch(req: &ApiRequest, resp: &ApiResponse) -> Result<Vec<PartAnswer>, ClientError> {
    let decode = |message: String| ClientError::Decode {
        method: "POST".into(),
        path: crate::client::path_of(&req.url),
        message,
    };
    let ct = resp.header("content-type").unwrap_or("");
    let boundary = boundary_of(ct).ok_or_else(|| decode(format!("not a multipart/mixed answer ('{ct}')")))?;
    let text = std::str::from_utf8(&resp.body).map_err(|_| decode("the answer is not UTF-8".into()))?;
    let mut out = Vec::new();
    parse_level(text, &boundary, &mut out).ok_or_else(|| decode("the multipart answer is incomplete".into()))?;
    Ok(out)
}

/// The error of a failed part, as a [`ClientError::Service`].
pub(super) fn part_error(part: &PartAnswer, method: &str, path: &str) -> ClientError {
    let (code, message) =
        parse_error_body(part.body.as_bytes()).unwrap_or_else(|| (None, body_excerpt(part.body.as_bytes())));
    ClientError::Service(Box::new(ServiceError {
        method: method.into(),
        path: path.into(),
        status: part.status,
        code,
        message,
        request_id: None,
        after_lost_attempt: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_answers_parse_with_change_sets() {
        let body = "--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n\r\n\r\n--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 7\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":\"0x80044331\",\"message\":\"bad\"}}\r\n--changesetresponse_2--\r\n--batchresponse_1--\r\n";
        let mut out = Vec::new();
        parse_level(body, "batchresponse_1", &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].status, 204);
        assert_eq!((out[1].status, out[1].content_id.as_deref()), (400, Some("7")));
        let e = part_error(&out[1], "POST", "/x");
        assert_eq!(e.dataverse_code(), Some("0x80044331"));
        // A cut answer is not taken for a complete one.
        assert!(parse_level(&body[..body.len() / 2], "batchresponse_1", &mut Vec::new()).is_none());
        assert_eq!(boundary_of("multipart/mixed; boundary=\"b_1\"").as_deref(), Some("b_1"));
    }
}
