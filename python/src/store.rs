//! `mmblob.Store`: a `DataStore` behind a Python mutable-mapping interface.

use std::borrow::Cow;
use std::cell::Cell;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use mmblob_engine::{DataStore, Durability, EntryHandle, EntryIter, OpenOptions};
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::buffer::{InBuffer, Lent, MapViews, new_memoryview, new_value, slice};
use crate::errors::{OrRaise, closed, damage_dict};
use crate::keys::{Value, key, value};
use crate::stack;

/// A store file opened from Python; see `mmblob.open`.
///
/// Safe to share between threads: every call takes the handle out of a
/// lock for as long as a pointer copy, and calls that may take long (writes,
/// verify, compact, refresh, stack, streams) release the GIL.
#[pyclass(frozen, subclass, module = "mmblob._mmblob", name = "StoreBase")]
pub struct Store {
    inner: RwLock<Option<Arc<DataStore>>>,
    /// Values are returned as slices of one view of the whole map.
    views: Mutex<MapViews>,
    path: PathBuf,
    read_only: bool,
}

impl Store {
    /// The open store, or `ClosedError`, held for the length of a call.
    fn store(&self, py: Python<'_>) -> PyResult<Held> {
        match &*self.inner.read().unwrap_or_else(PoisonError::into_inner) {
            Some(store) => Ok(Held::new(Arc::clone(store))),
            None => Err(closed(py, &self.path)),
        }
    }

    /// Runs `f` on the open store without cloning the handle. `f` must not
    /// touch Python objects (the lock is held while it runs).
    fn with<R>(&self, py: Python<'_>, f: impl FnOnce(&DataStore) -> R) -> PyResult<R> {
        match &*self.inner.read().unwrap_or_else(PoisonError::into_inner) {
            Some(store) => Ok(f(store)),
            None => Err(closed(py, &self.path)),
        }
    }

    /// A read-only memoryview of `handle`'s payload.
    fn view<'py>(&self, py: Python<'py>, handle: &EntryHandle) -> PyResult<Bound<'py, PyAny>> {
        // Never wait for the lock while holding the GIL: its holder may be
        // waiting for the GIL (a finalizer run by the allocator released it).
        match self.views.try_lock() {
            Ok(mut views) => views.view(py, handle),
            Err(_) => new_memoryview(py, Lent::entry(handle)),
        }
    }

    /// Drops the view of the whole map, so that a replaced map can go.
    fn forget_views(&self) {
        if let Ok(mut views) = self.views.try_lock() {
            views.clear();
        }
    }

    /// A memoryview of the value of `key_obj`, or `None`.
    ///
    /// When the value lies in the map that the cached view of the whole map
    /// covers, it is found by a borrowing lookup (no handle, no reference
    /// count) and sliced out of that view. Comparing addresses is enough:
    /// the cached view holds its map, so no other map can occupy those
    /// addresses, and the bytes below its length stay as they are.
    fn lookup_view<'py>(
        &self,
        py: Python<'py>,
        key_obj: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let key = key(key_obj)?;
        if let Ok(views) = self.views.try_lock()
            && let Some((start, end, whole)) = views.current()
        {
            let found = self
                .with(py, |s| {
                    s.read_with(&key, |v| (v.as_ptr() as usize, v.len()))
                })?
                .or_raise()?;
            match found {
                None => return Ok(None),
                Some((addr, len)) if len > 0 && addr >= start && addr + len <= end => {
                    let whole = whole.bind(py).clone();
                    drop(views);
                    let offset = (addr - start) as u64;
                    return slice(&whole, offset, offset + len as u64).map(Some);
                }
                Some(_) => {}
            }
        }
        match self.with(py, |s| s.read(&key))?.or_raise()? {
            Some(handle) => self.view(py, &handle).map(Some),
            None => Ok(None),
        }
    }

    fn read_handle(
        &self,
        py: Python<'_>,
        key_obj: &Bound<'_, PyAny>,
    ) -> PyResult<Option<EntryHandle>> {
        let key = key(key_obj)?;
        self.with(py, |s| s.read(&key))?.or_raise()
    }
}

fn durability(name: &str) -> PyResult<Durability> {
    match name {
        "none" => Ok(Durability::None),
        "flush" => Ok(Durability::Flush),
        "sync" => Ok(Durability::Sync),
        other => Err(PyValueError::new_err(format!(
            "durability must be \"none\", \"flush\" or \"sync\", not {other:?}"
        ))),
    }
}

