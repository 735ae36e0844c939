//! Delegated flows (a user signed in, `AuthScheme=AzureAD`), all backed by the token store:
//!
//! 1. `OAuthVerifier` (headless option 1): a code obtained on another machine is redeemed once
//!    and the tokens stored; the store remembers a hash of it so it is not redeemed again;
//! 2. `InitiateOAuth=REFRESH` with `OAuthAccessToken`/`OAuthRefreshToken`: the given tokens
//!    seed the store (again when different ones are given), then the refresh token is used and
//!    each new refresh token replaces the old one (rotation);
//! 3. a stored access token that is still fresh (and is not the one just rejected);
//! 4. the stored refresh token;
//! 5. `InitiateOAuth=GETANDREFRESH` only: an interactive sign-in (browser with a loopback
//!    listener, or device code), when nothing else works.
//!
//! The store's lock is held from reading to writing, so two processes sharing one settings
//! file do one refresh: the second finds the first one's fresh token.

use std::sync::Arc;

use base64::Engine;

use crate::cache::{TokenSource, is_fresh};
use crate::flows::{auth_code, device_code};
use crate::options::Interactive;
use crate::provider::Context;
use crate::token_client::{TokenClient, TokenResponse, unverified_claims};
use crate::token_store::{StoreData, StoreGuard, StoredTokens, TokenStore};
use crate::{AccessToken, AuthError, Secret};

/// How a delegated connection was configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegatedMode {
    /// `InitiateOAuth=GETANDREFRESH`: may sign in interactively.
    GetAndRefresh,
    /// `InitiateOAuth=REFRESH`: refresh only.
    Refresh,
}

/// The delegated token source.
#[derive(Debug)]
pub struct DelegatedSource {
    ctx: Arc<Context>,
    client: TokenClient,
    store: TokenStore,
    key: String,
    scope: String,
    mode: DelegatedMode,
}

