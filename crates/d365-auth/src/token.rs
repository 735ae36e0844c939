//! The access token and the provider trait every sign-in flow implements.

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::AuthError;

/// A bearer token for the Dataverse Web API. The secret is never shown by `Debug`.
#[derive(Clone)]
pub struct AccessToken {
    secret: Arc<str>,
    expires_at: Option<OffsetDateTime>,
}

impl AccessToken {
    /// Wraps a bearer token; `expires_at` is `None` when the expiry is unknown.
    pub fn new(secret: impl Into<Arc<str>>, expires_at: Option<OffsetDateTime>) -> Self {
        Self { secret: secret.into(), expires_at }
    }

    /// The token to put after `Bearer ` in the `Authorization` header.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// When the token stops being accepted, if known.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.expires_at
    }

    /// Whether two handles carry the same token (used to refresh only once after a 401).
    pub fn same_token(&self, other: &AccessToken) -> bool {
        self.secret == other.secret
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken").field("secret", &"<redacted>").field("expires_at", &self.expires_at).finish()
    }
}

/// Source of access tokens for one connection. Implementations cache tokens and are shared by
/// every request of a connection (`Arc<dyn TokenProvider>`).
#[async_trait::async_trait]
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// A token that is valid now (from the cache while it is fresh).
    async fn token(&self) -> Result<AccessToken, AuthError>;

    /// The Web API answered 401 to `rejected`: return a different, fresh token. When several
    /// requests report the same rejected token concurrently, only one refresh happens.
    async fn refresh_after_rejection(&self, rejected: &AccessToken) -> Result<AccessToken, AuthError>;

    /// A short name of the flow in use, for `whoami` and logs (e.g. `client_credentials`).
    fn flow_name(&self) -> &'static str;
}

/// A fixed token (`InitiateOAuth=OFF` with `OAuthAccessToken`): never refreshed.
#[derive(Debug, Clone)]
pub struct StaticTokenProvider {
    token: AccessToken,
}

impl StaticTokenProvider {
    /// Serves `token` until it is rejected.
    pub fn new(token: AccessToken) -> Self {
        Self { token }
    }
}

#[async_trait::async_trait]
impl TokenProvider for StaticTokenProvider {
    async fn token(&self) -> Result<AccessToken, AuthError> {
        Ok(self.token.clone())
    }

    async fn refresh_after_rejection(&self, _rejected: &AccessToken) -> Result<AccessToken, AuthError> {
        Err(AuthError::GivenTokenRejected)
    }

    fn flow_name(&self) -> &'static str {
        "given_access_token"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let t = AccessToken::new("eyJsecret", None);
        assert!(!format!("{t:?}").contains("eyJsecret"));
    }
}
