//! [`Error`]: everything that can go wrong between a connection string and rows, with the
//! service's own detail (HTTP status, Dataverse code, request id) kept for the front ends.

use d365_auth::{AuthError, ConfigError};
use d365_client::ClientError;
use d365_sql::SqlError;
use d365_sync::SyncError;

use crate::exec_stmt::ExecSyntaxError;

/// What kind of failure an [`Error`] is: the CLI turns it into an exit code, Python into a
/// PEP 249 exception class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is wrong: connection string, SQL, parameters, files (CLI exit 2;
    /// Python `ProgrammingError`, or `InterfaceError` for a connection string).
    BadInput,
    /// A feature this build does not have (Python `NotSupportedError`).
    NotSupported,
    /// Signing in failed (CLI exit 3; Python `OperationalError`).
    Authentication,
    /// The service or the network failed or refused (CLI exit 4; Python `OperationalError`).
    Service,
    /// A value could not be read or converted, or the service's validation refused it (out of
    /// range, too long; Python `DataError`).
    Data,
}

/// An error of the d365 front door.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection string is wrong (syntax, unknown or missing property, bad value).
    #[error("{0}")]
    Connection(#[from] ConfigError),
    /// Sign-in failed, or an OAuth procedure refused its arguments.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The Web API client failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The SQL engine failed (bad SQL, unknown names, the service refused a read or write).
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// A sync or export failed (the destination, a table, the service).
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// An `EXEC` statement that does not parse.
    #[error(transparent)]
    Exec(#[from] ExecSyntaxError),
    /// Parameters that do not fit the statement (count, type).
    #[error("{0}")]
    Parameters(String),
    /// Any other bad input (a file that cannot be read, a bad option).
    #[error("{0}")]
    BadInput(String),
    /// The emulator could not start.
    #[error("the emulator could not start: {0}")]
    Emulator(String),
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Connection(_) | Error::Exec(_) | Error::Parameters(_) | Error::BadInput(_) => ErrorKind::BadInput,
            Error::Auth(a) => auth_kind(a),
            Error::Client(c) => client_kind(c),
            Error::Sql(SqlError::Client(c)) => client_kind(c),
            Error::Sql(SqlError::Unsupported(_)) => ErrorKind::NotSupported,
            Error::Sql(SqlError::Decode { .. } | SqlError::Value(_)) => ErrorKind::Data,
            Error::Sql(e) if e.is_user_error() => ErrorKind::BadInput,
            Error::Sync(SyncError::Client(c)) => client_kind(c),
            Error::Sync(SyncError::Unsupported(_)) => ErrorKind::NotSupported,
            Error::Sync(e) if e.is_user_error() => ErrorKind::BadInput,
            Error::Sql(_) | Error::Sync(_) | Error::Emulator(_) => ErrorKind::Service,
        }
    }

    /// The Web API client error inside, if any.
    pub fn client_error(&self) -> Option<&ClientError> {
        match self {
            Error::Client(c) | Error::Sql(SqlError::Client(c)) | Error::Sync(SyncError::Client(c)) => Some(c),
            _ => None,
        }
    }

    /// The sign-in error inside, if any.
    pub fn auth_error(&self) -> Option<&AuthError> {
        match self {
            Error::Auth(a)
            | Error::Client(ClientError::Auth(a))
            | Error::Sql(SqlError::Client(ClientError::Auth(a)))
            | Error::Sync(SyncError::Client(ClientError::Auth(a))) => Some(a),
            _ => None,
        }
    }

    fn entra(&self) -> Option<&d365_auth::EntraError> {
        match self.auth_error() {
            Some(AuthError::Entra(e)) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status the service answered with, if the failure was an HTTP error.
    pub fn status(&self) -> Option<u16> {
        match self.entra() {
            Some(e) => Some(e.status).filter(|s| *s != 0),
            None => self.client_error().and_then(ClientError::status),
        }
    }

    /// The Dataverse error code (`0x80040220`) or Entra ID error (`AADSTS7000215`), if any.
    pub fn code(&self) -> Option<String> {
        match self.entra() {
            Some(e) => Some(e.code.map(|c| format!("AADSTS{c}")).unwrap_or_else(|| e.error.clone())),
            None => self.client_error().and_then(ClientError::dataverse_code).map(str::to_string),
        }
    }

    /// The service's request id, for support cases.
    pub fn request_id(&self) -> Option<String> {
        match self.entra() {
            Some(e) => e.trace_id.clone(),
            None => self.client_error().and_then(ClientError::service).and_then(|s| s.request_id.clone()),
        }
    }
}

fn auth_kind(a: &AuthError) -> ErrorKind {
    match a.kind() {
        d365_auth::ErrorKind::BadInput => ErrorKind::BadInput,
        d365_auth::ErrorKind::Authentication => ErrorKind::Authentication,
        d365_auth::ErrorKind::Service => ErrorKind::Service,
    }
}

fn client_kind(c: &ClientError) -> ErrorKind {
    match c {
        ClientError::Auth(a) => auth_kind(a),
        e if e.is_auth() => ErrorKind::Authentication,
        ClientError::InvalidArgument(_) => ErrorKind::BadInput,
        ClientError::Decode { .. } => ErrorKind::Data,
        e => match e.dataverse_code() {
            // "Entity '…' does not exist": a table name the organisation does not have.
            Some(d365_client::codes::UNKNOWN_TABLE) => ErrorKind::BadInput,
            // A value the service's validation refused: out of range, too long, not a choice.
            Some(d365_client::codes::VALIDATION) => ErrorKind::Data,
            _ => ErrorKind::Service,
        },
    }
}
