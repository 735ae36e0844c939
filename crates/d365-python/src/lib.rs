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

/// The allocator of the extension's Rust code: mimalloc, which handles the many-threaded,
/// short-lived page buffers of a read with much less CPU than glibc's malloc. Python's own
/// objects keep Python's allocator; Arrow buffers handed to pyarrow are freed through their
/// release callback, so by this allocator too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Whether a connection property (any spelling or alias) holds a secret, which must not be
/// written where it is shown (a SQLAlchemy URL's query).
#[pyfunction]
fn is_secret_property(name: &str) -> bool {
    use d365_core::d365_auth::{connection_string::normalize_key, properties::is_secret_key};
    is_secret_key(&normalize_key(name))
}

#[pymodule]
fn _internal(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    logging::install(m)?;
    m.add_class::<session::Session>()?;
    m.add_class::<stream::ResultStream>()?;
    m.add_class::<emulator::Emulator>()?;
    scaleout::register(m)?;
    m.add_function(wrap_pyfunction!(is_secret_property, m)?)?;
    Ok(())
}
