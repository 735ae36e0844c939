//! Metadata endpoints (reference §1.4): the OpenID Connect discovery document, the JWKS and
//! MSAL's instance discovery.
//!
//! * `GET /{tenant}/v2.0/.well-known/openid-configuration`: for a tenant (GUID or domain) the
//!   issuer and endpoints use the tenant GUID; for `common`/`organizations` the issuer holds
//!   the literal `{tenantid}` and the endpoints stay under the alias.
//! * `GET /{tenant}/discovery/v2.0/keys` (and `/common/…`): the token-signing key as an RSA JWK,
//!   `kid` = `x5t` = SHA-1 thumbprint, with its certificate in `x5c`.
//! * `GET /{tenant}/discovery/instance?api-version=1.1&authorization_endpoint=…`: what MSAL
//!   (.NET, Java, Node) asks first for a non-Microsoft authority host. The emulator answers
//!   for its own host (any alias) over https, with its port or with none (some client
//!   libraries build the parameter from the host name alone): `tenant_discovery_endpoint` is
//!   on the real origin (with port), `preferred_network` is the host with the port (where
//!   requests must go), `preferred_cache` the host as asked, and `aliases` every spelling.
//!   Any other host, port or scheme is `invalid_instance` (AADSTS50049), as the real service
//!   answers for unknown hosts.
//!
//! The documents are sent with `Cache-Control: max-age=86400, private` and
//! `Access-Control-Allow-Origin: *`, like the real ones.

use super::client_auth::Params;
use super::errors::{AadError, AadResult};
use super::tenant::{CONSUMERS_TENANT, TenantPath};
use crate::state::{AppState, Shared};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn metadata_response(body: Value) -> Response {
    let mut resp = body.to_string().into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=86400, private"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, OPTIONS"));
    resp
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub async fn openid_configuration(State(state): State<AppState>, Path(tenant): Path<String>) -> AadResult<Response> {
    let tenant = TenantPath::resolve(&state, &tenant)?;
    Ok(metadata_response(document(&state, tenant)))
}

/// The discovery document for `tenant`.
pub fn document(state: &Shared, tenant: TenantPath) -> Value {
    let e = &state.urls.authority;
    let seg = tenant.segment();
    let issuer_tenant = match tenant {
        TenantPath::Tenant(id) => id.to_string(),
        TenantPath::Consumers => CONSUMERS_TENANT.to_string(),
        TenantPath::Common | TenantPath::Organizations => "{tenantid}".to_string(),
    };
    let region = if tenant.is_multi_tenant() { Value::Null } else { json!("NA") };
    json!({
        "token_endpoint": format!("{e}/{seg}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{e}/{seg}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{e}/{issuer_tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{e}/{seg}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{e}/{seg}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{e}/{seg}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
            "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid",
            "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{e}/{seg}/kerberos"),
        "tenant_region_scope": region,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    })
}

/// `GET /{tenant}/discovery/v2.0/keys`.
pub async fn keys(State(state): State<AppState>, Path(tenant): Path<String>) -> AadResult<Response> {
    let tenant = TenantPath::resolve(&state, &tenant)?;
    let issuer_tenant = match tenant {
        TenantPath::Tenant(id) => id.to_string(),
        TenantPath::Consumers => CONSUMERS_TENANT.to_string(),
        _ => "{tenantid}".to_string(),
    };
    let k = &state.signing_key;
    let (n, e) = k.key.jwk_n_e();
    Ok(metadata_response(json!({
        "keys": [{
            "kty": "RSA",
            "use": "sig",
            "kid": k.x5t(),
            "x5t": k.x5t(),
            "n": n,
            "e": e,
            "x5c": [k.x5c()],
            "issuer": format!("{}/{issuer_tenant}/v2.0", state.urls.authority),
        }]
    })))
}

/// `GET /{tenant}/discovery/instance?api-version=1.1&authorization_endpoint=…`.
pub async fn instance(State(state): State<AppState>, RawQuery(q): RawQuery) -> AadResult<Response> {
    let params = Params::parse(q.unwrap_or_default().as_bytes());
    let api_version = params.get("api-version").unwrap_or("1.1").to_string();
    let endpoint = params.require("authorization_endpoint")?;
    let invalid = || AadError::new("invalid_instance", 50049, "Unknown or invalid instance.");
    let url = url::Url::parse(endpoint).map_err(|_| invalid())?;
    let hosts = EmulatorHosts::of(&state);
    let host = url.host_str().filter(|_| url.scheme() == "https").ok_or_else(invalid)?;
    let known = hosts.known(host, url.port()).ok_or_else(invalid)?;
    let tenant = url.path_segments().and_then(|mut s| s.next()).filter(|s| !s.is_empty()).unwrap_or("common");
    // The host as asked (what the client keys its cache by) and the host the emulator really
    // answers on (with its port, so the client can reach it).
    let asked = match url.port() {
        Some(p) => format!("{known}:{p}"),
        None => known.to_string(),
    };
    let network = hosts.with_port(known);
    let mut aliases = vec![asked.clone(), network.clone()];
    for h in &hosts.names {
        for a in [hosts.with_port(h), h.clone()] {
            if !aliases.contains(&a) {
                aliases.push(a);
            }
        }
    }
    Ok(metadata_response(json!({
        "tenant_discovery_endpoint": format!("https://{network}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": api_version,
        "metadata": [{
            "preferred_network": network,
            "preferred_cache": asked,
            "aliases": aliases,
        }],
    })))
}

/// The host names the emulator's authority answers on (all served by the same listener) and
/// its port.
struct EmulatorHosts {
    /// Lower-case host names, the authority's first.
    names: Vec<String>,
    /// The port the emulator listens on.
    port: u16,
}

impl EmulatorHosts {
    fn of(state: &Shared) -> Self {
        let mut names: Vec<String> = Vec::new();
        let mut port = 443;
        for (i, origin) in std::iter::once(&state.urls.authority).chain(state.urls.org_aliases.iter()).enumerate() {
            let Ok(u) = url::Url::parse(origin) else { continue };
            if i == 0 {
                port = u.port_or_known_default().unwrap_or(443);
            }
            // Only spellings of the authority's own listener (same port) name this instance.
            if u.port_or_known_default() != Some(port) {
                continue;
            }
            if let Some(h) = u.host_str().map(str::to_ascii_lowercase)
                && !names.contains(&h)
            {
                names.push(h);
            }
        }
        Self { names, port }
    }

    /// The known host matching `host`, when `port` is the emulator's or absent (clients that
    /// build the authority from the host name alone).
    fn known(&self, host: &str, port: Option<u16>) -> Option<&str> {
        if port.is_some_and(|p| p != self.port) {
            return None;
        }
        self.names.iter().find(|h| h.eq_ignore_ascii_case(host)).map(String::as_str)
    }

    /// `host:port` as the emulator answers on it (`host` alone on port 443).
    fn with_port(&self, host: &str) -> String {
        if self.port == 443 { host.to_string() } else { format!("{host}:{}", self.port) }
    }
}