fn sha256_hex(s: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The expiry of an access token: given, else the JWT's `exp`.
fn expiry_of(token: &str, given: Option<i64>) -> Option<i64> {
    given.or_else(|| unverified_claims(token).and_then(|c| c.get("exp").and_then(serde_json::Value::as_i64)))
}

impl DelegatedSource {
    pub(crate) fn new(
        ctx: Arc<Context>,
        client: TokenClient,
        store: TokenStore,
        key: String,
        mode: DelegatedMode,
    ) -> Self {
        let scope = ctx.config.delegated_scope();
        Self { ctx, client, store, key, scope, mode }
    }

    /// The store this source uses.
    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    fn now(&self) -> i64 {
        self.ctx.options.clock.now().unix_timestamp()
    }

    fn fresh(&self, entry: &StoredTokens, at: &str) -> bool {
        let Some(exp) = expiry_of(at, entry.expires_at) else { return false };
        let t = |s: i64| time::OffsetDateTime::from_unix_timestamp(s).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let obtained = if entry.updated_at > 0 && entry.updated_at < exp { entry.updated_at } else { exp - 3600 };
        is_fresh(Some(t(exp)), t(obtained), self.ctx.options.clock.now(), self.ctx.options.refresh_margin)
    }

    fn save(
        &self,
        guard: &mut StoreGuard,
        data: &mut StoreData,
        prev: StoredTokens,
        t: TokenResponse,
        flow: &str,
        seed: Option<String>,
    ) -> Result<AccessToken, AuthError> {
        let entry = StoredTokens {
            access_token: Some(t.access_token.expose().to_string()),
            expires_at: t.expires_at.map(time::OffsetDateTime::unix_timestamp),
            refresh_token: t.refresh_token.as_ref().map(|r| r.expose().to_string()).or(prev.refresh_token),
            scope: t.scope.clone().or(prev.scope),
            username: t.username.clone().or(prev.username),
            tenant_id: t.tenant_id.clone().or(prev.tenant_id),
            flow: flow.to_string(),
            updated_at: self.now(),
            verifier_sha256: seed.or(prev.verifier_sha256),
        };
        data.entries.insert(self.key.clone(), entry);
        guard.write(data)?;
        tracing::info!(flow, store = %self.store.location(), rotated = t.refresh_token.is_some(), "delegated tokens stored");
        Ok(t.access())
    }

    /// Adds the admin-consent link to AADSTS65001 errors.
    fn consent_hint(&self, e: AuthError) -> AuthError {
        match e {
            AuthError::Entra(err)
                if err.code == Some(65001)
                    || err.suberror.as_deref() == Some("consent_required")
                    || err.error == "consent_required" =>
            {
                let url = crate::procedures::admin_consent_url(&self.ctx, None, None);
                let hint = format!(
                    "nobody has consented to this app in the tenant: an administrator must open {url} and accept (or grant consent in the Azure portal)"
                );
                AuthError::Entra(Box::new(err.with_hint(hint)))
            }
            other => other,
        }
    }

    /// Gets a token; `force_sign_in` skips everything stored (for `d365 login`).
    pub(crate) async fn obtain(
        &self,
        rejected: Option<&AccessToken>,
        force_sign_in: bool,
    ) -> Result<AccessToken, AuthError> {
        let cfg = &self.ctx.config;
        let mut guard = self.store.lock().await?;
        let mut data = guard.read()?;
        let mut entry = data.entries.get(&self.key).cloned().unwrap_or_default();
        let mut seeded = false;

        if !force_sign_in {
            if let Some(v) = &cfg.verifier {
                let h = sha256_hex(v.expose());
                if entry.verifier_sha256.as_deref() != Some(h.as_str()) {
                    tracing::info!("redeeming OAuthVerifier");
                    let t = self
                        .client
                        .authorization_code(v, &cfg.callback_url, None, &self.scope)
                        .await
                        .map_err(|e| self.consent_hint(e))?;
                    return self.save(&mut guard, &mut data, entry, t, "oauth_verifier", Some(h));
                }
            }
            if self.mode == DelegatedMode::Refresh
                && let Some(rt) = &cfg.refresh_token
            {
                let h = sha256_hex(rt.expose());
                if entry.verifier_sha256.as_deref() != Some(h.as_str()) {
                    let given_exp = match (cfg.token_timestamp_ms, cfg.expires_in) {
                        (Some(ms), Some(s)) => Some(ms / 1000 + s),
                        _ => None,
                    };
                    entry = StoredTokens {
                        access_token: cfg.access_token.as_ref().map(|a| a.expose().to_string()),
                        expires_at: cfg.access_token.as_ref().and_then(|a| expiry_of(a.expose(), given_exp)),
                        refresh_token: Some(rt.expose().to_string()),
                        flow: "refresh_token".into(),
                        updated_at: cfg.token_timestamp_ms.map(|ms| ms / 1000).unwrap_or_default(),
                        verifier_sha256: Some(h),
                        ..Default::default()
                    };
                    seeded = true;
                }
            }
            if let Some(at) = entry.access_token.clone()
                && self.fresh(&entry, &at)
                && rejected.is_none_or(|r| r.secret() != at)
            {
                if seeded {
                    data.entries.insert(self.key.clone(), entry.clone());
                    guard.write(&data)?;
                }
                let exp =
                    expiry_of(&at, entry.expires_at).and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
                tracing::debug!(store = %self.store.location(), "using the stored access token");
                return Ok(AccessToken::new(at, exp));
            }
            if let Some(rt) = entry.refresh_token.clone() {
                match self.client.refresh_token(&Secret::from(rt), &self.scope).await {
                    Ok(t) => {
                        let flow = if entry.flow.is_empty() { "refresh_token".to_string() } else { entry.flow.clone() };
                        return self.save(&mut guard, &mut data, entry, t, &flow, None);
                    }
                    Err(AuthError::Entra(e))
                        if e.is_invalid_grant()
                            && self.mode == DelegatedMode::GetAndRefresh
                            && self.ctx.options.interactive != Interactive::Never =>
                    {
                        tracing::info!(code = ?e.code, "the stored refresh token was refused: signing in again");
                    }
                    Err(e) => return Err(self.consent_hint(e)),
                }
            }
        }

        if self.mode == DelegatedMode::Refresh {
            return Err(AuthError::InteractionRequired {
                reason: "InitiateOAuth=REFRESH has no usable token (give OAuthRefreshToken, or use InitiateOAuth=GETANDREFRESH)".into(),
            });
        }
        let t = match self.ctx.options.interactive {
            Interactive::Never => {
                return Err(AuthError::InteractionRequired {
                    reason: format!("no usable sign-in is stored in {}", self.store.location()),
                });
            }
            Interactive::Browser => {
                let browser = match (&self.ctx.options.browser, &cfg.browser_command) {
                    (Some(b), _) => b.clone(),
                    (None, Some(cmd)) => crate::options::command_opener(cmd),
                    (None, None) => crate::options::system_opener(),
                };
                auth_code::sign_in(
                    &self.client,
                    auth_code::Desktop {
                        callback: &cfg.callback_url,
                        scope: &self.scope,
                        prompt: cfg.prompt.as_deref(),
                        browser,
                        show_url: self.ctx.options.on_sign_in_url.as_ref(),
                        timeout: self.ctx.options.sign_in_timeout,
                    },
                )
                .await
            }
            Interactive::DeviceCode => {
                device_code::sign_in(
                    &self.client,
                    &self.scope,
                    &self.ctx.options.on_device_code,
                    self.ctx.options.clock.as_ref(),
                )
                .await
            }
        }
        .map_err(|e| self.consent_hint(e))?;
        let flow = match self.ctx.options.interactive {
            Interactive::DeviceCode => "device_code",
            _ => "authorization_code",
        };
        let seed = entry.verifier_sha256.clone();
        self.save(&mut guard, &mut data, StoredTokens { verifier_sha256: seed, ..Default::default() }, t, flow, None)
    }
}

#[async_trait::async_trait]
impl TokenSource for DelegatedSource {
    async fn fetch(&self, rejected: Option<&AccessToken>) -> Result<AccessToken, AuthError> {
        self.obtain(rejected, false).await
    }

    fn flow_name(&self) -> &'static str {
        match (self.mode, self.ctx.config.verifier.is_some(), self.ctx.options.interactive) {
            (DelegatedMode::Refresh, _, _) => "refresh_token",
            (_, true, _) => "oauth_verifier",
            (_, _, Interactive::DeviceCode) => "device_code",
            _ => "authorization_code",
        }
    }
}

