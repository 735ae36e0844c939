//! `client_assertion` validation (reference §4.2, §4.3).
//!
//! **Certificate assertions** (private_key_jwt), checked in this order: well-formed JWT →
//! `alg` ∈ {RS256, PS256} → a `x5t#S256` (SHA-256) or `x5t` (SHA-1) header naming a
//! certificate registered on the app (else AADSTS700027 "key was not found") → signature
//! against that certificate (AADSTS700027) → `iss` = `sub` (AADSTS50048) and = client id
//! (AADSTS700021) → `aud` = this token endpoint, with the tenant as GUID, domain or the path
//! segment used, on any host alias of the emulator (AADSTS700027) → `exp`/`nbf` within 5
//! minutes of skew (AADSTS700024) → certificate validity → `jti` not seen before while the
//! assertion is unexpired (AADSTS700027). PS256 and RS256 are accepted with either thumbprint
//! header.
//!
//! **Federated assertions** (workload identity): when the app has federated identity
//! credentials and the assertion's `iss` is not the client id, it must match one credential's
//! `issuer`, `subject` and `audience` exactly (AADSTS700211 unknown issuer, AADSTS70021 no
//! matching subject/audience) and be within its `exp`/`nbf` window. The emulator cannot fetch
//! the external issuer's signing keys (no network), so **the signature of a federated
//! assertion is not verified** — unsigned (`alg: none`) or any-signed JWTs are accepted when
//! the claims match. Federated tokens are reused legitimately until they rotate, so they are
//! not subject to the `jti` replay check.

use super::errors::{AadError, AadResult};
use crate::config::AppConfig;
use crate::state::Shared;
use crate::token::decode_unverified;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Allowed clock skew on assertion `exp`/`nbf`.
pub const SKEW_SECS: i64 = 300;

fn bad(message: impl Into<String>) -> AadError {
    AadError::new("invalid_client", 700027, message)
}

fn string_claim<'a>(claims: &'a Value, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

fn audiences(claims: &Value) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![],
    }
}

fn iso(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

/// A NumericDate claim: JSON number of seconds, possibly fractional (RFC 7519 §2; MSAL
/// Python sends floats).
fn numeric_date(claims: &Value, name: &str) -> Option<i64> {
    let v = claims.get(name)?;
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
}

fn check_window(claims: &Value, now: i64) -> AadResult<i64> {
    let exp = numeric_date(claims, "exp");
    let nbf = numeric_date(claims, "nbf");
    let ok = exp.is_some_and(|e| now <= e + SKEW_SECS) && nbf.is_none_or(|n| n - SKEW_SECS <= now);
    if !ok {
        return Err(AadError::new(
            "invalid_client",
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {} to \
                 {}.",
                iso(now),
                nbf.map(iso).unwrap_or_else(|| "-".into()),
                exp.map(iso).unwrap_or_else(|| "-".into())
            ),
        ));
    }
    Ok(exp.unwrap_or(now))
}

