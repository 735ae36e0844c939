//! The interactive pages shared by the authorize, device-code and admin-consent flows: a
//! sign-in form (username + password), then a consent section listing the requested
//! permissions with Accept / Cancel. Plain HTML forms POST to `/{tenant}/login`; the request
//! being completed is kept server-side under an opaque `flow` id, so nothing the browser sends
//! back can change it.
//!
//! Consent model: an app can be used for delegated access when it has tenant-wide admin
//! consent (`admin_consent = true` in the config, or granted at run time through the
//! admin-consent endpoint). Users cannot consent for themselves (as in tenants that disable
//! user consent). A tenant administrator — in the emulator, a user holding the Dataverse
//! "System Administrator" role — sees a "Consent on behalf of your organization" box that
//! records tenant-wide consent when ticked.

use super::admin_consent;
use super::client_auth::Params;
use super::device_code;
use super::errors::{AadError, ErrorPage};
use super::grants::FlowKind;
use super::html::{self, escape, hidden};
use super::{authorize, scopes::ScopeSet};
use crate::config::{AppConfig, UserConfig};
use crate::state::{AppState, Shared};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

/// Whether `user` is a tenant administrator (may grant tenant-wide consent).
pub fn is_tenant_admin(user: &UserConfig) -> bool {
    user.roles.iter().any(|r| r.eq_ignore_ascii_case("System Administrator"))
}

/// Whether `app` has tenant-wide consent.
pub fn has_consent(state: &Shared, app: &AppConfig) -> bool {
    app.admin_consent || state.identity.has_runtime_consent(app.client_id)
}

/// Whether delegated access may proceed: the app has consent, or `user` is an admin who ticked
/// the organization box (which records tenant-wide consent).
pub fn consent_ok(state: &Shared, app: &AppConfig, user: &UserConfig, org_consent: bool) -> bool {
    if has_consent(state, app) {
        return true;
    }
    if org_consent && is_tenant_admin(user) {
        state.identity.lock().consents.insert(app.client_id);
        tracing::info!(client_id = %app.client_id, "tenant-wide consent granted on the consent page");
        return true;
    }
    false
}

/// The sign-in form.
pub fn sign_in_page(
    tenant: &str,
    flow: &str,
    app: &AppConfig,
    hint: Option<&str>,
    error: Option<&AadError>,
    note: Option<&str>,
) -> Response {
    let err = error
        .map(|e| {
            format!(
                "<p class=\"err\" id=\"error\" data-code=\"{}\">AADSTS{}: {}</p>",
                e.code,
                e.code,
                escape(&e.message)
            )
        })
        .unwrap_or_default();
    let note = note.map(|n| format!("<p class=\"note\">{}</p>", escape(n))).unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1><p>to continue to <b>{app_name}</b></p>{note}{err}\
         <form method=\"post\" action=\"/{tenant}/login\" id=\"signin\">{flow}{action}\
         <label for=\"username\">Email or username</label>\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{hint}\" autocomplete=\"username\" required>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <button class=\"primary\" type=\"submit\">Sign in</button></form>",
        app_name = escape(&app.name),
        tenant = escape(tenant),
        flow = hidden("flow", flow),
        action = hidden("action", "signin"),
        hint = escape(hint.unwrap_or_default()),
    );
    html::page(StatusCode::OK, "Sign in to your account", &body, false)
}

/// The consent section for `user`.
fn consent_page(
    state: &Shared,
    tenant: &str,
    flow: &str,
    app: &AppConfig,
    user: &UserConfig,
    scopes: &ScopeSet,
    for_org: bool,
) -> Response {
    let perms: String = scopes.permissions().iter().map(|p| format!("<li>{}</li>", escape(p))).collect();
    let consent_note = if for_org {
        "<p>Accepting grants these permissions to the app for every user of the organization.</p>".to_string()
    } else if has_consent(state, app) {
        String::new()
    } else if is_tenant_admin(user) {
        "<p class=\"note\">This app has not been granted admin consent.</p><label>\
         <input type=\"checkbox\" name=\"consent_org\" value=\"true\"> Consent on behalf of your organization</label>"
            .to_string()
    } else {
        "<p class=\"note\">Need admin approval: this app needs permission to access resources in your \
         organization that only an admin can grant. Accepting returns you to the app without access.</p>"
            .to_string()
    };
    let body = format!(
        "<h1>Permissions requested</h1><p><b>{app_name}</b> <span class=\"note\">({client_id})</span></p>\
         <p class=\"note\">Signed in as {username}</p><p>This app would like to:</p><ul id=\"permissions\">{perms}</ul>\
         <form method=\"post\" action=\"/{tenant}/login\" id=\"consent\">{flow}{consent_note}\
         <div><button class=\"primary\" type=\"submit\" name=\"action\" value=\"accept\">Accept</button>\
         <button type=\"submit\" name=\"action\" value=\"cancel\">Cancel</button></div></form>",
        app_name = escape(&app.name),
        client_id = app.client_id,
        username = escape(&user.username),
        tenant = escape(tenant),
        flow = hidden("flow", flow),
    );
    html::page(StatusCode::OK, "Permissions requested", &body, false)
}

