//! [`DataverseClient`]: the HTTP client of one organisation. It adds the standard OData headers
//! and the bearer token to every request, runs every request through the one
//! [`RetryPolicy`](crate::retry::RetryPolicy), counts requests in a [`RequestLog`], and
//! remembers the service's hints (`x-ms-dop-hint`, `x-ms-ratelimit-*`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use d365_auth::{AccessToken, TokenProvider};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;
use uuid::Uuid;

use crate::error::{ClientError, ServiceError, body_excerpt, parse_error_body};
use crate::request_log::{RequestEvent, RequestLog};
use crate::retry::{Clock, Outcome, RequestInfo, RetryConfig, RetryPolicy, TokioClock, parse_retry_after};

/// How to reach and talk to one Dataverse organisation.
#[derive(Clone)]
pub struct ClientOptions {
    /// Organisation URL, e.g. `https://contoso.crm.dynamics.com` (a trailing `/` is fine).
    pub org_url: String,
    /// Web API version (`9.2`).
    pub api_version: String,
    /// Impersonate this systemuserid (`MSCRMCallerID` header).
    pub caller_id: Option<Uuid>,
    /// Impersonate the user with this Entra object id (`CallerObjectId` header).
    pub caller_object_id: Option<Uuid>,
    /// Timeout of one HTTP attempt (connect to end of body).
    pub timeout: Duration,
    /// An extra CA certificate (PEM) to trust besides the system roots (e.g. the emulator's).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Page size asked for with `Prefer: odata.maxpagesize` when a query does not set one
    /// (1–5000; default 5000, the service's maximum; `None` sends no page-size preference).
    pub max_page_size: Option<u32>,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Limits of the retry policy.
    pub retry: RetryConfig,
    /// Time source of the retry policy (tests use [`ManualClock`](crate::retry::ManualClock)).
    pub clock: Arc<dyn Clock>,
    /// The data service (Dataverse by default).
    pub service: crate::service::Service,
}

impl ClientOptions {
    /// Options for `org_url` with defaults for everything else.
    pub fn new(org_url: impl Into<String>) -> Self {
        Self { org_url: org_url.into(), ..Self::default() }
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            org_url: String::new(),
            api_version: "9.2".into(),
            caller_id: None,
            caller_object_id: None,
            timeout: Duration::from_secs(120),
            extra_ca_pem: None,
            max_page_size: Some(crate::query::MAX_PAGE_SIZE),
            user_agent: concat!("d365/", env!("CARGO_PKG_VERSION")).into(),
            retry: RetryConfig::default(),
            clock: Arc::new(TokioClock),
            service: crate::service::Service::Dataverse,
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("org_url", &self.org_url)
            .field("api_version", &self.api_version)
            .field("caller_id", &self.caller_id)
            .field("caller_object_id", &self.caller_object_id)
            .field("timeout", &self.timeout)
            .field("extra_ca_pem", &self.extra_ca_pem.as_ref().map(|p| format!("{} bytes", p.len())))
            .field("max_page_size", &self.max_page_size)
            .field("user_agent", &self.user_agent)
            .field("retry", &self.retry)
            .field("service", &self.service)
            .finish()
    }
}

/// The latest service hints seen in response headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerHints {
    /// `x-ms-dop-hint`: the parallelism the service recommends.
    pub dop_hint: Option<u32>,
    /// `x-ms-ratelimit-burst-remaining-xrm-requests`.
    pub burst_remaining: Option<u64>,
    /// `x-ms-ratelimit-time-remaining-xrm-requests` (milliseconds of execution time).
    pub time_remaining_ms: Option<u64>,
}

/// One HTTP request to the Web API, before the token and standard headers are added.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: Method,
    /// Absolute URL (see [`DataverseClient::url`]).
    pub url: Url,
    /// Extra headers (`Prefer`, `If-Match`, ...).
    pub headers: HeaderMap,
    /// JSON body.
    pub body: Option<Bytes>,
    /// Whether repeating the request is harmless. GETs are; writes are only when the caller
    /// says so (an upsert by key, a delete).
    pub idempotent: bool,
}

impl ApiRequest {
    /// A request; GET is idempotent, other methods are not until marked.
    pub fn new(method: Method, url: Url) -> Self {
        let idempotent = method == Method::GET;
        Self { method, url, headers: HeaderMap::new(), body: None, idempotent }
    }

