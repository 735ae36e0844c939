//! Admin consent: `GET /{tenant}/v2.0/adminconsent?client_id&scope&redirect_uri&state` (v2,
//! `scope` required) and the v1 form `GET /{tenant}/adminconsent?client_id&redirect_uri&state`
//! (no scope: grants what the app is configured for).
//!
//! The administrator signs in (a non-admin account is refused on the sign-in form with
//! AADSTS90094) and accepts; the emulator then records tenant-wide consent for the client
//! (delegated flows of that app stop answering AADSTS65001) and redirects with
//! `admin_consent=True&tenant={tid}&scope=…&state=…`. Cancel redirects with
//! `error=consent_required` (AADSTS65004). `common`/`consumers` are refused (AADSTS90130).
//! With `auto_approve` set to an administrator, consent is granted without the page; set to a
//! non-admin, the app gets `error=access_denied` (AADSTS90094).

use super::authorize::lookup_app;
use super::client_auth::Params;
use super::errors::{AadError, ErrorPage};
use super::grants::{FLOW_LIFETIME_SECS, Flow, FlowKind};
use super::redirect::{self, ResponseMode};
use super::scopes::{ScopeSet, parse_delegated};
use super::signin::{self, is_tenant_admin};
use super::tenant::TenantPath;
use crate::state::{AppState, Shared};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

/// A validated admin-consent request.
#[derive(Debug, Clone)]
pub struct ConsentRequest {
    /// Client to consent for.
    pub client_id: Uuid,
    /// Where to send the answer.
    pub redirect_uri: String,
    /// `state`, echoed.
    pub state: Option<String>,
    /// `scope` as sent (v2), echoed on success.
    pub scope: Option<String>,
    /// Permissions to show.
    pub scopes: ScopeSet,
    /// Tenant id reported back.
    pub tid: Uuid,
}

/// `GET /{tenant}/v2.0/adminconsent`.
pub async fn v2(State(state): State<AppState>, Path(tenant): Path<String>, RawQuery(q): RawQuery) -> Response {
    start(&state, &tenant, Params::parse(q.unwrap_or_default().as_bytes()), true)
}

/// `GET /{tenant}/adminconsent` (v1).
pub async fn v1(State(state): State<AppState>, Path(tenant): Path<String>, RawQuery(q): RawQuery) -> Response {
    start(&state, &tenant, Params::parse(q.unwrap_or_default().as_bytes()), false)
}

fn start(state: &Shared, tenant_seg: &str, params: Params, v2: bool) -> Response {
    let tenant = match TenantPath::resolve(state, tenant_seg) {
        Ok(t) => t,
        Err(e) => return ErrorPage(e).into_response(),
    };
    if matches!(tenant, TenantPath::Common | TenantPath::Consumers) {
        return ErrorPage(AadError::new(
            "invalid_request",
            90130,
            format!(
                "Application '{}' is not supported over the /common or /consumers endpoints. Please use the \
                 /organizations or tenant-specific endpoint.",
                params.get("client_id").unwrap_or_default()
            ),
        ))
        .into_response();
    }
    let app = match lookup_app(state, tenant, params.get("client_id")) {
        Ok(a) => a,
        Err(p) => return p.into_response(),
    };
    let redirect_uri = match redirect::resolve(app, params.get("redirect_uri")) {
        Ok(r) => r,
        Err(p) => return p.into_response(),
    };
    let app_state = params.get("state").map(str::to_string);
    let fail = |e: AadError| redirect::error(&redirect_uri, ResponseMode::Query, &e, app_state.as_deref());
    let (scope, scopes) = if v2 {
        let Some(raw) = params.get("scope") else {
            return fail(AadError::missing("scope"));
        };
        match parse_delegated(state, raw) {
            Ok(s) => (Some(raw.to_string()), s),
            Err(e) => return fail(e),
        }
    } else {
        (None, ScopeSet { resource: Some(state.urls.org_url.clone()), ..ScopeSet::default() })
    };
    let req = ConsentRequest {
        client_id: app.client_id,
        redirect_uri: redirect_uri.clone(),
        state: app_state.clone(),
        scope,
        scopes,
        tid: state.config.tenant.id,
    };
    if let Some(user) = state.options.auto_approve.as_deref().and_then(|u| state.user_by_name(u)) {
        if is_tenant_admin(user) {
            return grant(state, &req);
        }
        return fail(AadError::new(
            "access_denied",
            90094,
            "Admin consent is required for the permissions requested by this application; the signed-in user is \
             not an administrator.",
        ));
    }
    let now = state.clock.unix();
    let flow = state.identity.lock().add_flow(
        Flow { kind: FlowKind::AdminConsent(req), user: None, auth_time: 0, expires_at: now + FLOW_LIFETIME_SECS },
        now,
    );
    signin::sign_in_page(
        &tenant.segment(),
        &flow,
        app,
        None,
        None,
        Some("Sign in with an administrator account to grant consent for the organization."),
    )
}

/// Records tenant-wide consent and tells the app.
pub fn grant(state: &Shared, req: &ConsentRequest) -> Response {
    state.identity.lock().consents.insert(req.client_id);
    tracing::info!(client_id = %req.client_id, "tenant-wide admin consent granted");
    let mut params = vec![("admin_consent", "True".to_string()), ("tenant", req.tid.to_string())];
    if let Some(s) = &req.scope {
        params.push(("scope", s.clone()));
    }
    if let Some(s) = &req.state {
        params.push(("state", s.clone()));
    }
    redirect::respond(&req.redirect_uri, ResponseMode::Query, &params)
}

/// The administrator cancelled.
pub fn denied(req: &ConsentRequest) -> Response {
    let e = AadError::new("consent_required", 65004, "The resource owner or authorization server denied the request.");
    redirect::error(&req.redirect_uri, ResponseMode::Query, &e, req.state.as_deref())
}
