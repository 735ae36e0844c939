//! Picking the flow from the configuration and building its provider; `login` / `logout` for
//! the CLI.
//!
//! | configuration | flow |
//! |---|---|
//! | `InitiateOAuth=OFF` (or `OAuthAccessToken` alone, or `AuthScheme=OAuth`) | the given token ([`StaticTokenProvider`]) |
//! | `AuthScheme=AzureServicePrincipal` (or `AzureAD` + `OAuthGrantType=CLIENT`) with a secret | client credentials |
//! | … with `AzureFederatedTokenFile` / `AZURE_FEDERATED_TOKEN_FILE` instead | workload identity federation |
//! | `AuthScheme=AzureServicePrincipalCert` (or `CLIENT` with `OAuthJWTCert`) | certificate assertion |
//! | `AuthScheme=AzureMSI` | managed identity |
//! | `AuthScheme=AzureAD` + `InitiateOAuth=REFRESH` (or `OAuthRefreshToken` without `InitiateOAuth`) | refresh token (with rotation) |
//! | `AuthScheme=AzureAD` (default, `GETANDREFRESH`) | stored tokens → refresh → browser or device code |
//!
//! Authority host: `AzureAuthorityHost` (or `AZURE_AUTHORITY_HOST` unless `AzureEnvironment` is
//! given), else `AzureEnvironment`, else the cloud of the organization URL, else the public
//! cloud. Tenant: `AzureTenant`; delegated flows default to `organizations`, app-only flows
//! discover it from the Web API's 401 challenge.

use std::sync::Arc;

use url::Url;

use crate::cache::CachedProvider;
use crate::certificate::{CertificateCredential, FederatedAssertion};
use crate::cloud::{Authority, AzureEnvironment};
use crate::config::{AuthScheme, ConnectionConfig, Edition, GrantType, InitiateOAuth};
use crate::flows::adfs::AdfsSource;
use crate::flows::app_only::ClientCredentialsSource;
use crate::flows::delegated::{DelegatedMode, DelegatedSource, default_file_name};
use crate::flows::managed_identity::ManagedIdentitySource;
use crate::options::ProviderOptions;
use crate::token_client::{ClientCredential, TokenClient};
use crate::token_store::{TokenStore, entry_key};
use crate::{AccessToken, AuthError, ConfigError, StaticTokenProvider, TokenProvider};

/// Microsoft's published public client for Dataverse development tools (redirect
/// `http://localhost`), used for delegated sign-in when `OAuthClientId` is not set.
pub const DEFAULT_PUBLIC_CLIENT_ID: &str = "51f81489-12ee-4a9e-aaae-a2591f45987d";

/// The flow a configuration selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Flow {
    /// `OAuthAccessToken` used as given.
    GivenToken,
    /// Client credentials with a client secret.
    ClientSecret,
    /// Client credentials with a certificate assertion.
    ClientCertificate,
    /// Client credentials with a federated token (workload identity).
    WorkloadIdentity,
    /// Managed identity.
    ManagedIdentity,
    /// A signed-in user: stored tokens, refresh, interactive sign-in (`GETANDREFRESH`).
    Delegated,
    /// A signed-in user's given refresh token (`REFRESH`).
    DelegatedRefresh,
    /// AD FS client credentials (on-premises Finance & Operations).
    AdfsClientSecret,
    /// AD FS password grant (on-premises Finance & Operations).
    AdfsPassword,
}

impl Flow {
    /// Whether the flow acts as an application (no user).
    pub fn is_app_only(self) -> bool {
        matches!(
            self,
            Flow::ClientSecret
                | Flow::ClientCertificate
                | Flow::WorkloadIdentity
                | Flow::ManagedIdentity
                | Flow::AdfsClientSecret
        )
    }
}

fn missing(key: &'static str, flow: &str, alternatives: &str) -> ConfigError {
    ConfigError::MissingKey { key, flow: flow.to_string(), alternatives: alternatives.to_string() }
}

