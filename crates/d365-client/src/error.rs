//! Typed errors of the Web API client.
//!
//! Every error that comes from the service keeps what the service said: the HTTP status, the
//! Dataverse hex code and message, the request id (`REQ_ID` / `x-ms-service-request-id`) and the
//! method and URL path of the request. Tokens never appear in an error: only the path (and
//! query) of the URL is kept, and the `Authorization` header is never read back.

use std::fmt;
use std::time::Duration;

use d365_auth::AuthError;
use reqwest::StatusCode;

/// What the Dataverse service answered when a request failed with an HTTP error status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// HTTP method of the request (`GET`, `POST`, ...).
    pub method: String,
    /// Path and query of the request URL (`/api/data/v9.2/accounts?$select=name`).
    pub path: String,
    /// HTTP status.
    pub status: u16,
    /// Dataverse error code (`0x80040220`), when the body carried one.
    pub code: Option<String>,
    /// Dataverse error message (or the start of a non-Dataverse body).
    pub message: String,
    /// Request id (`REQ_ID` or `x-ms-service-request-id`), for support cases.
    pub request_id: Option<String>,
    /// An earlier attempt of the same request failed after it was sent (reset, timeout, 5xx),
    /// so it may have been applied: e.g. a 404 on a retried delete means "already deleted".
    pub after_lost_attempt: bool,
}

impl ServiceError {
    /// The privilege named in a 403 message (`prvReadaccount` in "... is missing prvReadaccount
    /// privilege ..."), if any.
    pub fn missing_privilege(&self) -> Option<&str> {
        let start = self.message.find("prv")?;
        let rest = &self.message[start..];
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        (end > 3).then(|| &rest[..end])
    }

    /// The table named in a privilege message (`for entity 'account'`), if any.
    fn privilege_entity(&self) -> Option<&str> {
        let rest = &self.message[self.message.find("for entity '")? + "for entity '".len()..];
        rest.find('\'').map(|end| &rest[..end])
    }

    fn reason(&self) -> &'static str {
        StatusCode::from_u16(self.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("")
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: HTTP {} {}", self.method, self.path, self.status, self.reason())?;
        if self.status == 403
            && let Some(prv) = self.missing_privilege()
        {
            write!(f, ": the caller lacks privilege {prv}")?;
            if let Some(entity) = self.privilege_entity() {
                write!(f, " on table '{entity}'")?;
            }
            write!(f, " (ask an administrator to add it to one of the user's security roles)")?;
        } else if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(code) = self.code.as_deref().filter(|c| !c.is_empty()) {
            write!(f, " [code {code}]")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        Ok(())
    }
}

/// One failed attempt of a request, as listed in [`ClientError::RetriesExhausted`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1-based attempt number.
    pub number: u32,
    /// What went wrong (`HTTP 429`, `connection reset`, `truncated body`, ...).
    pub outcome: String,
    /// How long the client waited before the next attempt.
    pub waited: Duration,
}

