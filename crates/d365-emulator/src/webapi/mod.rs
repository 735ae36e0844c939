//! The Dataverse Web API under `/api/data/v9.x/` (v9.0, v9.1 and v9.2 answer alike).
//!
//! Every request is authenticated (bearer token → Dataverse user, impersonation headers),
//! routed by its OData resource path, and answered with the headers Dataverse sends:
//! `OData-Version`, `x-ms-dop-hint`, `x-ms-ratelimit-*` and a request id.

pub mod apply;
pub mod auth;
pub mod batch;
pub mod bulk;
pub mod changes;
pub mod csdl;
pub mod error;
pub mod expand;
pub mod faults;
pub mod fetch;
pub mod filter_sql;
pub mod limits;
pub mod metadata;
pub mod paging;
pub mod path;
pub mod query;
pub mod query_functions;
pub mod record_count;
pub mod records;
pub mod request;
pub mod rows;
pub mod writes;

use crate::state::AppState;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use error::{DvError, DvResult};
use path::Resource;
use request::{Prefer, QueryOptions};

/// Largest request body accepted (Dataverse answers 413 beyond its limits).
const MAX_BODY: usize = 128 * 1024 * 1024;
/// Longest GET URL Dataverse accepts.
const MAX_URL: usize = 32_768;

/// Routes of the Web API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/data/{version}", axum::routing::any(dispatch))
        .route("/api/data/{version}/", axum::routing::any(dispatch))
        .route("/api/data/{version}/{*rest}", axum::routing::any(dispatch))
}

/// Logs each request at debug level (info with `--verbose`). Never logs headers or bodies,
/// so tokens and secrets do not reach the log.
pub async fn log_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let ms = started.elapsed().as_millis();
    if state.options.verbose {
        tracing::info!(%method, %path, status = resp.status().as_u16(), ms, "request");
    } else {
        tracing::debug!(%method, %path, status = resp.status().as_u16(), ms, "request");
    }
    resp
}

/// Everything a Web API handler needs about one request.
pub struct Ctx {
    /// Shared state.
    pub state: AppState,
    /// The table definitions this request sees: a snapshot taken when it started, so a column
    /// created meanwhile does not change the tables under a running request.
    pub schema: std::sync::Arc<crate::schema::Schema>,
    /// The authenticated caller.
    pub caller: auth::Caller,
    /// Decoded query options.
    pub query: QueryOptions,
    /// Preferences.
    pub prefer: Prefer,
    /// Request headers.
    pub headers: HeaderMap,
    /// The raw query string (for building next links).
    pub raw_query: String,
    /// The Web API root the client used (its version segment kept).
    pub api_root: String,
    /// The connection of the `$batch` change set this request runs in, if any.
    pub pinned: Option<std::sync::Arc<std::sync::Mutex<rusqlite::Connection>>>,
}

async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut resp = match handle(state.clone(), parts, body).await {
        Ok(r) => r,
        Err(e) => {
            if !state.options.latency.is_zero() {
                tokio::time::sleep(state.options.latency).await;
            }
            e.into_response()
        }
    };
    let h = resp.headers_mut();
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    let dop = state.options.dop_hint.unwrap_or(state.config.dataverse.dop_hint);
    h.insert("x-ms-dop-hint", HeaderValue::from(dop));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("REQ_ID", v.clone());
        h.insert("x-ms-service-request-id", v);
    }
    resp
}

/// Authenticates, applies service protection and injected faults, and runs the request.
/// Errors before admission (bad URL, bad token, throttling) are returned as `Err`.
async fn handle(state: AppState, parts: axum::http::request::Parts, body: Body) -> DvResult<Response> {
    let path = parts.uri.path();
    let Some(rest) = path.strip_prefix("/api/data/") else { return Err(DvError::segment_not_found(path)) };
    let (version, resource_path) = rest.split_once('/').unwrap_or((rest, ""));
    if !matches!(version, "v9.0" | "v9.1" | "v9.2") {
        return Err(DvError::segment_not_found(version));
    }
    if parts.uri.to_string().len() > MAX_URL {
        return Err(DvError::new(
            StatusCode::URI_TOO_LONG,
            "0x80060888",
            "The request URL is longer than 32768 characters.",
        ));
    }
    let caller = auth::authenticate(&state, &parts.headers)?;
    let admission = limits::Limits::admit(&state, &caller.user.systemuserid)?;
    let started = std::time::Instant::now();
    let fault = state.faults.draw();
    if let Some(e) = faults::before(fault) {
        drop(admission);
        return Err(e);
    }
    if fault == faults::Fault::Slow {
        tokio::time::sleep(state.faults.slow_delay()).await;
    }
    let (version, resource_path) = (version.to_string(), resource_path.to_string());
    let result = run(state.clone(), parts, body, caller, &version, resource_path).await;
    if !state.options.latency.is_zero() {
        tokio::time::sleep(state.options.latency).await;
    }
    let (requests, millis) = admission.finish(started.elapsed());
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let h = resp.headers_mut();
    h.insert("x-ms-ratelimit-burst-remaining-xrm-requests", HeaderValue::from(requests));
    h.insert("x-ms-ratelimit-time-remaining-xrm-requests", HeaderValue::from(millis));
    Ok(faults::after(resp, fault).await)
}

