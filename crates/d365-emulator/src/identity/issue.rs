//! Minting tokens and shaping the token response (reference §7.1, §8).
//!
//! Access tokens for the Dataverse resource are v1.0-shaped ([`AccessClaims`]); ID tokens
//! are v2.0 (`iss = {authority}/{tid}/v2.0`, `aud` = client id). Both are RS256 JWTs signed
//! with the key published in the JWKS.

use super::errors::no_store_json;
use super::grants::RefreshGrant;
use super::scopes::ScopeSet;
use crate::config::{AppConfig, UserConfig};
use crate::state::Shared;
use crate::token::{AccessClaims, sign_jwt, v1_issuer};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Microsoft Graph's app id: the audience of tokens asked with only OpenID Connect scopes.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// Lifetime of ID tokens.
const ID_TOKEN_LIFETIME_SECS: i64 = 3600;

/// Object id of the service principal of `client_id` in the emulated tenant: the same stable id
/// the Dataverse store gives the app's application user, so app-only tokens map to it.
pub fn service_principal_id(client_id: Uuid) -> Uuid {
    crate::store::seed_ids::service_principal_id(client_id)
}

/// Pairwise subject for `user` as seen by `client_id` (base64url SHA-256, like Entra's 43-char `sub`).
pub fn pairwise_sub(user: Uuid, client_id: Uuid) -> String {
    let mut input = Vec::with_capacity(32);
    input.extend_from_slice(user.as_bytes());
    input.extend_from_slice(client_id.as_bytes());
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input))
}

fn uti() -> String {
    super::grants::random_token("", 16)
}

fn lifetime(state: &Shared) -> i64 {
    i64::try_from(state.options.token_lifetime.as_secs()).unwrap_or(3600).max(1)
}

/// An app-only access token for `resource` (no trailing slash). `acr`: "1" secret, "2" certificate/assertion.
pub fn app_only_token(state: &Shared, app: &AppConfig, resource: &str, acr: &str) -> (String, i64, i64) {
    app_only_token_for(state, app, resource, acr, lifetime(state))
}

/// [`app_only_token`] valid for `life` seconds instead of the configured lifetime.
pub fn app_only_token_for(state: &Shared, app: &AppConfig, resource: &str, acr: &str, life: i64) -> (String, i64, i64) {
    let now = state.clock.unix();
    let tid = state.config.tenant.id.to_string();
    let oid = service_principal_id(app.client_id).to_string();
    let claims = AccessClaims {
        aud: resource.trim_end_matches('/').to_string(),
        iss: v1_issuer(&tid),
        iat: now,
        nbf: now,
        exp: now + life,
        appid: app.client_id.to_string(),
        appidacr: acr.into(),
        oid: oid.clone(),
        sub: oid,
        tid,
        scp: None,
        idtyp: Some("app".into()),
        upn: None,
        name: None,
        uti: uti(),
        ver: "1.0".into(),
    };
    (sign_jwt(&state.signing_key, &claims), now, life)
}

/// The client-credentials response: no refresh token, no ID token, no scope.
pub fn app_only_response(state: &Shared, app: &AppConfig, resource: &str, acr: &str) -> Response {
    let (at, _, life) = app_only_token(state, app, resource, acr);
    json_response(json!({
        "token_type": "Bearer",
        "expires_in": life,
        "ext_expires_in": life,
        "access_token": at,
    }))
}

/// A delegated token request ready to be answered.
#[derive(Debug)]
pub struct Delegated<'a> {
    /// The client.
    pub app: &'a AppConfig,
    /// The user.
    pub user: &'a UserConfig,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// "0" public, "1" secret, "2" certificate/assertion.
    pub acr: &'a str,
    /// `nonce` for the ID token.
    pub nonce: Option<String>,
    /// When the user authenticated.
    pub auth_time: i64,
    /// Add `client_info` (request had `client_info=1`).
    pub client_info: bool,
}

/// Answers a delegated grant: access token, plus a new refresh token when `offline_access`
/// was granted and an ID token when `openid` was asked.
pub fn delegated_response(state: &Shared, d: Delegated<'_>) -> Response {
    let now = state.clock.unix();
    let life = lifetime(state);
    let tid = state.config.tenant.id.to_string();
    let (aud, scp) = match &d.scopes.resource {
        Some(r) => (r.clone(), "user_impersonation".to_string()),
        None => (GRAPH_APP_ID.to_string(), d.scopes.granted()),
    };
    let claims = AccessClaims {
        aud,
        iss: v1_issuer(&tid),
        iat: now,
        nbf: now,
        exp: now + life,
        appid: d.app.client_id.to_string(),
        appidacr: d.acr.into(),
        oid: d.user.object_id.to_string(),
        sub: pairwise_sub(d.user.object_id, d.app.client_id),
        tid: tid.clone(),
        scp: Some(scp),
        idtyp: None,
        upn: Some(d.user.username.clone()),
        name: Some(d.user.display_name.clone()),
        uti: uti(),
        ver: "1.0".into(),
    };
    let mut body = Map::new();
    body.insert("token_type".into(), json!("Bearer"));
    body.insert("scope".into(), json!(d.scopes.granted()));
    body.insert("expires_in".into(), json!(life));
    body.insert("ext_expires_in".into(), json!(life));
    body.insert("access_token".into(), json!(sign_jwt(&state.signing_key, &claims)));
    if d.scopes.offline_access {
        let rt = state.identity.lock().add_refresh(RefreshGrant {
            client_id: d.app.client_id,
            user: d.user.object_id,
            scopes: d.scopes.clone(),
            auth_time: d.auth_time,
            issued_at: now,
            last_used: now,
            revoked: false,
        });
        body.insert("refresh_token".into(), json!(rt));
    }
    if d.scopes.openid {
        body.insert("id_token".into(), json!(id_token(state, &d, now)));
    }
    if d.client_info {
        let info = json!({"uid": d.user.object_id.to_string(), "utid": tid});
        body.insert("client_info".into(), json!(URL_SAFE_NO_PAD.encode(info.to_string())));
    }
    json_response(Value::Object(body))
}

fn id_token(state: &Shared, d: &Delegated<'_>, now: i64) -> String {
    let tid = state.config.tenant.id.to_string();
    let mut c = Map::new();
    c.insert("aud".into(), json!(d.app.client_id.to_string()));
    c.insert("iss".into(), json!(format!("{}/{tid}/v2.0", state.urls.authority)));
    c.insert("iat".into(), json!(now));
    c.insert("nbf".into(), json!(now));
    c.insert("exp".into(), json!(now + ID_TOKEN_LIFETIME_SECS));
    c.insert("auth_time".into(), json!(d.auth_time));
    c.insert("name".into(), json!(d.user.display_name));
    if let Some(n) = &d.nonce {
        c.insert("nonce".into(), json!(n));
    }
    c.insert("oid".into(), json!(d.user.object_id.to_string()));
    c.insert("preferred_username".into(), json!(d.user.username));
    if d.scopes.email {
        c.insert("email".into(), json!(d.user.username));
    }
    c.insert("sub".into(), json!(pairwise_sub(d.user.object_id, d.app.client_id)));
    c.insert("tid".into(), json!(tid));
    c.insert("uti".into(), json!(uti()));
    c.insert("ver".into(), json!("2.0"));
    sign_jwt(&state.signing_key, &Value::Object(c))
}

/// A 200 JSON token response with the no-store headers.
pub fn json_response(body: Value) -> Response {
    let mut resp = body.to_string().into_response();
    no_store_json(resp.headers_mut());
    resp
}