/// An error of the Web API client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The service answered with an error status (4xx/5xx) that is not retried.
    #[error("{0}")]
    Service(Box<ServiceError>),

    /// The service rejected the token (401) even after one refresh.
    #[error(
        "{0} (the token was rejected; a refreshed token was rejected too: check the app registration, the tenant and that the application user exists in this environment)"
    )]
    Unauthorized(Box<ServiceError>),

    /// No token could be obtained from the sign-in layer.
    #[error("could not get an access token: {0}")]
    Auth(#[from] AuthError),

    /// The request could not be sent or its response not read (DNS, TLS, connection reset,
    /// timeout) and was not retried (or not retryable).
    #[error("{method} {path}: {message}")]
    Transport {
        /// HTTP method.
        method: String,
        /// Path and query of the URL.
        path: String,
        /// What failed (from the HTTP stack, without the URL).
        message: String,
        /// Whether the failure was a timeout.
        timeout: bool,
    },

    /// The response body was not what the protocol promises (not JSON, truncated, missing a
    /// field).
    #[error("{method} {path}: could not decode the response: {message}")]
    Decode {
        /// HTTP method.
        method: String,
        /// Path and query of the URL.
        path: String,
        /// What was wrong.
        message: String,
    },

    /// The service throttled the request (429/503 with `Retry-After`) and waiting as asked would
    /// exceed the retry budget.
    #[error("{method} {path}: the service asked to wait {} s before retrying (service protection limit), which exceeds the remaining retry budget of {} s after {attempts} attempts; retry later or raise the retry budget", retry_after.as_secs(), budget_left.as_secs())]
    Throttled {
        /// HTTP method.
        method: String,
        /// Path and query of the URL.
        path: String,
        /// The wait the service asked for.
        retry_after: Duration,
        /// The time left in the retry budget when it asked.
        budget_left: Duration,
        /// Attempts made.
        attempts: u32,
        /// The service's error (status, code, message).
        last: Box<ServiceError>,
    },

    /// Every allowed attempt failed with a retryable error.
    #[error("{method} {path}: gave up after {} attempts over {:.1} s ({}); last error: {last}", attempts.len(), elapsed.as_secs_f64(), summarize(attempts))]
    RetriesExhausted {
        /// HTTP method.
        method: String,
        /// Path and query of the URL.
        path: String,
        /// Each failed attempt.
        attempts: Vec<Attempt>,
        /// Time from the first attempt to giving up.
        elapsed: Duration,
        /// The error of the last attempt.
        last: Box<ClientError>,
    },

    /// A non-idempotent write (e.g. a create by POST) may or may not have been applied: the
    /// connection failed or the server failed after the request was sent. It is not retried,
    /// because retrying could apply it twice.
    #[error(
        "{method} {path}: the outcome of this write is unknown ({cause}); it was not retried because that could apply it twice: check whether the record exists before writing it again"
    )]
    WriteOutcomeUnknown {
        /// HTTP method.
        method: String,
        /// Path and query of the URL.
        path: String,
        /// What happened.
        cause: String,
    },

    /// An argument or option is invalid (bad organisation URL, bad CA PEM, bad key value).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Reading or writing the metadata cache failed.
    #[error("metadata cache {path}: {message}")]
    Cache {
        /// The file or directory.
        path: String,
        /// What failed.
        message: String,
    },
}

fn summarize(attempts: &[Attempt]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for a in attempts {
        match counts.iter_mut().find(|(o, _)| *o == a.outcome) {
            Some((_, n)) => *n += 1,
            None => counts.push((&a.outcome, 1)),
        }
    }
    counts
        .iter()
        .map(|(o, n)| if *n == 1 { (*o).to_string() } else { format!("{o} ×{n}") })
        .collect::<Vec<_>>()
        .join(", ")
}

impl ClientError {
    /// The service's answer, when the error is (or ended with) an HTTP error status.
    pub fn service(&self) -> Option<&ServiceError> {
        match self {
            ClientError::Service(e) | ClientError::Unauthorized(e) => Some(e),
            ClientError::Throttled { last, .. } => Some(last),
            ClientError::RetriesExhausted { last, .. } => last.service(),
            _ => None,
        }
    }

    /// The HTTP status of the service's answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.service().map(|e| e.status)
    }

    /// The Dataverse error code (`0x80040217`), if the service sent one.
    pub fn dataverse_code(&self) -> Option<&str> {
        self.service().and_then(|e| e.code.as_deref()).filter(|c| !c.is_empty())
    }

    /// Whether the service said the record (or resource) does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether an `If-Match` / `If-None-Match` precondition failed (412: stale etag, or the
    /// record already exists).
    pub fn is_precondition_failed(&self) -> bool {
        self.status() == Some(412)
    }

    /// Whether the error is a missing privilege or other authorisation failure (403).
    pub fn is_forbidden(&self) -> bool {
        self.status() == Some(403)
    }

    /// Whether the error is about authentication (no token, or a token the service rejects).
    pub fn is_auth(&self) -> bool {
        matches!(self, ClientError::Auth(_) | ClientError::Unauthorized(_))
    }
}

/// The Dataverse error body `{"error":{"code":"0x...","message":"..."}}`.
#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    innererror: Option<InnerError>,
}

