//! # mmblob
//!
//! A blob store in **one append-only file**, read as **zero-copy slices of a
//! memory map**. Every non-empty value starts on a 64-byte boundary, so it
//! can be viewed in place as `&[f32]`, `&[u64]`, … and handed to SIMD code
//! without a copy. Each entry ends with a trailer that links back to the
//! previous one: on open the store finds the newest valid entry at the end of
//! the file and walks the chain backward to rebuild its index. A torn write is
//! cut off; nothing committed is lost.
//!
//! ```
//! use mmblob::{DataStore, Result};
//! use rayon::prelude::*;
//!
//! fn main() -> Result<()> {
//!     let dir = tempfile::tempdir().expect("temp dir");
//!     let store = DataStore::open(dir.path().join("demo.mmblob"))?;
//!
//!     store.write(b"greeting", b"hello")?;
//!     let floats: Vec<f32> = (0..16).map(|i| i as f32).collect();
//!     store.write(b"embedding", bytemuck::cast_slice(&floats))?;
//!     store.batch_write(&[(b"a".as_slice(), b"1".as_slice()), (b"b", b"2")])?;
//!
//!     let hello = store.read(b"greeting")?.expect("just written");
//!     assert_eq!(&*hello, b"hello");                  // a slice of the map
//!     let embedding = store.read(b"embedding")?.expect("just written");
//!     let view: &[f32] = embedding.as_typed()?;       // no copy either
//!     assert_eq!(view[3], 3.0);
//!
//!     assert!(store.delete(b"a")?);
//!     let total: usize = store.par_iter_entries().map(|e| e.len()).sum();
//!     assert_eq!(total, 5 + 64 + 1);
//!     drop(store);
//!
//!     let reopened = DataStore::open_existing(dir.path().join("demo.mmblob"))?;
//!     assert_eq!(reopened.len(), 3);
//!     Ok(())
//! }
//! ```
//!
//! ## The parts
//!
//! * [`DataStore`] — open, write (single, [batched](DataStore::batch_write),
//!   [streamed](DataStore::write_stream)), read, delete, iterate, compact,
//!   verify, sync, refresh.
//! * [`EntryHandle`] — a stored value: `Deref<Target = [u8]>`, typed views
//!   with [`EntryHandle::as_typed`], streaming with [`EntryHandle::stream`].
//! * [`Reader`] (from [`DataStore::reader`]) and [`DataStore::read_with`] —
//!   borrowed reads that lend `&[u8]` without touching a shared reference
//!   count, for hot loops and many threads.
//! * [`OpenOptions`] and [`Durability`] — read-only handles, strict opening,
//!   and when writes reach the OS and the disk.
//! * [`Error`] — one `#[non_exhaustive]` enum; every failure is a typed value,
//!   never a panic.
//!
//! ## Durability and concurrency
//!
//! With the default [`Durability::Flush`] every write call hands its bytes to
//! the OS before returning (small writes by copying them into a shared
//! writable map of space allocated ahead, without a system call), so a
//! process crash loses nothing acknowledged;
//! [`Durability::Sync`] also `fdatasync`s (with group commit). A
//! [`batch_write`](DataStore::batch_write) is atomic across crashes. One
//! writable handle per file holds an exclusive `flock`; any number of
//! read-only handles, in any process, read alongside it and see new entries
//! after [`refresh`](DataStore::refresh).
//!
//! ## Soundness of the memory map
//!
//! Values are borrowed straight from a shared, read-only memory map. That is
//! sound only while the mapped bytes neither change nor disappear, and mmblob
//! is built so they do not:
//!
//! * **Bytes are never rewritten.** The file is append-only; an entry's
//!   bytes are final once its trailer is written, and readers only see
//!   entries after that.
//! * **Committed bytes are never truncated.** The only truncations are of a
//!   torn tail at open (bytes after the last valid entry, never exposed to
//!   any reader) and of a failed append (never exposed either). Compaction
//!   writes a *new* file and renames it over the old one; the old inode lives
//!   on, unchanged, for as long as any map of it does.
//! * **No page beyond the end of the file is ever touched.** Maps reserve
//!   more address space than the file holds, so the writer re-maps only when
//!   the file doubles; each map tracks a *readable* length and safe code can
//!   only reach bytes below it, all of which exist in the file. A reader in
//!   another process finds new entries with positional reads (which cannot
//!   fault) and only then extends its readable length. So no handle can see
//!   `SIGBUS` from mmblob's own activity.
//! * **The writer's map only ever writes above the published tail.** Writes
//!   are copied into a second, *writable* shared map (`PROT_WRITE`,
//!   `MAP_SHARED`) of space reserved after the last entry. The argument has
//!   three parts. (1) *Readers only ever read bytes below the published
//!   tail, and the writer never writes there again*: the writer copies an
//!   entry into bytes at or above the tail, and raises the readable mark,
//!   the index and the tail (release stores, paired with the readers'
//!   acquire loads) only after the copy, so every byte a reader can reach
//!   was complete before it became reachable; the map's safe API never
//!   hands out a slice below the tail. (2) *Every mapped byte exists and has
//!   its disk blocks*: the reservation is allocated with `fallocate` before
//!   it is mapped, so a store through the map can neither fault past the end
//!   of the file nor meet a full disk (no `SIGBUS`); the writer forgets its
//!   map before it ever shortens the file (a failed append, the trim at
//!   close), and notices a file replaced by compaction before it writes
//!   again. (3) *Other processes never trust bytes being copied*: they find
//!   new entries with positional reads and accept one only when its
//!   checksum matches, and the trailer that completes a write is stored
//!   last. The test `readers_never_see_bytes_before_they_are_published`
//!   chases the entry being written from reader threads and fails when the
//!   copy and the publication are swapped.
//! * **Handles keep their map alive.** An [`EntryHandle`] holds a counted
//!   reference to a *lease*, which owns an `Arc` of the map it points into,
//!   so it stays valid after re-maps, compaction and the store being
//!   dropped. A lease belongs to one thread, which counts its handles with
//!   plain (non-atomic) arithmetic; other threads count on an atomic
//!   counter that carries a bias of 2^62 until the owner, and only the
//!   owner, merges its count into it (biased reference counting). Only the
//!   owner can reach the plain count (thread ids are never reused), the
//!   bias keeps the atomic count from reaching zero before the merge, and
//!   after it the atomic count is exact, so the last reference, on
//!   whichever thread, frees the lease and its map; the full argument is
//!   in the `mmblob-entry` crate docs and `crates/entry/src/lease.rs`, and
//!   `tests/handles_race_threads_remaps_compaction_and_drop.rs` fails
//!   (a crash or a map left behind) when either count is off by one. A
//!   thread keeps leases on the last few maps it read from; a lease on a
//!   map the store replaced or dropped is let go at the thread's next read
//!   or exit, or by [`release_thread_leases`].
//!   [`DataStore::read_with`] borrows without a
//!   reference count: a map the store replaces is released through an epoch
//!   collector, only after every reader that could still see it is done.
//! * **Index lookups take no lock.** Each index shard carries a sequence
//!   number the writer makes odd while it changes the shard; a lookup keeps
//!   its answer only if the number did not move, else it waits on the
//!   shard's lock and looks again. Slots are atomics, so a lookup racing the
//!   writer reads stale values, never torn memory, and index tables the
//!   writer replaces are freed through the same epoch collector.
//! * **The index sidecar is mapped copy-on-write.** A large store loads its
//!   index by mapping the tables in `<store>.index` privately (after
//!   checking their checksums): changes stay in this process, and mmblob
//!   replaces a sidecar only by renaming a new file over it, which leaves
//!   the mapped one untouched.
//!
//! What mmblob cannot prevent is *another program* truncating or rewriting a
//! store file, or its index sidecar, in place while the store is open; as
//! with every memory-mapped store, don't. (Deleting the sidecar, or renaming
//! another file over it, is harmless.) The `unsafe` code lives in
//! `mmblob_entry::Mapping`, in the handles' leases (`mmblob_entry`'s
//! `lease` module), in the engine's writable map of the reservation
//! (`write_map.rs`: one block that hands out the bytes above the tail), and
//! in the engine's loading of the sidecar and its epoch-protected index
//! shards, in small blocks that each state why they are sound (plus one CPU
//! prefetch hint, which cannot touch memory).
//!
//! ## Checksums, damage and salvage
//!
//! Reads do **not** check checksums: [`DataStore::read`], [`DataStore::read_with`],
//! [`DataStore::batch_read`], [`Reader::get`] and iteration hand out the bytes
//! as they are in the file, at the cost of a lookup and no pass over the
//! value. The calls that do check are [`EntryHandle::verify_checksum`] (one
//! value), [`DataStore::verify`] (every entry, in parallel) and
//! [`OpenOptions::strict`] (every entry at open, refusing a damaged store
//! with [`Error::Corrupt`] and leaving its file unchanged). Open itself
//! checks the structure of every entry it walks and the checksums of the
//! last batch.
//!
//! Damage that is known — found at open or by `verify` — is reported by
//! [`DataStore::damage`] (and an `error!` event), and the damaged entry is
//! hidden: a read of its key fails with [`Error::Corrupt`] naming the key,
//! and the other entries of its batch are hidden with it so a batch is
//! always seen whole or not at all. [`DataStore::salvage`] (or
//! [`DataStore::salvage_to`]) copies every entry that still checks into a
//! new store, even when the damaged store cannot be opened.
//!
//! ## File format
//!
//! See `docs/format.md` in the repository for byte diagrams, and
//! [`format`](mod@format) for the constants and codecs.

#[cfg(feature = "parallel")]
pub use mmblob_engine::ParEntryIter;
pub use mmblob_engine::{
    BackupStats, BatchBytes, BatchOutcome, CompactStats, Damage, DamageKind, DataStore, Durability,
    Entries, Entry, EntryHandle, EntryInfo, EntryIter, EntryStream, Error, Namespace, OpenOptions,
    PrefixIter, Reader, Result, SalvageStats, StoreStats, VerifyReport, WriteBatch, namespace,
    release_thread_leases,
};
pub use mmblob_entry::{checksum, display_key, format};

/// Kept for code written before [`raw`] existed; see [`raw::Mapping`].
#[doc(hidden)]
pub use mmblob_entry::Mapping;

/// Internals for tools that inspect store files below the public API: the
/// shared map of a file and the decoded trailer. Ordinary use never needs
/// them; [`EntryHandle::at`], [`EntryHandle::trailer`] and
/// [`EntryHandle::mapping`] (hidden from the docs) work with these types.
pub mod raw {
    pub use mmblob_entry::Mapping;
    pub use mmblob_entry::format::{Header, Trailer};
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
