//! Entra-shaped error responses (reference §7.2):
//!
//! ```json
//! {"error":"invalid_grant","error_description":"AADSTS70008: …\r\nTrace ID: …\r\nCorrelation ID: …\r\nTimestamp: 2025-01-01 00:00:00Z",
//!  "error_codes":[70008],"timestamp":"2025-01-01 00:00:00Z","trace_id":"…","correlation_id":"…",
//!  "error_uri":"{authority}/error?code=70008"}
//! ```
//!
//! `invalid_client` answers 401, everything else 400. The trace id, correlation id (the
//! caller's `client-request-id` when it sent one, as Entra does), timestamp and authority come
//! from the per-request [`RequestCtx`] set by the identity middleware.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Facts about the request being served, available to error rendering.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// Identity authority base URL (`https://localhost:{port}`).
    pub authority: String,
    /// Trace id of this request (also sent as `x-ms-request-id`).
    pub trace_id: String,
    /// Correlation id: the caller's `client-request-id`, or a fresh GUID.
    pub correlation_id: String,
    /// Request time from the emulator clock, as `2025-01-01 00:00:00Z`.
    pub timestamp: String,
}

tokio::task_local! {
    /// The context of the request the current task serves.
    pub static REQUEST_CTX: RequestCtx;
}

impl RequestCtx {
    /// The context of the current request (a fresh one outside a request).
    pub fn current() -> Self {
        REQUEST_CTX.try_with(Clone::clone).unwrap_or_else(|_| RequestCtx {
            authority: String::new(),
            trace_id: uuid::Uuid::new_v4().to_string(),
            correlation_id: uuid::Uuid::new_v4().to_string(),
            timestamp: format_timestamp(time::OffsetDateTime::now_utc()),
        })
    }
}

/// Entra's timestamp format: `2025-01-01 00:00:00Z`.
pub fn format_timestamp(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC).format(&f).unwrap_or_default()
}

/// An OAuth error as Entra returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AadError {
    /// HTTP status (401 for `invalid_client`, else 400).
    pub status: StatusCode,
    /// OAuth `error` value.
    pub error: &'static str,
    /// AADSTS number.
    pub code: u32,
    /// Message after `AADSTS<n>: `.
    pub message: String,
    /// `suberror` (`consent_required`, `bad_token`, …).
    pub suberror: Option<&'static str>,
}

