//! d365's log records in Python's `logging`: the events of the Rust crates reach the loggers
//! `d365_core`, `d365_auth`, `d365_client` and `d365_sql` (and their children, e.g.
//! `d365_auth.cache`). Records of other crates (TLS, HTTP, DataFusion) are kept to warnings.
//!
//! Logger levels are read once per logger and cached: after changing the logging configuration,
//! call `d365.refresh_logging()`. The libraries never put a secret or token in a record.

use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3_log::{Caching, Logger, ResetHandle};

static RESET: OnceLock<ResetHandle> = OnceLock::new();

/// The crates whose records go to Python down to DEBUG.
const OURS: [&str; 5] = ["d365_core", "d365_auth", "d365_client", "d365_sql", "_internal"];

/// Installs the bridge (once per process) and adds `refresh_logging` to the module.
pub fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    if RESET.get().is_none() {
        let mut logger = Logger::new(m.py(), Caching::LoggersAndLevels)?.filter(log::LevelFilter::Warn);
        for target in OURS {
            // Debug, not Trace: the max level then lets the TLS and HTTP crates' trace records
            // be dropped by a static check instead of a logger look-up each (2-3 % of a read's
            // CPU in a profile of 200,000 rows).
            logger = logger.filter_target(target.to_string(), log::LevelFilter::Debug);
        }
        // Another extension may have installed a logger already: then ours stays out.
        if let Ok(handle) = logger.install() {
            let _ = RESET.set(handle);
        }
    }
    m.add_function(wrap_pyfunction!(refresh_logging, m)?)?;
    Ok(())
}

/// Forget the cached logger levels, after the logging configuration changed.
#[pyfunction]
fn refresh_logging() {
    if let Some(handle) = RESET.get() {
        handle.reset();
    }
}