/// Decides the flow, checking that the properties it needs are there.
pub fn plan(config: &ConnectionConfig) -> Result<Flow, ConfigError> {
    if config.edition == Edition::FinOpsOnPremise || config.auth_scheme == AuthScheme::Adfs {
        return plan_adfs(config);
    }
    if config.auth_scheme == AuthScheme::AzurePassword {
        return Err(ConfigError::NotSupported(
            "AuthScheme=AzurePassword is not supported (user-name/password sign-in is deprecated by Microsoft): use AuthScheme=AzureAD (browser or device code) or a service principal".into(),
        ));
    }
    if config.grant_type == GrantType::Password {
        return Err(ConfigError::NotSupported(
            "OAuthGrantType=PASSWORD is not supported: use CODE (a user signs in) or CLIENT (service principal)".into(),
        ));
    }
    let initiate = config.initiate_oauth;
    let given_only = |flow: &str| {
        if config.access_token.is_some() { Ok(Flow::GivenToken) } else { Err(missing("OAuthAccessToken", flow, "")) }
    };
    if initiate == Some(InitiateOAuth::Off) {
        return given_only("InitiateOAuth=OFF");
    }
    if config.auth_scheme == AuthScheme::OAuth {
        if initiate == Some(InitiateOAuth::Refresh) {
            return if config.refresh_token.is_some() {
                Ok(Flow::DelegatedRefresh)
            } else {
                Err(missing("OAuthRefreshToken", "AuthScheme=OAuth with InitiateOAuth=REFRESH", ""))
            };
        }
        return given_only("AuthScheme=OAuth");
    }
    if config.auth_scheme == AuthScheme::AzureMsi {
        return Ok(Flow::ManagedIdentity);
    }
    let client_only = config.auth_scheme == AuthScheme::AzureAd && config.grant_type == GrantType::Client;
    if matches!(config.auth_scheme, AuthScheme::AzureServicePrincipal | AuthScheme::AzureServicePrincipalCert)
        || client_only
    {
        let flow_words = match (config.auth_scheme, client_only) {
            (_, true) => "AuthScheme=AzureAD with OAuthGrantType=CLIENT",
            (AuthScheme::AzureServicePrincipalCert, _) => "AuthScheme=AzureServicePrincipalCert (certificate)",
            _ => "AuthScheme=AzureServicePrincipal (client secret)",
        };
        if config.client_id.is_none() {
            return Err(missing(
                "OAuthClientId",
                flow_words,
                " (the application (client) id; or the AZURE_CLIENT_ID environment variable)",
            ));
        }
        let cert = config.auth_scheme == AuthScheme::AzureServicePrincipalCert
            || (client_only && config.client_secret.is_none() && config.jwt_cert.is_some());
        if cert {
            return if config.jwt_cert.is_some() {
                Ok(Flow::ClientCertificate)
            } else {
                Err(missing(
                    "OAuthJWTCert",
                    flow_words,
                    " (a PEM or PFX file; or the AZURE_CLIENT_CERTIFICATE_PATH environment variable)",
                ))
            };
        }
        return match (&config.client_secret, &config.federated_token_file) {
            (Some(_), _) => Ok(Flow::ClientSecret),
            (None, Some(_)) => Ok(Flow::WorkloadIdentity),
            (None, None) => Err(missing(
                "OAuthClientSecret",
                flow_words,
                " (the secret's value; or the AZURE_CLIENT_SECRET environment variable; or AzureFederatedTokenFile / AZURE_FEDERATED_TOKEN_FILE for workload identity)",
            )),
        };
    }
    // AzureAD, delegated
    match initiate {
        Some(InitiateOAuth::Refresh) => Ok(Flow::DelegatedRefresh),
        // tokens given without InitiateOAuth: use them (CData's default is OFF), refreshing
        // when a refresh token came along
        None if config.refresh_token.is_some() => Ok(Flow::DelegatedRefresh),
        None if config.access_token.is_some() => Ok(Flow::GivenToken),
        _ => Ok(Flow::Delegated),
    }
}

