//! From the command line to a connected client: the connection string (`--connection`,
//! `--connection @FILE` or `D365_CONNECTION`, CData property names), or `--demo`, which starts
//! the emulator in this process and connects to it through the real HTTPS + OAuth path (both
//! through [`d365_core::Connection`]).

use crate::failure::Failure;

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
    /// Accounts in the demo emulator (contacts, leads, opportunities in proportion; in the
    /// Finance & Operations environments, customers with vendors, products and orders).
    #[arg(long, global = true, default_value_t = 10_000, value_name = "N")]
    pub demo_rows: usize,
    /// Which environment of the demo emulator to use (implies --demo): dataverse (Sales),
    /// finops (Finance & Operations online, Entra ID), finops-onprem (on premises, AD FS) or
    /// hr (Human Resources at its legacy URL). The F&O demos read every company.
    #[arg(long, global = true, value_enum, value_name = "EDITION")]
    pub demo_edition: Option<DemoEditionArg>,
}

/// `--demo-edition` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoEditionArg {
    /// The Dataverse organisation (Sales).
    Dataverse,
    /// Finance & Operations online.
    Finops,
    /// Finance & Operations on premises (AD FS).
    FinopsOnprem,
    /// Human Resources (legacy URL).
    Hr,
}

impl DemoEditionArg {
    fn edition(self) -> d365_core::DemoEdition {
        match self {
            Self::Dataverse => d365_core::DemoEdition::Dataverse,
            Self::Finops => d365_core::DemoEdition::FinOps,
            Self::FinopsOnprem => d365_core::DemoEdition::FinOpsOnPremise,
            Self::Hr => d365_core::DemoEdition::HumanResources,
        }
    }
}

pub use d365_core::Connection;

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
    if args.demo || args.demo_edition.is_some() {
        let edition = args.demo_edition.map(DemoEditionArg::edition).unwrap_or_default();
        match edition {
            d365_core::DemoEdition::Dataverse => {
                note!("starting the demo emulator ({} accounts)…", args.demo_rows)
            }
            _ => note!("starting the demo emulator ({} customers, {edition:?})…", args.demo_rows),
        }
        return Connection::demo_edition(args.demo_rows, edition).await.map_err(Failure::from_d365);
    }
    let text = read_connection(args)?;
    // A delegated connection without stored tokens may open a browser only when someone is
    // there to use it; scripts and CI get a clear "run d365 login" error instead of a wait.
    Connection::open(&text, &[], d365_core::OpenOptions::detect()).await.map_err(Failure::from_d365)
}
