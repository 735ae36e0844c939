//! AD FS sign-in for on-premises Finance & Operations (`AuthScheme=ADFS`).
//!
//! On premises, the environment trusts an AD FS server rather than Entra ID. Tokens come from
//! `{ADFSServer}/adfs/oauth2/token` in the OAuth 2.0 v1 style: the environment is named by a
//! `resource` form field (the environment URL without trailing slash), not a `scope`. Two
//! grants are supported: client credentials (`OAuthClientId` + `OAuthClientSecret`, a server
//! application of an AD FS application group) and the resource-owner password grant (`User`,
//! `Password`, `OAuthClientId`). A new token is fetched when the cached one nears expiry; the
//! password grant's refresh token is not kept (the password is at hand, and nothing is stored
//! on disk).
//!
//! AD FS answers errors in the OAuth shape (`{"error":"invalid_client","error_description":
//! "MSIS…"}`), parsed into the same [`crate::EntraError`] as Entra's.

use std::sync::Arc;

use serde::Deserialize;
use url::Url;

use crate::cache::TokenSource;
use crate::provider::{Context, Flow};
use crate::token_client::{number, snippet};
use crate::{AccessToken, AuthError, ConfigError, EntraError, Secret};

/// The token endpoint of AD FS server `server` (`https://adfs.contoso.com` or a pasted
/// `…/adfs` or `…/adfs/oauth2/token`).
pub fn token_endpoint(server: &Url) -> Result<Url, ConfigError> {
    let base = server.as_str().trim_end_matches('/');
    let lower = base.to_ascii_lowercase();
    let text = if lower.ends_with("/adfs/oauth2/token") {
        base.to_string()
    } else if lower.ends_with("/adfs") {
        format!("{base}/oauth2/token")
    } else {
        format!("{base}/adfs/oauth2/token")
    };
    Url::parse(&text).map_err(|e| ConfigError::InvalidValue {
        key: "ADFSServer",
        value: server.to_string(),
        expected: format!("the AD FS server URL, such as https://adfs.contoso.com ({e})"),
    })
}

/// What an AD FS grant sends besides the client id and the resource.
enum Grant {
    ClientSecret(Secret),
    Password { user: String, password: Secret, secret: Option<Secret> },
}

/// A token source for one AD FS grant.
pub struct AdfsSource {
    ctx: Arc<Context>,
    endpoint: Url,
    client_id: String,
    grant: Grant,
}

impl std::fmt::Debug for AdfsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdfsSource")
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .field("grant", &self.flow_name())
            .finish()
    }
}

#[derive(Deserialize)]
struct RawToken {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl AdfsSource {
    /// The source of `flow` (one of the AD FS flows), from the connection's properties.
    pub(crate) fn new(ctx: Arc<Context>, flow: Flow) -> Result<Self, AuthError> {
        let c = &ctx.config;
        let missing = |key: &'static str| ConfigError::MissingKey {
            key,
            flow: "AuthScheme=ADFS".into(),
            alternatives: String::new(),
        };
        let server = c.adfs_server.as_ref().ok_or_else(|| missing("ADFSServer"))?;
        let endpoint = token_endpoint(server)?;
        let client_id = c.client_id.clone().ok_or_else(|| missing("OAuthClientId"))?;
        let grant = match flow {
            Flow::AdfsPassword => Grant::Password {
                user: c.user.clone().ok_or_else(|| missing("User"))?,
                password: c.password.clone().ok_or_else(|| missing("Password"))?,
                secret: c.client_secret.clone(),
            },
            _ => Grant::ClientSecret(c.client_secret.clone().ok_or_else(|| missing("OAuthClientSecret"))?),
        };
        Ok(Self { ctx, endpoint, client_id, grant })
    }

    fn form(&self) -> Vec<(&'static str, String)> {
        let mut form = vec![("client_id", self.client_id.clone()), ("resource", self.ctx.config.resource())];
        match &self.grant {
            Grant::ClientSecret(s) => {
                form.push(("grant_type", "client_credentials".into()));
                form.push(("client_secret", s.expose().to_string()));
            }
            Grant::Password { user, password, secret } => {
                form.push(("grant_type", "password".into()));
                form.push(("username", user.clone()));
                form.push(("password", password.expose().to_string()));
                if let Some(s) = secret {
                    form.push(("client_secret", s.expose().to_string()));
                }
            }
        }
        form
    }
}

#[async_trait::async_trait]
impl TokenSource for AdfsSource {
    async fn fetch(&self, _rejected: Option<&AccessToken>) -> Result<AccessToken, AuthError> {
        let action = format!("AD FS token request ({})", self.flow_name());
        tracing::debug!(endpoint = %self.endpoint, flow = self.flow_name(), client_id = %self.client_id, "AD FS request");
        let resp = self
            .ctx
            .http
            .post(self.endpoint.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&self.form())
            .send()
            .await
            .map_err(|e| AuthError::http(format!("{action} to {}", self.endpoint), &e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| AuthError::http(format!("{action} to {}", self.endpoint), &e))?;
        if status != 200 {
            return Err(match EntraError::from_body(&action, status, &body) {
                Some(e) => AuthError::Entra(Box::new(e)),
                None => AuthError::UnexpectedResponse { action, status, detail: snippet(&body) },
            });
        }
        let raw: RawToken = serde_json::from_slice(&body).map_err(|e| AuthError::UnexpectedResponse {
            action: action.clone(),
            status,
            detail: format!("not a token answer (JSON error at line {}, column {})", e.line(), e.column()),
        })?;
        let expires_at =
            raw.expires_in.as_ref().and_then(number).map(|s| self.ctx.options.clock.now() + time::Duration::seconds(s));
        tracing::info!(flow = self.flow_name(), client_id = %self.client_id, "AD FS token obtained");
        Ok(AccessToken::new(raw.access_token, expires_at))
    }

    fn flow_name(&self) -> &'static str {
        match self.grant {
            Grant::ClientSecret(_) => "adfs_client_credentials",
            Grant::Password { .. } => "adfs_password",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_endpoint_is_found_from_any_pasted_form() {
        for given in [
            "https://adfs.contoso.com",
            "https://adfs.contoso.com/",
            "https://adfs.contoso.com/adfs",
            "https://adfs.contoso.com/adfs/oauth2/token",
        ] {
            let u = Url::parse(given).unwrap();
            assert_eq!(token_endpoint(&u).unwrap().as_str(), "https://adfs.contoso.com/adfs/oauth2/token", "{given}");
        }
    }
}
