//! The Entra ID side: OpenID discovery, JWKS, instance discovery, the token endpoint (client
//! credentials with a secret, HTTP Basic, a certificate or a federated assertion;
//! authorization code + PKCE; refresh token with rotation; device code), the sign-in and
//! consent page, device-code verification, admin consent and a managed-identity endpoint.
//!
//! | Route | Module |
//! |---|---|
//! | `GET /{tenant}/v2.0/.well-known/openid-configuration` | [`discovery`] |
//! | `GET /{tenant}/discovery/v2.0/keys` (incl. `common`) | [`discovery`] |
//! | `GET /{tenant}/discovery/instance` (MSAL instance discovery) | [`discovery`] |
//! | `POST /{tenant}/oauth2/v2.0/token` | [`token_endpoint`] |
//! | `GET, POST /{tenant}/oauth2/v2.0/authorize` | [`authorize`] |
//! | `POST /{tenant}/login` (sign-in / consent form posts) | [`signin`] |
//! | `POST /{tenant}/oauth2/v2.0/devicecode`, `GET, POST /devicelogin` | [`device_code`] |
//! | `GET /{tenant}/v2.0/adminconsent`, `GET /{tenant}/adminconsent` | [`admin_consent`] |
//! | `GET /{tenant}/oauth2/v2.0/logout` | sign-out page |
//! | `GET /metadata/identity/oauth2/token` | [`managed_identity`] |
//! | `GET /error?code=N` | error lookup page (the `error_uri` of error bodies) |
//!
//! Every identity response carries `x-ms-request-id` (the trace id) and echoes the caller's
//! `client-request-id`, which also becomes the `correlation_id` of error bodies, as Entra does.
//! Nothing secret is logged: only client ids, grant types and AADSTS codes.

pub mod admin_consent;
pub mod assertion;
pub mod authorize;
pub mod client_auth;
pub mod device_code;
pub mod discovery;
pub mod errors;
pub mod grants;
pub mod html;
pub mod issue;
pub mod managed_identity;
pub mod redirect;
pub mod scopes;
pub mod signin;
pub mod tenant;
pub mod token_endpoint;

pub use grants::IdentityState;
pub use managed_identity::IDENTITY_HEADER;

use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use errors::{REQUEST_CTX, RequestCtx};

/// Wraps a handler so that it runs inside its request's [`RequestCtx`].
macro_rules! ctx {
    ($h:path) => {
        |State(state): State<AppState>, req: Request| with_ctx(state, req, $h)
    };
}

/// Routes under the authority host.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(ctx!(discovery::openid_configuration)))
        .route("/{tenant}/discovery/v2.0/keys", get(ctx!(discovery::keys)))
        .route("/{tenant}/discovery/instance", get(ctx!(discovery::instance)))
        .route(
            "/{tenant}/oauth2/v2.0/token",
            post(ctx!(token_endpoint::token)).fallback(ctx!(token_endpoint::wrong_method)),
        )
        .route("/{tenant}/oauth2/v2.0/authorize", get(ctx!(authorize::get)).post(ctx!(authorize::post)))
        .route(
            "/{tenant}/oauth2/v2.0/devicecode",
            post(ctx!(device_code::devicecode)).fallback(ctx!(token_endpoint::wrong_method)),
        )
        .route("/{tenant}/oauth2/v2.0/logout", get(ctx!(logout)))
        .route("/{tenant}/login", post(ctx!(signin::login)))
        .route("/{tenant}/v2.0/adminconsent", get(ctx!(admin_consent::v2)))
        .route("/{tenant}/adminconsent", get(ctx!(admin_consent::v1)))
        .route("/devicelogin", get(ctx!(device_code::page)).post(ctx!(device_code::submit)))
        .route("/metadata/identity/oauth2/token", get(ctx!(managed_identity::token)))
        .route("/error", get(ctx!(error_page)))
}

/// Runs `handler` inside a [`RequestCtx`] (trace id, correlation id = the caller's
/// `client-request-id` when it is a GUID, emulator-clock timestamp) and adds the
/// `x-ms-request-id` / `client-request-id` response headers.
async fn with_ctx<H, T>(state: AppState, req: Request, handler: H) -> Response
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| uuid::Uuid::parse_str(v).is_ok())
        .map(str::to_string);
    let ctx = RequestCtx {
        authority: state.urls.authority.clone(),
        trace_id: uuid::Uuid::new_v4().to_string(),
        correlation_id: client_request_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        timestamp: errors::format_timestamp(state.clock.now()),
    };
    let trace = ctx.trace_id.clone();
    let mut resp = REQUEST_CTX.scope(ctx, handler.call(req, state)).await;
    if let Ok(v) = HeaderValue::from_str(&trace) {
        resp.headers_mut().insert("x-ms-request-id", v);
    }
    if let Some(id) = client_request_id.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert("client-request-id", id);
    }
    resp
}

