//! Deciding what a failure means for the rows of a request, turning a service error into a
//! [`RowError`], and settling unknown outcomes by asking the service.

use std::collections::HashSet;

use serde_json::Value;
use uuid::Uuid;

use super::RowError;
use super::engine::{Engine, Prepared};
use crate::error::ClientError;

/// What a failed request means for its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// The rows are the problem (validation, unknown column, missing target, duplicate key,
    /// stale etag, ...): cut the chunk down to the bad rows.
    Row,
    /// The request may or may not have been applied (reset, cut answer, 5xx after sending).
    Unknown,
    /// The table does not offer the bulk message.
    NotSupported,
    /// No row can fix it (authentication, privilege, throttling beyond the budget, retries
    /// exhausted): stop the write.
    Stop,
}

/// Classifies a request's error.
pub(super) fn classify(e: &ClientError) -> Class {
    match e {
        ClientError::WriteOutcomeUnknown { .. } | ClientError::Decode { .. } => Class::Unknown,
        ClientError::Service(s) => {
            let not_supported = s.code.as_deref() == Some("0x80040800")
                || s.message.contains("does not support entities of type")
                || (s.status == 404 && s.message.contains("Microsoft.Dynamics.CRM.") && s.message.contains("Multiple"));
            if not_supported {
                return Class::NotSupported;
            }
            match s.status {
                // 403: a missing privilege holds for every row of the statement.
                401 | 403 | 429 => Class::Stop,
                400..=499 => Class::Row,
                // A Dataverse answer to a write (e.g. duplicate detection, a plug-in's error):
                // the transaction was rolled back because of its rows.
                500 if s.code.as_deref().is_some_and(|c| !c.is_empty()) => Class::Row,
                _ => Class::Unknown,
            }
        }
        _ => Class::Stop,
    }
}

/// Whether a 4xx answer's body was not a Dataverse error (e.g. cut short on the way): the
/// request was refused, so it was not applied, but the reason is unreadable.
pub(super) fn garbled(e: &ClientError) -> bool {
    matches!(e, ClientError::Service(s) if s.code.is_none() && (400..500).contains(&s.status))
}

/// The row's error for a service (or client) error.
pub(super) fn row_error(row: &Prepared, e: &ClientError) -> RowError {
    let (status, code, message) = match e.service() {
        Some(s) => (Some(s.status), s.code.clone().unwrap_or_default(), s.message.clone()),
        None => (None, String::new(), e.to_string()),
    };
    let column = column_named(&message, row);
    RowError { index: row.index, key: row.key.clone(), id: row.id, status, code, message, column }
}

/// A row error decided by the client (nothing sent).
pub(super) fn refused(row: &Prepared, message: String, column: Option<String>) -> RowError {
    RowError { index: row.index, key: row.key.clone(), id: row.id, status: None, code: String::new(), message, column }
}

/// The column of `row` a Dataverse message is about: a quoted name that is one of the row's
/// columns (or lookups, `x@odata.bind` → `x`, or key columns); for "Cannot convert the literal
/// 'v'" messages, which name no column, the row's column whose value is `v`.
pub(super) fn column_named(message: &str, row: &Prepared) -> Option<String> {
    let columns: Vec<String> = row
        .values
        .keys()
        .map(|k| k.trim_end_matches("@odata.bind").to_string())
        .chain(match &row.key {
            Some(crate::records::RecordKey::Alternate(parts)) => parts.iter().map(|(k, _)| k.clone()).collect(),
            _ => Vec::new(),
        })
        .collect();
    let quoted: Vec<&str> = message.split('\'').skip(1).step_by(2).collect();
    for q in &quoted {
        let q = q.trim_end_matches("@odata.bind");
        if let Some(c) = columns.iter().find(|c| c.eq_ignore_ascii_case(q)) {
            return Some(c.clone());
        }
    }
    // "A record that has the attribute values emailaddress1 already exists": unquoted names.
    if let Some(rest) = message.split("attribute values ").nth(1) {
        let names = rest.split(" already").next().unwrap_or("");
        for name in names.split(',').map(str::trim) {
            if let Some(c) = columns.iter().find(|c| c.eq_ignore_ascii_case(name)) {
                return Some(c.clone());
            }
        }
    }
    if let Some(rest) = message.split("Cannot convert the literal '").nth(1) {
        let literal = rest.split('\'').next()?;
        let mut hits = row.values.iter().filter(|(_, v)| match v {
            Value::String(s) => s == literal,
            other => {
                let text = other.to_string();
                text == literal
            }
        });
        let (name, _) = hits.next()?;
        if hits.next().is_none() {
            return Some(name.trim_end_matches("@odata.bind").to_string());
        }
    }
    // "The 'isocurrencycode' attribute of the 'transactioncurrency' entity is required": a
    // column the row does not hold (a required one left out).
    message
        .split("The '")
        .skip(1)
        .find_map(|rest| rest.split_once("' attribute of").map(|(name, _)| name))
        .filter(|name| !name.is_empty() && !name.contains(' '))
        .map(str::to_string)
}

