//! The Entra ID token endpoint client: form POSTs for each grant (client credentials,
//! authorization code, refresh token, device code), with the client's credential (none for
//! public clients, a secret, or a JWT assertion), and Entra's error answers parsed into
//! [`EntraError`] (reference `entra-id-oauth.md` §2.3, §3, §4, §5, §7).
//!
//! Only grant types, endpoints and HTTP statuses are logged, never a form value or a body.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::cloud::Authority;
use crate::{AccessToken, AuthError, EntraError, Secret};

/// The `client_assertion_type` for JWT assertions.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The device-code grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Makes a client assertion for one token request (a certificate-signed JWT, or a federated
/// token read from its file).
pub trait AssertionSource: Send + Sync + fmt::Debug {
    /// A fresh assertion for the token endpoint `audience`.
    fn assertion(&self, audience: &str) -> Result<Secret, AuthError>;

    /// Words for messages ("certificate", "federated token").
    fn kind(&self) -> &'static str;
}

/// How the client authenticates itself at the token endpoint.
#[derive(Clone, Debug)]
pub enum ClientCredential {
    /// A public client: nothing.
    None,
    /// A client secret (`client_secret`).
    Secret(Secret),
    /// A client assertion (`client_assertion`).
    Assertion(Arc<dyn AssertionSource>),
}

impl ClientCredential {
    /// Words for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            ClientCredential::None => "public client",
            ClientCredential::Secret(_) => "client secret",
            ClientCredential::Assertion(a) => a.kind(),
        }
    }
}

/// A successful token answer.
#[derive(Clone)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: Secret,
    /// The refresh token, when `offline_access` was granted.
    pub refresh_token: Option<Secret>,
    /// When the access token expires (from `expires_in`).
    pub expires_at: Option<OffsetDateTime>,
    /// `expires_in`, seconds.
    pub expires_in: Option<i64>,
    /// Granted scope.
    pub scope: Option<String>,
    /// `preferred_username` of the ID token, if there was one.
    pub username: Option<String>,
    /// `tid` of the ID token, if there was one.
    pub tenant_id: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("username", &self.username)
            .finish()
    }
}

impl TokenResponse {
    /// The access token as an [`AccessToken`].
    pub fn access(&self) -> AccessToken {
        AccessToken::new(self.access_token.expose(), self.expires_at)
    }
}

#[derive(Deserialize)]
struct RawToken {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
}

/// A number or a numeric string (v1 and managed-identity endpoints send strings).
pub(crate) fn number(v: &serde_json::Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The claims of a JWT, unverified (for display only: user name, tenant).
pub fn unverified_claims(jwt: &str) -> Option<serde_json::Value> {
    let part = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?).ok()
}

/// What the device-code endpoint answered.
#[derive(Clone, Deserialize)]
pub struct DeviceCode {
    /// The code the user types.
    pub user_code: String,
    /// The page to type it on.
    pub verification_uri: String,
    /// Seconds until the codes expire.
    pub expires_in: u64,
    /// Seconds between polls.
    #[serde(default)]
    pub interval: Option<u64>,
    /// The text to show the user.
    #[serde(default)]
    pub message: Option<String>,
    /// The code to poll with (never shown).
    device_code: String,
}

impl fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCode")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// One poll of the device-code grant.
#[derive(Debug)]
pub enum DevicePoll {
    /// The user has not finished yet.
    Pending,
    /// Polling too fast: add 5 seconds to the interval.
    SlowDown,
    /// Signed in.
    Done(TokenResponse),
}

/// A token endpoint client for one app on one authority.
#[derive(Clone)]
pub struct TokenClient {
    http: reqwest::Client,
    authority: Authority,
    client_id: String,
    credential: ClientCredential,
    clock: Arc<dyn crate::clock::Clock>,
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClient")
            .field("authority", &self.authority.to_string())
            .field("client_id", &self.client_id)
            .field("credential", &self.credential.describe())
            .finish()
    }
}

