//! From the command line to a connected client: the connection string (`--connection`,
//! `--connection @FILE` or `D365_CONNECTION`, CData property names), or `--demo`, which starts
//! the emulator in this process and connects to it through the real HTTPS + OAuth path.

use crate::failure::Failure;
use d365_auth::{ConnectionConfig, Environment, ProviderOptions, TokenProvider, provider_from_config};
use d365_client::{ClientOptions, DataverseClient};
use d365_emulator::{Emulator, EmulatorOptions};
use std::sync::Arc;

/// Where the connection comes from.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnectArgs {
    /// Connection string with CData property names, or @FILE to read it from a file. Prefer
    /// D365_CONNECTION or @FILE for strings holding secrets (command lines are visible to
    /// other users of the machine).
    #[arg(long, global = true, value_name = "STRING|@FILE", env = "D365_CONNECTION", hide_env_values = true)]
    pub connection: Option<String>,
    /// Start the built-in emulator with sample data and connect to it (no account needed).
    #[arg(long, global = true)]
    pub demo: bool,
    /// Accounts in the demo emulator (contacts, leads, opportunities in proportion).
    #[arg(long, global = true, default_value_t = 10_000, value_name = "N")]
    pub demo_rows: usize,
}

/// A live connection: the client, the token provider, and the demo emulator if one runs.
pub struct Connection {
    /// The Web API client.
    pub client: DataverseClient,
    /// The sign-in flow in use.
    pub tokens: Arc<dyn TokenProvider>,
    /// The parsed connection.
    pub config: ConnectionConfig,
    /// Keeps the demo emulator running.
    pub demo: Option<Emulator>,
}

impl Connection {
    /// Stops the demo emulator, if any.
    pub async fn close(self) {
        if let Some(emu) = self.demo {
            emu.shutdown().await;
        }
    }
}

/// The connection string of the emulator's certificate app (System Administrator).
pub fn demo_connection_string(emu: &Emulator) -> Result<String, Failure> {
    let r = emu.ready();
    let app = r
        .apps
        .iter()
        .find(|a| a.certificate.is_some())
        .ok_or_else(|| Failure::service("the demo emulator has no certificate app"))?;
    let cert = app.certificate.as_ref().ok_or_else(|| Failure::service("the certificate app has no certificate"))?;
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

fn read_connection(args: &ConnectArgs) -> Result<String, Failure> {
    let Some(text) = &args.connection else {
        return Err(Failure::bad_input(
            "no connection given: pass --connection \"OrganizationUrl=https://org.crm.dynamics.com;AuthScheme=...\" \
             (or set D365_CONNECTION), or try --demo to use the built-in emulator",
        ));
    };
    match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|e| Failure::bad_input(format!("cannot read the connection string file {path}: {e}"))),
        None => Ok(text.clone()),
    }
}

/// Connects as the arguments say.
pub async fn connect(args: &ConnectArgs) -> Result<Connection, Failure> {
    let env = Environment::from_process();
    let (text, demo) = if args.demo {
        eprintln!("starting the demo emulator ({} accounts)…", args.demo_rows);
        let emu = Emulator::start(EmulatorOptions { rows: args.demo_rows, ..Default::default() })
            .await
            .map_err(|e| Failure::service(format!("the demo emulator could not start: {e}")))?;
        (demo_connection_string(&emu)?, Some(emu))
    } else {
        (read_connection(args)?, None)
    };
    let config = ConnectionConfig::parse(&text, &env).map_err(|e| Failure::bad_input(e.to_string()))?;
    // A delegated connection without stored tokens may open a browser only when someone is
    // there to use it; scripts and CI get a clear "run d365 login" error instead of a wait.
    let interactive = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        d365_auth::Interactive::Browser
    } else {
        d365_auth::Interactive::Never
    };
    let options = ProviderOptions::new(env).with_interactive(interactive);
    let tokens = provider_from_config(&config, &options).map_err(Failure::from_auth)?;
    let mut options = ClientOptions::new(config.organization_url.as_str());
    options.api_version = config.api_version.trim_start_matches('v').to_string();
    options.caller_id = config.caller_id;
    options.caller_object_id = config.caller_object_id;
    if let Some(t) = config.timeout {
        options.timeout = t;
    }
    if let Some(cert) = &config.ssl_server_cert {
        options.extra_ca_pem = Some(if cert.contains("-----BEGIN") {
            cert.as_bytes().to_vec()
        } else {
            std::fs::read(cert)
                .map_err(|e| Failure::bad_input(format!("cannot read SSLServerCert file {cert}: {e}")))?
        });
    }
    let client = DataverseClient::new(options, tokens.clone()).map_err(Failure::from_client)?;
    Ok(Connection { client, tokens, config, demo })
}
