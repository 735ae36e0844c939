//! `d365._internal`: the compiled core of the `d365` Python package. A thin layer over the
//! `d365` crate: sessions, result streams (rows or Arrow C streams), the emulator and the PEP 249
//! exceptions. The typed, documented API is the pure-Python package around it.

mod emulator;
mod errors;
mod logging;
mod runtime;
mod scaleout;
mod session;
mod stream;
mod values;

use pyo3::prelude::*;

#[pymodule]
fn _internal(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    logging::install(m)?;
    m.add_class::<session::Session>()?;
    m.add_class::<stream::ResultStream>()?;
    m.add_class::<emulator::Emulator>()?;
    scaleout::register(m)?;
    Ok(())
}
