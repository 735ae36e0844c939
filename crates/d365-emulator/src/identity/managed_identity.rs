//! Managed identity (reference §9), served at `GET /metadata/identity/oauth2/token`:
//!
//! * **IMDS** (`api-version=2018-02-01` and other IMDS versions): requires the header
//!   `Metadata: true`; `resource` is a v1 resource URI. Answers `access_token`,
//!   `refresh_token` (empty), `expires_in`, `expires_on`, `ext_expires_in`, `not_before`,
//!   `resource`, `token_type`, `client_id` — all strings.
//! * **App Service** (`api-version=2019-08-01`): requires `X-IDENTITY-HEADER` equal to
//!   [`IDENTITY_HEADER`]; answers `access_token`, `expires_on`, `resource`, `token_type`,
//!   `client_id`. Point `IDENTITY_ENDPOINT` at `{authority}/metadata/identity/oauth2/token`
//!   and set `IDENTITY_HEADER` to [`IDENTITY_HEADER`].
//!
//! The identity is the service principal of the seeded integration app (system-assigned);
//! `client_id`/`object_id` may name it, anything else (and any `msi_res_id`) is "Identity not
//! found". Tokens are app-only with `appidacr` "2". Error bodies follow IMDS
//! (`{"error","error_description"}`) and App Service (`{"statusCode","message","correlationId"}`);
//! their exact texts are the emulator's (unconfirmed).

use super::client_auth::Params;
use super::issue::{app_only_token, service_principal_id};
use crate::config::{AppConfig, INTEGRATION_APP};
use crate::state::{AppState, Shared};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The value the App Service form requires in `X-IDENTITY-HEADER` (the emulator's fixed
/// `IDENTITY_HEADER`).
pub const IDENTITY_HEADER: &str = "d365-emulator-identity-header";

/// The App Service managed-identity API version.
pub const APP_SERVICE_API_VERSION: &str = "2019-08-01";

fn reply(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    resp
}

fn imds_error(status: StatusCode, error: &str, description: &str) -> Response {
    tracing::debug!(error, "managed identity request refused");
    reply(status, json!({"error": error, "error_description": description}))
}

fn app_service_error(status: StatusCode, message: &str) -> Response {
    tracing::debug!(status = status.as_u16(), "managed identity (App Service) request refused");
    reply(
        status,
        json!({"statusCode": status.as_u16(), "message": message, "correlationId": uuid::Uuid::new_v4().to_string()}),
    )
}

/// Why the identity or resource cannot be served.
enum Refusal {
    NoResource,
    UnknownIdentity,
    UnknownResource(String),
}

fn identity<'a>(state: &'a Shared, params: &Params) -> Result<(&'a AppConfig, String), Refusal> {
    let app = state.config.apps.iter().find(|a| a.client_id == INTEGRATION_APP).ok_or(Refusal::UnknownIdentity)?;
    let sp = service_principal_id(app.client_id).to_string();
    let ok_client = params.get("client_id").is_none_or(|c| c.eq_ignore_ascii_case(&app.client_id.to_string()));
    let ok_object = params.get("object_id").is_none_or(|o| o.eq_ignore_ascii_case(&sp));
    if !ok_client || !ok_object || params.get("msi_res_id").is_some() || params.get("mi_res_id").is_some() {
        return Err(Refusal::UnknownIdentity);
    }
    let resource = params.get("resource").ok_or(Refusal::NoResource)?;
    if !state.urls.is_entra_resource(resource) {
        return Err(Refusal::UnknownResource(resource.to_string()));
    }
    Ok((app, resource.to_string()))
}

/// `GET /metadata/identity/oauth2/token`.
pub async fn token(State(state): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q.unwrap_or_default().as_bytes());
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    if params.get("api-version") == Some(APP_SERVICE_API_VERSION) {
        if header("x-identity-header").as_deref() != Some(IDENTITY_HEADER) {
            return app_service_error(StatusCode::UNAUTHORIZED, "The X-IDENTITY-HEADER header is missing or invalid.");
        }
        return match identity(&state, &params) {
            Ok((app, resource)) => {
                let (at, now, life) = app_only_token(&state, app, &resource, "2");
                tracing::info!(client_id = %app.client_id, "managed identity token issued (App Service)");
                reply(
                    StatusCode::OK,
                    json!({
                        "access_token": at,
                        "expires_on": (now + life).to_string(),
                        "resource": resource,
                        "token_type": "Bearer",
                        "client_id": app.client_id.to_string(),
                    }),
                )
            }
            Err(Refusal::NoResource) => {
                app_service_error(StatusCode::BAD_REQUEST, "The resource parameter is required.")
            }
            Err(Refusal::UnknownIdentity) => {
                app_service_error(StatusCode::BAD_REQUEST, "Unable to load the proper Managed Identity.")
            }
            Err(Refusal::UnknownResource(r)) => app_service_error(
                StatusCode::BAD_REQUEST,
                &format!("AADSTS500011: The resource principal named {r} was not found in the tenant."),
            ),
        };
    }
    if params.get("api-version").is_none() {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        );
    }
    if header("metadata").is_none_or(|v| !v.eq_ignore_ascii_case("true")) {
        return imds_error(StatusCode::BAD_REQUEST, "invalid_request", "Required metadata header not specified");
    }
    match identity(&state, &params) {
        Ok((app, resource)) => {
            let (at, now, life) = app_only_token(&state, app, &resource, "2");
            tracing::info!(client_id = %app.client_id, "managed identity token issued (IMDS)");
            reply(
                StatusCode::OK,
                json!({
                    "access_token": at,
                    "refresh_token": "",
                    "expires_in": life.to_string(),
                    "expires_on": (now + life).to_string(),
                    "ext_expires_in": life.to_string(),
                    "not_before": now.to_string(),
                    "resource": resource,
                    "token_type": "Bearer",
                    "client_id": app.client_id.to_string(),
                }),
            )
        }
        Err(Refusal::NoResource) => {
            imds_error(StatusCode::BAD_REQUEST, "invalid_request", "Required audience parameter not specified")
        }
        Err(Refusal::UnknownIdentity) => imds_error(StatusCode::BAD_REQUEST, "invalid_request", "Identity not found"),
        Err(Refusal::UnknownResource(r)) => imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            &format!(
                "AADSTS500011: The resource principal named {r} was not found in the tenant named {}.",
                state.config.tenant.name
            ),
        ),
    }
}
