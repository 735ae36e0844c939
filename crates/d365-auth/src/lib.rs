//! Sign-in for d365: the connection string, one [`TokenProvider`] per Entra ID flow, the
//! single-flight token cache and the encrypted token store.
//!
//! The Web API client (`d365-client`) only sees [`TokenProvider`]: it asks for a token before each
//! request and reports a token the service rejected with 401, so the provider refreshes exactly once.
//!
//! ```no_run
//! # async fn demo() -> Result<(), d365_auth::AuthError> {
//! use d365_auth::{ConnectionConfig, Environment, ProviderOptions, provider_from_config};
//! let env = Environment::from_process();
//! let config = ConnectionConfig::parse(
//!     "OrganizationUrl=https://org.crm.dynamics.com;AuthScheme=AzureServicePrincipal;\
//!      AzureTenant=contoso.onmicrosoft.com;OAuthClientId=…;OAuthClientSecret=…",
//!     &env,
//! )?;
//! let provider = provider_from_config(&config, &ProviderOptions::new(env))?;
//! let token = provider.token().await?;
//! # let _ = token; Ok(()) }
//! ```
//!
//! For the CLI: [`provider_from_config`] (any command needing a token), [`login`] / [`logout`],
//! [`procedures::call_procedure`] with [`procedures::PROCEDURES`], and [`AuthError::kind`] for
//! exit codes.

pub mod cache;
pub mod certificate;
pub mod clock;
pub mod cloud;
pub mod config;
mod config_values;
pub mod connection_string;
pub mod discovery;
mod entra_error;
mod environment;
mod error;
pub mod flows;
pub mod http;
pub mod options;
mod os_keyring;
pub mod procedures;
pub mod properties;
pub mod provider;
mod secret;
pub mod store_key;
mod token;
pub mod token_client;
pub mod token_store;

pub use cloud::{Authority, AzureEnvironment};
pub use config::ConnectionConfig;
pub use discovery::discover_tenant;
pub use environment::Environment;
pub use error::{AuthError, ConfigError, EntraError, ErrorKind};
pub use options::{Interactive, ProviderOptions};
pub use procedures::call_procedure;
pub use provider::{Flow, LoginOutcome, login, logout, plan, provider_from_config};
pub use secret::Secret;
pub use token::{AccessToken, StaticTokenProvider, TokenProvider};
pub use token_store::StoreError;