/// Ids per existence probe (keeps the URL far below the 32,768-character limit).
const IDS_PER_PROBE: usize = 100;

impl Engine {
    /// Which of `ids` exist now (one GET per 100 ids, retried like any read).
    pub(super) async fn existing(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, ClientError> {
        let mut found = HashSet::new();
        for group in ids.chunks(IDS_PER_PROBE) {
            let body = self.client.get_json(&self.exists_path(group)).await?;
            for row in body.get("value").and_then(Value::as_array).into_iter().flatten() {
                if let Some(id) = row.get(&self.pk).and_then(Value::as_str).and_then(|s| Uuid::try_parse(s).ok()) {
                    found.insert(id);
                }
            }
        }
        Ok(found)
    }

    /// After a lost attempt of an optimistic update, a 412 may mean the lost attempt applied it:
    /// true when the record now holds exactly the row's (plain) values.
    pub(super) async fn holds_values(&self, row: &Prepared) -> bool {
        let Some(key) = &row.key else { return false };
        if row.values.is_empty() || row.values.keys().any(|k| k.contains('@')) {
            return false;
        }
        let select: Vec<&str> = row.values.keys().map(String::as_str).collect();
        let Ok(record) = self.client.retrieve(&self.set, key, &select).await else { return false };
        row.values.iter().all(|(k, v)| match (record.fields.get(k), v) {
            (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
            (Some(a), b) => a == b,
            (None, b) => b.is_null(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(values: Value) -> Prepared {
        Prepared { index: 3, key: None, id: None, etag: None, values: values.as_object().unwrap().clone() }
    }

    #[test]
    fn columns_are_found_in_messages() {
        let r = row(
            json!({"lastname": "x", "numberofemployees": "many", "parentcustomerid_account@odata.bind": "/accounts(1)"}),
        );
        let m = "A validation error occurred.  The length of the 'lastname' attribute of the 'contact' entity exceeded the maximum allowed length of '50'.";
        assert_eq!(column_named(m, &r).as_deref(), Some("lastname"));
        let m = "Cannot convert the literal 'many' to the expected type 'Edm.Int32'.";
        assert_eq!(column_named(m, &r).as_deref(), Some("numberofemployees"));
        let m = "The reference '/accounts(1)' in 'parentcustomerid_account@odata.bind' is not a valid entity reference";
        assert_eq!(column_named(m, &r).as_deref(), Some("parentcustomerid_account"));
        let r = row(json!({"emailaddress1": "a@b"}));
        let m = "A record that has the attribute values emailaddress1 already exists. The entity key k requires that this set of attributes contains unique values.";
        assert_eq!(column_named(m, &r).as_deref(), Some("emailaddress1"));
        assert_eq!(column_named("Something else 'entirely'.", &r), None);
        let m = "A validation error occurred.  The 'isocurrencycode' attribute of the 'transactioncurrency' entity is required and has no value: send a value for it when creating the record.";
        assert_eq!(column_named(m, &r).as_deref(), Some("isocurrencycode"));
    }
}