impl TokenClient {
    /// A client for `client_id` at `authority`.
    pub fn new(
        http: reqwest::Client,
        authority: Authority,
        client_id: impl Into<String>,
        credential: ClientCredential,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Self {
        Self { http, authority, client_id: client_id.into(), credential, clock }
    }

    /// The authority.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The credential.
    pub fn credential(&self) -> &ClientCredential {
        &self.credential
    }

    /// Client credentials grant (app-only).
    pub async fn client_credentials(&self, scope: &str) -> Result<TokenResponse, AuthError> {
        let action = format!("client credentials token request ({})", self.credential.describe());
        self.token(&action, vec![("grant_type", "client_credentials".into()), ("scope", scope.into())]).await
    }

    /// Authorization code grant (with the PKCE verifier when one was used).
    pub async fn authorization_code(
        &self,
        code: &Secret,
        redirect_uri: &str,
        verifier: Option<&Secret>,
        scope: &str,
    ) -> Result<TokenResponse, AuthError> {
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.expose().to_string()),
            ("redirect_uri", redirect_uri.to_string()),
            ("scope", scope.to_string()),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v.expose().to_string()));
        }
        self.token("authorization code redemption", form).await
    }

    /// Refresh token grant.
    pub async fn refresh_token(&self, refresh_token: &Secret, scope: &str) -> Result<TokenResponse, AuthError> {
        let form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.expose().to_string()),
            ("scope", scope.to_string()),
        ];
        self.token("refresh token redemption", form).await
    }

    /// Starts the device-code flow.
    pub async fn device_code(&self, scope: &str) -> Result<DeviceCode, AuthError> {
        let url = self.authority.device_code_endpoint();
        let action = "device code request";
        let form = vec![("client_id", self.client_id.clone()), ("scope", scope.to_string())];
        let (status, body) = self.post(action, &url, &form).await?;
        if status == 200 {
            return serde_json::from_slice(&body).map_err(|e| AuthError::UnexpectedResponse {
                action: action.into(),
                status,
                detail: format!("not a device code answer ({e})"),
            });
        }
        Err(self.error(action, status, &body))
    }

    /// Polls the device-code grant once.
    pub async fn poll_device_code(&self, code: &DeviceCode) -> Result<DevicePoll, AuthError> {
        let form = vec![("grant_type", DEVICE_CODE_GRANT.to_string()), ("device_code", code.device_code.clone())];
        match self.token("device code sign-in", form).await {
            Ok(t) => Ok(DevicePoll::Done(t)),
            Err(AuthError::Entra(e)) if e.error == "authorization_pending" => Ok(DevicePoll::Pending),
            Err(AuthError::Entra(e)) if e.error == "slow_down" => Ok(DevicePoll::SlowDown),
            Err(e) => Err(e),
        }
    }

    async fn token(&self, action: &str, mut form: Vec<(&'static str, String)>) -> Result<TokenResponse, AuthError> {
        let url = self.authority.token_endpoint();
        form.push(("client_id", self.client_id.clone()));
        match &self.credential {
            ClientCredential::None => {}
            ClientCredential::Secret(s) => form.push(("client_secret", s.expose().to_string())),
            ClientCredential::Assertion(a) => {
                form.push(("client_assertion_type", JWT_BEARER.to_string()));
                form.push(("client_assertion", a.assertion(url.as_str())?.expose().to_string()));
            }
        }
        let (status, body) = self.post(action, &url, &form).await?;
        if status != 200 {
            return Err(self.error(action, status, &body));
        }
        let raw: RawToken = serde_json::from_slice(&body).map_err(|e| AuthError::UnexpectedResponse {
            action: action.into(),
            status,
            detail: format!("not a token answer (JSON error at line {}, column {})", e.line(), e.column()),
        })?;
        let expires_in = raw.expires_in.as_ref().and_then(number);
        let claims = raw.id_token.as_deref().and_then(unverified_claims);
        let claim = |n: &str| claims.as_ref().and_then(|c| c.get(n)).and_then(|v| v.as_str()).map(str::to_string);
        Ok(TokenResponse {
            access_token: Secret::from(raw.access_token),
            refresh_token: raw.refresh_token.filter(|r| !r.is_empty()).map(Secret::from),
            expires_at: expires_in.map(|s| self.clock.now() + time::Duration::seconds(s)),
            expires_in,
            scope: raw.scope,
            username: claim("preferred_username").or_else(|| claim("upn")),
            tenant_id: claim("tid"),
        })
    }

    async fn post(&self, action: &str, url: &url::Url, form: &[(&str, String)]) -> Result<(u16, Vec<u8>), AuthError> {
        let grant = form.iter().find(|(k, _)| *k == "grant_type").map(|(_, v)| v.as_str()).unwrap_or("device_code");
        let request_id = uuid::Uuid::new_v4().to_string();
        tracing::debug!(endpoint = %url, grant_type = grant, client_id = %self.client_id, client_request_id = %request_id, "identity request");
        let resp = self
            .http
            .post(url.clone())
            .header("client-request-id", &request_id)
            .header("return-client-request-id", "true")
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .map_err(|e| AuthError::http(format!("{action} to {url}"), &e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| AuthError::http(format!("{action} to {url}"), &e))?;
        tracing::debug!(endpoint = %url, grant_type = grant, status, "identity response");
        Ok((status, body.to_vec()))
    }

    fn error(&self, action: &str, status: u16, body: &[u8]) -> AuthError {
        match EntraError::from_body(action, status, body) {
            Some(e) => {
                tracing::debug!(error = %e.error, code = ?e.code, "identity request refused");
                AuthError::Entra(Box::new(e))
            }
            None => AuthError::UnexpectedResponse { action: action.to_string(), status, detail: snippet(body) },
        }
    }
}

/// The start of a non-token body, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let t = text.trim();
    let cut: String = t.chars().take(200).collect();
    if cut.len() < t.len() {
        format!("{cut}…")
    } else if cut.is_empty() {
        "(empty body)".into()
    } else {
        cut
    }
}