/// A short, stable file name for a sign-in key.
pub fn default_file_name(entry_key: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, entry_key.as_bytes());
    format!("{}.bin", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d.as_ref()[..18]))
}

/// Stores tokens obtained outside a provider (the OAuth procedures) in the connection's token
/// store, as the sign-in of this connection.
pub(crate) async fn store_tokens(ctx: &Context, t: &TokenResponse, flow: &str) -> Result<String, AuthError> {
    let (store, key) = ctx.delegated_store()?;
    let mut guard = store.lock().await?;
    let mut data = guard.read()?;
    let prev = data.entries.get(&key).cloned().unwrap_or_default();
    data.entries.insert(
        key,
        StoredTokens {
            access_token: Some(t.access_token.expose().to_string()),
            expires_at: t.expires_at.map(time::OffsetDateTime::unix_timestamp),
            refresh_token: t.refresh_token.as_ref().map(|r| r.expose().to_string()).or(prev.refresh_token),
            scope: t.scope.clone(),
            username: t.username.clone().or(prev.username),
            tenant_id: t.tenant_id.clone().or(prev.tenant_id),
            flow: flow.to_string(),
            updated_at: ctx.options.clock.now().unix_timestamp(),
            verifier_sha256: prev.verifier_sha256,
        },
    );
    guard.write(&data)?;
    Ok(store.location())
}