    /// Adds a header (invalid names or values are refused).
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, ClientError> {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ClientError::InvalidArgument(format!("invalid header name '{name}'")))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| ClientError::InvalidArgument(format!("invalid value for header {name}")))?;
        self.headers.append(n, v);
        Ok(self)
    }

    /// Sets a JSON body.
    pub fn json(mut self, body: &serde_json::Value) -> Result<Self, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::InvalidArgument(format!("body: {e}")))?;
        self.body = Some(Bytes::from(bytes));
        Ok(self)
    }

    /// Marks the request as safe to repeat.
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }
}

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// HTTP status (2xx or 304; errors become [`ClientError`]s).
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
    /// Attempts it took (1 when the first succeeded).
    pub attempts: u32,
}

impl ApiResponse {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Inner {
    http: reqwest::Client,
    org_url: Url,
    base: Url,
    options: ClientOptions,
    tokens: Arc<dyn TokenProvider>,
    retry: RetryPolicy,
    log: RequestLog,
    dop_hint: AtomicU64,
    burst_remaining: AtomicU64,
    time_remaining: AtomicU64,
    /// Body bytes per row of earlier scans, by entity set and columns (see
    /// [`DataverseClient::row_width`]).
    row_widths: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// Rows and `createdon` span of tables, as earlier aggregates saw them.
    extents: crate::table_extent::TableExtents,
    /// The concurrency earlier work reached without being throttled (0: none yet); see
    /// [`DataverseClient::concurrency`].
    concurrency_reached: Arc<AtomicU64>,
}

/// The Dataverse Web API client of one organisation. Cheap to clone (an `Arc` inside); clones
/// share the HTTP connection pool, the token provider and the request counters.
#[derive(Clone)]
pub struct DataverseClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for DataverseClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataverseClient")
            .field("base", &self.inner.base.as_str())
            .field("flow", &self.inner.tokens.flow_name())
            .finish()
    }
}

const NO_HINT: u64 = u64::MAX;

