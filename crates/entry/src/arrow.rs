//! Stored values as Apache Arrow buffers that share the memory map
//! (feature `arrow`).
//!
//! [`EntryHandle::to_arrow_buffer`] hands Arrow the address and length of
//! the value in the map and a clone of the handle as the buffer's owner: no
//! byte is copied, and the handle keeps the map (and so the bytes) alive for
//! as long as any Arrow buffer or array built on it exists, even after the
//! store is compacted or dropped. The bytes never change while mapped (see
//! the crate's soundness notes), which is what Arrow's immutable buffers
//! assume.

use std::panic::RefUnwindSafe;
use std::ptr::NonNull;
use std::sync::Arc;

use arrow_buffer::{ArrowNativeType, Buffer, ScalarBuffer};

use crate::error::{Error, Result};
use crate::handle::EntryHandle;

/// The owner Arrow keeps for a buffer over a stored value.
struct MappedValue {
    _owner: EntryHandle,
}

// A handle is only read through shared references and holds no state that
// a panic could leave half-changed.
impl RefUnwindSafe for MappedValue {}

impl EntryHandle {
    /// The value as an Arrow [`Buffer`] that points into the map: no copy,
    /// and the buffer keeps the bytes alive (it owns a clone of this
    /// handle). Non-empty values start on a 64-byte boundary, Arrow's
    /// preferred alignment.
    #[must_use]
    pub fn to_arrow_buffer(&self) -> Buffer {
        let bytes = self.as_slice();
        let ptr = NonNull::from(bytes).cast::<u8>();
        // SAFETY: `ptr..ptr + len` is the value in the map, readable and
        // never changed or unmapped while the owner (a clone of this
        // handle, which keeps its map alive) lives; Arrow keeps the owner
        // for as long as the buffer or any slice of it exists.
        unsafe {
            Buffer::from_custom_allocation(
                ptr,
                bytes.len(),
                Arc::new(MappedValue {
                    _owner: self.clone(),
                }),
            )
        }
    }

    /// The value as a typed Arrow [`ScalarBuffer`] sharing the map, like
    /// [`EntryHandle::to_arrow_buffer`].
    ///
    /// # Errors
    /// [`Error::TypedView`] when the length is not a multiple of
    /// `size_of::<T>()` or the value is not aligned for `T`.
    pub fn to_arrow_scalar_buffer<T: ArrowNativeType>(&self) -> Result<ScalarBuffer<T>> {
        let size = size_of::<T>();
        let align = align_of::<T>();
        let bytes = self.as_slice();
        if !bytes.len().is_multiple_of(size) || !bytes.as_ptr().addr().is_multiple_of(align) {
            return Err(Error::TypedView {
                len: bytes.len(),
                type_name: std::any::type_name::<T>(),
                size,
                align,
            });
        }
        Ok(ScalarBuffer::new(
            self.to_arrow_buffer(),
            0,
            bytes.len() / size,
        ))
    }
}
