//! Typed errors of the sign-in layer.

/// Why a token could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A token was given to the connection (`OAuthAccessToken` with `InitiateOAuth=OFF`) and it was
    /// rejected or has expired; there is no way to get another one.
    #[error(
        "the access token given in OAuthAccessToken was rejected or has expired and InitiateOAuth=OFF forbids getting a new one: supply a fresh token or set InitiateOAuth=GETANDREFRESH"
    )]
    GivenTokenRejected,
}
