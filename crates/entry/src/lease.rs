//! Leases: how handles keep a map alive without a shared reference count.
//!
//! An [`EntryHandle`](crate::EntryHandle) must keep the map it points into
//! alive, and cloning or dropping one must not write a cache line that
//! other cores write too: a reference count shared by every reader makes
//! two cores reading different keys fight over one line, and an atomic
//! read-modify-write per read stops the cache misses of consecutive reads
//! from overlapping.
//!
//! So handles count references on a **lease** instead: a small object that
//! holds one `Arc` of the map and belongs to one thread, its *owner*. This
//! is biased reference counting:
//!
//! * The owner counts in `local`, a plain integer only the owner ever
//!   touches (no atomic instruction, no shared cache line).
//! * Every other thread counts in `shared`, an atomic integer. It starts at
//!   [`UNMERGED`] (2^62), a bias no number of real references can cancel,
//!   so it cannot reach zero while the owner still counts locally.
//! * Which counter a clone or drop uses depends only on the thread doing
//!   it: the owner's (while not merged) or the shared one. A reference
//!   taken on one thread may be dropped on another; the live count is
//!   always `local + shared - UNMERGED`, whichever side each step used.
//! * The owner holds one reference itself (its *holder*: a slot of the
//!   thread's lease cache, or a scoped lease). When the holder lets go
//!   (the map was retired, the cache evicts it, the scope ends, the thread
//!   exits), the owner **merges**: it stops counting locally and adds
//!   `local - 1 - UNMERGED` to `shared` in one atomic step. From then on
//!   `shared` is the exact number of references and everybody counts
//!   there; whoever takes it to zero frees the lease, which drops its `Arc`
//!   of the map.
//!
//! Why that is sound: `local` and `merged` are only read and written on
//! the owner's thread (thread ids come from a global counter and are never
//! reused, so no other thread can pass for the owner), and only the owner
//! merges, because only it can read `local`. Before the merge `shared`
//! stays above `UNMERGED - local > 0`, so no one frees early; the merge
//! (`AcqRel`) publishes the owner's plain counting to whichever thread
//! later takes `shared` to zero (a `Release` decrement and an `Acquire`
//! fence, as in `Arc`). A handle therefore never outlives its lease, and
//! the lease never outlives its last handle. The race tests in
//! `tests/handles_race_threads_remaps_compaction_and_drop.rs` clone and
//! drop handles across threads while their owners merge and exit, and
//! check both ways: the bytes stay readable, and the map is unmapped once
//! the last handle is gone.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering, fence};

use crate::mapping::Mapping;

/// The bias `shared` carries until the owner merges its local count.
const UNMERGED: isize = 1 << 62;
/// Leases a thread keeps for the maps it read from most recently.
const CACHED: usize = 4;

/// A lease on one map; see the module docs.
#[repr(align(128))]
struct Lease {
    map: Arc<Mapping>,
    /// Id of the owning thread (see [`thread_id`]); 0 for none.
    owner: u64,
    /// References counted by the owner. Owner thread only.
    local: Cell<isize>,
    /// Set by the owner when it merged. Owner thread only.
    merged: Cell<bool>,
    /// References counted by other threads, plus [`UNMERGED`] before the
    /// merge.
    shared: AtomicIsize,
}

/// One counted reference to a lease: what a handle holds.
pub(crate) struct LeaseRef {
    lease: NonNull<Lease>,
}

// SAFETY: a `LeaseRef` may be used and dropped on any thread: the lease's
// `map` and `owner` never change after creation and `Arc<Mapping>` is
// `Send + Sync`; `shared` is atomic; `local` and `merged` are touched only
// by code that first checked it runs on the owner's thread (see
// `LeaseRef::on_owner`), so they are never accessed from two threads.
unsafe impl Send for LeaseRef {}
// SAFETY: `&LeaseRef` only gives access to the map (see above); cloning
// through `&LeaseRef` follows the same owner check as on the owner thread.
unsafe impl Sync for LeaseRef {}

thread_local! {
    /// This thread's id, 0 until first asked.
    static THREAD_ID: Cell<u64> = const { Cell::new(0) };
    /// This thread's leases, most recently used first.
    static CACHE: LeaseCache = const { LeaseCache { slots: [const { Cell::new(None) }; CACHED] } };
}

/// The calling thread's id: unique for the life of the process, never 0.
#[inline]
fn thread_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    THREAD_ID.with(|id| match id.get() {
        0 => {
            let fresh = NEXT.fetch_add(1, Ordering::Relaxed);
            id.set(fresh);
            fresh
        }
        known => known,
    })
}

