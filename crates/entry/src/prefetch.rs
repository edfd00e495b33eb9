//! A cache prefetch hint, for loops that know which memory they touch next.

/// Asks the CPU to start loading the cache line holding `value`, so that a
/// later read of it does not stall. Only a hint: no effect on results, and
/// a no-op on targets without a prefetch instruction.
#[inline]
pub fn prefetch<T: ?Sized>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetch` needs SSE, which every x86-64 CPU has (it is part
    // of the target's baseline). A prefetch never faults and does not
    // access memory architecturally; the pointer comes from a live reference.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