impl DataverseClient {
    /// A client for `options.org_url`, getting tokens from `tokens`.
    pub fn new(options: ClientOptions, tokens: Arc<dyn TokenProvider>) -> Result<Self, ClientError> {
        let mut org = options.org_url.trim().trim_end_matches('/').to_string();
        if org.is_empty() {
            return Err(ClientError::InvalidArgument("the organisation URL is empty".into()));
        }
        org.push('/');
        let org_url = Url::parse(&org)
            .map_err(|e| ClientError::InvalidArgument(format!("organisation URL '{}': {e}", options.org_url)))?;
        if !matches!(org_url.scheme(), "https" | "http") || org_url.host().is_none() {
            return Err(ClientError::InvalidArgument(format!(
                "organisation URL '{}' must be an https:// URL with a host",
                options.org_url
            )));
        }
        let version = options.api_version.trim_start_matches('v');
        let root = match options.service {
            crate::service::Service::Dataverse => format!("api/data/v{version}/"),
            crate::service::Service::FinOps(_) => "data/".to_string(),
        };
        let base = org_url
            .join(&root)
            .map_err(|e| ClientError::InvalidArgument(format!("API version '{}': {e}", options.api_version)))?;
        let mut builder = reqwest::Client::builder()
            .user_agent(options.user_agent.clone())
            .timeout(options.timeout)
            .connect_timeout(Duration::from_secs(30).min(options.timeout))
            .redirect(reqwest::redirect::Policy::none())
            .gzip(true);
        if let Some(pem) = &options.extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::InvalidArgument(format!("extra CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(ClientError::InvalidArgument("extra CA certificate: no certificate in the PEM".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| ClientError::InvalidArgument(format!("HTTP client: {e}")))?;
        let retry = RetryPolicy::new(options.retry.clone(), options.clock.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                org_url,
                base,
                options,
                tokens,
                retry,
                log: RequestLog::default(),
                dop_hint: AtomicU64::new(NO_HINT),
                burst_remaining: AtomicU64::new(NO_HINT),
                time_remaining: AtomicU64::new(NO_HINT),
                row_widths: Default::default(),
                extents: Default::default(),
                concurrency_reached: Default::default(),
            }),
        })
    }

    /// The organisation URL (with a trailing `/`).
    pub fn org_url(&self) -> &Url {
        &self.inner.org_url
    }

    /// The service root: the Web API's `{org}/api/data/v{version}/`, or Finance &
    /// Operations' `{org}/data/`.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The data service this client talks to.
    pub fn service(&self) -> crate::service::Service {
        self.inner.options.service
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The token provider (for `whoami` output: [`TokenProvider::flow_name`]).
    pub fn token_provider(&self) -> &Arc<dyn TokenProvider> {
        &self.inner.tokens
    }

    /// Request counters (every attempt counts).
    pub fn request_log(&self) -> &RequestLog {
        &self.inner.log
    }

    /// Body bytes per row an earlier scan of `shape` (entity set and columns) measured: a new
    /// scan of the same shape sizes its first pages by it instead of starting small (each page
    /// is a request of the service's budget).
    pub(crate) fn row_width(&self, shape: &str) -> Option<u64> {
        self.inner.row_widths.lock().unwrap_or_else(|e| e.into_inner()).get(shape).copied()
    }

    /// Records the body bytes per row a scan of `shape` measured.
    pub(crate) fn note_row_width(&self, shape: &str, bytes_per_row: u64) {
        let mut widths = self.inner.row_widths.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = widths.get_mut(shape) {
            *w = bytes_per_row;
            return;
        }
        // A bounded memory: a long-lived client scanning many shapes keeps the latest few.
        if widths.len() >= 64 {
            widths.clear();
        }
        widths.insert(shape.to_string(), bytes_per_row);
    }

    /// Tables' sizes as earlier aggregates saw them (see [`crate::TableExtent`]).
    pub(crate) fn extents(&self) -> &crate::table_extent::TableExtents {
        &self.inner.extents
    }

    /// Forgets what earlier work taught this client: the tables' extents and the concurrency
    /// reached. The next queries plan and start as a new connection's would.
    pub fn forget_learnt(&self) {
        self.inner.extents.clear();
        self.inner.concurrency_reached.store(0, Ordering::Relaxed);
    }

    /// Where work records the concurrency it reached (see [`DataverseClient::concurrency`]).
    pub(crate) fn concurrency_reached(&self) -> &Arc<AtomicU64> {
        &self.inner.concurrency_reached
    }

    /// Whether a response to this client was throttled (429, or 503 with `Retry-After`) within
    /// `window`, on the retry policy's clock.
    pub fn throttled_within(&self, window: Duration) -> bool {
        self.inner
            .log
            .last_throttle()
            .is_some_and(|t| self.inner.retry.clock.now().saturating_duration_since(t) < window)
    }

    /// The latest `x-ms-dop-hint` and rate-limit headers seen.
    pub fn server_hints(&self) -> ServerHints {
        let get = |a: &AtomicU64| Some(a.load(Ordering::Relaxed)).filter(|v| *v != NO_HINT);
        ServerHints {
            dop_hint: get(&self.inner.dop_hint).and_then(|v| u32::try_from(v).ok()),
            burst_remaining: get(&self.inner.burst_remaining),
            time_remaining_ms: get(&self.inner.time_remaining),
        }
    }

    /// The absolute URL of `relative` (a path under the Web API root with an optional query,
    /// already encoded: `accounts?$select=name`).
    pub fn url(&self, relative: &str) -> Result<Url, ClientError> {
        self.inner
            .base
            .join(relative.trim_start_matches('/'))
            .map_err(|e| ClientError::InvalidArgument(format!("URL '{relative}': {e}")))
    }

    /// Sends `request` under the retry policy and returns the response (2xx or 304); error
    /// statuses become [`ClientError`]s.
    pub async fn send(&self, request: &ApiRequest) -> Result<ApiResponse, ClientError> {
        self.execute(request, Ok).await
    }

    /// Sends a GET of `relative` (see [`url`](Self::url)) and parses the JSON body.
    pub async fn get_json(&self, relative: &str) -> Result<serde_json::Value, ClientError> {
        let req = ApiRequest::new(Method::GET, self.url(relative)?);
        self.execute(&req, |r| decode_json(&req, &r.body)).await
    }

    /// Sends `request` under the retry policy and turns the response into `T` with `decode`.
    /// A decode failure of an idempotent request (a truncated or garbled body) is retried like
    /// a transport failure.
    pub async fn execute<T, F>(&self, request: &ApiRequest, decode: F) -> Result<T, ClientError>
    where
        F: Fn(ApiResponse) -> Result<T, ClientError>,
    {
        let path = path_of(&request.url);
        let info = RequestInfo { method: request.method.as_str(), path: &path, idempotent: request.idempotent };
        let inner = &self.inner;
        inner
            .retry
            .run(info, inner.tokens.as_ref(), &inner.log, |token, number| {
                let path = &path;
                let decode = &decode;
                async move {
                    match self.attempt(request, path, &token, number).await {
                        Ok(resp) => match decode(resp) {
                            Ok(v) => Outcome::Done(v),
                            Err(e @ ClientError::Decode { .. }) => Outcome::Failed(e, "undecodable body".into()),
                            Err(e) => Outcome::Fatal(e),
                        },
                        Err(outcome) => outcome,
                    }
                }
            })
            .await
    }

    /// One attempt: send, read the whole body, classify.
    async fn attempt<T>(
        &self,
        request: &ApiRequest,
        path: &str,
        token: &AccessToken,
        number: u32,
    ) -> Result<ApiResponse, Outcome<T>> {
        let inner = &self.inner;
        let method = request.method.as_str();
        let mut rb = inner
            .http
            .request(request.method.clone(), request.url.clone())
            .header("Authorization", format!("Bearer {}", token.secret()))
            .header("OData-MaxVersion", "4.0")
            .header("OData-Version", "4.0")
            .header("Accept", "application/json");
        if request.method == Method::GET && !request.headers.contains_key("if-none-match") {
            rb = rb.header("If-None-Match", "null");
        }
        // A request that names its own impersonated user (e.g. a write with a caller id)
        // replaces the client's.
        let own_caller =
            request.headers.contains_key("mscrmcallerid") || request.headers.contains_key("callerobjectid");
        if !own_caller {
            if let Some(id) = inner.options.caller_id {
                rb = rb.header("MSCRMCallerID", id.to_string());
            }
            if let Some(id) = inner.options.caller_object_id {
                rb = rb.header("CallerObjectId", id.to_string());
            }
        }
        for (name, value) in &request.headers {
            rb = rb.header(name, value);
        }
        let bytes_sent = request.body.as_ref().map_or(0, |b| b.len() as u64);
        if let Some(body) = &request.body {
            if !request.headers.contains_key("content-type") {
                rb = rb.header("Content-Type", "application/json");
            }
            rb = rb.body(body.clone());
        }
        let started = Instant::now();
        let mut event = RequestEvent {
            method: method.to_string(),
            path: path.to_string(),
            status: None,
            attempt: number,
            bytes_sent,
            bytes_received: 0,
            duration: Duration::ZERO,
        };
        let sent = rb.send().await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                event.duration = started.elapsed();
                inner.log.record(&event);
                return Err(transport_outcome(method, path, &e, false));
            }
        };
        let status = resp.status();
        event.status = Some(status.as_u16());
        let headers = std::mem::take(resp.headers_mut());
        self.note_hints(&headers);
        let body = read_body(&mut resp, &mut event.bytes_received).await;
        event.duration = started.elapsed();
        inner.log.record(&event);
        let body = match body {
            Ok(b) => b,
            Err(e) => return Err(transport_outcome(method, path, &e, true)),
        };
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(ApiResponse { status, headers, body, attempts: number });
        }
        Err(self.error_outcome(method, path, status, &headers, &body, request.idempotent))
    }

    fn note_hints(&self, headers: &HeaderMap) {
        let num =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse::<u64>().ok());
        if let Some(v) = num("x-ms-dop-hint") {
            self.inner.dop_hint.store(v, Ordering::Relaxed);
        }
        if let Some(v) = num("x-ms-ratelimit-burst-remaining-xrm-requests") {
            self.inner.burst_remaining.store(v, Ordering::Relaxed);
        }
        if let Some(v) = num("x-ms-ratelimit-time-remaining-xrm-requests") {
            self.inner.time_remaining.store(v, Ordering::Relaxed);
        }
    }

    fn error_outcome<T>(
        &self,
        method: &str,
        path: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        idempotent: bool,
    ) -> Outcome<T> {
        let parsed = parse_error_body(body);
        let is_dataverse = parsed.is_some();
        let (code, message) = parsed.unwrap_or_else(|| (None, body_excerpt(body)));
        let request_id = ["REQ_ID", "x-ms-service-request-id", "x-ms-request-id"]
            .iter()
            .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
            .map(str::to_string);
        let service = Box::new(ServiceError {
            method: method.to_string(),
            path: path.to_string(),
            status: status.as_u16(),
            code,
            message,
            request_id,
            after_lost_attempt: false,
        });
        let retry_after = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.inner.retry.clock.system_now()));
        match status.as_u16() {
            401 => Outcome::Unauthorized(service),
            429 => Outcome::Throttled(service, retry_after),
            503 if retry_after.is_some() => Outcome::Throttled(service, retry_after),
            // A Dataverse error answer to a write is definitive (the transaction was rolled back).
            500 if is_dataverse && !idempotent => Outcome::Fatal(ClientError::Service(service)),
            408 | 500 | 502 | 503 | 504 => {
                let label = format!("HTTP {}", status.as_u16());
                Outcome::Failed(ClientError::Service(service), label)
            }
            _ => Outcome::Fatal(ClientError::Service(service)),
        }
    }
}