async fn logout(State(state): State<AppState>, Path(tenant): Path<String>, RawQuery(q): RawQuery) -> Response {
    if let Err(e) = tenant::TenantPath::resolve(&state, &tenant) {
        return errors::ErrorPage(e).into_response();
    }
    let params = client_auth::Params::parse(q.unwrap_or_default().as_bytes());
    if let Some(uri) = params.get("post_logout_redirect_uri") {
        let registered = state.config.apps.iter().flat_map(|a| &a.redirect_uris).any(|r| redirect::matches(r, uri));
        if registered {
            let mut p = Vec::new();
            if let Some(s) = params.get("state") {
                p.push(("state", s.to_string()));
            }
            return redirect::respond(uri, redirect::ResponseMode::Query, &p);
        }
    }
    signin::message_page("You signed out of your account", "It's a good idea to close all browser windows.")
}

fn code_meaning(code: u32) -> &'static str {
    match code {
        50011 => "InvalidReplyTo - The redirect URI does not match the redirect URIs configured for the app.",
        50027 => "InvalidJwtToken - The JWT token is invalid or malformed.",
        50034 => "UserAccountNotFound - The account does not exist in the directory.",
        50048 => "SubjectMismatchesIssuer - Subject mismatches Issuer claim in the client assertion.",
        50049 => "NoSuchInstanceForDiscovery - Unknown or invalid instance.",
        50058 => "UserInformationNotProvided - No user is signed in (prompt=none).",
        50089 => "Flow token expired - Sign in again.",
        50126 => "InvalidUserNameOrPassword - Invalid username or password.",
        54005 => "OAuth2 authorization code was already redeemed.",
        65001 => "DelegationDoesNotExist - The user or administrator has not consented to use the application.",
        65004 => "UserDeclinedConsent - The user declined to consent to access the app.",
        70000 => "InvalidGrant - The grant is invalid or malformed.",
        70003 => "UnsupportedGrantType - The app requested an unsupported grant type.",
        70008 => "ExpiredOrRevokedGrant - The code or refresh token has expired or was revoked.",
        70011 => "InvalidScope - The scope requested by the app is invalid.",
        70016 => "AuthorizationPending - OAuth 2.0 device flow error. Authorization is pending.",
        70018 => "BadVerificationCode - Invalid verification code.",
        70019 => "CodeExpired - Verification code expired.",
        70021 => "NoMatchingFederatedIdentityRecord - No matching federated identity record found.",
        90002 => "InvalidTenantName - The tenant was not found.",
        90094 => "AdminConsentRequired - Administrator consent is required.",
        90130 => "NonConvergedAppV2GlobalEndpointNotSupported - Not supported over /common or /consumers.",
        500011 => "InvalidResourceServicePrincipalNotFound - The resource principal was not found in the tenant.",
        501481 => "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        700016 => "UnauthorizedClient_DoesNotMatchRequest - The application was not found in the directory.",
        700021 => "InvalidClientAssertionIssuer - Client assertion application identifier doesn't match client_id.",
        700022 => "InvalidMultipleResourcesScope - The scope names more than one resource.",
        700024 => "ClientAssertionNotWithinValidTimeRange - The client assertion is not within its valid time range.",
        700025 => "InvalidClientPublicClientWithCredential - A public client presented a credential.",
        700027 => "Client assertion failed signature validation, or its key is not registered.",
        700082 => "ExpiredOrRevokedGrantInactiveToken - The refresh token has expired due to inactivity.",
        700211 => "No matching federated identity record found for presented assertion issuer.",
        900144 => "A required request parameter is missing.",
        900561 => "BadRequestInvalidHttpMethod - The endpoint only accepts POST requests.",
        1002012 => "Client credential flows must use a scope ending in /.default.",
        7000215 => "InvalidClientSecretProvided - Invalid client secret provided.",
        7000218 => "InvalidClientCredential - The request must contain 'client_assertion' or 'client_secret'.",
        7000222 => "InvalidClientSecretExpiredKeysProvided - The client secret is expired.",
        9001023 => "The client_credentials grant is not supported over multi-tenant endpoints.",
        _ => "See the Microsoft Entra authentication and authorization error codes reference.",
    }
}

async fn error_page(RawQuery(q): RawQuery) -> Response {
    let params = client_auth::Params::parse(q.unwrap_or_default().as_bytes());
    let code: u32 = params.get("code").and_then(|c| c.trim().parse().ok()).unwrap_or(0);
    let body = format!("<h1>AADSTS{code}</h1><p id=\"meaning\">{}</p>", html::escape(code_meaning(code)));
    html::page(StatusCode::OK, "Error code lookup", &body, false)
}
