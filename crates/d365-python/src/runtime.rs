//! One tokio runtime for the process, and [`wait`]: run a future with the GIL released, waking
//! every 100 ms to let Python deliver signals (Ctrl-C raises `KeyboardInterrupt` and drops the
//! future, which cancels its requests).

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::Runtime;

static RUNTIME: OnceLock<(u32, Runtime)> = OnceLock::new();

/// The process's runtime. A forked child cannot use its parent's threads: it is refused with an
/// error rather than hanging.
pub fn runtime() -> PyResult<&'static Runtime> {
    let (pid, rt) = RUNTIME.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("d365-io")
            .build()
            .expect("the d365 I/O runtime starts");
        (std::process::id(), rt)
    });
    if *pid != std::process::id() {
        return Err(pyo3::exceptions::PyRuntimeError::new_err(
            "d365 was used before this process forked: its I/O threads stayed in the parent; import and connect in the child (use the 'spawn' start method)",
        ));
    }
    Ok(rt)
}

/// How often a blocked call checks for Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Runs `fut` to completion on the runtime with the GIL released; Ctrl-C (or any pending
/// signal handler that raises) stops it within [`SIGNAL_CHECK`].
pub fn wait<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime()?;
    let mut fut = std::pin::pin!(fut);
    loop {
        let done = py.detach(|| rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, fut.as_mut()).await.ok() }));
        if let Some(out) = done {
            return Ok(out);
        }
        py.check_signals()?;
    }
}
