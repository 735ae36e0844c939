//! An emulated AD FS server (the authority of Finance & Operations on-premises), under
//! `{base}/adfs`:
//!
//! | Route | What |
//! |---|---|
//! | `GET /adfs/.well-known/openid-configuration` | discovery document |
//! | `GET /adfs/discovery/keys` | the AD FS token-signing key as a JWKS |
//! | `POST /adfs/oauth2/token` (also with a trailing `/`) | `client_credentials`, `password`, `refresh_token` |
//!
//! AD FS takes the v1 `resource` parameter (required; `scope` is optional and not needed).
//! The known relying party is the on-premises environment `{base}/fno-onprem`; the clients are
//! the emulator's seeded apps (same client ids and secrets as in Entra ID) and the users its
//! seeded users (UPN or down-level `CONTOSO\admin`). Errors are AD FS-shaped:
//! `{"error":"invalid_client","error_description":"MSIS9622: ..."}` with 400 or 401.
//! MSIS codes 9605, 9607, 9611, 9622 and 9659 are the ones users report for these situations;
//! the others used here (9602 for an unknown resource, 9609 for a missing parameter, 9615 for
//! a bad refresh token) are unconfirmed.
//!
//! One deviation from a real AD FS, by the emulator's contract: access tokens carry
//! `iss = {base}/adfs` (a real AD FS uses `http://<host>/adfs/services/trust`).

pub mod token;

use crate::identity::client_auth::{Params, basic_credentials};
use crate::state::{AppState, Shared};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use token::{AdfsClaims, PASSWORD_AUTHMETHOD};

/// Lifetime of AD FS refresh tokens (AD FS's default for non-persistent SSO is 8 hours).
const REFRESH_LIFETIME_SECS: i64 = 8 * 3600;

/// A refresh token issued by the password grant.
#[derive(Debug, Clone)]
struct RefreshGrant {
    client_id: uuid::Uuid,
    username: String,
    resource: String,
    expires_at: i64,
}

/// AD FS mutable state: the refresh tokens it issued.
#[derive(Debug, Default)]
pub struct AdfsState {
    refresh: Mutex<HashMap<String, RefreshGrant>>,
}

/// An AD FS OAuth error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdfsError {
    /// 400 or 401.
    pub status: StatusCode,
    /// OAuth `error`.
    pub error: &'static str,
    /// `MSISnnnn: ...`.
    pub description: String,
}

impl AdfsError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self { status, error, description: description.into() }
    }

    fn missing(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("MSIS9609: The '{name}' parameter is missing in the request."),
        )
    }
}

impl IntoResponse for AdfsError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut r = (self.status, body.to_string()).into_response();
        no_store_json(r.headers_mut());
        r
    }
}

fn no_store_json(h: &mut HeaderMap) {
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Routes of the AD FS server.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/adfs/.well-known/openid-configuration", get(discovery))
        .route("/adfs/discovery/keys", get(keys))
        .route("/adfs/oauth2/token", post(token_endpoint).fallback(wrong_method))
        .route("/adfs/oauth2/token/", post(token_endpoint).fallback(wrong_method))
}

async fn wrong_method() -> AdfsError {
    AdfsError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "MSIS9900: Encountered invalid OAuth request: the token endpoint only accepts POST.",
    )
}

