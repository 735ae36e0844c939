//! The Finance & Operations environments and the Human Resources legacy endpoint.
//!
//! | Base | Tokens | Service protection |
//! |---|---|---|
//! | `{base}/fno` (online) | Entra ID, `aud = {base}/fno` | yes |
//! | `{base}/fno-onprem` (on-premises) | AD FS, `aud = {base}/fno-onprem` | none (as on-premises) |
//! | `{base}/namespaces/{guid}` (HR legacy) | Entra ID, `aud = http://hr.talent.dynamics.com` or `{base}/fno` | yes |
//!
//! All three serve the same data store ([`store`]) through the F&O OData dialect under
//! `/data/` ([`query`], [`records`], [`batch`], [`csdl`]) and the read-only metadata service
//! under `/Metadata/` ([`metadata`]). Errors are F&O-shaped ([`error`]). Service protection
//! uses the emulator's shared [`crate::webapi::limits::Limits`] accounting (the same settings
//! as `--limits`), keyed on `fno|{token oid}|{client id}` so F&O budgets are separate from
//! Dataverse ones; the HR legacy path shares the F&O key. Injected faults
//! ([`crate::webapi::faults::Faults`]) apply to the online and HR paths too, and the
//! simulated service time (`--latency-ms` per request, `--latency-per-row-us` per row returned)
//! to every F&O path, as on the Dataverse side.

pub mod auth;
pub mod batch;
pub mod csdl;
pub mod error;
pub mod filter;
pub mod keys;
pub mod metadata;
pub mod model;
pub mod query;
pub mod records;
pub mod registry;
pub mod seed;
pub mod store;
pub mod values;

use crate::state::{AppState, HR_NAMESPACE};
use auth::{Caller, Env};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use error::{FnoError, FnoResult};
use std::sync::{Arc, Mutex};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Longest URL accepted.
const MAX_URL: usize = 32_768;

/// The F&O side of the shared state.
#[derive(Debug)]
pub struct FnoState {
    /// The data store.
    pub store: store::FnoStore,
    /// The Entra-applications registry.
    pub registry: registry::Registry,
}

/// Routes of the three environments.
pub fn routes() -> Router<AppState> {
    let any = || axum::routing::any(dispatch);
    Router::new()
        .route("/fno", any())
        .route("/fno/", any())
        .route("/fno/{*rest}", any())
        .route("/fno-onprem", any())
        .route("/fno-onprem/", any())
        .route("/fno-onprem/{*rest}", any())
        .route("/namespaces/{ns}", any())
        .route("/namespaces/{ns}/", any())
        .route("/namespaces/{ns}/{*rest}", any())
}

/// Everything a handler needs about one request.
#[derive(Clone)]
pub struct Ctx {
    /// Shared state.
    pub state: AppState,
    /// The environment addressed.
    pub env: Env,
    /// The caller.
    pub caller: Caller,
    /// The environment root as the client spelled it (`https://localhost:{port}/fno`).
    pub root: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    /// The raw query string.
    pub raw_query: String,
    /// The connection of the `$batch` change set this request runs in, if any.
    pub pinned: Option<Arc<Mutex<rusqlite::Connection>>>,
}

impl Ctx {
    /// The value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether `cross-company=true` was given.
    pub fn cross_company(&self) -> bool {
        self.param("cross-company").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// `{root}/data`.
    pub fn data_root(&self) -> String {
        format!("{}/data", self.root)
    }

    /// Runs `f` on the change set's connection, or a pooled one, off the async runtime.
    pub async fn sql<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> FnoResult<R> + Send + 'static,
    ) -> FnoResult<R> {
        let state = self.state.clone();
        let pinned = self.pinned.clone();
        tokio::task::spawn_blocking(move || match pinned {
            Some(c) => {
                let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
                f(&mut c)
            }
            None => state.fno.store.with_conn(f).map_err(sql_error)?,
        })
        .await
        .map_err(|e| FnoError::internal(format!("the query task failed: {e}")))?
    }
}

/// A SQLite failure as an F&O error.
pub fn sql_error(e: rusqlite::Error) -> FnoError {
    FnoError::internal(format!("The database request failed: {e}"))
}

async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    let activity = uuid::Uuid::new_v4().to_string();
    let mut resp = match handle(state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let h = resp.headers_mut();
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    if let Ok(v) = HeaderValue::from_str(&activity) {
        h.insert("ms-dyn-aid", v);
    }
    resp
}

/// Splits `/fno/...`, `/fno-onprem/...` or `/namespaces/{guid}/...` into the environment, its
/// path prefix and the rest.
fn split_env(path: &str) -> FnoResult<(Env, String, &str)> {
    if let Some(rest) = path.strip_prefix("/fno-onprem").filter(|r| r.is_empty() || r.starts_with('/')) {
        return Ok((Env::OnPrem, "/fno-onprem".into(), rest));
    }
    if let Some(rest) = path.strip_prefix("/fno").filter(|r| r.is_empty() || r.starts_with('/')) {
        return Ok((Env::Online, "/fno".into(), rest));
    }
    if let Some(after) = path.strip_prefix("/namespaces/") {
        let (ns, rest) = after.find('/').map_or((after, ""), |i| (&after[..i], &after[i..]));
        if uuid::Uuid::parse_str(ns).is_ok_and(|id| id == HR_NAMESPACE) {
            return Ok((Env::HrLegacy, format!("/namespaces/{HR_NAMESPACE}"), rest));
        }
    }
    Err(FnoError::no_resource(path))
}

