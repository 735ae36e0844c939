//! Errors that stop the emulator from starting.

use std::path::{Path, PathBuf};

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A file or directory could not be read or written.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The port could not be bound.
    #[error(
        "cannot listen on port {port}: {source} (is another emulator running? pick another --port, or 0 for any free port)"
    )]
    Bind {
        /// The requested port.
        port: u16,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The `--config` file is invalid.
    #[error("invalid emulator config {path}: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Key or certificate generation failed.
    #[error("{0}")]
    Crypto(String),
    /// The SQLite store could not be opened or seeded.
    #[error("storage: {0}")]
    Store(String),
}

impl StartError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}