/// The flows of an on-premises Finance & Operations environment, which signs in through AD FS
/// (`AuthScheme=ADFS;ADFSServer=…`): client credentials with `OAuthClientId` and
/// `OAuthClientSecret`, or the password grant with `User`, `Password` and `OAuthClientId`; a
/// token given in `OAuthAccessToken` works too.
fn plan_adfs(config: &ConnectionConfig) -> Result<Flow, ConfigError> {
    let on_premise = config.edition == Edition::FinOpsOnPremise;
    if !on_premise {
        return Err(ConfigError::NotSupported(format!(
            "AuthScheme=ADFS is for on-premises Finance & Operations (Edition=FinOpsOnPremise), not Edition={}: sign in to the online services through Entra ID (AuthScheme=AzureAD or AzureServicePrincipal)",
            config.edition.name()
        )));
    }
    if config.auth_scheme == AuthScheme::OAuth || config.initiate_oauth == Some(InitiateOAuth::Off) {
        return if config.access_token.is_some() {
            Ok(Flow::GivenToken)
        } else {
            Err(missing("OAuthAccessToken", "InitiateOAuth=OFF", ""))
        };
    }
    if config.auth_scheme != AuthScheme::Adfs {
        return Err(ConfigError::NotSupported(format!(
            "Edition=FinOpsOnPremise signs in through AD FS, not AuthScheme={}: use AuthScheme=ADFS;ADFSServer=https://adfs.contoso.com with OAuthClientId and OAuthClientSecret (or User and Password)",
            config.auth_scheme.name()
        )));
    }
    const FLOW: &str = "AuthScheme=ADFS";
    if config.adfs_server.is_none() {
        return Err(missing("ADFSServer", FLOW, " (the AD FS server, such as https://adfs.contoso.com)"));
    }
    if config.client_id.is_none() {
        return Err(missing("OAuthClientId", FLOW, " (the client id of the application group registered in AD FS)"));
    }
    match (&config.user, &config.password, &config.client_secret) {
        (Some(_), Some(_), _) => Ok(Flow::AdfsPassword),
        (Some(_), None, _) => Err(missing("Password", "AuthScheme=ADFS with User", "")),
        (None, Some(_), _) => {
            Err(missing("User", "AuthScheme=ADFS with Password", " (such as CONTOSO\\jane or jane@contoso.com)"))
        }
        (None, None, Some(_)) => Ok(Flow::AdfsClientSecret),
        (None, None, None) => Err(missing(
            "OAuthClientSecret",
            FLOW,
            " (the secret of the server application in AD FS; or User and Password for the password grant)",
        )),
    }
}

/// The Entra ID host for the configuration.
pub fn authority_host(config: &ConnectionConfig) -> Url {
    let env_host = config.from_environment.contains(&"AzureAuthorityHost");
    if let Some(h) = &config.authority_host
        && !(env_host && config.azure_environment.is_some())
    {
        return h.clone();
    }
    let cloud = config
        .azure_environment
        .or_else(|| config.organization_url.host_str().and_then(AzureEnvironment::from_org_host))
        .unwrap_or(AzureEnvironment::Global);
    // the table's hosts are valid URLs
    Url::parse(cloud.authority_host()).unwrap_or_else(|_| config.organization_url.clone())
}

/// What every flow shares.
#[derive(Debug)]
pub(crate) struct Context {
    pub config: ConnectionConfig,
    pub options: ProviderOptions,
    pub http: reqwest::Client,
    pub host: Url,
    discovered_tenant: tokio::sync::OnceCell<String>,
}

impl Context {
    pub fn new(config: &ConnectionConfig, options: &ProviderOptions) -> Result<Arc<Self>, AuthError> {
        Ok(Arc::new(Self {
            http: crate::http::client(config)?,
            host: authority_host(config),
            config: config.clone(),
            options: options.clone(),
            discovered_tenant: tokio::sync::OnceCell::new(),
        }))
    }

    /// The authority of app-only flows: `AzureTenant`, else discovered (once).
    pub async fn app_authority(&self) -> Result<Authority, AuthError> {
        if let Some(t) = &self.config.tenant {
            return Ok(Authority::new(self.host.clone(), t.clone()));
        }
        if !self.config.edition.is_dataverse() {
            // Discovery reads the Dataverse Web API's 401 challenge, which Finance & Operations
            // does not send in that form.
            return Err(ConfigError::MissingKey {
                key: "AzureTenant",
                flow: format!("app-only sign-in to Edition={}", self.config.edition.name()),
                alternatives: " (the tenant id or domain, such as contoso.onmicrosoft.com; or the AZURE_TENANT_ID environment variable)".into(),
            }
            .into());
        }
        let tenant = self
            .discovered_tenant
            .get_or_try_init(|| async {
                let d =
                    crate::discovery::discover_tenant(&self.http, &self.config.resource(), &self.config.api_version)
                        .await?;
                if d.authority_host.host_str() != self.host.host_str() {
                    tracing::warn!(
                        discovered = %d.authority_host,
                        configured = %self.host,
                        "the Web API names another authority host than the configured one; using the configured host"
                    );
                }
                Ok::<_, AuthError>(d.tenant)
            })
            .await?;
        Ok(Authority::new(self.host.clone(), tenant.clone()))
    }

