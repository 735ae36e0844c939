//! `GET|POST /{tenant}/oauth2/v2.0/authorize`: the authorization-code flow's browser leg
//! (reference §2.1, §2.2).
//!
//! Problems with the tenant, the client or the redirect URI are shown as a 400 error page and
//! never redirected (AADSTS90002 / 700016 / 50011). Every later problem is sent back to the
//! redirect URI as `error`/`error_description`/`error_uri`/`state`. A valid request shows the
//! sign-in page ([`super::signin`]); on success the app receives `code`, `state` and
//! `session_state`.
//!
//! The emulator keeps no browser session, so `prompt=none` always answers `login_required`.
//! With `auto_approve = Some(user)` (test-only), the page is skipped: that user is signed in
//! and accepts the consent section at once (tenant-wide consent is never granted this way, so
//! an app without admin consent still gets `consent_required`).

use super::client_auth::Params;
use super::errors::{AadError, ErrorPage, consent_message};
use super::grants::{AuthCode, CODE_LIFETIME_SECS, Flow, FlowKind, Pkce};
use super::redirect::{self, ResponseMode};
use super::scopes::{ScopeSet, parse_delegated};
use super::signin;
use super::tenant::TenantPath;
use crate::config::{AppConfig, UserConfig};
use crate::state::{AppState, Shared};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

/// A validated authorize request.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// Tenant path used.
    pub tenant: TenantPath,
    /// Client.
    pub client_id: Uuid,
    /// Redirect URI (validated against the registration).
    pub redirect_uri: String,
    /// The request named the redirect URI (else the first registered one is used).
    pub redirect_uri_sent: bool,
    /// Response mode.
    pub mode: ResponseMode,
    /// Requested scopes.
    pub scopes: ScopeSet,
    /// `state`, echoed verbatim.
    pub state: Option<String>,
    /// `nonce`, copied into the ID token.
    pub nonce: Option<String>,
    /// PKCE challenge.
    pub pkce: Option<Pkce>,
    /// `login_hint`.
    pub login_hint: Option<String>,
}

/// `GET /{tenant}/oauth2/v2.0/authorize`.
pub async fn get(State(state): State<AppState>, Path(tenant): Path<String>, RawQuery(q): RawQuery) -> Response {
    authorize(&state, &tenant, Params::parse(q.unwrap_or_default().as_bytes()))
}

/// `POST /{tenant}/oauth2/v2.0/authorize` (form body, query string as fallback).
pub async fn post(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let params = Params::parse(&body).merge(Params::parse(q.unwrap_or_default().as_bytes()));
    authorize(&state, &tenant, params)
}

fn is_unreserved(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn pkce(params: &Params) -> Result<Option<Pkce>, AadError> {
    let Some(challenge) = params.get("code_challenge") else {
        return Ok(None);
    };
    let method = params.get("code_challenge_method").unwrap_or("plain");
    let size_ok = match method {
        "S256" => challenge.len() == 43 && is_unreserved(challenge),
        "plain" => (43..=128).contains(&challenge.len()) && is_unreserved(challenge),
        other => {
            return Err(AadError::new(
                "invalid_request",
                501492,
                format!("The code_challenge_method '{other}' is not supported; use 'S256' or 'plain'."),
            ));
        }
    };
    if !size_ok {
        return Err(AadError::new("invalid_request", 501491, "Invalid size of Code_Challenge parameter."));
    }
    Ok(Some(Pkce { challenge: challenge.to_string(), method: method.to_string() }))
}

/// The app for `client_id` on `tenant`, or the error page (missing/unknown client).
pub fn lookup_app<'a>(
    state: &'a Shared,
    tenant: TenantPath,
    client_id: Option<&str>,
) -> Result<&'a AppConfig, ErrorPage> {
    let client_id = client_id.ok_or_else(|| ErrorPage(AadError::missing("client_id")))?;
    tenant.require_org_directory(state, client_id)?;
    state.app(client_id).ok_or_else(|| ErrorPage(AadError::unknown_app(client_id, &state.config.tenant.name)))
}