/// The base URL as the client spelled it (`localhost` or `127.0.0.1` with the port).
fn base_url(state: &crate::state::Shared, parts: &axum::http::request::Parts) -> String {
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string));
    let canonical = state.urls.org_url.clone();
    match host {
        Some(h) => {
            let candidate = format!("https://{h}");
            if state.urls.is_org(&candidate) { candidate } else { canonical }
        }
        None => canonical,
    }
}

async fn handle(state: AppState, req: Request) -> FnoResult<Response> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let (env, prefix, rest) = split_env(&path)?;
    if parts.uri.to_string().len() > MAX_URL {
        return Err(FnoError::new(StatusCode::URI_TOO_LONG, error::HTTP_EXCEPTION, "The request URL is too long."));
    }
    let caller = auth::authenticate(&state, env, &parts.headers)?;
    let limited = env != Env::OnPrem;
    let admission = if limited { Some(crate::webapi::limits::Limits::admit(&state, &caller.limit_key)?) } else { None };
    let fault = if limited { state.faults.draw() } else { crate::webapi::faults::Fault::None };
    if let Some(e) = crate::webapi::faults::before(fault) {
        return Err(e.into());
    }
    if fault == crate::webapi::faults::Fault::Slow {
        tokio::time::sleep(state.faults.slow_delay()).await;
    }
    let started = std::time::Instant::now();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let ctx = Ctx {
        root: format!("{}{prefix}", base_url(&state, &parts)),
        state: state.clone(),
        env,
        caller,
        headers: parts.headers.clone(),
        query: form_urlencoded::parse(raw_query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
        raw_query,
        pinned: None,
    };
    let rest = rest.to_string();
    let result = route(ctx, parts.method, &rest, body).await;
    if !state.options.latency.is_zero() {
        tokio::time::sleep(state.options.latency).await;
    }
    if let Some(a) = admission {
        a.finish(started.elapsed());
    }
    let resp = result.unwrap_or_else(IntoResponse::into_response);
    Ok(crate::webapi::faults::after(resp, fault).await)
}

/// Decodes a percent-encoded path.
pub fn decode_path(p: &str) -> FnoResult<String> {
    percent_encoding::percent_decode_str(p)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| FnoError::bad_request("The request URL is not valid UTF-8 after percent-decoding."))
}

async fn route(ctx: Ctx, method: Method, rest: &str, body: Body) -> FnoResult<Response> {
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        FnoError::new(StatusCode::PAYLOAD_TOO_LARGE, error::HTTP_EXCEPTION, "The request body is too large.")
    })?;
    if let Some(m) = rest.strip_prefix("/Metadata/") {
        if method != Method::GET {
            return Err(FnoError::method_not_allowed("The metadata service is read-only."));
        }
        return metadata::handle(&ctx, &decode_path(m)?);
    }
    let Some(data) = rest.strip_prefix("/data").filter(|r| r.is_empty() || r.starts_with('/')) else {
        return Err(FnoError::no_resource(&format!("{}{rest}", ctx.root)));
    };
    let data = data.strip_prefix('/').unwrap_or(data).to_string();
    route_data(ctx, method, &data, body).await
}

/// Runs a request on a `/data/` path (`data` is what follows `/data/`, still percent-encoded).
pub async fn route_data(ctx: Ctx, method: Method, data: &str, body: Bytes) -> FnoResult<Response> {
    match (data, &method) {
        ("", &Method::GET) => return Ok(service_document(&ctx)),
        ("$metadata", &Method::GET) => {
            let mut r = (StatusCode::OK, csdl::csdl()).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            return Ok(r);
        }
        ("$batch", &Method::POST) => return batch::run(ctx, body).await,
        ("" | "$metadata" | "$batch", _) => {
            return Err(FnoError::method_not_allowed(format!(
                "The requested resource does not support http method '{method}'."
            )));
        }
        _ => {}
    }
    let path = records::DataPath::parse(&decode_path(data)?, &ctx.data_root())?;
    match (method, path) {
        (Method::GET, records::DataPath::Collection(e)) => query::collection(ctx, e).await,
        (Method::GET, records::DataPath::Count(e)) => query::count(ctx, e).await,
        (Method::POST, records::DataPath::Collection(e)) => records::create(ctx, e, body).await,
        (Method::GET, records::DataPath::Record(e, k)) => records::retrieve(ctx, e, k).await,
        (Method::PATCH, records::DataPath::Record(e, k)) => records::update(ctx, e, k, body, false).await,
        (Method::PUT, records::DataPath::Record(e, k)) => records::update(ctx, e, k, body, true).await,
        (Method::DELETE, records::DataPath::Record(e, k)) => records::delete(ctx, e, k).await,
        (Method::GET, records::DataPath::Navigation(e, k, nav)) => records::navigate(ctx, e, k, nav).await,
        (m, _) => {
            Err(FnoError::method_not_allowed(format!("The requested resource does not support http method '{m}'.")))
        }
    }
}

/// A JSON response with OData's content type.
pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; odata.metadata=minimal"));
    r
}

fn service_document(ctx: &Ctx) -> Response {
    let sets: Vec<serde_json::Value> = model::ENTITIES
        .iter()
        .map(|e| serde_json::json!({"name": e.collection, "kind": "EntitySet", "url": e.collection}))
        .collect();
    let body = serde_json::json!({"@odata.context": format!("{}/$metadata", ctx.data_root()), "value": sets});
    json_response(StatusCode::OK, body.to_string())
}