#[pymethods]
impl Store {
    /// Opens (or creates) the store at `path`; prefer `mmblob.open`.
    #[new]
    #[pyo3(signature = (path, *, durability = "flush", read_only = false, create = true, strict = false))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        durability: &str,
        read_only: bool,
        create: bool,
        strict: bool,
    ) -> PyResult<Self> {
        let options = OpenOptions::new()
            .durability(self::durability(durability)?)
            .read_only(read_only)
            .create(create)
            .strict(strict);
        let opened = py.detach(|| options.open(&path)).or_raise()?;
        Ok(Store {
            inner: RwLock::new(Some(Arc::new(opened))),
            views: Mutex::new(MapViews::default()),
            path,
            read_only,
        })
    }

    /// Closes the store: releases the write lock and the store's own map.
    /// Views, arrays and streams taken earlier stay valid. Waits for calls
    /// running on other threads to finish. Closing twice does nothing.
    fn close(&self, py: Python<'_>) {
        let taken = self
            .inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.forget_views();
        if held_here() {
            // Called back from Python code that runs inside a call of a store
            // on this thread (a file's read() in write_stream, a generator
            // of keys, a finalizer): waiting would wait for ourselves. The
            // store goes when those calls return.
            drop(taken);
            return;
        }
        if let Some(mut store) = taken {
            py.detach(|| {
                loop {
                    match Arc::try_unwrap(store) {
                        Ok(store) => {
                            drop(store);
                            return;
                        }
                        Err(shared) => {
                            store = shared;
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                }
            });
        }
    }

    /// True once `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// The path the store was opened with.
    #[getter]
    fn path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// True for a store opened with `read_only=True`.
    #[getter]
    fn read_only(&self) -> bool {
        self.read_only
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let path = self.path.to_string_lossy();
        match self.with(py, DataStore::len) {
            Ok(n) => format!(
                "<mmblob.Store path={path:?} entries={n}{}>",
                if self.read_only { " read_only" } else { "" }
            ),
            Err(_) => format!("<mmblob.Store path={path:?} closed>"),
        }
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, DataStore::len)
    }

    /// `store[key]`: a read-only memoryview of the value, straight from the
    /// map (no copy). `KeyError` when the key holds no value.
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.lookup_view(py, key)? {
            Some(view) => Ok(view),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// `store[key] = value`: stores any C-contiguous buffer without copying
    /// it first.
    fn __setitem__(
        &self,
        py: Python<'_>,
        key_obj: &Bound<'_, PyAny>,
        value_obj: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let key = key(key_obj)?;
        let value = value(value_obj)?;
        let store = self.store(py)?;
        let bytes = value.as_slice();
        py.detach(|| store.write(&key, bytes)).or_raise()?;
        Ok(())
    }

    /// `del store[key]`; `KeyError` when the key holds no value.
    fn __delitem__(&self, py: Python<'_>, key_obj: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.delete(py, key_obj)? {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key_obj.clone().unbind()))
        }
    }

    fn __contains__(&self, py: Python<'_>, key_obj: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key(key_obj)?;
        self.with(py, |s| s.exists(&key))?.or_raise()
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Entries> {
        self.keys(py)
    }

    /// The value of `key` as a memoryview, or `default`.
    #[pyo3(signature = (key, default = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.lookup_view(py, key)? {
            Some(view) => Ok(view),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    /// A list with a memoryview (or `None` when missing) for each key.
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let objs: Vec<Bound<'py, PyAny>> = keys.try_iter()?.collect::<PyResult<_>>()?;
        let owned: Vec<Cow<'_, [u8]>> = objs.iter().map(key).collect::<PyResult<_>>()?;
        let borrowed: Vec<&[u8]> = owned.iter().map(AsRef::as_ref).collect();
        let handles = self.with(py, |s| s.batch_read(&borrowed))?.or_raise()?;
        let list = PyList::empty(py);
        for handle in handles {
            match handle {
                Some(handle) => list.append(self.view(py, &handle)?)?,
                None => list.append(py.None())?,
            }
        }
        Ok(list)
    }

    /// The value of `key` as an `mmblob.Value`: an object that exports the
    /// bytes read-only through the buffer protocol and keeps them mapped.
    /// `KeyError` when missing. Used by `array`.
    fn value<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        match self.read_handle(py, key)? {
            Some(handle) => new_value(py, Lent::entry(&handle)),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// Deletes `key`; returns whether it held a value.
    fn delete(&self, py: Python<'_>, key_obj: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key(key_obj)?;
        let store = self.store(py)?;
        py.detach(|| store.delete(&key)).or_raise()
    }

    /// Deletes every key of `keys` in one atomic batch; returns how many held a value.
    fn delete_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<usize> {
        let objs: Vec<Bound<'_, PyAny>> = keys.try_iter()?.collect::<PyResult<_>>()?;
        let owned: Vec<Cow<'_, [u8]>> = objs.iter().map(key).collect::<PyResult<_>>()?;
        let borrowed: Vec<&[u8]> = owned.iter().map(AsRef::as_ref).collect();
        let store = self.store(py)?;
        py.detach(|| store.batch_delete(&borrowed)).or_raise()
    }

    /// An iterator over the keys (as `bytes`) of a snapshot of the store.
    fn keys(&self, py: Python<'_>) -> PyResult<Entries> {
        Entries::new(self.with(py, DataStore::iter_entries)?, Kind::Keys)
    }

    /// An iterator over the values (memoryviews) of a snapshot of the store.
    fn values(&self, py: Python<'_>) -> PyResult<Entries> {
        Entries::new(self.with(py, DataStore::iter_entries)?, Kind::Values)
    }

    /// An iterator over `(key, memoryview)` pairs of a snapshot of the store.
    fn items(&self, py: Python<'_>) -> PyResult<Entries> {
        Entries::new(self.with(py, DataStore::iter_entries)?, Kind::Items)
    }

    /// Writes every pair of `other` (a mapping or an iterable of pairs) and
    /// of `kwargs` in one atomic batch: after a crash all or none are there.
    #[pyo3(signature = (other = None, **kwargs))]
    fn update(
        &self,
        py: Python<'_>,
        other: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let mut pairs: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = Vec::new();
        if let Some(other) = other {
            if let Ok(dict) = other.cast::<PyDict>() {
                pairs.reserve(dict.len());
                pairs.extend(dict.iter());
            } else if other.hasattr("keys")? {
                for k in other.call_method0("keys")?.try_iter()? {
                    let k = k?;
                    let v = other.get_item(&k)?;
                    pairs.push((k, v));
                }
            } else {
                for item in other.try_iter()? {
                    let item = item?;
                    let pair = item.cast::<PyTuple>().ok().filter(|t| t.len() == 2);
                    let (k, v) = match pair {
                        Some(t) => (t.get_item(0)?, t.get_item(1)?),
                        None => {
                            let seq: Vec<Bound<'_, PyAny>> = item
                                .try_iter()
                                .map_err(|_| PyTypeError::new_err("update() needs a mapping or an iterable of (key, value) pairs"))?
                                .collect::<PyResult<_>>()?;
                            let [k, v]: [Bound<'_, PyAny>; 2] = seq.try_into().map_err(|_| {
                                PyValueError::new_err("update() pairs must have exactly 2 elements")
                            })?;
                            (k, v)
                        }
                    };
                    pairs.push((k, v));
                }
            }
        }
        if let Some(kwargs) = kwargs {
            pairs.extend(kwargs.iter());
        }
        let keys: Vec<Cow<'_, [u8]>> =
            pairs.iter().map(|(k, _)| key(k)).collect::<PyResult<_>>()?;
        let values: Vec<Value<'_>> = pairs
            .iter()
            .map(|(_, v)| value(v))
            .collect::<PyResult<_>>()?;
        let entries: Vec<(&[u8], &[u8])> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (k.as_ref(), v.as_slice()))
            .collect();
        let store = self.store(py)?;
        py.detach(|| store.batch_write(&entries)).or_raise()?;
        Ok(())
    }

    /// Gathers the values of `keys` into one new C-contiguous numpy array of
    /// shape `(len(keys), *shape)`, copying in parallel with the GIL released.
    /// `shape` defaults to the first value's length in `dtype` items.
    /// `KeyError` for a missing key, `ValueError` for a value of another size.
    #[pyo3(signature = (keys, dtype, shape = None))]
    fn stack<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
        dtype: &Bound<'py, PyAny>,
        shape: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let store = self.store(py)?;
        stack::stack(py, &store, keys, dtype, shape)
    }

    /// Stores everything `fileobj.read()` yields under `key`, 1 MiB at a
    /// time, without holding the value in memory. Any exception of the file
    /// aborts the write (nothing is stored) and propagates. Returns the
    /// number of bytes stored.
    fn write_stream(
        &self,
        py: Python<'_>,
        key_obj: &Bound<'_, PyAny>,
        fileobj: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let key = key(key_obj)?;
        let store = self.store(py)?;
        let mut reader = PyReader {
            file: fileobj.clone().unbind(),
            error: None,
            total: 0,
        };
        let result = py.detach(|| store.write_stream(&key, &mut reader));
        if let Some(err) = reader.error.take() {
            return Err(err);
        }
        result.or_raise()?;
        Ok(reader.total)
    }

    /// Recomputes every checksum (in parallel, GIL released) and returns
    /// `{"ok", "entries_checked", "bytes_checked", "damaged": [...]}`;
    /// damaged entries are also recorded in `damage()`.
    fn verify<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store(py)?;
        let report = py.detach(|| store.verify()).or_raise()?;
        let d = PyDict::new(py);
        d.set_item("ok", report.is_ok())?;
        d.set_item("entries_checked", report.entries_checked)?;
        d.set_item("bytes_checked", report.bytes_checked)?;
        let damaged = PyList::empty(py);
        for damage in &report.damaged {
            damaged.append(damage_dict(py, damage)?)?;
        }
        d.set_item("damaged", damaged)?;
        Ok(d)
    }

    /// Rewrites the live entries into a new file that replaces the old one
    /// (GIL released). Views taken before stay valid. Returns
    /// `{"bytes_before", "bytes_after", "entries_kept", "entries_dropped"}`.
    fn compact<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store(py)?;
        let stats = py.detach(|| store.compact()).or_raise()?;
        self.forget_views();
        let d = PyDict::new(py);
        d.set_item("bytes_before", stats.bytes_before)?;
        d.set_item("bytes_after", stats.bytes_after)?;
        d.set_item("entries_kept", stats.entries_kept)?;
        d.set_item("entries_dropped", stats.entries_dropped)?;
        Ok(d)
    }

    /// Sizes from the writer's counters (no scan): `live_entries`,
    /// `live_bytes`, `reclaimable_bytes`, `file_size`, `index_memory_bytes`,
    /// `damaged` (stretches found so far), `read_only`, `path`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (stats, index_bytes, damaged) = self.with(py, |s| {
            (s.stats(), s.index_memory_bytes(), s.damage().len())
        })?;
        let d = PyDict::new(py);
        d.set_item("live_entries", stats.live_entries)?;
        d.set_item("live_bytes", stats.live_bytes)?;
        d.set_item("reclaimable_bytes", stats.reclaimable_bytes)?;
        d.set_item("file_size", stats.file_size)?;
        d.set_item("index_memory_bytes", index_bytes)?;
        d.set_item("damaged", damaged)?;
        d.set_item("read_only", self.read_only)?;
        d.set_item("path", self.path())?;
        Ok(d)
    }

    /// Puts everything written so far on stable storage (`fdatasync`).
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        let store = self.store(py)?;
        py.detach(|| store.sync()).or_raise()
    }

    /// Shows a read-only store what another process wrote since it opened or
    /// last refreshed (and follows a compacted file). No-op when writable.
    fn refresh(&self, py: Python<'_>) -> PyResult<()> {
        let store = self.store(py)?;
        py.detach(|| store.refresh()).or_raise()
    }

    /// Moves the value of `old` to `new` (replacing `new`); `KeyError` if
    /// `old` holds no value.
    fn rename(
        &self,
        py: Python<'_>,
        old: &Bound<'_, PyAny>,
        new: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (old, new) = (key(old)?, key(new)?);
        let store = self.store(py)?;
        py.detach(|| store.rename(&old, &new)).or_raise()
    }

    /// Copies the value of `key` into the store `target`.
    fn copy_to(
        &self,
        py: Python<'_>,
        key_obj: &Bound<'_, PyAny>,
        target: &Bound<'_, Store>,
    ) -> PyResult<()> {
        let key = key(key_obj)?;
        let (source, target) = (self.store(py)?, target.get().store(py)?);
        py.detach(|| source.copy_to(&key, &target)).or_raise()
    }

    /// Moves the value of `key` into the store `target` (copy, then delete here).
    fn transfer_to(
        &self,
        py: Python<'_>,
        key_obj: &Bound<'_, PyAny>,
        target: &Bound<'_, Store>,
    ) -> PyResult<()> {
        let key = key(key_obj)?;
        let (source, target) = (self.store(py)?, target.get().store(py)?);
        py.detach(|| source.transfer_to(&key, &target)).or_raise()
    }

    /// Damage found so far (at open, by `verify()`, by `refresh()`), as
    /// dicts with `start`, `end`, `kind` and `description`.
    fn damage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let damage = self.with(py, DataStore::damage)?;
        let list = PyList::empty(py);
        for d in &damage {
            list.append(damage_dict(py, d)?)?;
        }
        Ok(list)
    }

    /// For tests: `(map_start, map_len, value_address, value_len)` of the
    /// map holding `key`'s value, as integers.
    fn _locate(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<(usize, usize, usize, usize)> {
        let handle = self
            .read_handle(py, key)?
            .ok_or_else(|| PyKeyError::new_err(key.clone().unbind()))?;
        let map = handle.mapping().readable();
        Ok((
            map.as_ptr() as usize,
            map.len(),
            handle.as_slice().as_ptr() as usize,
            handle.len(),
        ))
    }
}

