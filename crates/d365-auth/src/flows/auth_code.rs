//! The authorization-code flow: building the `/authorize` URL (shared with the
//! `GetOAuthAuthorizationUrl` procedure), PKCE (S256), and the desktop sign-in: loopback
//! listener on `CallbackURL`, the browser opened on the URL (which is always shown too), the
//! `state` checked, the code redeemed (reference `entra-id-oauth.md` §2).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;

use crate::cloud::Authority;
use crate::flows::loopback::Loopback;
use crate::options::BrowserOpener;
use crate::token_client::{TokenClient, TokenResponse};
use crate::{AuthError, Secret};

/// A PKCE pair.
#[derive(Clone)]
pub struct Pkce {
    /// The verifier (43 characters of `[A-Za-z0-9-_]`), sent at redemption.
    pub verifier: Secret,
    /// `BASE64URL(SHA256(verifier))`, sent on the authorize URL.
    pub challenge: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce").field("challenge", &self.challenge).finish_non_exhaustive()
    }
}

/// `n` random bytes, base64url without padding.
pub fn random_string(n: usize) -> String {
    let mut b = vec![0u8; n];
    // aws-lc-rs's RNG only fails when the OS has no entropy source; fall back to UUIDs then
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        b = (0..n.div_ceil(16)).flat_map(|_| *uuid::Uuid::new_v4().as_bytes()).take(n).collect();
    }
    URL_SAFE_NO_PAD.encode(b)
}

impl Pkce {
    /// A fresh pair.
    pub fn new() -> Self {
        let verifier = random_string(32);
        let challenge =
            URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
        Self { verifier: Secret::from(verifier), challenge }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// The parameters of an authorize request.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest<'a> {
    /// Authority.
    pub authority: &'a Authority,
    /// App.
    pub client_id: &'a str,
    /// Redirect URI.
    pub redirect_uri: &'a str,
    /// Scope.
    pub scope: &'a str,
    /// `state`.
    pub state: &'a str,
    /// `prompt` (default `select_account`).
    pub prompt: Option<&'a str>,
    /// PKCE challenge (S256).
    pub code_challenge: Option<&'a str>,
}

/// The `/authorize` URL.
pub fn authorize_url(r: &AuthorizeRequest<'_>) -> Url {
    let mut u = r.authority.authorize_endpoint();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("client_id", r.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", r.redirect_uri)
            .append_pair("response_mode", "query")
            .append_pair("scope", r.scope)
            .append_pair("state", r.state)
            .append_pair("prompt", r.prompt.unwrap_or("select_account"));
        if let Some(c) = r.code_challenge {
            q.append_pair("code_challenge", c).append_pair("code_challenge_method", "S256");
        }
    }
    u
}

/// Everything the desktop sign-in needs besides the token client.
pub struct Desktop<'a> {
    /// `CallbackURL` as written.
    pub callback: &'a str,
    /// Scope.
    pub scope: &'a str,
    /// `Prompt`.
    pub prompt: Option<&'a str>,
    /// Opens the browser.
    pub browser: BrowserOpener,
    /// Shows the URL.
    pub show_url: &'a (dyn Fn(&str) + Send + Sync),
    /// How long to wait for the browser.
    pub timeout: Duration,
}

/// Runs the desktop sign-in and redeems the code.
pub async fn sign_in(client: &TokenClient, d: Desktop<'_>) -> Result<TokenResponse, AuthError> {
    let listener = Loopback::bind(d.callback).await?;
    let pkce = Pkce::new();
    let state = random_string(16);
    let url = authorize_url(&AuthorizeRequest {
        authority: client.authority(),
        client_id: client.client_id(),
        redirect_uri: listener.redirect_uri(),
        scope: d.scope,
        state: &state,
        prompt: d.prompt,
        code_challenge: Some(&pkce.challenge),
    });
    tracing::info!(redirect_uri = listener.redirect_uri(), "desktop sign-in: waiting for the browser");
    (d.show_url)(url.as_str());
    let mut browser = (d.browser)(url.to_string());
    let mut browser_done = false;
    let code = {
        let wait = listener.wait(&state, d.timeout);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                r = &mut wait => break r?,
                b = &mut browser, if !browser_done => {
                    browser_done = true;
                    if let Err(message) = b {
                        return Err(AuthError::Browser { message, url: url.to_string() });
                    }
                }
            }
        }
    };
    drop(listener);
    client.authorization_code(&code, &redirect_of(&url), Some(&pkce.verifier), d.scope).await
}

/// The `redirect_uri` parameter of an authorize URL.
fn redirect_of(url: &Url) -> String {
    url.query_pairs().find(|(k, _)| k == "redirect_uri").map(|(_, v)| v.into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_and_url() {
        let p = Pkce::new();
        assert_eq!(p.verifier.expose().len(), 43);
        assert_eq!(p.challenge.len(), 43);
        let a = Authority::new(Url::parse("https://login.microsoftonline.com").unwrap(), "organizations");
        let u = authorize_url(&AuthorizeRequest {
            authority: &a,
            client_id: "c",
            redirect_uri: "http://localhost:33333",
            scope: "https://o.crm.dynamics.com/user_impersonation offline_access",
            state: "st",
            prompt: None,
            code_challenge: Some(&p.challenge),
        });
        assert!(u.as_str().starts_with("https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize?client_id=c&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%3A33333"));
        assert_eq!(redirect_of(&u), "http://localhost:33333");
        assert!(u.as_str().contains("code_challenge_method=S256"));
    }
}
