//! AD FS access tokens: RS256 JWTs signed with AD FS's own token-signing key (not Entra's),
//! `iss = {base}/adfs`, `aud` = the relying party (`resource`) asked for. App-only tokens carry
//! `appid` and `apptype`; user tokens add `upn`, `unique_name` (`CONTOSO\admin`) and `scp`.

use crate::pki::CertifiedKey;
use crate::token::{JwtError, decode_unverified};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `authmethod` of password-authenticated tokens.
pub const PASSWORD_AUTHMETHOD: &str = "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password";

/// Claims of an AD FS access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AdfsClaims {
    /// Relying party identifier (the `resource` of the request).
    pub aud: String,
    /// `{base}/adfs`.
    pub iss: String,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Client id.
    pub appid: String,
    /// `Confidential` or `Public`.
    pub apptype: String,
    /// How the caller authenticated.
    pub authmethod: String,
    /// When (RFC 3339).
    pub auth_time: String,
    /// `1.0`.
    pub ver: String,
    /// Delegated scope (user tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    /// User principal name (user tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// Down-level logon name `DOMAIN\user` (user tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_name: Option<String>,
}

impl AdfsClaims {
    /// Whether the token is app-only (client credentials).
    pub fn is_app_only(&self) -> bool {
        self.upn.is_none()
    }
}

/// Verifies an AD FS access token: signature by `key`, issuer `issuer`, audience one of
/// `audiences`, and the time window with `skew_secs` tolerance.
pub fn validate(
    key: &CertifiedKey,
    token: &str,
    issuer: &str,
    audiences: &[String],
    now: i64,
    skew_secs: i64,
) -> Result<AdfsClaims, JwtError> {
    let jwt = decode_unverified(token)?;
    if jwt.header.get("alg").and_then(Value::as_str) != Some("RS256")
        || !crate::pki::verify_rsa("RS256", &key.cert_der, jwt.signing_input.as_bytes(), &jwt.signature)
    {
        return Err(JwtError::BadSignature);
    }
    let claims: AdfsClaims = serde_json::from_value(jwt.claims).map_err(|_| JwtError::Malformed)?;
    if claims.iss != issuer {
        return Err(JwtError::WrongTenant);
    }
    let aud = claims.aud.trim_end_matches('/');
    if !audiences.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(aud)) {
        return Err(JwtError::WrongAudience(claims.aud.clone()));
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

    #[test]
    fn round_trip_and_rejections() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::pki::load_or_create_signing_key(dir.path()).unwrap();
        let c = AdfsClaims {
            aud: "https://h/fno-onprem".into(),
            iss: "https://h/adfs".into(),
            iat: 100,
            nbf: 100,
            exp: 200,
            appid: "a".into(),
            apptype: "Confidential".into(),
            authmethod: PASSWORD_AUTHMETHOD.into(),
            auth_time: "x".into(),
            ver: "1.0".into(),
            scp: None,
            upn: None,
            unique_name: None,
        };
        let t = crate::token::sign_jwt(&key, &c);
        let auds = vec!["https://h/fno-onprem".to_string()];
        assert_eq!(validate(&key, &t, "https://h/adfs", &auds, 150, 0).unwrap(), c);
        assert_eq!(validate(&key, &t, "https://other/adfs", &auds, 150, 0), Err(JwtError::WrongTenant));
        assert!(matches!(validate(&key, &t, "https://h/adfs", &["x".into()], 150, 0), Err(JwtError::WrongAudience(_))));
        assert_eq!(validate(&key, &t, "https://h/adfs", &auds, 500, 0), Err(JwtError::Expired));
    }
}
