//! From a connection string to a connected client: parse the CData-style properties, build the
//! sign-in flow, and open the Web API client. [`Connection::demo`] starts the built-in emulator
//! in this process and connects to it through the same HTTPS + OAuth path as a real
//! organisation.

use std::sync::Arc;

use d365_auth::connection_string::ConnectionString;
use d365_auth::{ConnectionConfig, Environment, Interactive, ProviderOptions, TokenProvider, provider_from_config};
use d365_client::{ClientOptions, DataverseClient};
use d365_emulator::{Emulator, EmulatorOptions};
use d365_sql::{EngineOptions, SqlEngine};

use crate::error::Error;

/// How a connection may sign a user in when no stored tokens exist.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Open a browser (or show a device code) for a delegated sign-in, or refuse with "run d365
    /// login" ([`Interactive::Never`], for scripts and CI).
    pub interactive: Interactive,
    /// The process environment (config directory, token key, proxies); `None` reads the
    /// current process's.
    pub environment: Option<Environment>,
}

impl OpenOptions {
    /// Interactive sign-in only when a person is there: a browser when standard error is a
    /// terminal, otherwise a clear error.
    pub fn detect() -> Self {
        let interactive = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Interactive::Browser
        } else {
            Interactive::Never
        };
        Self { interactive, environment: None }
    }
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::detect()
    }
}

/// How the SQL engine of a connection reads.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Fetch table definitions again instead of using the on-disk metadata cache.
    pub refresh_metadata: bool,
    /// Concurrent requests for whole-table reads; `None` follows the service's
    /// `x-ms-dop-hint` and adapts to throttling; `Some(1)` reads one page chain.
    pub parallel: Option<usize>,
    /// Rows per page (`Prefer: odata.maxpagesize`, 1–5000).
    pub page_size: Option<u32>,
    /// Compute aggregates over one table at the service, run joins along lookups as FetchXML
    /// `link-entity` queries, and read other joined tables by the keys of the other side (on
    /// by default); off, aggregates and joins read every row.
    pub aggregate_pushdown: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self { refresh_metadata: false, parallel: None, page_size: None, aggregate_pushdown: true }
    }
}

/// A live connection: the Web API client, the sign-in flow, the parsed connection and, for
/// [`Connection::demo`], the emulator it runs.
pub struct Connection {
    /// The Web API client.
    pub client: DataverseClient,
    /// The sign-in flow in use.
    pub tokens: Arc<dyn TokenProvider>,
    /// The parsed connection.
    pub config: ConnectionConfig,
    /// What the string asks of queries and writes (`Readonly`, `MaxRows`, `Pagesize`).
    pub query: crate::QuerySettings,
    /// The environment it was opened in (for the OAuth procedures).
    pub environment: Environment,
    /// The emulator of a demo connection (stopped by [`Connection::close`]).
    pub demo: Option<Emulator>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("organization_url", &self.config.organization_url.as_str())
            .field("demo", &self.demo.is_some())
            .finish_non_exhaustive()
    }
}

/// Parses `text` with `overrides` applied on top (later keys win, as in the string itself).
/// Errors name the property, never its value.
pub fn parse_connection(
    text: &str,
    overrides: &[(String, String)],
    env: &Environment,
) -> Result<ConnectionConfig, Error> {
    let mut cs = ConnectionString::parse(text).map_err(d365_auth::ConfigError::from)?;
    for (k, v) in overrides {
        cs.set(k, v);
    }
    Ok(ConnectionConfig::from_connection_string(&cs, env)?)
}

/// The connection string of `emu`'s certificate app (a System Administrator application user).
pub fn emulator_connection_string(emu: &Emulator) -> Result<String, Error> {
    let r = emu.ready();
    let app = r
        .apps
        .iter()
        .find(|a| a.certificate.is_some())
        .ok_or_else(|| Error::Emulator("the emulator has no certificate app".into()))?;
    let cert =
        app.certificate.as_ref().ok_or_else(|| Error::Emulator("the certificate app has no certificate".into()))?;
    Ok(format!(
        "OrganizationUrl={};AuthScheme=AzureServicePrincipalCert;AzureTenant={};OAuthClientId={};\
         OAuthJWTCert={};OAuthJWTCertType=PEMKEY_FILE;AzureAuthorityHost={};SSLServerCert={}",
        r.org_url,
        r.tenant_id,
        app.client_id,
        cert.combined_pem.display(),
        r.authority,
        r.ca_pem.display()
    ))
}