impl Lease {
    /// A new lease on `map` owned by the calling thread, with one local
    /// reference (the holder's).
    fn owned(map: &Arc<Mapping>) -> NonNull<Lease> {
        Lease::boxed(map, thread_id(), 1, false, UNMERGED)
    }

    fn boxed(
        map: &Arc<Mapping>,
        owner: u64,
        local: isize,
        merged: bool,
        shared: isize,
    ) -> NonNull<Lease> {
        NonNull::from(Box::leak(Box::new(Lease {
            map: Arc::clone(map),
            owner,
            local: Cell::new(local),
            merged: Cell::new(merged),
            shared: AtomicIsize::new(shared),
        })))
    }
}

impl LeaseRef {
    /// A reference to a lease no thread owns (counted in `shared` only):
    /// for handles made where no thread lease is at hand.
    pub(crate) fn unowned(map: &Arc<Mapping>) -> LeaseRef {
        LeaseRef {
            lease: Lease::boxed(map, 0, 0, true, 1),
        }
    }

    /// A new reference to a lease on `map`, from the calling thread's
    /// cache of leases (made on first use of the map by this thread).
    #[inline]
    pub(crate) fn for_map(map: &Arc<Mapping>) -> LeaseRef {
        CACHE
            .try_with(|cache| cache.acquire(map))
            // The thread is exiting and its cache is gone.
            .unwrap_or_else(|_| LeaseRef::unowned(map))
    }

    #[inline]
    fn lease(&self) -> &Lease {
        // SAFETY: this reference is counted, so the lease is not freed
        // while `self` lives (see the module docs).
        unsafe { self.lease.as_ref() }
    }

    /// The map the lease holds.
    #[inline]
    pub(crate) fn map(&self) -> &Arc<Mapping> {
        &self.lease().map
    }

    /// True when called on the lease owner's thread before it merged:
    /// then, and only then, `local` may be touched.
    #[inline]
    fn on_owner(lease: &Lease) -> bool {
        // `merged` is read only after the owner check passed, so only by
        // the owner.
        lease.owner != 0 && lease.owner == thread_id() && !lease.merged.get()
    }

    /// Counts one more reference to `lease`.
    ///
    /// # Safety
    /// The caller holds a counted reference to `lease` for the duration.
    #[inline]
    unsafe fn count_one_more(lease: NonNull<Lease>) -> LeaseRef {
        // SAFETY: the caller's reference keeps the lease alive.
        let l = unsafe { lease.as_ref() };
        if LeaseRef::on_owner(l) {
            l.local.set(l.local.get() + 1);
        } else {
            // Relaxed, as in `Arc::clone`: the caller's reference keeps the
            // count above zero, so nothing is ordered by this step.
            l.shared.fetch_add(1, Ordering::Relaxed);
        }
        LeaseRef { lease }
    }

    /// Lets go of one reference to `lease`, freeing it if it was the last.
    ///
    /// # Safety
    /// The caller gives up a counted reference to `lease` and does not use
    /// the lease afterwards.
    #[inline]
    unsafe fn count_one_less(lease: NonNull<Lease>) {
        // SAFETY: the reference given up keeps the lease alive until here.
        let l = unsafe { lease.as_ref() };
        if LeaseRef::on_owner(l) {
            // Before the merge `shared` keeps the lease alive (module docs).
            l.local.set(l.local.get() - 1);
        } else if l.shared.fetch_sub(1, Ordering::Release) == 1 {
            fence(Ordering::Acquire);
            // SAFETY: the count reached zero after the merge: no reference
            // is left, so no one else can reach the lease.
            unsafe { drop(Box::from_raw(lease.as_ptr())) };
        }
    }

    /// The owner's holder lets go: merge the local count into `shared`
    /// and count on it from now on.
    ///
    /// # Safety
    /// Called on the owner's thread, once per lease, by the holder of the
    /// reference made by [`Lease::owned`], which it gives up.
    unsafe fn merge(lease: NonNull<Lease>) {
        // SAFETY: the holder's reference keeps the lease alive until here.
        let l = unsafe { lease.as_ref() };
        debug_assert!(LeaseRef::on_owner(l), "merged off its owner's thread");
        l.merged.set(true);
        let add = l.local.get() - 1 - UNMERGED;
        if l.shared.fetch_add(add, Ordering::AcqRel) + add == 0 {
            // SAFETY: no reference is left (module docs).
            unsafe { drop(Box::from_raw(lease.as_ptr())) };
        }
    }
}

impl Clone for LeaseRef {
    #[inline]
    fn clone(&self) -> LeaseRef {
        // SAFETY: `self` is a counted reference held across the call.
        unsafe { LeaseRef::count_one_more(self.lease) }
    }
}

impl Drop for LeaseRef {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `self` is a counted reference, given up here.
        unsafe { LeaseRef::count_one_less(self.lease) }
    }
}

