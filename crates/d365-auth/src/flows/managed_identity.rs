//! Managed identity (reference `entra-id-oauth.md` §9), two protocols:
//!
//! * **App Service / Functions** when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set:
//!   `GET $IDENTITY_ENDPOINT?resource=…&api-version=2019-08-01` with `X-IDENTITY-HEADER`;
//! * **IMDS** (Azure VMs) otherwise: `GET {base}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`
//!   with `Metadata: true`, where `base` is `AzureMSIEndpoint`, else
//!   `AZURE_POD_IDENTITY_AUTHORITY_HOST`, else `http://169.254.169.254` (never through a proxy).
//!
//! `OAuthClientId` selects a user-assigned identity. Throttling (429) and server errors are
//! retried three times with backoff.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use crate::cache::TokenSource;
use crate::provider::Context;
use crate::token_client::{number, snippet};
use crate::{AccessToken, AuthError};

const IMDS: &str = "http://169.254.169.254";
const IMDS_PATH: &str = "/metadata/identity/oauth2/token";

/// The managed identity source.
#[derive(Debug)]
pub struct ManagedIdentitySource {
    ctx: Arc<Context>,
    http: reqwest::Client,
}

impl ManagedIdentitySource {
    pub(crate) fn new(ctx: Arc<Context>) -> Result<Self, AuthError> {
        let http = crate::http::client_builder(&ctx.config)?
            .no_proxy()
            .build()
            .map_err(|e| AuthError::http("setting up the managed identity client", &e))?;
        Ok(Self { ctx, http })
    }

    fn request(&self) -> Result<(reqwest::RequestBuilder, String), AuthError> {
        let env = &self.ctx.options.environment;
        let resource = self.ctx.config.resource();
        let client_id = self.ctx.config.client_id.clone();
        let bad = |what: &str, v: &str, e: url::ParseError| {
            AuthError::Config(crate::ConfigError::Invalid(format!("{what} is not a URL ({v}): {e}")))
        };
        if let (Some(endpoint), Some(header)) = (env.get("IDENTITY_ENDPOINT"), env.get("IDENTITY_HEADER")) {
            let mut url = Url::parse(endpoint).map_err(|e| bad("IDENTITY_ENDPOINT", endpoint, e))?;
            url.query_pairs_mut().append_pair("api-version", "2019-08-01").append_pair("resource", &resource);
            if let Some(c) = &client_id {
                url.query_pairs_mut().append_pair("client_id", c);
            }
            let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
            return Ok((self.http.get(url).header("X-IDENTITY-HEADER", header), shown));
        }
        let base = match (&self.ctx.config.msi_endpoint, env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST")) {
            (Some(u), _) => u.to_string(),
            (None, Some(h)) => h.to_string(),
            (None, None) => IMDS.to_string(),
        };
        let full =
            if base.contains(IMDS_PATH) { base.clone() } else { format!("{}{IMDS_PATH}", base.trim_end_matches('/')) };
        let mut url = Url::parse(&full).map_err(|e| bad("the IMDS endpoint", &full, e))?;
        url.query_pairs_mut().append_pair("api-version", "2018-02-01").append_pair("resource", &resource);
        if let Some(c) = &client_id {
            url.query_pairs_mut().append_pair("client_id", c);
        }
        let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
        Ok((self.http.get(url).header("Metadata", "true"), shown))
    }
}

fn hint(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("identity not found") || m.contains("unable to load") {
        " (likely fix: assign a managed identity to this Azure resource; for a user-assigned identity set OAuthClientId to its client id)"
    } else if m.contains("aadsts500011") || m.contains("resource principal") {
        " (likely fix: OrganizationUrl is not a Dataverse environment of the identity's tenant)"
    } else if m.contains("header") {
        " (likely fix: IDENTITY_HEADER must be the value the platform set)"
    } else {
        ""
    }
}

#[async_trait::async_trait]
impl TokenSource for ManagedIdentitySource {
    async fn fetch(&self, _rejected: Option<&AccessToken>) -> Result<AccessToken, AuthError> {
        let mut delay = Duration::from_secs(1);
        for attempt in 0..4 {
            let (req, endpoint) = self.request()?;
            tracing::debug!(endpoint = %endpoint, attempt, "managed identity request");
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    return Err(AuthError::Http {
                        action: format!("managed identity request to {endpoint}"),
                        message: format!(
                            "{} (AuthScheme=AzureMSI works on Azure resources with a managed identity: a VM, App Service, Functions, Container Apps…)",
                            crate::error::error_chain(&e)
                        ),
                    });
                }
            };
            let status = resp.status().as_u16();
            let body = resp
                .bytes()
                .await
                .map_err(|e| AuthError::http(format!("managed identity request to {endpoint}"), &e))?;
            if status == 200 {
                let v: Value = serde_json::from_slice(&body).map_err(|e| AuthError::UnexpectedResponse {
                    action: format!("managed identity request to {endpoint}"),
                    status,
                    detail: format!("not a token answer ({e})"),
                })?;
                let Some(at) = v.get("access_token").and_then(Value::as_str) else {
                    return Err(AuthError::UnexpectedResponse {
                        action: format!("managed identity request to {endpoint}"),
                        status,
                        detail: "no access_token in the answer".into(),
                    });
                };
                let now = self.ctx.options.clock.now();
                let expires_at = v
                    .get("expires_on")
                    .and_then(number)
                    .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                    .or_else(|| v.get("expires_in").and_then(number).map(|s| now + time::Duration::seconds(s)));
                tracing::info!(flow = "managed_identity", "managed identity token obtained");
                return Ok(AccessToken::new(at, expires_at));
            }
            if (status == 429 || status >= 500) && attempt < 3 {
                tracing::debug!(status, "managed identity endpoint busy: retrying");
                self.ctx.options.clock.sleep(delay).await;
                delay *= 2;
                continue;
            }
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let message =
                match (v.get("error").and_then(Value::as_str), v.get("error_description").and_then(Value::as_str)) {
                    (Some(e), Some(d)) => format!("{e}: {d}"),
                    (Some(e), None) => e.to_string(),
                    _ => v.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| snippet(&body)),
                };
            return Err(AuthError::ManagedIdentity { endpoint, status, hint: hint(&message).to_string(), message });
        }
        Err(AuthError::TimedOut("the managed identity endpoint kept answering 429/5xx".into()))
    }

    fn flow_name(&self) -> &'static str {
        "managed_identity"
    }
}
