//! The one place where mmblob errors become Python exceptions.
//!
//! The exception classes live in `mmblob/_errors.py` (Python can give them
//! two bases, so `InvalidKeyError` is also a `ValueError`); this module picks
//! the class, the message and the attributes (`path`, `offset`, `key`, ...)
//! for every [`Error`] variant. I/O failures become `OSError` built from
//! their errno, which Python turns into the matching subclass
//! (`FileNotFoundError`, `PermissionError`, ...).

use std::io;

use mmblob_engine::Error;
use pyo3::exceptions::{PyKeyError, PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyModule};

/// `EIO`, for I/O errors that carry no errno of their own.
const EIO: i32 = 5;
/// `ENOENT`.
const ENOENT: i32 = 2;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// The exception class `name` of `mmblob._errors`.
pub fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let module = ERRORS.get_or_try_init(py, || {
        PyModule::import(py, "mmblob._errors").map(Bound::unbind)
    })?;
    module.bind(py).getattr(name)
}

/// An instance of `mmblob.<name>` with `message` and the given attributes.
fn raise(py: Python<'_>, name: &str, message: String, attrs: &[(&str, Py<PyAny>)]) -> PyErr {
    let made = (|| -> PyResult<PyErr> {
        let exc = class(py, name)?.call1((message.clone(),))?;
        for (attr, value) in attrs {
            exc.setattr(*attr, value)?;
        }
        Ok(PyErr::from_value(exc))
    })();
    made.unwrap_or_else(|e| {
        let fallback = PyRuntimeError::new_err(message);
        fallback.set_cause(py, Some(e));
        fallback
    })
}

/// `OSError(errno, message)`: Python picks the subclass from the errno.
fn os_error(source: &io::Error, message: String) -> PyErr {
    PyOSError::new_err((source.raw_os_error().unwrap_or(EIO), message))
}

/// The Python exception for `err`.
pub fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let message = err.to_string();
    let path = |p: &std::path::Path| -> Py<PyAny> {
        p.to_string_lossy()
            .into_owned()
            .into_pyobject(py)
            .map_or_else(|_| py.None(), |s| s.into_any().unbind())
    };
    let int = |n: u64| -> Py<PyAny> {
        n.into_pyobject(py)
            .map_or_else(|_| py.None(), |n| n.into_any().unbind())
    };
    match &err {
        Error::Io { source, .. } => os_error(source, message),
        Error::StoreNotFound { path: p } => {
            PyOSError::new_err((ENOENT, message, p.to_string_lossy().into_owned()))
        }
        Error::KeyNotFound { key } => {
            PyKeyError::new_err(PyBytes::new(py, key).into_any().unbind())
        }
        Error::NotAStore { path: p, .. } | Error::NotAFile { path: p } => {
            raise(py, "NotAStoreError", message, &[("path", path(p))])
        }
        Error::UnsupportedVersion { path: p, found, .. } => raise(
            py,
            "UnsupportedVersionError",
            message,
            &[("path", path(p)), ("version", int(u64::from(*found)))],
        ),
        Error::Locked { path: p } => raise(py, "LockedError", message, &[("path", path(p))]),
        Error::ReadOnly { path: p, .. } => {
            raise(py, "ReadOnlyError", message, &[("path", path(p))])
        }
        Error::InvalidKey { len } => raise(
            py,
            "InvalidKeyError",
            message,
            &[("length", int(*len as u64))],
        ),
        Error::Corrupt { offset, .. } | Error::ChecksumMismatch { offset, .. } => {
            raise(py, "CorruptError", message, &[("offset", int(*offset))])
        }
        Error::ValueTooLarge { .. }
        | Error::TypedView { .. }
        | Error::SameStore { .. }
        | Error::InvalidOperation(_) => raise(py, "UsageError", message, &[]),
        _ => raise(py, "Error", message, &[]),
    }
}

/// `Result<T, mmblob::Error>` to `PyResult<T>` through [`to_py`].
pub trait OrRaise<T> {
    /// Converts the error, if any, to its Python exception.
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, Error> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(|e| Python::attach(|py| to_py(py, e)))
    }
}

/// `mmblob.ClosedError` for use of a closed store.
pub fn closed(py: Python<'_>, path: &std::path::Path) -> PyErr {
    raise(
        py,
        "ClosedError",
        format!("{}: the store is closed", path.display()),
        &[(
            "path",
            path.to_string_lossy()
                .into_owned()
                .into_pyobject(py)
                .map_or_else(|_| py.None(), |s| s.into_any().unbind()),
        )],
    )
}

/// Attributes of a damage record as a dict, for `damage()` and `verify()`.
pub fn damage_dict<'py>(
    py: Python<'py>,
    damage: &mmblob_engine::Damage,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("start", damage.range.start)?;
    d.set_item("end", damage.range.end)?;
    match &damage.kind {
        mmblob_engine::DamageKind::ChecksumMismatch { key, expected, got } => {
            d.set_item("kind", "checksum_mismatch")?;
            d.set_item("key", PyBytes::new(py, key))?;
            d.set_item("expected_crc", expected)?;
            d.set_item("computed_crc", got)?;
        }
        mmblob_engine::DamageKind::Unreadable => d.set_item("kind", "unreadable")?,
        _ => d.set_item("kind", "other")?,
    }
    d.set_item("description", damage.to_string())?;
    Ok(d)
}