/// A thread's leases, most recently used first; each slot holds its
/// lease's holder reference. Merged when evicted, when their map is
/// retired, and when the thread exits.
struct LeaseCache {
    slots: [Cell<Option<NonNull<Lease>>>; CACHED],
}

impl LeaseCache {
    #[inline]
    fn acquire(&self, map: &Arc<Mapping>) -> LeaseRef {
        if let Some(first) = self.slots[0].get()
            // SAFETY: the slot holds a counted (holder) reference.
            && std::ptr::eq(Arc::as_ptr(&unsafe { first.as_ref() }.map), Arc::as_ptr(map))
        {
            // SAFETY: the slot's reference is held across the call.
            return unsafe { LeaseRef::count_one_more(first) };
        }
        self.acquire_slow(map)
    }

    #[cold]
    fn acquire_slow(&self, map: &Arc<Mapping>) -> LeaseRef {
        // Let go of leases on retired maps, and find the one for `map`.
        let mut found = None;
        for slot in &self.slots {
            let Some(lease) = slot.get() else { continue };
            // SAFETY: the slot holds a counted (holder) reference.
            let held = &unsafe { lease.as_ref() }.map;
            if std::ptr::eq(Arc::as_ptr(held), Arc::as_ptr(map)) {
                found = Some(lease);
                slot.set(None);
            } else if held.is_retired() {
                slot.set(None);
                // SAFETY: on the owner's thread (the cache is thread-local),
                // giving up the slot's holder reference.
                unsafe { LeaseRef::merge(lease) };
            }
        }
        let lease = found.unwrap_or_else(|| Lease::owned(map));
        // Move it to the front; the last lease falls out if all are taken.
        let mut carry = Some(lease);
        for slot in &self.slots {
            carry = slot.replace(carry);
            if carry.is_none() {
                break;
            }
        }
        if let Some(evicted) = carry {
            // SAFETY: as above.
            unsafe { LeaseRef::merge(evicted) };
        }
        // SAFETY: the front slot now holds a counted reference.
        unsafe { LeaseRef::count_one_more(lease) }
    }
}

impl Drop for LeaseCache {
    fn drop(&mut self) {
        for slot in &self.slots {
            if let Some(lease) = slot.take() {
                // SAFETY: thread-local destructors run on their thread, the
                // owner; the slot's holder reference is given up.
                unsafe { LeaseRef::merge(lease) };
            }
        }
    }
}

/// Lets go of the calling thread's cached leases, so that the maps it read
/// from can be unmapped as soon as no handle needs them.
///
/// A thread keeps a lease on the last few maps it read handles from; a
/// lease on a map the store has since replaced (re-map, compaction, drop)
/// goes the next time the thread reads. A thread that read once and then
/// idles for long can call this to give up a replaced file's disk space
/// without waiting for its next read. Handles that are still alive stay
/// valid.
pub fn release_thread_leases() {
    let _ = CACHE.try_with(|cache| {
        for slot in &cache.slots {
            if let Some(lease) = slot.take() {
                // SAFETY: on the owner's thread, giving up the holder reference.
                unsafe { LeaseRef::merge(lease) };
            }
        }
    });
}

/// A lease owned for the duration of one call on one thread (a batch
/// read, one piece of a parallel scan): the handles made through it count
/// locally, and it merges when it goes out of scope, so it keeps nothing
/// alive past the last handle.
pub struct ScopedLease {
    lease: NonNull<Lease>,
    /// Not `Send`: only the owner may merge it.
    _owner_thread: PhantomData<*const ()>,
}

impl std::fmt::Debug for ScopedLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedLease")
            .field("map", self.map())
            .finish_non_exhaustive()
    }
}

impl ScopedLease {
    /// A lease on `map` owned by the calling thread.
    #[must_use]
    pub fn new(map: &Arc<Mapping>) -> ScopedLease {
        ScopedLease {
            lease: Lease::owned(map),
            _owner_thread: PhantomData,
        }
    }

    /// The map the lease holds.
    #[must_use]
    pub fn map(&self) -> &Arc<Mapping> {
        // SAFETY: the holder reference keeps the lease alive.
        &unsafe { self.lease.as_ref() }.map
    }

    #[inline]
    pub(crate) fn reference(&self) -> LeaseRef {
        // SAFETY: the holder reference is held across the call.
        unsafe { LeaseRef::count_one_more(self.lease) }
    }
}

impl Drop for ScopedLease {
    fn drop(&mut self) {
        // SAFETY: `ScopedLease` is not `Send`, so this runs on the thread
        // that made it, the owner; the holder reference is given up.
        unsafe { LeaseRef::merge(self.lease) }
    }
}
