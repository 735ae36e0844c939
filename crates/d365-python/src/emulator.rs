//! [`Emulator`]: the built-in emulator of Entra ID and the Dataverse Web API, run in this
//! process (on the d365 runtime) for as long as the Python object is open.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use d365_core::d365_emulator::{Emulator as Inner, EmulatorOptions};
use pyo3::prelude::*;

use d365_core::d365_emulator::webapi::faults::FaultSettings;
use d365_core::d365_emulator::webapi::limits::LimitSettings;

use crate::errors::{interface, programming, to_py};
use crate::runtime::wait;

/// A running emulator.
#[pyclass(module = "d365._internal", frozen)]
pub struct Emulator {
    inner: Mutex<Option<Inner>>,
    ready_json: String,
    connection_string: String,
    org_url: String,
}

#[pymethods]
impl Emulator {
    /// Starts an emulator: `rows` accounts (contacts, leads, opportunities in proportion),
    /// HTTPS on `port` (0 picks a free one), data in memory or in `data` (a SQLite file),
    /// `latency_ms` added to every Web API request; `auto_approve` signs that user in on the
    /// sign-in and device-code pages by itself (tests); `limits` and `faults` as the CLI's
    /// `--limits requests=6000,window=300,concurrent=52` and `--faults 429=0.02,reset=0.01`;
    /// `app_users` more application users `worker-1` … (each its own limits budget).
    #[new]
    #[pyo3(signature = (
        rows=1000, port=0, data=None, config=None, latency_ms=0, latency_per_row_us=0, dop_hint=None,
        verbose=false, auto_approve=None, state_dir=None, token_lifetime_s=3600, limits=None, faults=None,
        fault_seed=1, app_users=0
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        rows: usize,
        port: u16,
        data: Option<PathBuf>,
        config: Option<PathBuf>,
        latency_ms: u64,
        latency_per_row_us: u64,
        dop_hint: Option<u32>,
        verbose: bool,
        auto_approve: Option<String>,
        state_dir: Option<PathBuf>,
        token_lifetime_s: u64,
        limits: Option<&str>,
        faults: Option<&str>,
        fault_seed: u64,
        app_users: usize,
    ) -> PyResult<Self> {
        let bad = |what: &str, text: &str, e: String| programming(format!("{what}={text:?}: {e}"));
        let limits = match limits {
            Some(text) => LimitSettings::parse(text).map_err(|e| bad("limits", text, e))?,
            None => LimitSettings::default(),
        };
        let faults = match faults {
            Some(text) => FaultSettings::parse(text, fault_seed).map_err(|e| bad("faults", text, e))?,
            None => FaultSettings::default(),
        };
        let options = EmulatorOptions {
            rows,
            port,
            data,
            config,
            latency: Duration::from_millis(latency_ms),
            latency_per_row: Duration::from_micros(latency_per_row_us),
            dop_hint,
            verbose,
            auto_approve,
            state_dir,
            token_lifetime: Duration::from_secs(token_lifetime_s),
            limits,
            faults,
            app_users,
            ..EmulatorOptions::default()
        };
        let emu = wait(py, Inner::start(options))?.map_err(|e| to_py(py, d365_core::Error::Emulator(e.to_string())))?;
        let connection_string = d365_core::emulator_connection_string(&emu).map_err(|e| to_py(py, e))?;
        let ready_json = serde_json::to_string(emu.ready())
            .map_err(|e| to_py(py, d365_core::Error::Emulator(format!("cannot describe the emulator: {e}"))))?;
        let org_url = emu.ready().org_url.clone();
        Ok(Self { inner: Mutex::new(Some(emu)), ready_json, connection_string, org_url })
    }

    /// The connection string of the emulator's certificate app (System Administrator).
    #[getter]
    fn connection_string(&self) -> &str {
        &self.connection_string
    }

    /// The ready information as JSON: authority, tenant, org URL, CA file, apps (with their
    /// test secrets and certificate files) and users.
    #[getter]
    fn ready_json(&self) -> &str {
        &self.ready_json
    }

    /// Whether it still runs.
    #[getter]
    fn running(&self) -> bool {
        self.inner.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    /// Stops it and removes its temporary files.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let emu = self.inner.lock().map_err(|_| interface("the emulator handle is unusable"))?.take();
        if let Some(emu) = emu {
            wait(py, emu.shutdown())?;
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("<d365 Emulator {} {}>", self.org_url, if self.running() { "running" } else { "stopped" })
    }
}
