//! `Store.stack`: many values gathered into one new numpy array, in parallel.

use std::borrow::Cow;

use mmblob_engine::DataStore;
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyTuple};
use rayon::prelude::*;

use crate::buffer::InBuffer;
use crate::errors::OrRaise;
use crate::keys::key;

/// Rows per parallel task.
const CHUNK_ROWS: usize = 512;
/// Gathers smaller than this (in bytes) run on the calling thread.
const PARALLEL_MIN_BYTES: usize = 2 << 20;

/// Why a row could not be filled.
enum RowError {
    Missing(usize),
    WrongSize { row: usize, len: usize },
    Store(mmblob_engine::Error),
}

/// See `Store.stack`.
pub fn stack<'py>(
    py: Python<'py>,
    store: &DataStore,
    keys: &Bound<'py, PyAny>,
    dtype: &Bound<'py, PyAny>,
    shape: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let numpy = py.import("numpy")?;
    let dtype = numpy.getattr("dtype")?.call1((dtype,))?;
    let itemsize: usize = dtype.getattr("itemsize")?.extract()?;
    let objs: Vec<Bound<'py, PyAny>> = keys.try_iter()?.collect::<PyResult<_>>()?;
    let keys: Vec<Cow<'_, [u8]>> = objs.iter().map(key).collect::<PyResult<_>>()?;
    let shape: Vec<usize> = match shape {
        Some(shape) if !shape.is_none() => {
            if shape.is_instance_of::<PyInt>() {
                vec![shape.extract()?]
            } else {
                shape.extract()?
            }
        }
        _ => {
            // One row per key: the first value's length in items.
            let Some(first) = keys.first() else {
                return Err(PyValueError::new_err(
                    "stack() of no keys needs an explicit shape",
                ));
            };
            let len = store
                .read_with(first, <[u8]>::len)
                .or_raise()?
                .ok_or_else(|| PyKeyError::new_err(objs[0].clone().unbind()))?;
            if itemsize == 0 || len % itemsize != 0 {
                return Err(PyValueError::new_err(format!(
                    "value of {len} bytes is not a whole number of {itemsize}-byte items"
                )));
            }
            vec![len / itemsize]
        }
    };
    let row_bytes = shape
        .iter()
        .try_fold(itemsize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| PyValueError::new_err("shape too large"))?;
    let mut full_shape = Vec::with_capacity(shape.len() + 1);
    full_shape.push(keys.len());
    full_shape.extend_from_slice(&shape);
    let out = numpy
        .getattr("empty")?
        .call1((PyTuple::new(py, &full_shape)?, &dtype))?;
    let mut buffer = InBuffer::get(&out, true)?;
    let bytes = buffer.as_mut_slice();
    let filled = py.detach(|| fill(store, &keys, bytes, row_bytes));
    drop(buffer);
    match filled {
        Ok(()) => Ok(out),
        Err(RowError::Missing(row)) => Err(PyKeyError::new_err(objs[row].clone().unbind())),
        Err(RowError::WrongSize { row, len }) => Err(PyValueError::new_err(format!(
            "value of key {} has {len} bytes, not the {row_bytes} bytes of shape {shape:?} of {itemsize}-byte items",
            objs[row]
                .repr()
                .map_or_else(|_| "?".to_owned(), |r| r.to_string())
        ))),
        Err(RowError::Store(e)) => Err(e).or_raise(),
    }
}

/// Copies the value of `keys[i]` into row `i` of `out`: one chunk of rows
/// per task, each read with `batch_read` so that the cache misses of a few
/// dozen lookups overlap. Small gathers stay on the calling thread, where
/// handing work to other threads would cost more than the copy.
fn fill(
    store: &DataStore,
    keys: &[Cow<'_, [u8]>],
    out: &mut [u8],
    row_bytes: usize,
) -> Result<(), RowError> {
    if row_bytes == 0 {
        return fill_chunk(store, 0, keys, &mut [], 0);
    }
    if out.len() < PARALLEL_MIN_BYTES {
        return fill_chunk(store, 0, keys, out, row_bytes);
    }
    out.par_chunks_mut(row_bytes * CHUNK_ROWS)
        .zip(keys.par_chunks(CHUNK_ROWS))
        .enumerate()
        .try_for_each(|(chunk, (dest, keys))| {
            fill_chunk(store, chunk * CHUNK_ROWS, keys, dest, row_bytes)
        })
}

/// [`fill`] for the rows `first_row..first_row + keys.len()`.
fn fill_chunk(
    store: &DataStore,
    first_row: usize,
    keys: &[Cow<'_, [u8]>],
    out: &mut [u8],
    row_bytes: usize,
) -> Result<(), RowError> {
    let keys: Vec<&[u8]> = keys.iter().map(AsRef::as_ref).collect();
    let handles = store.batch_read(&keys).map_err(RowError::Store)?;
    for (i, handle) in handles.iter().enumerate() {
        let row = first_row + i;
        let Some(handle) = handle else {
            return Err(RowError::Missing(row));
        };
        if handle.len() != row_bytes {
            return Err(RowError::WrongSize {
                row,
                len: handle.len(),
            });
        }
        if row_bytes > 0 {
            out[i * row_bytes..(i + 1) * row_bytes].copy_from_slice(handle);
        }
    }
    Ok(())
}