async fn read_body(resp: &mut reqwest::Response, received: &mut u64) -> Result<Bytes, reqwest::Error> {
    let mut buf: Vec<u8> = Vec::with_capacity(resp.content_length().map_or(8 * 1024, |n| n.min(64 << 20) as usize));
    while let Some(chunk) = resp.chunk().await? {
        *received += chunk.len() as u64;
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Classifies an error of the HTTP stack. `after_headers`: the status line had arrived.
fn transport_outcome<T>(method: &str, path: &str, e: &reqwest::Error, after_headers: bool) -> Outcome<T> {
    let message = describe(e);
    let err = ClientError::Transport {
        method: method.to_string(),
        path: path.to_string(),
        message: message.clone(),
        timeout: e.is_timeout(),
    };
    let lower = message.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("invalidcert") || lower.contains("unknownissuer") {
        // A TLS trust failure will not heal by retrying.
        return Outcome::Fatal(err);
    }
    if e.is_connect() && !after_headers {
        return Outcome::NotSent(err);
    }
    let label = if e.is_timeout() {
        "timeout"
    } else if after_headers {
        "truncated body"
    } else {
        "connection reset"
    };
    Outcome::Failed(err, label.to_string())
}

/// The error and its sources, without the URL (which is kept separately as a path).
fn describe(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let top = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "error reading the response body"
    } else {
        "error sending the request"
    };
    parts.push(top.to_string());
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The path and query of `url` (what errors and logs show; never a credential).
pub(crate) fn path_of(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Parses a JSON body, mapping failures to [`ClientError::Decode`].
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(req: &ApiRequest, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| decode_error(req, e))
}

/// [`ClientError::Decode`] for the answer to `req`.
pub(crate) fn decode_error(req: &ApiRequest, message: impl std::fmt::Display) -> ClientError {
    ClientError::Decode { method: req.method.to_string(), path: path_of(&req.url), message: message.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_refuse_bad_headers_without_panicking() {
        let url = Url::parse("https://org.crm.dynamics.com/api/data/v9.2/accounts").unwrap();
        let r = ApiRequest::new(Method::GET, url.clone()).header("Prefer", "odata.maxpagesize=10").unwrap();
        assert_eq!(r.headers["prefer"], "odata.maxpagesize=10");
        assert!(r.idempotent);
        assert!(ApiRequest::new(Method::GET, url.clone()).header("bad name", "x").is_err());
        assert!(ApiRequest::new(Method::GET, url.clone()).header("x", "a\nb").is_err());
        assert!(!ApiRequest::new(Method::POST, url).idempotent);
    }

    #[test]
    fn options_build_the_web_api_root_and_refuse_bad_urls() {
        let tokens: Arc<dyn TokenProvider> =
            Arc::new(d365_auth::StaticTokenProvider::new(AccessToken::new("secret-token", None)));
        let c = DataverseClient::new(ClientOptions::new("https://org.crm4.dynamics.com/"), tokens.clone()).unwrap();
        assert_eq!(c.base_url().as_str(), "https://org.crm4.dynamics.com/api/data/v9.2/");
        assert_eq!(
            c.url("accounts?$top=1").unwrap().as_str(),
            "https://org.crm4.dynamics.com/api/data/v9.2/accounts?$top=1"
        );
        let v91 = ClientOptions { api_version: "v9.1".into(), ..ClientOptions::new("https://org.crm.dynamics.com") };
        assert_eq!(DataverseClient::new(v91, tokens.clone()).unwrap().base_url().path(), "/api/data/v9.1/");
        for bad in ["", "not a url", "ftp://org.crm.dynamics.com"] {
            let e = DataverseClient::new(ClientOptions::new(bad), tokens.clone()).unwrap_err();
            assert!(matches!(e, ClientError::InvalidArgument(_)), "{bad}: {e}");
        }
        let bad_ca = ClientOptions { extra_ca_pem: Some(b"nope".to_vec()), ..ClientOptions::new("https://o.example") };
        assert!(DataverseClient::new(bad_ca, tokens.clone()).is_err());
        assert!(!format!("{c:?}").contains("secret-token"));
    }
}
