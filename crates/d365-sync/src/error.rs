//! The errors of export and sync: the client's own (with the service's detail), local files,
//! the local SQLite store, and arguments.

use std::path::PathBuf;

use d365_client::ClientError;

/// An export or sync failure.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The Web API request failed (status, Dataverse code and request id inside).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The local SQLite store failed.
    #[error("local store {}: {source}", path.display())]
    Store {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// PostgreSQL refused or failed (the server's message, SQLSTATE, detail and hint).
    #[error("PostgreSQL {target}: {message}")]
    Postgres {
        /// The destination (no password).
        target: String,
        /// What went wrong.
        message: String,
    },
    /// An object store refused or failed.
    #[error("{target}: {message}")]
    ObjectStore {
        /// The destination (no credentials).
        target: String,
        /// What went wrong.
        message: String,
    },
    /// A Delta Lake table could not be read or written.
    #[error("{target}: {message}")]
    Delta {
        /// The table (no credentials).
        target: String,
        /// What went wrong.
        message: String,
    },
    /// The checkpoint of an earlier run cannot be used.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A manifest of a scaled-out export is unusable (damaged, of another organization or
    /// plan, units missing at the commit, the table's columns changed since the plan).
    #[error("manifest {location}: {message}")]
    Manifest {
        /// Where the manifest is (no credentials).
        location: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// No table of that name.
    #[error(
        "no table named '{name}'{}: use a logical name such as 'account' or an entity set name such as 'accounts' \
         (`d365 tables` lists them)",
        suggestion.as_ref().map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default()
    )]
    UnknownTable {
        /// The name as given.
        name: String,
        /// The nearest table name, if one is close.
        suggestion: Option<String>,
    },
    /// Bad arguments.
    #[error("{0}")]
    InvalidArgument(String),
    /// A feature this build does not have yet.
    #[error("{0}")]
    Unsupported(String),
}

impl SyncError {
    /// Whether the user's input is at fault (exit code 2 in the CLI).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::UnknownTable { .. }
                | Self::InvalidArgument(_)
                | Self::Unsupported(_)
                | Self::Checkpoint { .. }
                | Self::Manifest { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
