//! # d365-emulator
//!
//! A local stand-in for the Microsoft services d365 talks to: Entra ID's token endpoints, the
//! Dataverse Web API, Finance & Operations (online, on-premises with an AD FS server, and the
//! Human Resources legacy endpoint; see [`fno`] and [`adfs`]), served over HTTPS from one port
//! and backed by SQLite. It follows the documented protocol (status codes, headers, error bodies, paging
//! cookies, limits), so third-party clients can be pointed at it unmodified.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let emu = d365_emulator::Emulator::start(d365_emulator::EmulatorOptions::default()).await?;
//! println!("Web API at {}", emu.ready().webapi);
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

pub mod adfs;
pub mod clock;
pub mod config;
pub mod customize;
pub mod error;
pub mod fno;
pub mod identity;
pub mod options;
pub mod pki;
pub mod ready;
pub mod schema;
pub mod security;
mod server;
pub mod state;
pub mod store;
pub mod token;
pub mod webapi;

pub use clock::Clock;
pub use config::Config;
pub use customize::CreatedColumn;
pub use error::StartError;
pub use options::EmulatorOptions;
pub use ready::ReadyInfo;
pub use schema::custom::{AddColumnError, NewColumn, NewColumnKind};
pub use server::Emulator;