/// Which environment of the emulator a demo connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DemoEdition {
    /// The Dataverse organisation (Sales).
    #[default]
    Dataverse,
    /// Finance & Operations online (`Edition=FinOpsOnline`, Entra ID).
    FinOps,
    /// Finance & Operations on premises (`Edition=FinOpsOnPremise`, AD FS).
    FinOpsOnPremise,
    /// Human Resources at its legacy URL (`Edition=HumanResources`).
    HumanResources,
}

/// The connection string of one of `emu`'s Finance & Operations environments: online and the
/// Human Resources legacy URL with the certificate app through Entra ID, on premises with the
/// integration app's secret through AD FS; every company (`CrossCompany=true`).
pub fn emulator_finops_connection_string(emu: &Emulator, edition: DemoEdition) -> Result<String, Error> {
    let r = emu.ready();
    let fno = &r.fno;
    let ca = r.ca_pem.display();
    if edition == DemoEdition::FinOpsOnPremise {
        let app = r.app("integration").ok_or_else(|| Error::Emulator("the emulator has no integration app".into()))?;
        let secret = app
            .client_secret
            .as_ref()
            .ok_or_else(|| Error::Emulator("the emulator's integration app has no client secret".into()))?;
        return Ok(format!(
            "OrganizationUrl={};Edition=FinOpsOnPremise;AuthScheme=ADFS;ADFSServer={};OAuthClientId={};\
             OAuthClientSecret={secret};CrossCompany=true;SSLServerCert={ca}",
            fno.onprem_url, fno.adfs_authority, app.client_id
        ));
    }
    let (url, name) = match edition {
        DemoEdition::HumanResources => (&fno.hr_legacy_url, "HumanResources"),
        _ => (&fno.org_url, "FinOpsOnline"),
    };
    let dataverse = emulator_connection_string(emu)?;
    let rest = dataverse.split_once(';').map(|(_, rest)| rest).unwrap_or_default();
    Ok(format!("OrganizationUrl={url};Edition={name};CrossCompany=true;{rest}"))
}

/// The connection string of the emulator's app `name` signing in with its client secret (the
/// application users `worker-1` … `worker-N` of [`EmulatorOptions::app_users`], or
/// `integration`): a client-credentials connection as its own application user.
///
/// [`EmulatorOptions::app_users`]: d365_emulator::EmulatorOptions::app_users
pub fn emulator_app_connection_string(emu: &Emulator, name: &str) -> Result<String, Error> {
    let r = emu.ready();
    let app = r.app(name).ok_or_else(|| Error::Emulator(format!("the emulator has no app named '{name}'")))?;
    let secret = app
        .client_secret
        .as_ref()
        .ok_or_else(|| Error::Emulator(format!("the emulator's app '{name}' has no client secret")))?;
    Ok(format!(
        "OrganizationUrl={};AuthScheme=AzureServicePrincipal;AzureTenant={};OAuthClientId={};\
         OAuthClientSecret={secret};AzureAuthorityHost={};SSLServerCert={}",
        r.org_url,
        r.tenant_id,
        app.client_id,
        r.authority,
        r.ca_pem.display()
    ))
}

impl Connection {
    /// Opens a connection from a CData-style connection string (`overrides` set further
    /// properties, as Python's `connect(cs, **props)`). Sends nothing yet: the first token is
    /// requested with the first request.
    pub async fn open(text: &str, overrides: &[(String, String)], options: OpenOptions) -> Result<Self, Error> {
        let env = options.environment.clone().unwrap_or_else(Environment::from_process);
        let config = parse_connection(text, overrides, &env)?;
        Self::from_config(config, env, options.interactive, None)
    }

