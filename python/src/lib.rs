//! Python bindings of mmblob: the native module `mmblob._mmblob`.
//!
//! The Python package `mmblob` wraps this module (see `mmblob/__init__.py`);
//! users never import it directly.
//!
//! # Soundness
//!
//! Values reach Python as `mmblob.Value` objects (see `buffer.rs`), which
//! own an `EntryHandle` and export its bytes read-only through the buffer
//! protocol. Every `memoryview` and numpy array made from one holds a
//! reference to it, so the handle, and with it the `Arc` of the map it
//! points into, lives as long as any view: closing, compacting or
//! collecting the store never unmaps bytes a view can reach. The buffer is
//! exported read-only, so Python cannot write into the shared map.
//!
//! Incoming buffers are borrowed with `PyObject_GetBuffer` and released on
//! drop; calls that release the GIL while borrowing one read it while other
//! Python threads run. Exporters keep such memory alive and unmoved while
//! exported (a `bytearray` or numpy array cannot be resized meanwhile); a
//! thread that writes into the same buffer during the call makes the stored
//! bytes a mix of old and new, as with any I/O call that releases the GIL.

mod buffer;
mod errors;
mod keys;
mod stack;
mod store;

use pyo3::prelude::*;

/// The native part of the `mmblob` package.
#[pymodule]
fn _mmblob(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<store::Store>()?;
    m.add_class::<store::Entries>()?;
    m.add("Value", buffer::value_type(m.py())?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