/// A simple informational page (device flow outcomes).
pub fn message_page(title: &str, text: &str) -> Response {
    let body = format!("<h1>{}</h1><p id=\"message\">{}</p>", escape(title), escape(text));
    html::page(StatusCode::OK, title, &body, false)
}

struct FlowInfo<'a> {
    app: &'a AppConfig,
    scopes: ScopeSet,
    for_org: bool,
    note: Option<String>,
}

fn flow_info<'a>(state: &'a Shared, kind: &FlowKind) -> Option<FlowInfo<'a>> {
    let app_by = |id: Uuid| state.config.apps.iter().find(|a| a.client_id == id);
    match kind {
        FlowKind::Authorize(r) => {
            Some(FlowInfo { app: app_by(r.client_id)?, scopes: r.scopes.clone(), for_org: false, note: None })
        }
        FlowKind::Device(dc) => {
            let g = state.identity.lock();
            let d = g.devices.get(dc)?;
            Some(FlowInfo {
                app: app_by(d.client_id)?,
                scopes: d.scopes.clone(),
                for_org: false,
                note: Some("You're signing in on another device. Only continue if you started this sign-in.".into()),
            })
        }
        FlowKind::AdminConsent(c) => Some(FlowInfo {
            app: app_by(c.client_id)?,
            scopes: c.scopes.clone(),
            for_org: true,
            note: Some("Sign in with an administrator account to grant consent for the organization.".into()),
        }),
    }
}

fn flow_expired() -> ErrorPage {
    ErrorPage(AadError::new(
        "invalid_request",
        50089,
        "Flow token expired - Authentication Failed. Have the user try signing-in again with username -password.",
    ))
}

/// `POST /{tenant}/login`: the sign-in form and the consent section post here.
pub async fn login(State(state): State<AppState>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let params = Params::parse(&body);
    let Some(flow_id) = params.get("flow").map(str::to_string) else {
        return flow_expired().into_response();
    };
    let now = state.clock.unix();
    let flow = {
        let mut g = state.identity.lock();
        g.purge(now);
        g.flows.get(&flow_id).cloned()
    };
    let Some(flow) = flow else {
        return flow_expired().into_response();
    };
    let Some(info) = flow_info(&state, &flow.kind) else {
        return flow_expired().into_response();
    };
    let action = params.get("action").unwrap_or("signin");
    let signed_in = flow.user.and_then(|oid| state.config.users.iter().find(|u| u.object_id == oid));
    match (action, signed_in) {
        ("accept", Some(user)) => {
            state.identity.lock().flows.remove(&flow_id);
            let org = params.get("consent_org") == Some("true");
            tracing::debug!(client_id = %info.app.client_id, "sign-in flow accepted");
            match flow.kind {
                FlowKind::Authorize(req) => authorize::complete(&state, req, user, flow.auth_time, org),
                FlowKind::Device(dc) => device_code::approve(&state, &dc, user, flow.auth_time, org),
                FlowKind::AdminConsent(req) => admin_consent::grant(&state, &req),
            }
        }
        ("cancel", Some(_)) => {
            state.identity.lock().flows.remove(&flow_id);
            tracing::debug!(client_id = %info.app.client_id, "sign-in flow cancelled");
            match flow.kind {
                FlowKind::Authorize(req) => authorize::cancelled(&req),
                FlowKind::Device(dc) => device_code::decline(&state, &dc),
                FlowKind::AdminConsent(req) => admin_consent::denied(&req),
            }
        }
        _ => {
            let username = params.get("username").unwrap_or_default();
            let password = params.get("password").unwrap_or_default();
            let again = |e: AadError| {
                tracing::debug!(client_id = %info.app.client_id, code = e.code, "sign-in refused");
                sign_in_page(&tenant, &flow_id, info.app, Some(username), Some(&e), info.note.as_deref())
            };
            let Some(user) = state.user_by_name(username) else {
                return again(AadError::new(
                    "invalid_grant",
                    50034,
                    "This username may be incorrect. Make sure you typed it correctly. Otherwise, contact your admin.",
                ));
            };
            if user.password != password {
                return again(AadError::new("invalid_grant", 50126, "Your account or password is incorrect."));
            }
            if info.for_org && !is_tenant_admin(user) {
                return again(AadError::new(
                    "access_denied",
                    90094,
                    format!(
                        "The account '{}' cannot grant admin consent: sign in with an administrator of the \
                         organization.",
                        user.username
                    ),
                ));
            }
            if let Some(f) = state.identity.lock().flows.get_mut(&flow_id) {
                f.user = Some(user.object_id);
                f.auth_time = now;
            }
            consent_page(&state, &tenant, &flow_id, info.app, user, &info.scopes, info.for_org)
        }
    }
}