    /// The authority of delegated flows: `AzureTenant`, else `organizations`.
    pub fn delegated_authority(&self) -> Authority {
        Authority::new(self.host.clone(), self.config.tenant.clone().unwrap_or_else(|| "organizations".into()))
    }

    /// The client id of delegated flows.
    pub fn delegated_client_id(&self) -> String {
        self.config.client_id.clone().unwrap_or_else(|| DEFAULT_PUBLIC_CLIENT_ID.to_string())
    }

    /// The credential of a delegated (web) app: its secret when one is configured.
    pub fn delegated_credential(&self) -> ClientCredential {
        match &self.config.client_secret {
            Some(s) => ClientCredential::Secret(s.clone()),
            None => ClientCredential::None,
        }
    }

    /// The token client of delegated flows.
    pub fn delegated_client(&self) -> TokenClient {
        TokenClient::new(
            self.http.clone(),
            self.delegated_authority(),
            self.delegated_client_id(),
            self.delegated_credential(),
            self.options.clock.clone(),
        )
    }

    /// The token store of delegated flows and this sign-in's key in it.
    pub fn delegated_store(&self) -> Result<(TokenStore, String), AuthError> {
        let a = self.delegated_authority();
        let key = entry_key(a.host().as_str(), a.tenant(), &self.delegated_client_id(), &self.config.resource());
        let name = default_file_name(&key);
        let store = TokenStore::open_with_key(
            self.config.settings_location.as_deref(),
            &name,
            &self.options.environment,
            self.options.store_key.as_ref(),
        )?;
        Ok((store, key))
    }
}

fn delegated_source(ctx: &Arc<Context>, mode: DelegatedMode) -> Result<DelegatedSource, AuthError> {
    if let Some(cb) = url::Url::parse(&ctx.config.callback_url).ok().filter(|_| ctx.config.verifier.is_none())
        && mode == DelegatedMode::GetAndRefresh
        && ctx.options.interactive == crate::options::Interactive::Browser
        && !crate::flows::loopback::is_loopback_callback(&cb)
    {
        return Err(ConfigError::Invalid(format!(
            "CallbackURL={} is not a loopback address, so the desktop sign-in cannot listen on it: use http://localhost:33333 (or http://localhost), or the web procedures GetOAuthAuthorizationUrl/GetOAuthAccessToken",
            ctx.config.callback_url
        ))
        .into());
    }
    let (store, key) = ctx.delegated_store()?;
    Ok(DelegatedSource::new(ctx.clone(), ctx.delegated_client(), store, key, mode))
}

/// The provider of a token given in `OAuthAccessToken` (expiry from `OAuthTokenTimestamp` +
/// `OAuthExpiresIn` when both are given).
fn given_token(config: &ConnectionConfig) -> StaticTokenProvider {
    let given = config.access_token.as_ref().map(|t| t.expose().to_string()).unwrap_or_default();
    let exp = match (config.token_timestamp_ms, config.expires_in) {
        (Some(ms), Some(s)) => time::OffsetDateTime::from_unix_timestamp(ms / 1000 + s).ok(),
        _ => None,
    };
    StaticTokenProvider::new(AccessToken::new(given, exp))
}

/// Builds the token provider of a connection. Nothing is fetched yet: the first
/// [`TokenProvider::token`] call signs in.
pub fn provider_from_config(
    config: &ConnectionConfig,
    options: &ProviderOptions,
) -> Result<Arc<dyn TokenProvider>, AuthError> {
    let flow = plan(config)?;
    if flow == Flow::GivenToken {
        return Ok(Arc::new(given_token(config)));
    }
    let ctx = Context::new(config, options)?;
    let client_id = || config.client_id.clone().unwrap_or_default();
    let source: Box<dyn crate::cache::TokenSource> = match flow {
        Flow::ClientSecret => {
            let secret =
                config.client_secret.clone().ok_or_else(|| missing("OAuthClientSecret", "client credentials", ""))?;
            Box::new(ClientCredentialsSource::new(
                ctx.clone(),
                client_id(),
                ClientCredential::Secret(secret),
                "client_credentials",
            ))
        }
        Flow::ClientCertificate => {
            let cert = CertificateCredential::load(config, &client_id(), options.clock.clone())?;
            tracing::debug!(subject = cert.subject(), "certificate loaded");
            Box::new(ClientCredentialsSource::new(
                ctx.clone(),
                client_id(),
                ClientCredential::Assertion(Arc::new(cert)),
                "client_certificate",
            ))
        }
        Flow::WorkloadIdentity => {
            let path = config.federated_token_file.clone().unwrap_or_default();
            Box::new(ClientCredentialsSource::new(
                ctx.clone(),
                client_id(),
                ClientCredential::Assertion(Arc::new(FederatedAssertion::new(path))),
                "workload_identity",
            ))
        }
        Flow::ManagedIdentity => Box::new(ManagedIdentitySource::new(ctx.clone())?),
        Flow::Delegated => Box::new(delegated_source(&ctx, DelegatedMode::GetAndRefresh)?),
        Flow::DelegatedRefresh => Box::new(delegated_source(&ctx, DelegatedMode::Refresh)?),
        Flow::AdfsClientSecret | Flow::AdfsPassword => Box::new(AdfsSource::new(ctx.clone(), flow)?),
        Flow::GivenToken => return Ok(Arc::new(given_token(config))),
    };
    Ok(Arc::new(CachedProvider::new(source, options.clock.clone(), options.refresh_margin)))
}

