//! Single-record operations: create, retrieve (by id or alternate key), update, upsert,
//! delete, and `WhoAmI`; plus the `@odata.bind` helper for lookups.
//!
//! Which writes are safe to retry: an upsert by key without preconditions and a delete are
//! idempotent (a delete retried after a lost answer that then finds no record counts as done);
//! a create by POST and conditional writes are not, so the retry policy never repeats them
//! after an unknown outcome.

use std::fmt;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::client::{ApiRequest, ApiResponse, DataverseClient, decode_json};
use crate::error::ClientError;
use crate::query::{PATH_SEGMENT, encode_query_value, string_literal};

/// A value in an alternate key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    /// A string (quoted, `'` doubled).
    String(String),
    /// An integer.
    Int(i64),
    /// A GUID (unquoted; e.g. a lookup in a key, `_primarycontactid_value=<guid>`).
    Guid(Uuid),
    /// A literal written as given: a decimal (`2.5`), a date-time (`2024-01-01T12:00:00Z`) or
    /// a Finance & Operations enum member (`Microsoft.Dynamics.DataEntities.NoYes'Yes'`).
    Raw(String),
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::String(s) => f.write_str(&string_literal(s)),
            KeyValue::Int(n) => write!(f, "{n}"),
            KeyValue::Guid(g) => write!(f, "{g}"),
            KeyValue::Raw(text) => f.write_str(text),
        }
    }
}

impl From<&str> for KeyValue {
    fn from(s: &str) -> Self {
        KeyValue::String(s.to_string())
    }
}

impl From<String> for KeyValue {
    fn from(s: String) -> Self {
        KeyValue::String(s)
    }
}

impl From<i64> for KeyValue {
    fn from(n: i64) -> Self {
        KeyValue::Int(n)
    }
}

impl From<Uuid> for KeyValue {
    fn from(g: Uuid) -> Self {
        KeyValue::Guid(g)
    }
}

/// How a record is addressed.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordKey {
    /// By primary key: `accounts(<guid>)`.
    Id(Uuid),
    /// By an alternate key, one or more columns: `accounts(accountnumber='A1')`.
    Alternate(Vec<(String, KeyValue)>),
}

impl RecordKey {
    /// An alternate key of one column.
    pub fn alternate(column: impl Into<String>, value: impl Into<KeyValue>) -> Self {
        RecordKey::Alternate(vec![(column.into(), value.into())])
    }

    /// The key in parentheses, unencoded: `(<guid>)` or `(a='x',b=2)`.
    pub fn to_odata(&self) -> String {
        match self {
            RecordKey::Id(id) => format!("({id})"),
            RecordKey::Alternate(parts) => {
                let inner: Vec<String> = parts.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("({})", inner.join(","))
            }
        }
    }
}

impl From<Uuid> for RecordKey {
    fn from(id: Uuid) -> Self {
        RecordKey::Id(id)
    }
}

/// The relative URL of one record, percent-encoded (`accounts(accountnumber=%27A%201%27)`).
pub fn record_path(entity_set: &str, key: &RecordKey) -> String {
    let raw = format!("{entity_set}{}", key.to_odata());
    percent_encoding::utf8_percent_encode(&raw, PATH_SEGMENT).to_string()
}

/// A lookup binding for a create or update body:
/// `lookup_bind("parentcustomerid_account", "accounts", id)` →
/// `("parentcustomerid_account@odata.bind", "/accounts(<id>)")`.
pub fn lookup_bind(navigation_property: &str, entity_set: &str, id: Uuid) -> (String, Value) {
    (format!("{navigation_property}@odata.bind"), Value::String(format!("/{entity_set}({id})")))
}

/// A record read by [`DataverseClient::retrieve`].
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The columns (and annotations) as the service returned them.
    pub fields: Map<String, Value>,
    /// The ETag (`W/"123"`), for optimistic concurrency.
    pub etag: Option<String>,
}

/// The preconditions of an upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertMode {
    /// Create the record, or update it if it exists (idempotent).
    CreateOrUpdate,
    /// Create only (`If-None-Match: *`): 412 if the record exists.
    CreateOnly,
    /// Update only (`If-Match: *`): 404 if the record does not exist.
    UpdateOnly,
}

/// What `WhoAmI` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct WhoAmI {
    /// systemuserid of the caller (or of the impersonated user).
    #[serde(rename = "UserId")]
    pub user_id: Uuid,
    /// The caller's business unit.
    #[serde(rename = "BusinessUnitId")]
    pub business_unit_id: Uuid,
    /// The organisation.
    #[serde(rename = "OrganizationId")]
    pub organization_id: Uuid,
}

fn entity_id_of(req: &ApiRequest, resp: &ApiResponse) -> Result<Uuid, ClientError> {
    let decode = |message: String| ClientError::Decode {
        method: req.method.to_string(),
        path: crate::client::path_of(&req.url),
        message,
    };
    let header = resp
        .header("odata-entityid")
        .or_else(|| resp.header("location"))
        .ok_or_else(|| decode("the response has no OData-EntityId header".into()))?;
    id_from_entity_uri(header).ok_or_else(|| decode(format!("no record id in OData-EntityId '{header}'")))
}