/// Finance & Operations' detail (`innererror`): the real message and the exception type.
#[derive(serde::Deserialize)]
struct InnerError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// Parses an OData error body into `(code, message)`; `None` when the body is not one.
///
/// Dataverse puts the message in `error.message`. Finance & Operations sends an empty `code`,
/// the generic "An error has occurred." as `message`, and the real message (and exception
/// type) in `innererror`: that message is the one returned, with the type's last name.
pub(crate) fn parse_error_body(body: &[u8]) -> Option<(Option<String>, String)> {
    let b: ErrorBody = serde_json::from_slice(body).ok()?;
    let code = b.error.code.filter(|c| !c.is_empty());
    let outer = b.error.message.unwrap_or_default();
    let inner = b.error.innererror.and_then(|i| {
        let m = i.message.filter(|m| !m.trim().is_empty())?;
        Some(match i.kind.as_deref().and_then(|k| k.rsplit('.').next()).filter(|k| !k.is_empty()) {
            Some(k) => format!("{} ({k})", m.trim()),
            None => m.trim().to_string(),
        })
    });
    let message = match inner {
        Some(i) if outer.is_empty() || outer == "An error has occurred." => i,
        Some(i) if !outer.contains(&i) => format!("{outer} {i}"),
        _ => outer,
    };
    Some((code, message))
}

/// The first part of a non-JSON body, for messages (at most 300 characters, one line).
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut cut: String = one_line.chars().take(300).collect();
    if one_line.chars().count() > 300 {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden() -> ServiceError {
        ServiceError {
            method: "GET".into(),
            path: "/api/data/v9.2/new_widgets".into(),
            status: 403,
            code: Some("0x80040220".into()),
            message: "Principal user (Id=1b, type=8, roleCount=1, privilegeCount=12, accessMode=0), is missing prvReadnew_widget privilege (Id=abc) on OTC=10010 for entity 'new_widget'. context.Caller=1b".into(),
            request_id: Some("req-1".into()),
            after_lost_attempt: false,
        }
    }

    #[test]
    fn forbidden_names_the_privilege_and_table() {
        let e = forbidden();
        assert_eq!(e.missing_privilege(), Some("prvReadnew_widget"));
        let s = ClientError::Service(Box::new(e)).to_string();
        assert!(s.contains("lacks privilege prvReadnew_widget on table 'new_widget'"), "{s}");
        assert!(s.contains("[code 0x80040220]"), "{s}");
        assert!(s.contains("[request id req-1]"), "{s}");
        assert!(!s.contains('\n'));
    }

    #[test]
    fn error_bodies_parse() {
        let (code, msg) = parse_error_body(br#"{"error":{"code":"0x80040217","message":"gone"}}"#).unwrap();
        assert_eq!(code.as_deref(), Some("0x80040217"));
        assert_eq!(msg, "gone");
        assert!(parse_error_body(b"<html>").is_none());
        // Finance & Operations: empty code, the message in innererror
        let (code, msg) = parse_error_body(
            br#"{"error":{"code":"","message":"An error has occurred.","innererror":{"message":"Write failed for table row of type 'CustCustomerV3Entity'. Infolog: Error: The record already exists.","type":"Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException","stacktrace":""}}}"#,
        )
        .unwrap();
        assert_eq!(code, None);
        assert_eq!(
            msg,
            "Write failed for table row of type 'CustCustomerV3Entity'. Infolog: Error: The record already exists. (AxODataWriteException)"
        );
        assert_eq!(body_excerpt(b"a\n  b"), "a b");
    }

    #[test]
    fn retries_exhausted_lists_attempts() {
        let attempts = vec![
            Attempt { number: 1, outcome: "HTTP 503".into(), waited: Duration::from_secs(1) },
            Attempt { number: 2, outcome: "HTTP 503".into(), waited: Duration::from_secs(2) },
            Attempt { number: 3, outcome: "connection reset".into(), waited: Duration::ZERO },
        ];
        let e = ClientError::RetriesExhausted {
            method: "GET".into(),
            path: "/x".into(),
            attempts,
            elapsed: Duration::from_secs(3),
            last: Box::new(ClientError::Transport {
                method: "GET".into(),
                path: "/x".into(),
                message: "connection reset".into(),
                timeout: false,
            }),
        };
        let s = e.to_string();
        assert!(s.contains("gave up after 3 attempts over 3.0 s (HTTP 503 ×2, connection reset)"), "{s}");
    }
}
