//! The Python buffer protocol, both ways, on every CPython from 3.9 on.
//!
//! PyO3 offers the buffer protocol under the stable ABI only from Python
//! 3.11, where `Py_buffer` and its functions joined the limited API. They
//! did so unchanged: the struct's layout and the functions
//! `PyObject_GetBuffer`, `PyBuffer_Release` and `PyBuffer_FillInfo` are the
//! same in every CPython since 3.3, and `PyType_FromSpec` accepts the
//! `Py_bf_getbuffer` slot since 3.9 (bpo-40724). This module declares them
//! itself so that one abi3 wheel works from 3.9 on.
//!
//! * [`InBuffer`] borrows the bytes of any C-contiguous buffer (`bytes`,
//!   `bytearray`, `memoryview`, numpy arrays, `mmap`, ...) without copying.
//! * [`new_value`] makes a read-only exporter, type `mmblob.Value`, that owns
//!   an `Arc` of the map and lends a stored value (or the whole map) read-only to `memoryview` and numpy: the
//!   bytes stay mapped for as long as any view of them exists.

use std::ffi::{c_char, c_int, c_void};
use std::mem::ManuallyDrop;
use std::ptr;

use std::sync::Arc;

use mmblob_entry::{EntryHandle, Mapping};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// `Py_buffer`, as laid out by every CPython since 3.3.
#[repr(C)]
struct RawBuffer {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

const PYBUF_WRITABLE: c_int = 0x0001;
const PYBUF_ND: c_int = 0x0008;
const PYBUF_STRIDES: c_int = 0x0010 | PYBUF_ND;
const PYBUF_C_CONTIGUOUS: c_int = 0x0020 | PYBUF_STRIDES;
/// `Py_bf_getbuffer` in `typeslots.h` (stable since 3.9).
const PY_BF_GETBUFFER: c_int = 1;

unsafe extern "C" {
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut RawBuffer, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut RawBuffer);
    fn PyBuffer_FillInfo(
        view: *mut RawBuffer,
        obj: *mut ffi::PyObject,
        buf: *mut c_void,
        len: ffi::Py_ssize_t,
        readonly: c_int,
        flags: c_int,
    ) -> c_int;
}

/// The bytes of a C-contiguous buffer, borrowed (no copy) until drop.
pub struct InBuffer {
    view: RawBuffer,
}

// SAFETY: the exporter keeps the memory valid and unmoved until the view is
// released (bytearray and numpy refuse to resize while exported); `Drop`
// releases it with the GIL held, from whichever thread drops it.
unsafe impl Send for InBuffer {}

impl InBuffer {
    /// Borrows `obj`'s bytes; `writable` asks for a buffer the caller may
    /// write into.
    ///
    /// # Errors
    /// `TypeError` when `obj` does not support the buffer protocol,
    /// `ValueError` when its buffer is not C-contiguous or not writable.
    pub fn get(obj: &Bound<'_, PyAny>, writable: bool) -> PyResult<InBuffer> {
        let py = obj.py();
        let flags = if writable {
            PYBUF_C_CONTIGUOUS | PYBUF_WRITABLE
        } else {
            PYBUF_C_CONTIGUOUS
        };
        let mut view = RawBuffer {
            buf: ptr::null_mut(),
            obj: ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 0,
            ndim: 0,
            format: ptr::null_mut(),
            shape: ptr::null_mut(),
            strides: ptr::null_mut(),
            suboffsets: ptr::null_mut(),
            internal: ptr::null_mut(),
        };
        // SAFETY: `obj` is a live object (we hold the GIL and a reference);
        // `view` is a properly laid out `Py_buffer` the call fills in.
        let rc = unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut view, flags) };
        if rc != 0 {
            let cause = PyErr::fetch(py);
            let has_buffer = !obj.is_instance_of::<pyo3::types::PyString>()
                && cause.is_instance_of::<pyo3::exceptions::PyBufferError>(py);
            let err = if has_buffer || cause.is_instance_of::<PyValueError>(py) {
                PyValueError::new_err(format!(
                    "value of type {} is not a C-contiguous{} buffer; pass a contiguous copy \
                     (bytes(...), numpy.ascontiguousarray(...))",
                    type_name(obj),
                    if writable { " writable" } else { "" }
                ))
            } else {
                PyTypeError::new_err(format!(
                    "a bytes-like object is required (bytes, bytearray, memoryview, numpy array), \
                     not {}",
                    type_name(obj)
                ))
            };
            err.set_cause(py, Some(cause));
            return Err(err);
        }
        Ok(InBuffer { view })
    }

    /// The borrowed bytes.
    pub fn as_slice(&self) -> &[u8] {
        if self.view.len <= 0 || self.view.buf.is_null() {
            return &[];
        }
        // SAFETY: a C-contiguous buffer is `len` bytes from `buf`, valid
        // until released, which happens only in `drop`.
        unsafe { std::slice::from_raw_parts(self.view.buf.cast::<u8>(), self.view.len as usize) }
    }

    /// The borrowed bytes, writable (only for a view taken with `writable`).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        assert!(self.view.readonly == 0, "buffer taken read-only");
        if self.view.len <= 0 || self.view.buf.is_null() {
            return &mut [];
        }
        // SAFETY: as in `as_slice`; the exporter granted write access and
        // `&mut self` makes this the only borrow.
        unsafe {
            std::slice::from_raw_parts_mut(self.view.buf.cast::<u8>(), self.view.len as usize)
        }
    }
}

