//! Python bindings of mmblob: the native module `mmblob._mmblob`.
//!
//! The Python package `mmblob` wraps this module (see `mmblob/__init__.py`);
//! users never import it directly.
//!
//! # Soundness
//!
//! Values reach Python through `mmblob.Value` objects (see `buffer.rs`),
//! which own an `Arc` of a memory map and export a readable stretch of it
//! (one value, or the whole readable prefix of the map) read-only through
//! the buffer protocol. A `memoryview` made from one, every slice of that
//! view, and every numpy array over any of them hold a reference to the
//! exporter, so the `Arc`, and with it the mapping, lives as long as any
//! view: closing, compacting or collecting the store never unmaps bytes a
//! view can reach. Bytes below a map's readable mark never change (the
//! file is append-only), so a view never sees them move. The buffer is
//! exported read-only, so Python cannot write into the shared map.
//!
//! Incoming buffers are borrowed with `PyObject_GetBuffer` and released on
//! drop; calls that release the GIL while borrowing one read it while other
//! Python threads run. Exporters keep such memory alive and unmoved while
//! exported (a `bytearray` or numpy array cannot be resized meanwhile); a
//! thread that writes into the same buffer during the call makes the stored
//! bytes a mix of old and new, as with any I/O call that releases the GIL.
//!
//! `tests/test_lifetimes.py` races readers holding views against
//! compaction, overwrites and `close()`: were a view not to keep its map
//! alive, its reads would fault or see other bytes.

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
