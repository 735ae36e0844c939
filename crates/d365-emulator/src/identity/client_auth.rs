//! Client authentication at the token endpoint (reference §2.3, §4): a client secret in the
//! form body or in HTTP Basic (RFC 6749 §2.3.1), or a `client_assertion` (certificate or
//! federated credential, see [`super::assertion`]). Public clients must send none.

use super::assertion;
use super::errors::{AadError, AadResult};
use crate::config::AppConfig;
use crate::state::Shared;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::HashMap;

/// The `client_assertion_type` for JWT client assertions.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Form or query parameters (first occurrence wins; empty values count as absent).
#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` bytes.
    pub fn parse(bytes: &[u8]) -> Self {
        let mut m = HashMap::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            m.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Self(m)
    }

    /// Adds the pairs of `other` that are not set yet.
    pub fn merge(mut self, other: Params) -> Self {
        for (k, v) in other.0 {
            self.0.entry(k).or_insert(v);
        }
        self
    }

    /// A non-empty parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// A required parameter (AADSTS900144 when absent).
    pub fn require(&self, name: &str) -> AadResult<&str> {
        self.get(name).ok_or_else(|| AadError::missing(name))
    }

    /// Sets a parameter.
    pub fn set(&mut self, name: &str, value: String) {
        self.0.insert(name.to_string(), value);
    }
}

/// `client_id:secret` from an `Authorization: Basic` header (both form-urlencoded).
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let dec = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    Some((dec(id), dec(secret)))
}

/// The request facts client authentication needs.
#[derive(Debug)]
pub struct AuthInput<'a> {
    /// Form parameters.
    pub params: &'a Params,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The `{tenant}` path segment as sent (an assertion's `aud` may use it).
    pub tenant_segment: &'a str,
}

/// Authenticates `app`. Returns `appidacr`: "0" (public, nothing sent), "1" (secret), "2"
/// (assertion). A confidential app must authenticate (AADSTS7000218); a public one must not
/// send credentials (AADSTS700025). `confidential_grant` (client credentials) requires
/// credentials even from a public registration.
pub fn authenticate(
    state: &Shared,
    app: &AppConfig,
    input: &AuthInput<'_>,
    confidential_grant: bool,
) -> AadResult<&'static str> {
    let p = input.params;
    let basic = basic_credentials(input.headers);
    let secret = match (p.get("client_secret"), &basic) {
        (Some(s), None) => Some(s.to_string()),
        (None, Some((_, s))) => Some(s.clone()),
        (Some(_), Some(_)) => {
            return Err(AadError::new(
                "invalid_request",
                90023,
                "Client credentials were sent both in the request body and in the Authorization header; use one.",
            ));
        }
        (None, None) => None,
    };
    let assertion = p.get("client_assertion");
    if let Some(t) = p.get("client_assertion_type") {
        if t != JWT_BEARER {
            return Err(AadError::new(
                "invalid_request",
                90023,
                format!("The client_assertion_type '{t}' is not supported; use '{JWT_BEARER}'."),
            ));
        }
    } else if assertion.is_some() {
        return Err(AadError::missing("client_assertion_type"));
    }
    if secret.is_some() && assertion.is_some() {
        return Err(AadError::new(
            "invalid_request",
            90023,
            "Both a client secret and a client assertion were presented; use exactly one credential.",
        ));
    }
    if let (Some(_), Some(origin)) = (&secret, input.headers.get(header::ORIGIN)) {
        return Err(AadError::new(
            "invalid_request",
            9002326,
            format!(
                "Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type. \
                 Request origin: '{}'.",
                origin.to_str().unwrap_or_default()
            ),
        ));
    }
    if !app.confidential {
        if secret.is_some() || assertion.is_some() {
            return Err(AadError::new(
                "invalid_client",
                700025,
                "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
            ));
        }
        if !confidential_grant {
            return Ok("0");
        }
    }
    if let Some(secret) = secret {
        return check_secret(state, app, &secret).map(|()| "1");
    }
    if let Some(a) = assertion {
        return assertion::verify(state, app, a, input.tenant_segment).map(|()| "2");
    }
    Err(AadError::new(
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ))
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_secret(state: &Shared, app: &AppConfig, secret: &str) -> AadResult<()> {
    let now = state.clock.now();
    let mut expired = false;
    for s in &app.secrets {
        if ct_eq(s.value.as_bytes(), secret.as_bytes()) {
            let past = s
                .expires
                .as_deref()
                .and_then(|e| time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339).ok())
                .is_some_and(|e| e <= now);
            if !past {
                return Ok(());
            }
            expired = true;
        }
    }
    if expired {
        return Err(AadError::new(
            "invalid_client",
            7000222,
            format!(
                "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new \
                 keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for \
                 added security: https://aka.ms/certCreds.",
                app.client_id
            ),
        ));
    }
    Err(AadError::new(
        "invalid_client",
        7000215,
        format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, \
             not the client secret ID, for a secret added to app '{}'.",
            app.client_id
        ),
    ))
}
