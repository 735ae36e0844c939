//! Device-code flow (reference §5): `POST /{tenant}/oauth2/v2.0/devicecode`, the verification
//! page `GET|POST /devicelogin` (enter the user code, then sign in and accept), and the
//! token-endpoint polling rules:
//!
//! | state | poll answer |
//! |---|---|
//! | not yet approved | `authorization_pending` (AADSTS70016) |
//! | polled again sooner than `interval` after the previous poll | `slow_down` (AADSTS70016) |
//! | user pressed Cancel | `authorization_declined` (AADSTS65004) |
//! | past `expires_in` (900 s) | `expired_token` (AADSTS70019) |
//! | unknown / already redeemed device code | `bad_verification_code` (AADSTS70018) |
//! | app lacks admin consent | `invalid_grant` + `suberror=consent_required` (AADSTS65001) |
//!
//! The AADSTS numbers of `slow_down` and `authorization_declined` are the emulator's choice
//! (Entra's are not documented); clients switch on `error`.
//!
//! **Auto-approve** (`auto_approve = Some(user)`, test-only): the device code is approved by
//! that user on its **first poll** (so unmodified clients such as MSAL complete without
//! anyone visiting the page); entering the code on the verification page also approves it at
//! once without the sign-in form.

use super::client_auth::Params;
use super::errors::{AadError, AadResult, consent_message};
use super::grants::{DEVICE_CODE_LIFETIME_SECS, DEVICE_POLL_INTERVAL_SECS, DeviceGrant, DeviceStatus, Flow, FlowKind};
use super::html::{self, escape};
use super::issue::json_response;
use super::scopes::{ScopeSet, parse_delegated};
use super::signin::{self, has_consent};
use super::tenant::TenantPath;
use crate::config::{AppConfig, UserConfig};
use crate::state::{AppState, Shared};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use uuid::Uuid;

