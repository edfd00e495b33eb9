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

/// Rows copied per rayon task at least: below this, splitting costs more
/// than it saves.
const MIN_ROWS_PER_TASK: usize = 64;

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

/// Copies the value of `keys[i]` into row `i` of `out`.
fn fill(
    store: &DataStore,
    keys: &[Cow<'_, [u8]>],
    out: &mut [u8],
    row_bytes: usize,
) -> Result<(), RowError> {
    let one = |row: usize, key: &[u8], dest: &mut [u8]| -> Result<(), RowError> {
        let copied = store
            .read_with(key, |value| {
                if value.len() == dest.len() {
                    dest.copy_from_slice(value);
                    Ok(())
                } else {
                    Err(value.len())
                }
            })
            .map_err(RowError::Store)?;
        match copied {
            None => Err(RowError::Missing(row)),
            Some(Err(len)) => Err(RowError::WrongSize { row, len }),
            Some(Ok(())) => Ok(()),
        }
    };
    if row_bytes == 0 {
        return keys
            .iter()
            .enumerate()
            .try_for_each(|(row, key)| one(row, key, &mut []));
    }
    out.par_chunks_mut(row_bytes)
        .zip(keys.par_iter())
        .enumerate()
        .with_min_len(MIN_ROWS_PER_TASK)
        .try_for_each(|(row, (dest, key))| one(row, key, dest))
}
