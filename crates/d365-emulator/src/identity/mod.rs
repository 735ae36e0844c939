//! The Entra ID side: OpenID discovery, JWKS, the token endpoint (client credentials with a
//! secret or a certificate assertion, authorization code + PKCE, refresh token, device
//! code), the sign-in page, device-code verification and admin consent.

use crate::state::AppState;
use axum::Router;

/// Mutable identity state: issued codes, refresh tokens, device codes, consents, replay cache.
#[derive(Debug, Default)]
pub struct IdentityState {}

/// Routes under the authority host.
pub fn routes() -> Router<AppState> {
    Router::new()
}