/// What [`login`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoginOutcome {
    /// The flow used.
    pub flow: &'static str,
    /// The token obtained.
    pub token: AccessToken,
    /// Where the tokens were stored (delegated flows).
    pub store: Option<String>,
}

/// Signs in now: for delegated connections an interactive sign-in (browser or device code, per
/// `options.interactive`) whose tokens replace the stored ones; for the other flows one token
/// request, to check the credentials.
pub async fn login(config: &ConnectionConfig, options: &ProviderOptions) -> Result<LoginOutcome, AuthError> {
    let flow = plan(config)?;
    if matches!(flow, Flow::Delegated) && config.verifier.is_none() {
        let ctx = Context::new(config, options)?;
        let source = delegated_source(&ctx, DelegatedMode::GetAndRefresh)?;
        let token = source.obtain(None, true).await?;
        let flow = crate::cache::TokenSource::flow_name(&source);
        return Ok(LoginOutcome { flow, token, store: Some(source.store().location()) });
    }
    let provider = provider_from_config(config, options)?;
    let token = provider.token().await?;
    let store = if matches!(flow, Flow::Delegated | Flow::DelegatedRefresh) {
        Some(Context::new(config, options)?.delegated_store()?.0.location())
    } else {
        None
    };
    Ok(LoginOutcome { flow: provider.flow_name(), token, store })
}