impl Drop for InBuffer {
    fn drop(&mut self) {
        Python::attach(|_py| {
            // SAFETY: the view was filled by a successful `PyObject_GetBuffer`
            // and is released exactly once, with the GIL held.
            unsafe { PyBuffer_Release(&mut self.view) }
        });
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// Bytes of a memory map, kept mapped by an `Arc` of it.
pub struct Lent {
    _map: Arc<Mapping>,
    ptr: *const u8,
    len: usize,
}

impl Lent {
    /// The payload of `handle`.
    pub fn entry(handle: &EntryHandle) -> Lent {
        let bytes = handle.as_slice();
        Lent {
            _map: Arc::clone(handle.mapping()),
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// The whole readable prefix of `map` (file offsets `0..readable_len`).
    pub fn whole(map: &Arc<Mapping>) -> Lent {
        let bytes = map.readable();
        Lent {
            _map: Arc::clone(map),
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` was a readable slice of the map when the
        // `Lent` was made; the readable mark never goes down and bytes below
        // it never change, and `_map` keeps the mapping alive.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Layout of a `mmblob.Value` object: the object header, then the bytes.
#[repr(C)]
struct ValueObject {
    ob_base: ffi::PyObject,
    lent: ManuallyDrop<Lent>,
}

/// `bf_getbuffer`: lends its bytes, read-only.
unsafe extern "C" fn value_getbuffer(
    exporter: *mut ffi::PyObject,
    view: *mut RawBuffer,
    flags: c_int,
) -> c_int {
    // SAFETY: CPython calls this slot only on instances of the Value type,
    // which `new_value` initialised; the bytes stay mapped until dealloc, and
    // every view holds a reference to the exporter (set by FillInfo), so the
    // bytes outlive every view.
    unsafe {
        let bytes = (*exporter.cast::<ValueObject>()).lent.as_slice();
        PyBuffer_FillInfo(
            view,
            exporter,
            bytes.as_ptr().cast_mut().cast::<c_void>(),
            bytes.len() as ffi::Py_ssize_t,
            1,
            flags,
        )
    }
}

/// `tp_dealloc`: releases the bytes (and with them, maybe, the map).
unsafe extern "C" fn value_dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: called once, when the last reference goes; `new_value`
    // initialised the bytes, and no view exists any more (each holds a
    // reference). Heap-type instances own a reference to their type.
    unsafe {
        ManuallyDrop::drop(&mut (*obj.cast::<ValueObject>()).lent);
        let tp = ffi::Py_TYPE(obj);
        let free = ffi::PyType_GetSlot(tp, ffi::Py_tp_free);
        let free: ffi::freefunc = std::mem::transmute(free);
        free(obj.cast::<c_void>());
        ffi::Py_DECREF(tp.cast::<ffi::PyObject>());
    }
}

/// `tp_new`: values come only from a store.
unsafe extern "C" fn value_new(
    _tp: *mut ffi::PyTypeObject,
    _args: *mut ffi::PyObject,
    _kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: called by CPython with the GIL held; the strings are static.
    unsafe {
        ffi::PyErr_SetString(
            ffi::PyExc_TypeError,
            c"mmblob.Value objects are made by a Store; read a key instead".as_ptr(),
        );
    }
    ptr::null_mut()
}

static VALUE_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The `mmblob.Value` type, created on first use.
pub fn value_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    VALUE_TYPE
        .get_or_try_init(py, || {
            let mut slots = [
                ffi::PyType_Slot {
                    slot: PY_BF_GETBUFFER,
                    pfunc: value_getbuffer as *mut c_void,
                },
                ffi::PyType_Slot {
                    slot: ffi::Py_tp_dealloc,
                    pfunc: value_dealloc as *mut c_void,
                },
                ffi::PyType_Slot {
                    slot: ffi::Py_tp_new,
                    pfunc: value_new as *mut c_void,
                },
                ffi::PyType_Slot {
                    slot: ffi::Py_tp_doc,
                    pfunc: c"A stored value: exports its bytes, read-only and without a copy, \
                            to memoryview and numpy, and keeps them mapped while any view lives."
                        .as_ptr()
                        .cast_mut()
                        .cast::<c_void>(),
                },
                ffi::PyType_Slot {
                    slot: 0,
                    pfunc: ptr::null_mut(),
                },
            ];
            let mut spec = ffi::PyType_Spec {
                name: c"mmblob.Value".as_ptr(),
                basicsize: size_of::<ValueObject>() as c_int,
                itemsize: 0,
                flags: ffi::Py_TPFLAGS_DEFAULT as _,
                slots: slots.as_mut_ptr(),
            };
            // SAFETY: `spec` and `slots` are valid for the call (CPython
            // copies what it keeps); the name and doc are static.
            let tp = unsafe { ffi::PyType_FromSpec(&mut spec) };
            if tp.is_null() {
                return Err(PyErr::fetch(py));
            }
            // SAFETY: a new, owned reference to a type object.
            let tp = unsafe { Bound::from_owned_ptr(py, tp) };
            Ok(tp.cast_into::<PyType>()?.unbind())
        })
        .map(|t| t.bind(py))
}

/// A new `mmblob.Value` lending `lent`.
pub fn new_value(py: Python<'_>, lent: Lent) -> PyResult<Bound<'_, PyAny>> {
    let tp = value_type(py)?;
    // SAFETY: `tp` is our heap type; GenericAlloc returns a zeroed instance
    // of `basicsize` bytes with a reference to the type, or NULL with an
    // exception set. The bytes are written before anything can see it.
    unsafe {
        let obj = ffi::PyType_GenericAlloc(tp.as_ptr().cast::<ffi::PyTypeObject>(), 0);
        if obj.is_null() {
            return Err(PyErr::fetch(py));
        }
        ptr::write(
            &raw mut (*obj.cast::<ValueObject>()).lent,
            ManuallyDrop::new(lent),
        );
        Ok(Bound::from_owned_ptr(py, obj))
    }
}

/// A read-only `memoryview` over `lent` (no copy).
pub fn new_memoryview(py: Python<'_>, lent: Lent) -> PyResult<Bound<'_, PyAny>> {
    let value = new_value(py, lent)?;
    // SAFETY: `value` is a live exporter; the result is a new reference or
    // NULL with an exception set.
    unsafe {
        let view = ffi::PyMemoryView_FromObject(value.as_ptr());
        if view.is_null() {
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, view))
    }
}

/// `view[start:end]`: a new memoryview sharing `view`'s buffer (one small
/// allocation, no call into the exporter).
pub fn slice<'py>(view: &Bound<'py, PyAny>, start: u64, end: u64) -> PyResult<Bound<'py, PyAny>> {
    let py = view.py();
    let (start, end) = (
        isize::try_from(start).map_err(|_| PyValueError::new_err("offset too large"))?,
        isize::try_from(end).map_err(|_| PyValueError::new_err("offset too large"))?,
    );
    view.get_item(pyo3::types::PySlice::new(py, start, end, 1))
}

/// Read-only memoryviews of many values of one map, each a slice of one
/// view of the whole map: cheaper than a `Value` and a view per value.
#[derive(Default)]
pub struct MapViews {
    current: Option<(Arc<Mapping>, u64, Py<PyAny>)>,
}

impl MapViews {
    /// A memoryview of `handle`'s payload.
    pub fn view<'py>(
        &mut self,
        py: Python<'py>,
        handle: &EntryHandle,
    ) -> PyResult<Bound<'py, PyAny>> {
        let range = handle.offset_range();
        let whole = match &self.current {
            Some((map, len, whole)) if Arc::ptr_eq(map, handle.mapping()) && range.end <= *len => {
                whole.bind(py).clone()
            }
            _ => {
                let lent = Lent::whole(handle.mapping());
                let len = lent.len as u64;
                let whole = new_memoryview(py, lent)?;
                self.current = Some((Arc::clone(handle.mapping()), len, whole.clone().unbind()));
                whole
            }
        };
        slice(&whole, range.start, range.end)
    }

    /// The view of the whole map made last, with the address range of the
    /// bytes it covers: `(start, end, view)`.
    pub fn current(&self) -> Option<(usize, usize, &Py<PyAny>)> {
        self.current.as_ref().map(|(map, len, whole)| {
            let start = map.readable().as_ptr() as usize;
            (start, start + *len as usize, whole)
        })
    }

    /// Forgets the view of the whole map (releasing the map if nothing else holds it).
    pub fn clear(&mut self) {
        self.current = None;
    }
}
