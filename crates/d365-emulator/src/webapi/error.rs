//! Dataverse error responses: `{"error":{"code":"0x…","message":"…"}}` with the HTTP status
//! the real service uses for each situation.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A Web API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DvError {
    /// HTTP status.
    pub status: StatusCode,
    /// Hex error code (`0x80040217`), may be empty.
    pub code: &'static str,
    /// Message.
    pub message: String,
    /// Extra response headers (e.g. `WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(header::HeaderName, String)>,
}

impl DvError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), headers: vec![] }
    }

    /// 400 `0x80060888`: a query option or URL the service cannot process.
    pub fn bad_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "0x80060888", message)
    }

    /// 400 `0x80048d19`: a request body that cannot be read.
    pub fn bad_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "0x80048d19", message)
    }

    /// 400 `0x80044331`: a validation error on a column value.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "0x80044331", format!("A validation error occurred.  {}", message.into()))
    }

    /// 404 `0x8006088a`: an unknown URL segment (entity set, function, property).
    pub fn segment_not_found(segment: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "0x8006088a", format!("Resource not found for the segment '{segment}'."))
    }

    /// 404 `0x80040217`: a record that does not exist.
    pub fn record_not_found(table: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "0x80040217", format!("{table} With Id = {id} Does Not Exist"))
    }

    /// 400 `0x80060888`: a property that does not exist on the type.
    pub fn unknown_property(property: &str, table: &str) -> Self {
        Self::bad_query(format!(
            "Could not find a property named '{property}' on type 'Microsoft.Dynamics.CRM.{table}'."
        ))
    }

    /// 405: the method is not allowed on this resource.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "0x80060888", message)
    }

    /// 500 `0x80040216`: an unexpected failure inside the emulator.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "0x80040216", message)
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl std::fmt::Display for DvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for DvError {}

impl IntoResponse for DvError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, body.to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; odata.metadata=minimal"));
        h.insert("OData-Version", HeaderValue::from_static("4.0"));
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        resp
    }
}

/// Result type of Web API handlers.
pub type DvResult<T> = Result<T, DvError>;