fn authorize(state: &Shared, tenant_seg: &str, params: Params) -> Response {
    let tenant = match TenantPath::resolve(state, tenant_seg) {
        Ok(t) => t,
        Err(e) => return ErrorPage(e).into_response(),
    };
    let app = match lookup_app(state, tenant, params.get("client_id")) {
        Ok(a) => a,
        Err(p) => return p.into_response(),
    };
    let redirect_uri = match redirect::resolve(app, params.get("redirect_uri")) {
        Ok(r) => r,
        Err(p) => return p.into_response(),
    };
    let app_state = params.get("state").map(str::to_string);
    let Some(mode) = ResponseMode::parse(params.get("response_mode")) else {
        let e = AadError::new("invalid_request", 70007, "The app returned an unsupported value of 'response_mode'.");
        return redirect::error(&redirect_uri, ResponseMode::Query, &e, app_state.as_deref());
    };
    let fail = |e: AadError| redirect::error(&redirect_uri, mode, &e, app_state.as_deref());
    match params.get("response_type") {
        None => return fail(AadError::missing("response_type")),
        Some("code") => {}
        Some(rt) if rt.split_whitespace().any(|t| t == "id_token") => {
            return fail(AadError::new(
                "unsupported_response_type",
                700054,
                "response_type 'id_token' is not enabled for the application.",
            ));
        }
        Some(rt) if rt.split_whitespace().any(|t| t == "token") => {
            return fail(AadError::new(
                "unsupported_response_type",
                700051,
                "response_type 'token' is not enabled for the application.",
            ));
        }
        Some(rt) => {
            return fail(AadError::new(
                "unsupported_response_type",
                70005,
                format!("The response_type '{rt}' is not supported."),
            ));
        }
    }
    let scopes = match params.get("scope").map(|s| parse_delegated(state, s)) {
        None => return fail(AadError::missing("scope")),
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    let pkce = match pkce(&params) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let req = AuthRequest {
        tenant,
        client_id: app.client_id,
        redirect_uri: redirect_uri.clone(),
        redirect_uri_sent: params.get("redirect_uri").is_some(),
        mode,
        scopes,
        state: app_state.clone(),
        nonce: params.get("nonce").map(str::to_string),
        pkce,
        login_hint: params.get("login_hint").map(str::to_string),
    };
    if params.get("prompt") == Some("none") {
        return fail(AadError::new(
            "login_required",
            50058,
            "A silent sign-in request was sent but no user is signed in. The cookies used to represent the user's \
             session were not sent in the request to Azure AD.",
        ));
    }
    if let Some(user) = state.options.auto_approve.as_deref().and_then(|u| state.user_by_name(u)) {
        tracing::debug!(client_id = %app.client_id, "authorize: auto-approved");
        return complete(state, req, user, state.clock.unix(), false);
    }
    let now = state.clock.unix();
    let hint = req.login_hint.clone();
    let flow = state.identity.lock().add_flow(
        Flow {
            kind: FlowKind::Authorize(req),
            user: None,
            auth_time: 0,
            expires_at: now + super::grants::FLOW_LIFETIME_SECS,
        },
        now,
    );
    signin::sign_in_page(&tenant.segment(), &flow, app, hint.as_deref(), None, None)
}

/// Finishes an authorize request for `user` who accepted the consent section; `org_consent`
/// is the admin's "consent on behalf of your organization" box.
pub fn complete(state: &Shared, req: AuthRequest, user: &UserConfig, auth_time: i64, org_consent: bool) -> Response {
    let Some(app) = state.config.apps.iter().find(|a| a.client_id == req.client_id) else {
        return ErrorPage(AadError::unknown_app(&req.client_id.to_string(), &state.config.tenant.name)).into_response();
    };
    if !signin::consent_ok(state, app, user, org_consent) {
        let e = AadError::new("consent_required", 65001, consent_message(&app.client_id.to_string(), &app.name));
        return redirect::error(&req.redirect_uri, req.mode, &e, req.state.as_deref());
    }
    let now = state.clock.unix();
    let code = state.identity.lock().add_code(
        AuthCode {
            client_id: app.client_id,
            user: user.object_id,
            redirect_uri: req.redirect_uri.clone(),
            redirect_uri_sent: req.redirect_uri_sent,
            scopes: req.scopes.clone(),
            pkce: req.pkce.clone(),
            nonce: req.nonce.clone(),
            tenant: req.tenant,
            auth_time,
            expires_at: now + CODE_LIFETIME_SECS,
            redeemed: false,
        },
        now,
    );
    let mut params = vec![("code", code)];
    if let Some(s) = &req.state {
        params.push(("state", s.clone()));
    }
    params.push(("session_state", Uuid::new_v4().to_string()));
    redirect::respond(&req.redirect_uri, req.mode, &params)
}

/// Sends `access_denied` (user cancelled the consent section) to the app.
pub fn cancelled(req: &AuthRequest) -> Response {
    let e = AadError::new("access_denied", 65004, "User declined to consent to access the app.");
    redirect::error(&req.redirect_uri, req.mode, &e, req.state.as_deref())
}
