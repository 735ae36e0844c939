//! Finance & Operations error responses. Unlike Dataverse, the outer `code` is empty and the
//! outer message generic; the specific text and the .NET exception type sit in `innererror`:
//!
//! ```json
//! {"error":{"code":"","message":"An error has occurred.","innererror":{
//!   "message":"Write failed for table row of type 'CustCustomerV3Entity'. Infolog: ...",
//!   "type":"Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException",
//!   "stacktrace":""}}}
//! ```
//!
//! Business-validation failures of writes are 500, as on the real service.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The exception type of failed writes.
pub const WRITE_EXCEPTION: &str = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException";
/// The exception type of malformed query options, URLs and bodies (ODataLib's).
pub const ODATA_EXCEPTION: &str = "Microsoft.OData.ODataException";
/// The exception type of refused callers and missing resources.
pub const HTTP_EXCEPTION: &str = "System.Web.Http.HttpResponseException";

/// The message of a throttled request (priority-based throttling).
pub fn throttle_message(seconds: i64) -> String {
    format!(
        "This request could not be processed at this time due to system experiencing high resource utilization. \
         Retry the request after {seconds} seconds"
    )
}

/// An F&O error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FnoError {
    /// HTTP status.
    pub status: StatusCode,
    /// `innererror.type`.
    pub kind: &'static str,
    /// `innererror.message`.
    pub message: String,
    /// Extra response headers.
    pub headers: Vec<(header::HeaderName, String)>,
}

/// Result type of F&O handlers.
pub type FnoResult<T> = Result<T, FnoError>;

impl FnoError {
    /// An error with this status, exception type and message.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into(), headers: Vec::new() }
    }

    /// 400: a query option, URL or body the service cannot process.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ODATA_EXCEPTION, message)
    }

    /// 404: no entity set, record or route here.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, HTTP_EXCEPTION, message)
    }

    /// 404 for a URL that matches nothing.
    pub fn no_resource(url: &str) -> Self {
        Self::not_found(format!("No HTTP resource was found that matches the request URI '{url}'."))
    }

    /// 401: no token, a bad token, or a caller F&O does not know.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, HTTP_EXCEPTION, message)
    }

    /// 405.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, HTTP_EXCEPTION, message)
    }

    /// 412: the `If-Match` ETag is not the record's.
    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            ODATA_EXCEPTION,
            "The ETag value in the request header does not match with the current ETag value of the object.",
        )
    }

    /// 500: a write the entity's validation refused, with its infolog.
    pub fn write_failed(internal: &str, infolog: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            WRITE_EXCEPTION,
            format!("Write failed for table row of type '{internal}'. Infolog: {infolog}"),
        )
    }

    /// 500: an unexpected failure inside the emulator.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "System.Exception", message)
    }

    /// 429 with `Retry-After`.
    pub fn throttled(seconds: i64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, HTTP_EXCEPTION, throttle_message(seconds))
            .with_header(header::RETRY_AFTER, seconds.to_string())
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {
            "code": "",
            "message": "An error has occurred.",
            "innererror": {"message": self.message, "type": self.kind, "stacktrace": ""},
        }})
    }
}

impl From<crate::webapi::error::DvError> for FnoError {
    /// Service protection and injected faults are shared with the Dataverse side; their errors
    /// are re-shaped here (a 429 keeps its `Retry-After` and gets the F&O message).
    fn from(e: crate::webapi::error::DvError) -> Self {
        let retry = e
            .headers
            .iter()
            .find(|(n, _)| n == header::RETRY_AFTER)
            .and_then(|(_, v)| v.parse::<i64>().ok())
            .unwrap_or(1);
        match e.status {
            StatusCode::TOO_MANY_REQUESTS => FnoError::throttled(retry),
            StatusCode::SERVICE_UNAVAILABLE => FnoError::new(e.status, HTTP_EXCEPTION, e.message),
            s => FnoError::new(s, "System.Exception", e.message),
        }
    }
}

impl std::fmt::Display for FnoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.kind, self.message)
    }
}

impl std::error::Error for FnoError {}

impl IntoResponse for FnoError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, self.body().to_string()).into_response();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_throttle_conversion() {
        let e = FnoError::write_failed("CustCustomerV3Entity", "The record already exists.");
        let b = e.body();
        assert_eq!(b["error"]["code"], "");
        assert_eq!(b["error"]["message"], "An error has occurred.");
        assert_eq!(b["error"]["innererror"]["type"], WRITE_EXCEPTION);
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        let dv = crate::webapi::error::DvError::new(StatusCode::TOO_MANY_REQUESTS, "0x80072322", "x")
            .with_header(header::RETRY_AFTER, "7");
        let t = FnoError::from(dv);
        assert_eq!(t.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(t.message.ends_with("Retry the request after 7 seconds"), "{}", t.message);
        assert_eq!(t.headers, vec![(header::RETRY_AFTER, "7".to_string())]);
    }
}