/// Forgets the stored sign-in of a delegated connection (deletes its settings file). Returns the
/// store's location and whether there was anything to delete.
pub async fn logout(config: &ConnectionConfig, options: &ProviderOptions) -> Result<(String, bool), AuthError> {
    let ctx = Context::new(config, options)?;
    let (store, _) = ctx.delegated_store()?;
    let had = store.delete().await?;
    Ok((store.location(), had))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Environment;

    fn flow(s: &str) -> Result<Flow, ConfigError> {
        plan(
            &ConnectionConfig::parse(&format!("OrganizationUrl=https://o.crm.dynamics.com;{s}"), &Environment::empty())
                .unwrap(),
        )
    }

    #[test]
    fn on_premises_finance_and_operations_signs_in_through_adfs() {
        let adfs = "Edition=FinOpsOnPremise;AuthScheme=ADFS;ADFSServer=https://adfs.contoso.com";
        assert_eq!(flow(&format!("{adfs};OAuthClientId=c;OAuthClientSecret=s")).unwrap(), Flow::AdfsClientSecret);
        assert_eq!(flow(&format!("{adfs};OAuthClientId=c;User=CONTOSO\\jane;Password=p")).unwrap(), Flow::AdfsPassword);
        assert_eq!(flow("Edition=FinOpsOnPremise;InitiateOAuth=OFF;OAuthAccessToken=t").unwrap(), Flow::GivenToken);
        let err = |s: &str| flow(s).unwrap_err().to_string();
        assert!(err(&format!("{adfs};OAuthClientSecret=s")).contains("needs OAuthClientId"));
        assert!(err(&format!("{adfs};OAuthClientId=c")).contains("needs OAuthClientSecret"));
        assert!(err(&format!("{adfs};OAuthClientId=c;User=u")).contains("needs Password"));
        assert!(err("Edition=FinOpsOnPremise;AuthScheme=ADFS;OAuthClientId=c").contains("needs ADFSServer"));
        let e = err("Edition=FinOpsOnPremise;AuthScheme=AzureServicePrincipal;OAuthClientId=c;OAuthClientSecret=s");
        assert!(e.contains("signs in through AD FS") && e.contains("AuthScheme=ADFS"), "{e}");
        let e = err("AuthScheme=ADFS;ADFSServer=https://adfs.contoso.com;OAuthClientId=c;OAuthClientSecret=s");
        assert!(e.contains("Edition=FinOpsOnPremise"), "{e}");
        // the online editions use the Entra ID flows
        assert_eq!(
            flow("Edition=FinOpsOnline;AuthScheme=AzureServicePrincipal;OAuthClientId=c;OAuthClientSecret=s").unwrap(),
            Flow::ClientSecret
        );
    }

    #[test]
    fn flows_from_properties() {
        assert_eq!(flow("").unwrap(), Flow::Delegated);
        assert_eq!(flow("InitiateOAuth=GETANDREFRESH;OAuthVerifier=abc").unwrap(), Flow::Delegated);
        assert_eq!(flow("OAuthAccessToken=t").unwrap(), Flow::GivenToken);
        assert_eq!(flow("OAuthAccessToken=t;OAuthRefreshToken=r").unwrap(), Flow::DelegatedRefresh);
        assert_eq!(flow("InitiateOAuth=REFRESH;OAuthRefreshToken=r").unwrap(), Flow::DelegatedRefresh);
        assert_eq!(flow("AuthScheme=OAuth;OAuthAccessToken=t").unwrap(), Flow::GivenToken);
        assert_eq!(flow("AuthScheme=OAuth;InitiateOAuth=REFRESH;OAuthRefreshToken=r").unwrap(), Flow::DelegatedRefresh);
        assert_eq!(flow("AuthScheme=AzureMSI").unwrap(), Flow::ManagedIdentity);
        assert_eq!(
            flow("AuthScheme=AzureServicePrincipal;OAuthClientId=c;OAuthClientSecret=s").unwrap(),
            Flow::ClientSecret
        );
        assert_eq!(
            flow("AuthScheme=AzureServicePrincipal;OAuthClientId=c;AzureFederatedTokenFile=/t").unwrap(),
            Flow::WorkloadIdentity
        );
        assert_eq!(
            flow("AuthScheme=AzureServicePrincipalCert;OAuthClientId=c;OAuthJWTCert=/c.pem").unwrap(),
            Flow::ClientCertificate
        );
        assert_eq!(flow("OAuthGrantType=CLIENT;OAuthClientId=c;OAuthJWTCert=/c.pem").unwrap(), Flow::ClientCertificate);
        assert_eq!(flow("OAuthGrantType=CLIENT;OAuthClientId=c;OAuthClientSecret=s").unwrap(), Flow::ClientSecret);
        assert!(
            flow("AuthScheme=AzureServicePrincipal;OAuthClientId=c")
                .unwrap_err()
                .to_string()
                .contains("needs OAuthClientSecret")
        );
        assert!(
            flow("OAuthGrantType=CLIENT;OAuthClientId=c")
                .unwrap_err()
                .to_string()
                .contains("OAuthGrantType=CLIENT needs OAuthClientSecret")
        );
        assert!(flow("AuthScheme=AzurePassword").unwrap_err().to_string().contains("not supported"));
        assert_eq!(flow("Edition=HumanResources").unwrap(), Flow::Delegated);
        assert!(flow("AuthScheme=OAuth").unwrap_err().to_string().contains("needs OAuthAccessToken"));
    }

    #[test]
    fn authority_hosts() {
        let host = |s: &str, env: Environment| {
            authority_host(
                &ConnectionConfig::parse(&format!("OrganizationUrl=https://o.crm.dynamics.com;{s}"), &env).unwrap(),
            )
            .to_string()
        };
        assert_eq!(host("", Environment::empty()), "https://login.microsoftonline.com/");
        assert_eq!(host("AzureEnvironment=CHINA", Environment::empty()), "https://login.partner.microsoftonline.cn/");
        assert_eq!(host("AzureAuthorityHost=https://localhost:8443", Environment::empty()), "https://localhost:8443/");
        let env = Environment::empty().with("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us");
        assert_eq!(host("", env.clone()), "https://login.microsoftonline.us/");
        assert_eq!(
            host("AzureEnvironment=GLOBAL", env),
            "https://login.microsoftonline.com/",
            "an explicit environment beats the variable"
        );
        let c =
            ConnectionConfig::parse("OrganizationUrl=https://o.crm.appsplatform.us", &Environment::empty()).unwrap();
        assert_eq!(authority_host(&c).as_str(), "https://login.microsoftonline.us/");
    }
}
