//! `POST /{tenant}/oauth2/v2.0/token` (reference §2.3, §3, §4, §5).
//!
//! Grants: `client_credentials` (secret, HTTP Basic, certificate or federated assertion),
//! `authorization_code` (+ PKCE S256/plain, exact `redirect_uri`), `refresh_token` (rotation:
//! a new refresh token every time; with `revoke_used_refresh_tokens` the redeemed one is
//! revoked and answers AADSTS70008 when reused) and
//! `urn:ietf:params:oauth:grant-type:device_code`. Anything else is `unsupported_grant_type`
//! (AADSTS70003); any method but POST is AADSTS900561.

use super::client_auth::{AuthInput, Params, authenticate, basic_credentials};
use super::device_code;
use super::errors::{AadError, AadResult};
use super::grants::REFRESH_INACTIVITY_SECS;
use super::issue::{Delegated, app_only_response, delegated_response};
use super::scopes::{ScopeSet, parse_app_only, parse_delegated};
use super::signin::has_consent;
use super::tenant::TenantPath;
use crate::config::{AppConfig, UserConfig};
use crate::state::{AppState, Shared};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

/// The device-code grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// AADSTS900561 for any method but POST on a POST-only endpoint.
pub async fn wrong_method(method: Method) -> AadError {
    AadError::new(
        "invalid_request",
        900561,
        format!("The endpoint only accepts POST, OPTIONS requests. Received a {method} request."),
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn token(
    State(state): State<AppState>,
    Path(tenant_seg): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> AadResult<Response> {
    let params = Params::parse(&body);
    let tenant = TenantPath::resolve(&state, &tenant_seg)?;
    let grant_type = params.require("grant_type")?;
    if !matches!(grant_type, "client_credentials" | "authorization_code" | "refresh_token" | DEVICE_CODE_GRANT) {
        return Err(AadError::new(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let basic = basic_credentials(&headers);
    let client_id = match (params.get("client_id"), &basic) {
        (Some(c), Some((b, _))) if !c.eq_ignore_ascii_case(b) => {
            return Err(AadError::new(
                "invalid_request",
                90023,
                "The client_id in the Authorization header does not match the client_id in the request body.",
            ));
        }
        (Some(c), _) => c.to_string(),
        (None, Some((b, _))) => b.clone(),
        (None, None) => return Err(AadError::missing("client_id")),
    };
    tenant.require_org_directory(&state, &client_id)?;
    let app = state.app(&client_id).ok_or_else(|| AadError::unknown_app(&client_id, &state.config.tenant.name))?;
    let input = AuthInput { params: &params, headers: &headers, tenant_segment: &tenant_seg };
    let result = match grant_type {
        "client_credentials" => client_credentials(&state, app, tenant, &input),
        "authorization_code" => authorization_code(&state, app, tenant, &input),
        "refresh_token" => refresh_token(&state, app, &input),
        _ => device_code_grant(&state, app, &input),
    };
    match &result {
        Ok(_) => tracing::info!(client_id = %app.client_id, grant_type, "token issued"),
        Err(e) => tracing::info!(client_id = %app.client_id, grant_type, code = e.code, "token refused"),
    }
    result
}

fn client_credentials(
    state: &Shared,
    app: &AppConfig,
    tenant: TenantPath,
    input: &AuthInput<'_>,
) -> AadResult<Response> {
    if tenant.is_multi_tenant() {
        return Err(AadError::new(
            "invalid_request",
            9001023,
            format!(
                "The grant type 'client_credentials' is not supported over the /{} endpoint. Please use the \
                 tenant-specific endpoint (tenant id or verified domain).",
                tenant.segment()
            ),
        ));
    }
    let acr = authenticate(state, app, input, true)?;
    let resource = parse_app_only(state, input.params.require("scope")?)?;
    Ok(app_only_response(state, app, &resource, acr))
}

fn user_of(state: &Shared, oid: Uuid) -> AadResult<&UserConfig> {
    state.config.users.iter().find(|u| u.object_id == oid).ok_or_else(AadError::expired_grant)
}

fn pkce_ok(pkce: &super::grants::Pkce, verifier: Option<&str>) -> bool {
    let Some(v) = verifier else { return false };
    let well_formed = (43..=128).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return false;
    }
    match pkce.method.as_str() {
        "S256" => {
            URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, v.as_bytes()))
                == pkce.challenge
        }
        _ => v == pkce.challenge,
    }
}

fn authorization_code(
    state: &Shared,
    app: &AppConfig,
    tenant: TenantPath,
    input: &AuthInput<'_>,
) -> AadResult<Response> {
    let acr = authenticate(state, app, input, false)?;
    let p = input.params;
    let code = p.require("code")?;
    let now = state.clock.unix();
    let grant = {
        let mut g = state.identity.lock();
        let c = g.codes.get_mut(code).ok_or_else(AadError::expired_grant)?;
        if c.client_id != app.client_id {
            return Err(AadError::new(
                "invalid_grant",
                70000,
                "The provided value for the 'code' parameter is not valid. The code was issued to another client.",
            ));
        }
        if c.redeemed {
            return Err(AadError::new(
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an \
                 existing refresh token.",
            ));
        }
        if now > c.expires_at {
            return Err(AadError::expired_grant());
        }
        if let (TenantPath::Tenant(a), TenantPath::Tenant(b)) = (tenant, c.tenant)
            && a != b
        {
            return Err(AadError::new(
                "invalid_grant",
                700005,
                "Provided Authorization Code is intended to use against other tenant, thus rejected.",
            ));
        }
        // RFC 6749 §4.1.3: required, and identical, when the authorize request included it.
        let sent = p.get("redirect_uri");
        if sent != Some(c.redirect_uri.as_str()) && (c.redirect_uri_sent || sent.is_some()) {
            let e = super::redirect::mismatch(p.get("redirect_uri").unwrap_or_default(), &app.client_id.to_string());
            return Err(AadError::new("invalid_client", e.code, e.message));
        }
        if let Some(pkce) = &c.pkce
            && !pkce_ok(pkce, p.get("code_verifier"))
        {
            return Err(AadError::new(
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ));
        }
        c.redeemed = true;
        c.clone()
    };
    if let Some(raw) = p.get("scope") {
        parse_delegated(state, raw)?;
    }
    let user = user_of(state, grant.user)?;
    if !has_consent(state, app) {
        return Err(AadError::consent_required(&app.client_id.to_string(), &app.name));
    }
    Ok(delegated_response(
        state,
        Delegated {
            app,
            user,
            scopes: grant.scopes,
            acr,
            nonce: grant.nonce,
            auth_time: grant.auth_time,
            client_info: p.get("client_info") == Some("1"),
        },
    ))
}

fn refresh_token(state: &Shared, app: &AppConfig, input: &AuthInput<'_>) -> AadResult<Response> {
    let acr = authenticate(state, app, input, false)?;
    let p = input.params;
    let token = p.require("refresh_token")?;
    let requested = p.get("scope").map(|s| parse_delegated(state, s)).transpose()?;
    let now = state.clock.unix();
    let grant = {
        let mut g = state.identity.lock();
        let r = g.refresh.get_mut(token).ok_or_else(AadError::expired_grant)?;
        if r.client_id != app.client_id {
            return Err(AadError::new(
                "invalid_grant",
                70000,
                "Provided grant is invalid or malformed: the refresh token was issued to another client.",
            ));
        }
        if r.revoked {
            return Err(AadError::expired_grant());
        }
        if now - r.last_used > REFRESH_INACTIVITY_SECS {
            let issued = super::errors::format_timestamp(
                time::OffsetDateTime::from_unix_timestamp(r.issued_at).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            );
            return Err(AadError::new(
                "invalid_grant",
                700082,
                format!(
                    "The refresh token has expired due to inactivity. The token was issued on {issued} and was \
                     inactive for 90.00:00:00."
                ),
            )
            .with_suberror("bad_token"));
        }
        if state.options.revoke_used_refresh_tokens {
            r.revoked = true;
        } else {
            r.last_used = now;
        }
        r.clone()
    };
    let scopes = match requested {
        Some(req) => ScopeSet {
            resource: req.resource.or_else(|| grant.scopes.resource.clone()),
            offline_access: req.offline_access || grant.scopes.offline_access,
            ..req
        },
        None => grant.scopes.clone(),
    };
    let user = user_of(state, grant.user)?;
    if !has_consent(state, app) {
        return Err(AadError::consent_required(&app.client_id.to_string(), &app.name));
    }
    Ok(delegated_response(
        state,
        Delegated {
            app,
            user,
            scopes,
            acr,
            nonce: None,
            auth_time: grant.auth_time,
            client_info: p.get("client_info") == Some("1"),
        },
    ))
}

fn device_code_grant(state: &Shared, app: &AppConfig, input: &AuthInput<'_>) -> AadResult<Response> {
    let acr = authenticate(state, app, input, false)?;
    let p = input.params;
    let (oid, auth_time, scopes) = device_code::poll(state, app, p.require("device_code")?)?;
    let user = user_of(state, oid)?;
    Ok(delegated_response(
        state,
        Delegated { app, user, scopes, acr, nonce: None, auth_time, client_info: p.get("client_info") == Some("1") },
    ))
}