thread_local! {
    /// Store handles held by calls running on this thread.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// True while a call on this thread holds a store handle.
fn held_here() -> bool {
    HELD.with(Cell::get) > 0
}

/// A store handle held by a running call (see `Store::close`).
pub struct Held(Arc<DataStore>);

impl Held {
    fn new(store: Arc<DataStore>) -> Held {
        HELD.with(|h| h.set(h.get() + 1));
        Held(store)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.with(|h| h.set(h.get().saturating_sub(1)));
    }
}

impl std::ops::Deref for Held {
    type Target = DataStore;

    fn deref(&self) -> &DataStore {
        &self.0
    }
}

/// Adapts a Python binary file object to `Read` for `write_stream`.
struct PyReader {
    file: Py<PyAny>,
    /// The Python exception that stopped the stream, re-raised as is.
    error: Option<PyErr>,
    total: u64,
}

impl Read for PyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let got = Python::attach(|py| -> PyResult<usize> {
            let chunk = self.file.bind(py).call_method1("read", (buf.len(),))?;
            if chunk.is_none() {
                return Err(PyValueError::new_err(
                    "write_stream: the file returned None (non-blocking stream with no data)",
                ));
            }
            if chunk.is_instance_of::<PyString>() {
                return Err(PyTypeError::new_err(
                    "write_stream needs a binary file (open it with mode \"rb\"), read() returned str",
                ));
            }
            let n = if let Ok(bytes) = chunk.cast::<PyBytes>() {
                copy_chunk(bytes.as_bytes(), buf)?
            } else {
                copy_chunk(InBuffer::get(&chunk, false)?.as_slice(), buf)?
            };
            Ok(n)
        });
        match got {
            Ok(n) => {
                self.total += n as u64;
                Ok(n)
            }
            Err(err) => {
                let message = Python::attach(|py| err.value(py).to_string());
                self.error = Some(err);
                Err(io::Error::other(message))
            }
        }
    }
}