const USER_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn user_code() -> String {
    (0..9).map(|_| USER_CODE_ALPHABET[rand::random_range(0..USER_CODE_ALPHABET.len())] as char).collect()
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`.
pub async fn devicecode(State(state): State<AppState>, Path(tenant): Path<String>, body: Bytes) -> AadResult<Response> {
    let params = Params::parse(&body);
    let tenant = TenantPath::resolve(&state, &tenant)?;
    let client_id = params.require("client_id")?;
    tenant.require_org_directory(&state, client_id)?;
    let app = state.app(client_id).ok_or_else(|| AadError::unknown_app(client_id, &state.config.tenant.name))?;
    let scopes = parse_delegated(&state, params.require("scope")?)?;
    let now = state.clock.unix();
    let device_code = super::grants::random_token("DAQABAAEAAAB", 96);
    let code = {
        let mut g = state.identity.lock();
        g.purge(now);
        let mut code = user_code();
        while g.devices.values().any(|d| d.user_code == code) {
            code = user_code();
        }
        g.devices.insert(
            device_code.clone(),
            DeviceGrant {
                user_code: code.clone(),
                client_id: app.client_id,
                scopes,
                tenant,
                expires_at: now + DEVICE_CODE_LIFETIME_SECS,
                last_poll: None,
                status: DeviceStatus::Pending,
            },
        );
        code
    };
    tracing::debug!(client_id = %app.client_id, "device code issued");
    let uri = format!("{}/devicelogin", state.urls.authority);
    Ok(json_response(json!({
        "user_code": code,
        "device_code": device_code,
        "verification_uri": uri,
        "expires_in": DEVICE_CODE_LIFETIME_SECS,
        "interval": DEVICE_POLL_INTERVAL_SECS,
        "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {code} to authenticate."),
    })))
}

fn code_page(otc: &str, error: Option<&str>) -> Response {
    let err = error.map(|e| format!("<p class=\"err\" id=\"error\">{}</p>", escape(e))).unwrap_or_default();
    let body = format!(
        "<h1>Enter code</h1><p>Enter the code displayed on your app or device.</p>{err}\
         <form method=\"post\" action=\"/devicelogin\" id=\"devicelogin\">\
         <label for=\"otc\">Code</label><input type=\"text\" id=\"otc\" name=\"otc\" value=\"{}\" \
         autocomplete=\"off\" required><button class=\"primary\" type=\"submit\">Next</button></form>",
        escape(otc)
    );
    html::page(StatusCode::OK, "Enter code", &body, false)
}

/// `GET /devicelogin` (`?otc=CODE` pre-fills the code).
pub async fn page(RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q.unwrap_or_default().as_bytes());
    code_page(params.get("otc").unwrap_or_default(), None)
}

/// `POST /devicelogin`: the user code was entered.
pub async fn submit(State(state): State<AppState>, body: Bytes) -> Response {
    let params = Params::parse(&body);
    let otc = params.get("otc").unwrap_or_default().trim().to_string();
    let now = state.clock.unix();
    let found = {
        let g = state.identity.lock();
        g.device_by_user_code(&otc).and_then(|dc| g.devices.get(&dc).map(|d| (dc, d.clone())))
    };
    let Some((dc, device)) = found.filter(|(_, d)| d.status == DeviceStatus::Pending) else {
        return code_page(&otc, Some("AADSTS70018: That code didn't work. Check the code and try again."));
    };
    if now > device.expires_at {
        return code_page(&otc, Some("AADSTS70019: That code has expired. Start the sign-in again on your device."));
    }
    let Some(app) = state.config.apps.iter().find(|a| a.client_id == device.client_id) else {
        return code_page(&otc, Some("AADSTS70018: That code didn't work. Check the code and try again."));
    };
    if let Some(user) = state.options.auto_approve.as_deref().and_then(|u| state.user_by_name(u)) {
        return approve(&state, &dc, user, now, false);
    }
    let flow = state
        .identity
        .lock()
        .add_flow(Flow { kind: FlowKind::Device(dc), user: None, auth_time: 0, expires_at: device.expires_at }, now);
    signin::sign_in_page(
        &device.tenant.segment(),
        &flow,
        app,
        None,
        None,
        Some("You're signing in on another device. Only continue if you started this sign-in."),
    )
}

/// The signed-in `user` accepted the device sign-in.
pub fn approve(state: &Shared, device_code: &str, user: &UserConfig, auth_time: i64, org_consent: bool) -> Response {
    let client = state.identity.lock().devices.get(device_code).map(|d| d.client_id);
    let Some(app) = client.and_then(|c| state.config.apps.iter().find(|a| a.client_id == c)) else {
        return signin::message_page("Code expired", "That code has expired. Start the sign-in again on your device.");
    };
    let consented = signin::consent_ok(state, app, user, org_consent);
    let now = state.clock.unix();
    let mut g = state.identity.lock();
    let Some(d) = g.devices.get_mut(device_code).filter(|d| now <= d.expires_at) else {
        return signin::message_page("Code expired", "That code has expired. Start the sign-in again on your device.");
    };
    if consented {
        d.status = DeviceStatus::Approved { user: user.object_id, auth_time };
        tracing::debug!(client_id = %app.client_id, "device code approved");
        signin::message_page(
            "You're signed in",
            &format!(
                "You have signed in to the {} application on your device. You may now close this window.",
                app.name
            ),
        )
    } else {
        d.status = DeviceStatus::ConsentRequired;
        signin::message_page(
            "Need admin approval",
            &format!("AADSTS65001: {}", consent_message(&app.client_id.to_string(), &app.name)),
        )
    }
}

/// The user cancelled the device sign-in.
pub fn decline(state: &Shared, device_code: &str) -> Response {
    if let Some(d) = state.identity.lock().devices.get_mut(device_code) {
        d.status = DeviceStatus::Declined;
    }
    signin::message_page("Sign-in cancelled", "You cancelled the sign-in. You may now close this window.")
}

/// Polls `device_code` for `app` (already authenticated): the user and grant on success.
pub fn poll(state: &Shared, app: &AppConfig, device_code: &str) -> AadResult<(Uuid, i64, ScopeSet)> {
    let auto_user = state.options.auto_approve.as_deref().and_then(|u| state.user_by_name(u));
    let consented = has_consent(state, app);
    let now = state.clock.unix();
    let mut g = state.identity.lock();
    let bad = || {
        AadError::new(
            "bad_verification_code",
            70018,
            "Invalid verification code due to User typing in wrong user code for device code flow. Authorization \
             is not approved.",
        )
    };
    let d = g.devices.get_mut(device_code).filter(|d| d.client_id == app.client_id).ok_or_else(bad)?;
    if now > d.expires_at {
        g.devices.remove(device_code);
        return Err(AadError::new("expired_token", 70019, "Verification code expired."));
    }
    if let (DeviceStatus::Pending, Some(user)) = (&d.status, auto_user) {
        d.status = if consented {
            DeviceStatus::Approved { user: user.object_id, auth_time: now }
        } else {
            DeviceStatus::ConsentRequired
        };
    }
    let too_fast = d.last_poll.is_some_and(|last| now - last < DEVICE_POLL_INTERVAL_SECS);
    d.last_poll = Some(now);
    if too_fast && matches!(d.status, DeviceStatus::Pending) {
        return Err(AadError::new(
            "slow_down",
            70016,
            format!(
                "OAuth 2.0 device flow error. Polling too frequently: wait at least the interval \
                 ({DEVICE_POLL_INTERVAL_SECS} seconds) between polls."
            ),
        ));
    }
    match d.status.clone() {
        DeviceStatus::Pending => Err(AadError::new(
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        )),
        DeviceStatus::Declined => {
            g.devices.remove(device_code);
            Err(AadError::new("authorization_declined", 65004, "The user declined the device sign-in request."))
        }
        DeviceStatus::ConsentRequired => {
            g.devices.remove(device_code);
            Err(AadError::consent_required(&app.client_id.to_string(), &app.name))
        }
        DeviceStatus::Approved { user, auth_time } => {
            let scopes = d.scopes.clone();
            g.devices.remove(device_code);
            Ok((user, auth_time, scopes))
        }
    }
}