async fn discovery(State(state): State<AppState>) -> Response {
    let a = &state.urls.adfs;
    let body = json!({
        "issuer": a,
        "authorization_endpoint": format!("{a}/oauth2/authorize/"),
        "token_endpoint": format!("{a}/oauth2/token"),
        "jwks_uri": format!("{a}/discovery/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token", "code token", "code id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": ["client_credentials", "password", "refresh_token"],
        "subject_types_supported": ["pairwise"],
        "scopes_supported": ["openid", "profile", "email", "user_impersonation", "allatclaims"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "access_token_issuer": a,
        "claims_supported": ["aud", "iss", "iat", "exp", "auth_time", "nbf", "upn", "unique_name", "appid", "apptype", "scp"],
        "microsoft_multi_refresh_token": true,
        "end_session_endpoint": format!("{a}/oauth2/logout"),
    });
    json_ok(body)
}

fn json_ok(body: Value) -> Response {
    let mut r = body.to_string().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
    r
}

async fn keys(State(state): State<AppState>) -> Response {
    let k = &state.adfs_key;
    let (n, e) = k.key.jwk_n_e();
    json_ok(json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": k.x5t(), "x5t": k.x5t(), "n": n, "e": e, "x5c": [k.x5c()],
    }]}))
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /adfs/oauth2/token`.
async fn token_endpoint(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let params = Params::parse(&body);
    match issue(&state, &params, &headers) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = e.error, "AD FS token refused");
            e.into_response()
        }
    }
}

fn issue(state: &Shared, p: &Params, headers: &HeaderMap) -> Result<Response, AdfsError> {
    let grant = p.get("grant_type").ok_or_else(|| AdfsError::missing("grant_type"))?;
    if !matches!(grant, "client_credentials" | "password" | "refresh_token") {
        return Err(AdfsError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!(
                "MSIS9611: The authorization server does not support the requested 'grant_type' '{grant}'. The \
                 emulated authorization server supports 'client_credentials', 'password' and 'refresh_token'."
            ),
        ));
    }
    let basic = basic_credentials(headers);
    let client_id = p.get("client_id").map(str::to_string).or_else(|| basic.as_ref().map(|(c, _)| c.clone()));
    let client_id = client_id.ok_or_else(|| AdfsError::missing("client_id"))?;
    let app = state.app(&client_id).ok_or_else(|| {
        AdfsError::new(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "MSIS9607: The 'client_id' parameter in the request is invalid. No registered client is found with this identifier.",
        )
    })?;
    let secret = p.get("client_secret").map(str::to_string).or_else(|| basic.map(|(_, s)| s));
    let now = state.clock.now();
    let authenticated = secret.as_deref().is_some_and(|s| {
        app.secrets.iter().any(|k| {
            let live = k
                .expires
                .as_deref()
                .and_then(|e| time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339).ok())
                .is_none_or(|e| e > now);
            live && ct_eq(k.value.as_bytes(), s.as_bytes())
        })
    });
    let bad_client = || {
        AdfsError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "MSIS9622: Client authentication failed. Please verify the credential provided for client authentication is valid.",
        )
    };
    // Confidential clients must authenticate; public clients have nothing to present.
    if (app.confidential || grant == "client_credentials") && !authenticated {
        return Err(bad_client());
    }
    if !app.confidential && secret.is_some() {
        return Err(bad_client());
    }
    let resource_of = |r: &str| -> Result<String, AdfsError> {
        if state.urls.fno_onprem_aliases.iter().any(|a| a.eq_ignore_ascii_case(r.trim_end_matches('/'))) {
            Ok(r.trim_end_matches('/').to_string())
        } else {
            Err(AdfsError::new(
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                format!("MSIS9602: The received 'resource' parameter '{r}' is not a valid relying party identifier."),
            ))
        }
    };
    let life = i64::try_from(state.options.token_lifetime.as_secs()).unwrap_or(3600).max(1);
    let now = now.unix_timestamp();
    let (resource, username) = match grant {
        "client_credentials" => (resource_of(p.get("resource").ok_or_else(|| AdfsError::missing("resource"))?)?, None),
        "password" => {
            let resource = resource_of(p.get("resource").ok_or_else(|| AdfsError::missing("resource"))?)?;
            let username = p.get("username").ok_or_else(|| AdfsError::missing("username"))?;
            let password = p.get("password").ok_or_else(|| AdfsError::missing("password"))?;
            let user = user_by_sign_in(state, username)
                .filter(|u| ct_eq(u.password.as_bytes(), password.as_bytes()))
                .ok_or_else(|| {
                AdfsError::new(StatusCode::BAD_REQUEST, "invalid_grant", "MSIS9659: Invalid 'username' or 'password'.")
            })?;
            (resource, Some(user.username.clone()))
        }
        _ => {
            let rt = p.get("refresh_token").ok_or_else(|| AdfsError::missing("refresh_token"))?;
            let expired = || {
                AdfsError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "MSIS9615: The refresh token received in 'refresh_token' parameter is invalid or expired.",
                )
            };
            let g =
                state.adfs.refresh.lock().unwrap_or_else(|e| e.into_inner()).get(rt).cloned().ok_or_else(expired)?;
            if g.client_id != app.client_id || g.expires_at < now {
                return Err(expired());
            }
            if let Some(r) = p.get("resource") {
                resource_of(r)?;
            }
            (g.resource, Some(g.username))
        }
    };
    let netbios = state.config.tenant.domain.split('.').next().unwrap_or("CONTOSO").to_ascii_uppercase();
    let claims = AdfsClaims {
        aud: resource.clone(),
        iss: state.urls.adfs.clone(),
        iat: now,
        nbf: now,
        exp: now + life,
        appid: app.client_id.to_string(),
        apptype: if app.confidential { "Confidential" } else { "Public" }.into(),
        authmethod: PASSWORD_AUTHMETHOD.into(),
        auth_time: crate::fno::values::format_utc(now),
        ver: "1.0".into(),
        scp: username.as_ref().map(|_| "user_impersonation".to_string()),
        unique_name: username.as_ref().map(|u| format!("{netbios}\\{}", u.split('@').next().unwrap_or(u))),
        upn: username.clone(),
    };
    let mut body = json!({
        "access_token": crate::token::sign_jwt(&state.adfs_key, &claims),
        "token_type": "bearer",
        "expires_in": life,
        "resource": resource,
    });
    if let Some(u) = username {
        let rt = crate::identity::grants::random_token("", 32);
        state.adfs.refresh.lock().unwrap_or_else(|e| e.into_inner()).insert(
            rt.clone(),
            RefreshGrant { client_id: app.client_id, username: u, resource, expires_at: now + REFRESH_LIFETIME_SECS },
        );
        body["refresh_token"] = json!(rt);
        body["refresh_token_expires_in"] = json!(REFRESH_LIFETIME_SECS);
        body["scope"] = json!("user_impersonation");
    }
    tracing::info!(client_id = %app.client_id, grant_type = grant, "AD FS token issued");
    let mut r = body.to_string().into_response();
    no_store_json(r.headers_mut());
    Ok(r)
}

/// The seeded user of a sign-in name: a UPN, or `DOMAIN\alias` with the tenant's NetBIOS
/// domain (the first label of its domain, e.g. `CONTOSO`).
fn user_by_sign_in<'a>(state: &'a Shared, name: &str) -> Option<&'a crate::config::UserConfig> {
    if let Some((domain, alias)) = name.split_once('\\') {
        let netbios = state.config.tenant.domain.split('.').next().unwrap_or_default();
        if !domain.eq_ignore_ascii_case(netbios) {
            return None;
        }
        return state
            .config
            .users
            .iter()
            .find(|u| u.username.split('@').next().is_some_and(|a| a.eq_ignore_ascii_case(alias)));
    }
    state.user_by_name(name)
}
