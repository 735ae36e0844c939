//! Access tokens and ID tokens: RS256 JWTs signed with the key published in the JWKS.
//!
//! Tokens for a Dataverse audience follow Entra's v1.0 access-token shape (what Dataverse
//! receives from the v2.0 endpoint): `iss = https://sts.windows.net/{tid}/`, `appid`,
//! `appidacr`, `oid`, `tid`, `scp` for delegated tokens and `idtyp = "app"` for app-only ones.

use crate::pki::CertifiedKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Claims of an emulator access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    /// Audience: the Dataverse org URL the token was requested for.
    pub aud: String,
    /// Issuer.
    pub iss: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Client (application) id.
    pub appid: String,
    /// How the client authenticated: "0" public, "1" secret, "2" certificate.
    pub appidacr: String,
    /// Object id of the user, or of the app's service principal for app-only tokens.
    pub oid: String,
    /// Subject.
    pub sub: String,
    /// Tenant id.
    pub tid: String,
    /// Delegated scopes (space separated), absent for app-only tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    /// `"app"` for app-only tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idtyp: Option<String>,
    /// User principal name (delegated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// User display name (delegated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Unique token id.
    pub uti: String,
    /// Token version.
    pub ver: String,
}

impl AccessClaims {
    /// Whether the token is app-only (client credentials).
    pub fn is_app_only(&self) -> bool {
        self.scp.is_none()
    }
}

/// The v1 issuer for tenant `tid`.
pub fn v1_issuer(tid: &str) -> String {
    format!("https://sts.windows.net/{tid}/")
}

/// Signs `claims` (any JSON object) as an RS256 JWT with `key`.
pub fn sign_jwt(key: &CertifiedKey, claims: &impl Serialize) -> String {
    let kid = key.x5t();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5t": kid, "kid": kid});
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("header serializes"));
    let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signing_input = format!("{h}.{c}");
    let sig = key.key.sign_rs256(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// A decoded but not yet verified JWT.
#[derive(Debug)]
pub struct UnverifiedJwt {
    /// The JOSE header.
    pub header: Value,
    /// The claims.
    pub claims: Value,
    /// `header.claims` as sent (the signed bytes).
    pub signing_input: String,
    /// The signature bytes.
    pub signature: Vec<u8>,
}

/// Why a JWT could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// The signature does not verify.
    #[error("the token signature is invalid")]
    BadSignature,
    /// `exp` has passed.
    #[error("the token is expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not yet valid")]
    NotYetValid,
    /// `aud` is not this environment.
    #[error("the token audience '{0}' is not this environment")]
    WrongAudience(String),
    /// `tid`/`iss` is not this tenant.
    #[error("the token was issued for another tenant")]
    WrongTenant,
}

/// Splits and decodes a compact JWT without verifying it.
pub fn decode_unverified(token: &str) -> Result<UnverifiedJwt, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed);
    };
    let dec = |p: &str| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).map_err(|_| JwtError::Malformed);
    let header: Value = serde_json::from_slice(&dec(h)?).map_err(|_| JwtError::Malformed)?;
    let claims: Value = serde_json::from_slice(&dec(c)?).map_err(|_| JwtError::Malformed)?;
    if !header.is_object() || !claims.is_object() {
        return Err(JwtError::Malformed);
    }
    Ok(UnverifiedJwt { header, claims, signing_input: format!("{h}.{c}"), signature: dec(s)? })
}

/// Verifies an access token issued by this emulator for one of `audiences` in tenant `tid`.
/// `skew_secs` is the clock tolerance applied to `exp` and `nbf`.
pub fn validate_access_token(
    key: &CertifiedKey,
    token: &str,
    audiences: &[String],
    tid: &str,
    now: i64,
    skew_secs: i64,
) -> Result<AccessClaims, JwtError> {
    let jwt = decode_unverified(token)?;
    if jwt.header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(JwtError::BadSignature);
    }
    if !crate::pki::verify_rsa("RS256", &key.cert_der, jwt.signing_input.as_bytes(), &jwt.signature) {
        return Err(JwtError::BadSignature);
    }
    let claims: AccessClaims = serde_json::from_value(jwt.claims).map_err(|_| JwtError::Malformed)?;
    let aud = claims.aud.trim_end_matches('/');
    if !audiences.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(aud)) {
        return Err(JwtError::WrongAudience(claims.aud.clone()));
    }
    if claims.tid != tid || claims.iss != v1_issuer(tid) {
        return Err(JwtError::WrongTenant);
    }
    if now > claims.exp + skew_secs {
        return Err(JwtError::Expired);
    }
    if now + skew_secs < claims.nbf {
        return Err(JwtError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            aud: "https://localhost:8443".into(),
            iss: v1_issuer("t"),
            iat: now,
            nbf: now,
            exp: now + 60,
            appid: "a".into(),
            appidacr: "1".into(),
            oid: "o".into(),
            sub: "o".into(),
            tid: "t".into(),
            scp: None,
            idtyp: Some("app".into()),
            upn: None,
            name: None,
            uti: "u".into(),
            ver: "1.0".into(),
        }
    }

    #[test]
    fn round_trip_and_every_rejection() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::pki::load_or_create_signing_key(dir.path()).unwrap();
        let other = crate::pki::load_or_create_app_cert(dir.path(), "other", "other").unwrap().0;
        let auds = vec!["https://localhost:8443/".to_string()];
        let t = sign_jwt(&key, &claims(1000));
        assert_eq!(validate_access_token(&key, &t, &auds, "t", 1000, 0).unwrap(), claims(1000));
        assert_eq!(validate_access_token(&key, &t, &auds, "t", 1061, 0), Err(JwtError::Expired));
        assert!(validate_access_token(&key, &t, &auds, "t", 1061, 300).is_ok());
        assert_eq!(validate_access_token(&key, &t, &auds, "t", 900, 0), Err(JwtError::NotYetValid));
        assert_eq!(validate_access_token(&key, &t, &auds, "x", 1000, 0), Err(JwtError::WrongTenant));
        let other_aud = vec!["https://other".to_string()];
        assert!(matches!(validate_access_token(&key, &t, &other_aud, "t", 1000, 0), Err(JwtError::WrongAudience(_))));
        let forged = sign_jwt(&other, &claims(1000));
        assert_eq!(validate_access_token(&key, &forged, &auds, "t", 1000, 0), Err(JwtError::BadSignature));
        assert_eq!(validate_access_token(&key, "abc", &auds, "t", 1000, 0), Err(JwtError::Malformed));
    }
}
