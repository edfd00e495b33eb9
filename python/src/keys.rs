//! Keys and values coming in from Python.

use std::borrow::Cow;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::buffer::InBuffer;

/// The bytes of a key: a `bytes` key is borrowed, a `str` key encoded as UTF-8.
///
/// # Errors
/// `TypeError` for any other type (`bytearray` and `memoryview` are
/// mutable, so they are refused as keys, as `dict` refuses them).
pub fn key<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(bytes.as_bytes()));
    }
    if let Ok(text) = obj.cast::<PyString>() {
        return Ok(Cow::Owned(text.to_cow()?.into_owned().into_bytes()));
    }
    Err(PyTypeError::new_err(format!(
        "keys are bytes or str, not {}",
        obj.get_type()
            .name()
            .map_or_else(|_| "?".to_owned(), |n| n.to_string())
    )))
}

/// The bytes of a value: `bytes` borrowed directly, any other C-contiguous
/// buffer through the buffer protocol; never copied.
pub enum Value<'a> {
    /// The contents of a `bytes` object.
    Bytes(&'a [u8]),
    /// A borrowed buffer (`bytearray`, `memoryview`, numpy array, ...).
    Buffer(InBuffer),
}

impl Value<'_> {
    /// The value's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Value::Bytes(bytes) => bytes,
            Value::Buffer(buffer) => buffer.as_slice(),
        }
    }
}

/// Borrows the bytes of `obj` as a value.
///
/// # Errors
/// `TypeError` for objects without the buffer protocol (including `str`:
/// encode it first), `ValueError` for non-contiguous buffers.
pub fn value<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Value<'a>> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(bytes.as_bytes()));
    }
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "values are bytes-like (bytes, bytearray, memoryview, numpy arrays); \
             encode a str first, e.g. text.encode()",
        ));
    }
    InBuffer::get(obj, false).map(Value::Buffer)
}