fn copy_chunk(chunk: &[u8], buf: &mut [u8]) -> PyResult<usize> {
    if chunk.len() > buf.len() {
        return Err(PyValueError::new_err(format!(
            "write_stream: read({}) returned {} bytes",
            buf.len(),
            chunk.len()
        )));
    }
    buf[..chunk.len()].copy_from_slice(chunk);
    Ok(chunk.len())
}

/// What an [`Entries`] iterator yields.
#[derive(Clone, Copy)]
enum Kind {
    Keys,
    Values,
    Items,
}

/// Iterator over a snapshot of the live entries, in file order: keys
/// (`bytes`), values (memoryviews) or `(key, value)` pairs.
#[pyclass(frozen, module = "mmblob._mmblob", name = "EntryIterator")]
pub struct Entries {
    state: Mutex<(EntryIter, MapViews)>,
    kind: Kind,
}

impl Entries {
    fn new(iter: EntryIter, kind: Kind) -> PyResult<Self> {
        Ok(Entries {
            state: Mutex::new((iter, MapViews::default())),
            kind,
        })
    }
}

#[pymethods]
impl Entries {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Ok(mut state) = self.state.try_lock() else {
            return Err(PyValueError::new_err("iterator already executing"));
        };
        let (iter, views) = &mut *state;
        let Some(handle) = iter.next() else {
            views.clear();
            return Ok(None);
        };
        Ok(Some(match self.kind {
            Kind::Keys => PyBytes::new(py, handle.key()).into_any(),
            Kind::Values => views.view(py, &handle)?,
            Kind::Items => {
                let key = PyBytes::new(py, handle.key()).into_any();
                let value = views.view(py, &handle)?;
                PyTuple::new(py, [key, value])?.into_any()
            }
        }))
    }

    fn __length_hint__(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .size_hint()
            .1
            .unwrap_or(0)
    }
}
