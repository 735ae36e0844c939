//! The PEP 249 exception hierarchy, and [`to_py`]: a d365 error as the matching class, carrying
//! `status`, `code` and `request_id` attributes (never a secret: the libraries redact them).

use d365_core::d365_client::codes::{DOES_NOT_EXIST, DUPLICATE_KEY};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(d365, Warning, PyException, "Important warnings (PEP 249).");
create_exception!(d365, Error, PyException, "Base class of every d365 error (PEP 249).");
create_exception!(
    d365,
    InterfaceError,
    Error,
    "The connector was used wrongly: a bad connection string, a closed connection or cursor."
);
create_exception!(d365, DatabaseError, Error, "An error of the service or of a statement.");
create_exception!(d365, DataError, DatabaseError, "A value could not be read or converted.");
create_exception!(
    d365,
    OperationalError,
    DatabaseError,
    "Sign-in failed, the service refused (403), throttled past the retry budget, or the network failed."
);
create_exception!(
    d365,
    IntegrityError,
    DatabaseError,
    "A write broke a key or a precondition (duplicate key, stale row version)."
);
create_exception!(d365, InternalError, DatabaseError, "An internal error of d365.");
create_exception!(d365, ProgrammingError, DatabaseError, "Bad SQL, unknown table or column, wrong parameters.");
create_exception!(
    d365,
    NotSupportedError,
    DatabaseError,
    "A feature d365 or the service does not support (e.g. rollback)."
);

/// Adds the classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Warning", py.get_type::<Warning>())?;
    m.add("Error", py.get_type::<Error>())?;
    m.add("InterfaceError", py.get_type::<InterfaceError>())?;
    m.add("DatabaseError", py.get_type::<DatabaseError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("OperationalError", py.get_type::<OperationalError>())?;
    m.add("IntegrityError", py.get_type::<IntegrityError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add("ProgrammingError", py.get_type::<ProgrammingError>())?;
    m.add("NotSupportedError", py.get_type::<NotSupportedError>())?;
    // Every error has these attributes, set where they are known; None elsewhere (errors raised
    // before anything was sent, by the Python layer or a closed cursor).
    let base = py.get_type::<Error>();
    for attr in ["status", "code", "request_id", "rowcount", "failures"] {
        base.setattr(attr, py.None())?;
    }
    Ok(())
}

/// The exception for a d365 error, with its attributes set.
pub fn to_py(py: Python<'_>, e: d365_core::Error) -> PyErr {
    let status = e.status();
    let code = e.code();
    let request_id = e.request_id();
    let message = e.to_string();
    let err = match e.kind() {
        _ if matches!(e, d365_core::Error::Connection(_)) => InterfaceError::new_err(message),
        _ if status == Some(412) || matches!(code.as_deref(), Some(DUPLICATE_KEY | DOES_NOT_EXIST)) => {
            IntegrityError::new_err(message)
        }
        d365_core::ErrorKind::BadInput => ProgrammingError::new_err(message),
        d365_core::ErrorKind::NotSupported => NotSupportedError::new_err(message),
        d365_core::ErrorKind::Authentication | d365_core::ErrorKind::Service => OperationalError::new_err(message),
        d365_core::ErrorKind::Data => DataError::new_err(message),
    };
    let _ = set_detail(py, &err, status, code, request_id);
    err
}

/// Sets `status`, `code` and `request_id` on the exception value.
pub fn set_detail(
    py: Python<'_>,
    err: &PyErr,
    status: Option<u16>,
    code: Option<String>,
    request_id: Option<String>,
) -> PyResult<()> {
    let value = err.value(py);
    value.setattr("status", status)?;
    value.setattr("code", code.filter(|c| !c.is_empty()))?;
    value.setattr("request_id", request_id)?;
    Ok(())
}

/// A misuse of the API (closed cursor, bad argument type).
pub fn interface(message: impl Into<String>) -> PyErr {
    InterfaceError::new_err(message.into())
}

/// Bad input that the Rust core did not see (a parameter type).
pub fn programming(message: impl Into<String>) -> PyErr {
    ProgrammingError::new_err(message.into())
}