/// Verifies `assertion` for `app` presented at `/{tenant_segment}/oauth2/v2.0/token`.
pub fn verify(state: &Shared, app: &AppConfig, assertion: &str, tenant_segment: &str) -> AadResult<()> {
    let jwt = decode_unverified(assertion)
        .map_err(|_| AadError::new("invalid_request", 50027, "JWT token is invalid or is malformed."))?;
    let client_id = app.client_id.to_string();
    let iss = string_claim(&jwt.claims, "iss").unwrap_or_default();
    if !app.federated_credentials.is_empty() && !iss.eq_ignore_ascii_case(&client_id) {
        return verify_federated(state, app, &jwt.claims);
    }

    let alg = jwt.header.get("alg").and_then(Value::as_str).unwrap_or_default();
    if alg != "RS256" && alg != "PS256" {
        return Err(bad(format!(
            "Client assertion contains an unsupported signing algorithm '{alg}'. Only RSA keys with RS256 or PS256 \
             are supported."
        )));
    }
    let s256 = jwt.header.get("x5t#S256").and_then(Value::as_str);
    let s1 = jwt.header.get("x5t").and_then(Value::as_str);
    let (thumb, is_sha256) = match (s256, s1) {
        (Some(t), _) => (t.trim_end_matches('='), true),
        (None, Some(t)) => (t.trim_end_matches('='), false),
        (None, None) => {
            return Err(bad(
                "The client assertion header has neither an 'x5t#S256' nor an 'x5t' thumbprint of the signing \
                 certificate.",
            ));
        }
    };
    let cert = state
        .app_certs
        .get(&app.client_id)
        .map(|c| &c.key)
        .filter(|k| if is_sha256 { k.x5t_s256() == thumb } else { k.x5t() == thumb });
    let Some(cert) = cert else {
        let hex: String =
            URL_SAFE_NO_PAD.decode(thumb).unwrap_or_default().iter().map(|b| format!("{b:02X}")).collect();
        return Err(bad(format!(
            "The certificate with identifier used to sign the client assertion is not registered on application. \
             [Reason - The key was not found., Thumbprint of key used by client: '{hex}', Please visit the Azure \
             Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"
        )));
    };
    if !crate::pki::verify_rsa(alg, &cert.cert_der, jwt.signing_input.as_bytes(), &jwt.signature) {
        return Err(bad("Client assertion failed signature validation."));
    }
    let sub = string_claim(&jwt.claims, "sub").unwrap_or_default();
    if iss != sub {
        return Err(AadError::new(
            "invalid_client",
            50048,
            format!("Subject mismatches Issuer claim in the client assertion. Subject = '{sub}', Issuer = '{iss}'."),
        ));
    }
    if !iss.eq_ignore_ascii_case(&client_id) {
        return Err(AadError::new(
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        ));
    }
    let accepted = token_endpoints(state, tenant_segment);
    let auds = audiences(&jwt.claims);
    if !auds.iter().any(|a| accepted.iter().any(|e| e.eq_ignore_ascii_case(a.trim_end_matches('/')))) {
        return Err(bad(format!(
            "The audience claim of the client assertion ('{}') is not valid. It must be the token endpoint '{}'.",
            auds.join(", "),
            accepted[0]
        )));
    }
    let now = state.clock.unix();
    let exp = check_window(&jwt.claims, now)?;
    if let Ok((_, x509)) = x509_parser::parse_x509_certificate(&cert.cert_der) {
        let v = x509.validity();
        if now > v.not_after.timestamp() || now < v.not_before.timestamp() {
            return Err(bad("The certificate used to sign the client assertion is expired or not yet valid."));
        }
    }
    if let Some(jti) = string_claim(&jwt.claims, "jti") {
        let mut g = state.identity.lock();
        g.purge(now);
        let key = (app.client_id, jti.to_string());
        if g.assertion_ids.contains_key(&key) {
            return Err(bad(format!(
                "The client assertion with jti '{jti}' was already used. Create a new assertion (with a new jti) \
                 for each request."
            )));
        }
        g.assertion_ids.insert(key, exp + SKEW_SECS);
    }
    Ok(())
}

/// Token endpoint URLs an assertion `aud` may name for a request on `tenant_segment`.
fn token_endpoints(state: &Shared, tenant_segment: &str) -> Vec<String> {
    let t = &state.config.tenant;
    let tenants = [t.id.to_string(), t.domain.clone(), tenant_segment.to_string()];
    let mut hosts = vec![state.urls.authority.clone()];
    hosts.extend(state.urls.org_aliases.iter().cloned());
    let mut out = Vec::new();
    for h in &hosts {
        for tn in &tenants {
            let u = format!("{h}/{tn}/oauth2/v2.0/token");
            if !out.contains(&u) {
                out.push(u);
            }
        }
    }
    out
}

fn verify_federated(state: &Shared, app: &AppConfig, claims: &Value) -> AadResult<()> {
    let iss = string_claim(claims, "iss").unwrap_or_default();
    let sub = string_claim(claims, "sub").unwrap_or_default();
    let auds = audiences(claims);
    check_window(claims, state.clock.unix())?;
    let by_issuer: Vec<_> = app.federated_credentials.iter().filter(|f| f.issuer == iss).collect();
    if by_issuer.is_empty() {
        return Err(AadError::new(
            "invalid_client",
            700211,
            format!(
                "No matching federated identity record found for presented assertion issuer '{iss}'. Please check \
                 your federated identity credential Subject, Audience and Issuer against the presented assertion."
            ),
        ));
    }
    if by_issuer.iter().any(|f| f.subject == sub && auds.contains(&f.audience)) {
        return Ok(());
    }
    Err(AadError::new(
        "invalid_client",
        70021,
        format!(
            "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. \
             Assertion Subject: '{sub}'. Assertion Audience: '{}'.",
            auds.join(",")
        ),
    ))
}
