//! The front door of d365: what every front end (the `d365` CLI, the Python package) needs to
//! go from a CData-style connection string to rows.
//!
//! ```no_run
//! # async fn demo() -> Result<(), d365_core::Error> {
//! use d365_core::{Connection, EngineSettings, OpenOptions, Param, Session};
//! use futures::StreamExt;
//!
//! let conn = Connection::open(
//!     "OrganizationUrl=https://contoso.crm.dynamics.com;AuthScheme=AzureAD;InitiateOAuth=GETANDREFRESH",
//!     &[],
//!     OpenOptions::detect(),
//! )
//! .await?;
//! let session = Session::new(conn, EngineSettings::default());
//! let mut rows = session.query("SELECT name FROM account WHERE revenue > ?", &[Param::Int(1_000_000)]).await?;
//! while let Some(batch) = rows.next().await {
//!     println!("{} rows", batch.map_err(d365_sql::SqlError::from)?.num_rows());
//! }
//! # Ok(()) }
//! ```
//!
//! - [`Connection`] parses the connection string ([`parse_connection`]), builds the sign-in
//!   flow and the Web API client; [`Connection::demo`] runs the built-in emulator.
//! - [`Session`] runs statements: queries ([`Session::query`]), writes ([`Session::write`],
//!   [`Session::write_many`] for many parameter sets in one bulk write) and `EXEC` of the OAuth
//!   procedures, with parameters bound as typed values ([`params`]).
//! - [`Error`] keeps the service's detail (status, code, request id) and says what
//!   [`ErrorKind`] of failure it is.

pub mod aggregate_bench;
pub mod bulk;
mod connection;
mod error;
pub mod exec_stmt;
pub mod params;
mod procedure;
mod properties;
mod session;
mod write_settings;

pub use connection::{
    Connection, DemoEdition, EngineSettings, OpenOptions, emulator_app_connection_string, emulator_connection_string,
    emulator_finops_connection_string, parse_connection,
};
pub use error::{Error, ErrorKind};
pub use exec_stmt::{ExecStatement, ExecSyntaxError, parse_exec};
pub use params::Param;
pub use procedure::run_procedure;
pub use properties::QuerySettings;
pub use session::{Outcome, Session, StatementKind, classify};
pub use write_settings::WriteSettings;

pub use d365_auth;
pub use d365_client;
pub use d365_emulator;
pub use d365_sql;
pub use d365_sync;