async fn run(
    state: AppState,
    parts: axum::http::request::Parts,
    body: Body,
    caller: auth::Caller,
    version: &str,
    resource_path: String,
) -> DvResult<Response> {
    let decoded = percent_encoding::percent_decode_str(&resource_path)
        .decode_utf8()
        .map_err(|_| DvError::bad_query("The request URL is not valid UTF-8."))?
        .into_owned();
    let resource = path::parse(&decoded)?;
    let query = QueryOptions::parse(parts.uri.query())?;
    let prefer = Prefer::from_headers(&parts.headers);
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| DvError::new(StatusCode::PAYLOAD_TOO_LARGE, "0x80048d19", "The request body is too large."))?;
    let api_root = format!("{}/api/data/{version}", state.urls.org_url);
    let ctx = Ctx {
        schema: state.schema(),
        state: state.clone(),
        caller,
        query,
        prefer,
        headers: parts.headers,
        raw_query: parts.uri.query().unwrap_or("").to_string(),
        api_root,
        pinned: None,
    };
    route(ctx, &parts.method, resource, body).await
}

async fn route(ctx: Ctx, method: &Method, resource: Resource, body: Bytes) -> DvResult<Response> {
    auth::check_bypass(&ctx.caller, &ctx.headers)?;
    match (method, resource) {
        (&Method::GET, Resource::ServiceDocument) => Ok(service_document(&ctx)),
        (&Method::GET, Resource::Operation { name, .. }) if name == "WhoAmI" => Ok(who_am_i(&ctx)),
        (&Method::GET, Resource::Operation { name, args }) if name == "RetrieveTotalRecordCount" => {
            record_count::retrieve_total_record_count(&ctx, args.as_deref()).await
        }
        (_, Resource::Operation { name, .. }) => Err(DvError::segment_not_found(&name)),
        (&Method::GET, Resource::Collection(set)) => query::collection(ctx, &set).await,
        (&Method::GET, Resource::Count(set)) => query::count(ctx, &set).await,
        (&Method::POST, Resource::Collection(set)) => records::create(ctx, &set, body).await,
        (&Method::GET, Resource::Record { set, key }) => records::retrieve(ctx, &set, key).await,
        (&Method::PATCH, Resource::Record { set, key }) => records::update(ctx, &set, key, body).await,
        (&Method::DELETE, Resource::Record { set, key }) => records::delete(ctx, &set, key).await,
        (m, Resource::RecordPart { set, key, segments }) => {
            records::part(ctx, m.clone(), &set, key, segments, body).await
        }
        (m, Resource::Collection(_)) => {
            Err(DvError::method_not_allowed(format!("The requested resource does not support http method '{m}'.")))
        }
        (m, Resource::Record { .. }) => {
            Err(DvError::method_not_allowed(format!("The requested resource does not support http method '{m}'.")))
        }
        (&Method::GET, Resource::Metadata) => {
            let annotations = ctx.query.get("annotations").is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let mut r = (StatusCode::OK, csdl::csdl(&ctx.schema, annotations)).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            Ok(r)
        }
        (&Method::GET, Resource::MetadataPath(path)) => {
            let body = metadata::handle(&ctx.schema, &ctx.state.urls, &path, &ctx.query.pairs)?;
            Ok(json_response(StatusCode::OK, body.to_string()))
        }
        (&Method::POST, Resource::MetadataPath(path)) => metadata::create_attribute::post(ctx, &path, body).await,
        (_, Resource::Metadata | Resource::MetadataPath(_)) => Err(DvError::method_not_allowed(
            "Metadata can only be read (GET), or a column created (POST to EntityDefinitions(...)/Attributes), through this emulator.",
        )),
        (&Method::POST, Resource::Batch) => batch::run(ctx, body).await,
        (_, Resource::Batch) => Err(DvError::method_not_allowed("$batch only accepts POST.")),
        (&Method::POST, Resource::BoundAction { set, action }) if bulk::ACTIONS.contains(&action.as_str()) => {
            bulk::run(ctx, &set, &action, body).await
        }
        (_, Resource::BoundAction { action, .. }) => {
            Err(DvError::segment_not_found(&format!("Microsoft.Dynamics.CRM.{action}")))
        }
        (_, Resource::Count(_) | Resource::ServiceDocument) => {
            Err(DvError::method_not_allowed("The requested resource only supports GET."))
        }
    }
}

/// A JSON response with Dataverse's content type.
pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; odata.metadata=minimal"));
    r
}

fn service_document(ctx: &Ctx) -> Response {
    let sets: Vec<serde_json::Value> = ctx
        .schema
        .tables
        .iter()
        .map(|t| serde_json::json!({"name": t.set_name, "kind": "EntitySet", "url": t.set_name}))
        .chain(
            ["EntityDefinitions", "RelationshipDefinitions", "GlobalOptionSetDefinitions"]
                .iter()
                .map(|s| serde_json::json!({"name": s, "kind": "EntitySet", "url": s})),
        )
        .collect();
    let body = serde_json::json!({"@odata.context": format!("{}/$metadata", ctx.api_root), "value": sets});
    json_response(StatusCode::OK, body.to_string())
}

fn who_am_i(ctx: &Ctx) -> Response {
    let body = serde_json::json!({
        "@odata.context": format!("{}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", ctx.api_root),
        "BusinessUnitId": ctx.caller.user.business_unit,
        "UserId": ctx.caller.user.systemuserid,
        "OrganizationId": ctx.state.config.dataverse.organization_id.to_string(),
    });
    json_response(StatusCode::OK, body.to_string())
}
