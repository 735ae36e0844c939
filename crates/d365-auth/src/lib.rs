//! Sign-in for d365: the connection string, one [`TokenProvider`] per Entra ID flow, the
//! single-flight token cache and the encrypted token store.
//!
//! The Web API client (`d365-client`) only sees [`TokenProvider`]: it asks for a token before each
//! request and reports a token the service rejected with 401, so the provider refreshes exactly once.

mod error;
mod token;

pub use error::AuthError;
pub use token::{AccessToken, StaticTokenProvider, TokenProvider};
