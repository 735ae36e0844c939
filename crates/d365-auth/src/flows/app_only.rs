//! App-only flows (client credentials, reference `entra-id-oauth.md` §4): with a client
//! secret, a certificate assertion, or a federated (workload identity) assertion. The tenant is
//! `AzureTenant`, or discovered once from the Web API's 401 challenge.

use std::sync::Arc;

use crate::cache::TokenSource;
use crate::cloud::Authority;
use crate::provider::Context;
use crate::token_client::{ClientCredential, TokenClient};
use crate::{AccessToken, AuthError};

/// Client credentials with any credential.
#[derive(Debug)]
pub struct ClientCredentialsSource {
    ctx: Arc<Context>,
    client_id: String,
    credential: ClientCredential,
    flow: &'static str,
}

impl ClientCredentialsSource {
    /// A source for `client_id` with `credential`; `flow` names it (`client_credentials`, …).
    pub(crate) fn new(ctx: Arc<Context>, client_id: String, credential: ClientCredential, flow: &'static str) -> Self {
        Self { ctx, client_id, credential, flow }
    }

    async fn client(&self) -> Result<TokenClient, AuthError> {
        let authority: Authority = self.ctx.app_authority().await?;
        Ok(TokenClient::new(
            self.ctx.http.clone(),
            authority,
            self.client_id.clone(),
            self.credential.clone(),
            self.ctx.options.clock.clone(),
        ))
    }
}

#[async_trait::async_trait]
impl TokenSource for ClientCredentialsSource {
    async fn fetch(&self, _rejected: Option<&AccessToken>) -> Result<AccessToken, AuthError> {
        let client = self.client().await?;
        let t = client.client_credentials(&self.ctx.config.app_scope()).await?;
        tracing::info!(flow = self.flow, client_id = %self.client_id, expires_in = ?t.expires_in, "app-only token obtained");
        Ok(t.access())
    }

    fn flow_name(&self) -> &'static str {
        self.flow
    }
}