    /// Starts the built-in emulator with `rows` accounts (contacts, leads and opportunities in
    /// proportion) and connects to it as its certificate app.
    pub async fn demo(rows: usize) -> Result<Self, Error> {
        Self::demo_edition(rows, DemoEdition::Dataverse).await
    }

    /// [`Connection::demo`] on one of the emulator's environments: the Dataverse organisation,
    /// or Finance & Operations online, on premises (signed in through AD FS), or the Human
    /// Resources legacy endpoint.
    pub async fn demo_edition(rows: usize, edition: DemoEdition) -> Result<Self, Error> {
        let emu = Emulator::start(EmulatorOptions { rows, ..Default::default() })
            .await
            .map_err(|e| Error::Emulator(e.to_string()))?;
        let env = Environment::from_process();
        let text = match edition {
            DemoEdition::Dataverse => emulator_connection_string(&emu),
            other => emulator_finops_connection_string(&emu, other),
        };
        let config = match text.and_then(|t| parse_connection(&t, &[], &env)) {
            Ok(c) => c,
            Err(e) => {
                emu.shutdown().await;
                return Err(e);
            }
        };
        Self::from_config(config, env, Interactive::Never, Some(emu))
    }

    fn from_config(
        config: ConnectionConfig,
        env: Environment,
        interactive: Interactive,
        demo: Option<Emulator>,
    ) -> Result<Self, Error> {
        let options = ProviderOptions::new(env.clone()).with_interactive(interactive);
        let tokens = provider_from_config(&config, &options)?;
        let mut client_options = ClientOptions::new(config.organization_url.as_str());
        client_options.api_version = config.api_version.trim_start_matches('v').to_string();
        client_options.caller_id = config.caller_id;
        client_options.caller_object_id = config.caller_object_id;
        if !config.edition.is_dataverse() {
            let cross_company = match config.property("CrossCompany") {
                None => false,
                Some(v) => crate::properties::flag("CrossCompany", v)?,
            };
            client_options.service = d365_client::Service::FinOps(d365_client::FinOpsSettings { cross_company });
        }
        if let Some(t) = config.timeout {
            client_options.timeout = t;
        }
        if let Some(cert) = &config.ssl_server_cert {
            client_options.extra_ca_pem = Some(if cert.contains("-----BEGIN") {
                cert.as_bytes().to_vec()
            } else {
                std::fs::read(cert).map_err(|e| {
                    d365_auth::ConfigError::Invalid(format!(
                        "cannot read the SSLServerCert file {cert}: {e} (give a PEM file's path, or the PEM text itself)"
                    ))
                })?
            });
        }
        let query = crate::properties::query_settings(&config)?;
        let client = DataverseClient::new(client_options, tokens.clone())?;
        Ok(Self { client, tokens, config, query, environment: env, demo })
    }

    /// The SQL engine over this connection: metadata cached on disk per organisation (in memory
    /// for a demo emulator, whose address changes every run).
    pub async fn engine(&self, settings: &EngineSettings) -> Result<SqlEngine, Error> {
        let metadata_cache = self
            .demo
            .is_none()
            .then(|| d365_client::CacheOptions { refresh: settings.refresh_metadata, ..Default::default() });
        let options = EngineOptions {
            metadata_cache,
            page_size: settings.page_size.or(self.query.page_size),
            read_only: self.query.read_only,
            max_rows: self.query.max_rows,
            parallel_scan: settings.parallel != Some(1),
            scan_parallelism: settings.parallel,
            aggregate_pushdown: settings.aggregate_pushdown,
            join_pushdown: settings.aggregate_pushdown,
            ..EngineOptions::default()
        };
        Ok(SqlEngine::new(self.client.clone(), options).await?)
    }

    /// Stops the demo emulator, if any.
    pub async fn close(self) {
        if let Some(emu) = self.demo {
            emu.shutdown().await;
        }
    }
}
