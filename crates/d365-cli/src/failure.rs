//! What the user sees when a command fails: one or two lines that say what went wrong and
//! what to do, and the exit code (2 bad input, 3 authentication, 4 service).

use std::fmt;
use std::process::ExitCode;

/// Exit code for bad input (arguments, connection string, SQL, files).
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code for a failed sign-in.
pub const EXIT_AUTH: u8 = 3;
/// Exit code for a service or network error.
pub const EXIT_SERVICE: u8 = 4;

/// A failed command.
#[derive(Debug)]
pub struct Failure {
    /// The message (already actionable; secrets never included: the libraries redact them).
    pub message: String,
    /// The process exit code.
    pub code: u8,
}

impl Failure {
    /// Bad input: exit code 2.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: EXIT_BAD_INPUT }
    }

    /// Authentication failure: exit code 3.
    pub fn auth(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: EXIT_AUTH }
    }

    /// Service or network failure: exit code 4.
    pub fn service(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: EXIT_SERVICE }
    }

    /// Writing standard output (or an output file) failed. A reader that went away (a closed
    /// pipe: `d365 query … | head`) is not a failure: the command ends quietly with exit 0, as
    /// other Unix tools' output simply stops.
    pub fn output(e: impl fmt::Display) -> Self {
        let message = e.to_string();
        if message.contains("Broken pipe") || message.contains("os error 32") {
            return Self { message: String::new(), code: 0 };
        }
        Self::service(format!("cannot write the output: {message}"))
    }

    /// Whether the command ended because its reader went away (nothing to print, exit 0).
    pub fn is_closed_output(&self) -> bool {
        self.code == 0
    }

    /// From a sign-in error.
    pub fn from_auth(e: d365_auth::AuthError) -> Self {
        let code = match e.kind() {
            d365_auth::ErrorKind::BadInput => EXIT_BAD_INPUT,
            d365_auth::ErrorKind::Authentication => EXIT_AUTH,
            _ => EXIT_SERVICE,
        };
        Self { message: e.to_string(), code }
    }

    /// From a Web API error.
    pub fn from_client(e: d365_client::ClientError) -> Self {
        match e {
            d365_client::ClientError::Auth(a) => Self::from_auth(a),
            e if e.is_auth() => Self::auth(e.to_string()),
            e @ d365_client::ClientError::InvalidArgument(_) => Self::bad_input(e.to_string()),
            e => Self::service(e.to_string()),
        }
    }

    /// From a front-door error.
    pub fn from_d365(e: d365_core::Error) -> Self {
        let code = match e.kind() {
            d365_core::ErrorKind::BadInput | d365_core::ErrorKind::NotSupported => EXIT_BAD_INPUT,
            d365_core::ErrorKind::Authentication => EXIT_AUTH,
            d365_core::ErrorKind::Service | d365_core::ErrorKind::Data => EXIT_SERVICE,
        };
        match e {
            d365_core::Error::Client(c) => Self::from_client(c),
            d365_core::Error::Auth(a) => Self::from_auth(a),
            e => Self { message: e.to_string(), code },
        }
    }

    /// The exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
