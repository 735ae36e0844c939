//! Typed errors of the sign-in layer. None of them ever contains a secret: values of secret
//! properties are replaced by `<redacted>` before an error is built, and Entra's answers carry
//! no secrets.

use std::path::PathBuf;

use crate::connection_string::SyntaxError;
pub use crate::entra_error::EntraError;
pub use crate::token_store::StoreError;

/// A problem with the connection string or the environment it is completed from. The CLI maps
/// these to exit code 2 (bad input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The connection string does not split into `Key=Value` pairs.
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// A key that is not a known property.
    #[error("unknown connection property '{key}'{}", match suggestion {
        Some(s) => format!(": did you mean '{s}'?"),
        None => " (the README's \"Connecting\" section lists the properties)".to_string(),
    })]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The nearest known property.
        suggestion: Option<&'static str>,
    },
    /// A property the selected flow needs is not set.
    #[error("{flow} needs {key}{alternatives}")]
    MissingKey {
        /// The property.
        key: &'static str,
        /// The flow that needs it, in words (e.g. "AuthScheme=AzureServicePrincipal (client secret)").
        flow: String,
        /// Other ways to give it (e.g. " (or the AZURE_CLIENT_SECRET environment variable)").
        alternatives: String,
    },
    /// A value that does not parse.
    #[error("{key}={value} is not valid: expected {expected}")]
    InvalidValue {
        /// The property.
        key: &'static str,
        /// The value (or `<redacted>` for secret properties).
        value: String,
        /// The allowed values or the form expected.
        expected: String,
    },
    /// A plain-http URL that is not loopback.
    #[error(
        "{key} must be an https:// URL (got {url}); plain http is accepted only for loopback addresses (localhost, 127.0.0.1, ::1)"
    )]
    InsecureUrl {
        /// The property.
        key: &'static str,
        /// The URL given.
        url: String,
    },
    /// A valid setting d365 does not implement (yet).
    #[error("{0}")]
    NotSupported(String),
    /// Two settings that cannot go together, or a file named by a property that cannot be used.
    #[error("{0}")]
    Invalid(String),
}

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
    /// The connection string or environment is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Entra ID refused a request (AADSTS error).
    #[error(transparent)]
    Entra(#[from] Box<EntraError>),
    /// The identity service could not be reached, or the connection failed.
    #[error("{action} failed: {message}")]
    Http {
        /// What was being done ("getting a token from https://…/token").
        action: String,
        /// The transport error and its causes.
        message: String,
    },
    /// The identity service answered something that is not a token or an Entra error.
    #[error("{action}: unexpected answer (HTTP {status}): {detail}")]
    UnexpectedResponse {
        /// What was being done.
        action: String,
        /// HTTP status.
        status: u16,
        /// What was wrong with it (never the body of a successful token response).
        detail: String,
    },
    /// The certificate for the client assertion could not be used.
    #[error("cannot use the certificate {source_name}: {message}")]
    Certificate {
        /// Where it came from (a path, or "OAuthJWTCert (inline)").
        source_name: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Io {
        /// What the file is ("the federated token file").
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The token store could not be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A user must sign in interactively, and this call may not open a browser.
    #[error("{reason}: sign in first (`d365 login`, or `d365 login --device-code` without a browser)")]
    InteractionRequired {
        /// Why no token could be obtained silently.
        reason: String,
    },
    /// The browser came back to the loopback listener with a different `state`.
    #[error(
        "the sign-in answer reaching {callback} carried a different 'state' than the request: it was not the answer to this sign-in (another sign-in running at the same time, or a forged request); sign in again"
    )]
    StateMismatch {
        /// The callback URL that received it.
        callback: String,
    },
    /// The loopback listener for the browser sign-in could not be used.
    #[error("the sign-in listener on {callback} failed: {message}")]
    Callback {
        /// The callback URL.
        callback: String,
        /// What went wrong.
        message: String,
    },
    /// The browser could not be opened (the URL was still shown).
    #[error(
        "cannot open the browser ({message}); open this URL yourself: {url} (on a machine without a browser, sign in with a device code: `d365 login --device-code`)"
    )]
    Browser {
        /// What failed.
        message: String,
        /// The sign-in URL.
        url: String,
    },
    /// Waiting for a user or a service took too long.
    #[error("{0}")]
    TimedOut(String),
    /// The managed identity endpoint refused or failed.
    #[error("managed identity ({endpoint}) answered HTTP {status}: {message}{hint}")]
    ManagedIdentity {
        /// The endpoint (no query).
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
        /// The likely fix.
        hint: String,
    },
    /// The tenant could not be discovered from the Web API's 401 challenge.
    #[error("cannot discover the tenant from {url}: {message}; set AzureTenant")]
    TenantDiscovery {
        /// The URL probed.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A stored procedure name that does not exist.
    #[error("unknown procedure '{name}'{}; known: {known}", suggestion.map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default())]
    UnknownProcedure {
        /// The name given.
        name: String,
        /// The nearest known procedure.
        suggestion: Option<&'static str>,
        /// All procedure names.
        known: String,
    },
    /// A procedure argument is missing or wrong.
    #[error("{procedure}: {message}")]
    ProcedureArgument {
        /// The procedure.
        procedure: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// How the CLI should classify an error (its exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is wrong (exit code 2).
    BadInput,
    /// Authentication failed (exit code 3).
    Authentication,
    /// A service or the network failed (exit code 4).
    Service,
}

impl AuthError {
    /// The category of this error, for exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AuthError::Config(_) | AuthError::UnknownProcedure { .. } | AuthError::ProcedureArgument { .. } => {
                ErrorKind::BadInput
            }
            AuthError::Certificate { .. } | AuthError::Io { .. } => ErrorKind::BadInput,
            AuthError::Entra(e) if e.status >= 500 => ErrorKind::Service,
            AuthError::Http { .. } | AuthError::UnexpectedResponse { .. } | AuthError::TenantDiscovery { .. } => {
                ErrorKind::Service
            }
            AuthError::ManagedIdentity { status, .. } if *status >= 500 => ErrorKind::Service,
            _ => ErrorKind::Authentication,
        }
    }

    /// The Entra error, when this is one.
    pub fn entra(&self) -> Option<&EntraError> {
        match self {
            AuthError::Entra(e) => Some(e),
            _ => None,
        }
    }

    /// A transport error while `action`.
    pub(crate) fn http(action: impl Into<String>, e: &reqwest::Error) -> Self {
        AuthError::Http { action: action.into(), message: error_chain(e) }
    }
}

/// `e` and its sources, joined with ": " (reqwest's URL without query string).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}