impl AadError {
    /// An error with status 401 for `invalid_client` and 400 otherwise.
    pub fn new(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        let status = if error == "invalid_client" { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
        Self { status, error, code, message: message.into(), suberror: None }
    }

    /// Adds a `suberror`.
    pub fn with_suberror(mut self, suberror: &'static str) -> Self {
        self.suberror = Some(suberror);
        self
    }

    /// `invalid_request` AADSTS900144: a required parameter is missing.
    pub fn missing(param: &str) -> Self {
        Self::new(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{param}'."),
        )
    }

    /// `invalid_tenant` AADSTS90002.
    pub fn unknown_tenant(segment: &str) -> Self {
        Self::new(
            "invalid_tenant",
            90002,
            format!(
                "Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing \
                 into the correct cloud. Check with your subscription administrator, this may happen if there are \
                 no active subscriptions for the tenant."
            ),
        )
    }

    /// `unauthorized_client` AADSTS700016: no such app in the directory.
    pub fn unknown_app(client_id: &str, directory: &str) -> Self {
        Self::new(
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{directory}'. This can \
                 happen if the application has not been installed by the administrator of the tenant or consented \
                 to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        )
    }

    /// `invalid_resource` AADSTS500011: the resource principal is not in the tenant.
    pub fn unknown_resource(resource: &str, tenant_name: &str) -> Self {
        Self::new(
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {tenant_name}. This can \
                 happen if the application has not been installed by the administrator of the tenant or consented \
                 to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        )
    }

    /// `invalid_scope` AADSTS70011.
    pub fn invalid_scope(scope: &str) -> Self {
        Self::new(
            "invalid_scope",
            70011,
            format!("The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."),
        )
    }

    /// `invalid_grant` AADSTS70008: code or refresh token expired, revoked or unknown.
    pub fn expired_grant() -> Self {
        Self::new(
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new \
             interactive authorization request for this user and resource.",
        )
    }

    /// `invalid_grant` AADSTS65001 with `suberror=consent_required`.
    pub fn consent_required(client_id: &str, app_name: &str) -> Self {
        Self::new("invalid_grant", 65001, consent_message(client_id, app_name)).with_suberror("consent_required")
    }

    /// The full `error_description` for `ctx`.
    pub fn description(&self, ctx: &RequestCtx) -> String {
        format!(
            "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            self.code, self.message, ctx.trace_id, ctx.correlation_id, ctx.timestamp
        )
    }

    /// The link to the error lookup page.
    pub fn error_uri(&self, ctx: &RequestCtx) -> String {
        format!("{}/error?code={}", ctx.authority, self.code)
    }

    /// The JSON body for `ctx`.
    pub fn body(&self, ctx: &RequestCtx) -> Value {
        let mut m = Map::new();
        m.insert("error".into(), json!(self.error));
        m.insert("error_description".into(), json!(self.description(ctx)));
        m.insert("error_codes".into(), json!([self.code]));
        m.insert("timestamp".into(), json!(ctx.timestamp));
        m.insert("trace_id".into(), json!(ctx.trace_id));
        m.insert("correlation_id".into(), json!(ctx.correlation_id));
        m.insert("error_uri".into(), json!(self.error_uri(ctx)));
        if let Some(s) = self.suberror {
            m.insert("suberror".into(), json!(s));
        }
        Value::Object(m)
    }
}

/// The AADSTS65001 message.
pub fn consent_message(client_id: &str, app_name: &str) -> String {
    format!(
        "The user or administrator has not consented to use the application with ID '{client_id}' named \
         '{app_name}'. Send an interactive authorization request for this user and resource."
    )
}

impl std::fmt::Display for AadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} AADSTS{}: {}", self.error, self.code, self.message)
    }
}

impl std::error::Error for AadError {}

impl IntoResponse for AadError {
    fn into_response(self) -> Response {
        let ctx = RequestCtx::current();
        // Only the error code is logged: descriptions may quote request values.
        tracing::debug!(error = self.error, code = self.code, "identity request refused");
        let mut resp = (self.status, self.body(&ctx).to_string()).into_response();
        no_store_json(resp.headers_mut());
        resp
    }
}

/// `Content-Type: application/json; charset=utf-8` plus the no-cache headers of token responses.
pub fn no_store_json(h: &mut axum::http::HeaderMap) {
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Result of identity handlers.
pub type AadResult<T> = Result<T, AadError>;

/// An error shown in the browser instead of being redirected to the app (bad client, bad
/// redirect URI, unknown tenant on the sign-in endpoints): HTTP 400, HTML.
#[derive(Debug, Clone)]
pub struct ErrorPage(pub AadError);

impl From<AadError> for ErrorPage {
    fn from(e: AadError) -> Self {
        ErrorPage(e)
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let ctx = RequestCtx::current();
        tracing::debug!(error = self.0.error, code = self.0.code, "sign-in request refused (error page)");
        let e = &self.0;
        let body = format!(
            "<h1>Sorry, but we’re having trouble signing you in.</h1>\
             <p class=\"err\" id=\"error\" data-error=\"{err}\" data-code=\"{code}\">AADSTS{code}: {msg}</p>\
             <dl><dt>Request Id</dt><dd>{trace}</dd><dt>Correlation Id</dt><dd>{corr}</dd>\
             <dt>Timestamp</dt><dd>{ts}</dd></dl>",
            err = super::html::escape(e.error),
            code = e.code,
            msg = super::html::escape(&e.message),
            trace = super::html::escape(&ctx.trace_id),
            corr = super::html::escape(&ctx.correlation_id),
            ts = super::html::escape(&ctx.timestamp),
        );
        super::html::page(StatusCode::BAD_REQUEST, "Sign in to your account", &body, false)
    }
}