/// The GUID in an entity URI (`…/accounts(<guid>)`), if it is keyed by id.
pub fn id_from_entity_uri(uri: &str) -> Option<Uuid> {
    let open = uri.rfind('(')?;
    let inner = uri[open + 1..].strip_suffix(')')?;
    Uuid::try_parse(inner).ok()
}

fn with_select(path: String, select: &[&str]) -> String {
    if select.is_empty() { path } else { format!("{path}?$select={}", encode_query_value(&select.join(","))) }
}

impl DataverseClient {
    /// `WhoAmI`: the caller's user, business unit and organisation.
    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        let req = ApiRequest::new(Method::GET, self.url("WhoAmI")?);
        self.execute(&req, |r| decode_json(&req, &r.body)).await
    }

    /// Creates a record; returns its id (from `OData-EntityId`). Not retried after an unknown
    /// outcome (see [`ClientError::WriteOutcomeUnknown`]).
    pub async fn create(&self, entity_set: &str, body: &Value) -> Result<Uuid, ClientError> {
        let url = self.url(&percent_encoding::utf8_percent_encode(entity_set, PATH_SEGMENT).to_string())?;
        let req = ApiRequest::new(Method::POST, url).json(body)?;
        self.execute(&req, |r| entity_id_of(&req, &r)).await
    }

    /// Creates a record and returns it as stored (`Prefer: return=representation`), with the
    /// `select`ed columns (all when empty).
    pub async fn create_returning(
        &self,
        entity_set: &str,
        body: &Value,
        select: &[&str],
    ) -> Result<Map<String, Value>, ClientError> {
        let path = percent_encoding::utf8_percent_encode(entity_set, PATH_SEGMENT).to_string();
        let req = ApiRequest::new(Method::POST, self.url(&with_select(path, select))?)
            .header("prefer", "return=representation")?
            .json(body)?;
        self.execute(&req, |r| decode_json(&req, &r.body)).await
    }

    /// Reads one record with the `select`ed columns (all when empty). A missing record is an
    /// error for which [`ClientError::is_not_found`] is true.
    pub async fn retrieve(&self, entity_set: &str, key: &RecordKey, select: &[&str]) -> Result<Record, ClientError> {
        let req = ApiRequest::new(Method::GET, self.url(&with_select(record_path(entity_set, key), select))?);
        self.execute(&req, |r| {
            let fields: Map<String, Value> = decode_json(&req, &r.body)?;
            let etag = r
                .header("etag")
                .map(str::to_string)
                .or_else(|| fields.get("@odata.etag").and_then(Value::as_str).map(str::to_string));
            Ok(Record { fields, etag })
        })
        .await
    }

    /// Updates an existing record (PATCH with `If-Match`: the given etag for optimistic
    /// concurrency — 412 when the record changed — or `*`, so a missing record is a 404 and never
    /// silently created).
    pub async fn update(
        &self,
        entity_set: &str,
        key: &RecordKey,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<(), ClientError> {
        let req = ApiRequest::new(Method::PATCH, self.url(&record_path(entity_set, key))?)
            .header("if-match", if_match.unwrap_or("*"))?
            .json(body)?;
        self.send(&req).await.map(|_| ())
    }

    /// Upserts a record by key (PATCH); returns the id when the service reports it
    /// (`OData-EntityId`). [`UpsertMode::CreateOrUpdate`] is retried like a read.
    pub async fn upsert(
        &self,
        entity_set: &str,
        key: &RecordKey,
        body: &Value,
        mode: UpsertMode,
    ) -> Result<Option<Uuid>, ClientError> {
        let mut req = ApiRequest::new(Method::PATCH, self.url(&record_path(entity_set, key))?).json(body)?;
        req = match mode {
            UpsertMode::CreateOrUpdate => req.idempotent(true),
            UpsertMode::CreateOnly => req.header("if-none-match", "*")?,
            UpsertMode::UpdateOnly => req.header("if-match", "*")?,
        };
        let resp = self.send(&req).await?;
        Ok(resp.header("odata-entityid").and_then(id_from_entity_uri).or(match key {
            RecordKey::Id(id) => Some(*id),
            RecordKey::Alternate(_) => None,
        }))
    }

    /// Deletes a record, optionally only if its etag still matches. Without an etag the delete
    /// is retried after transient failures, and a retry that finds the record gone succeeds.
    pub async fn delete(&self, entity_set: &str, key: &RecordKey, if_match: Option<&str>) -> Result<(), ClientError> {
        let mut req = ApiRequest::new(Method::DELETE, self.url(&record_path(entity_set, key))?);
        match if_match {
            Some(etag) => req = req.header("if-match", etag)?,
            None => req = req.idempotent(true),
        }
        match self.send(&req).await {
            // The record is gone and an earlier attempt of this delete may have removed it.
            Err(ClientError::Service(s)) if s.status == 404 && s.after_lost_attempt && if_match.is_none() => Ok(()),
            other => other.map(|_| ()),
        }
    }
}
