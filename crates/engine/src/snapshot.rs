//! Index snapshots: a sidecar file `<store>.index` that lets open skip the
//! walk over the whole trailer chain.
//!
//! The sidecar is a pure cache. It records the store id, the end offset it
//! covers and the checksum of the entry ending there, then every index
//! table slot for slot, then an xxh3-64 of all of it. Open uses it only when
//! all of that matches the store file; then it walks just the entries
//! written after it. Deleting it only makes the next open walk the chain.
//!
//! ```text
//! 0..8 magic "MMBIDX\0\x02" | 8..16 store id | 16..24 covered end | 24..28 crc of the entry ending there
//! 28..32 shard count | 32..56 live entries, payload bytes, entry bytes (u64 each)
//! then the slot count of every shard (u64 each)
//! then every shard's slots (16 B each: key hash u64, entry end u64)
//! then the xxh3-64 of every shard's slot bytes (u64 each)
//! then the xxh3-64 of the header, the counts and the shard digests
//! ```
//!
//! The counts up front let open map and check the shards in parallel: each
//! table is mapped copy-on-write from the sidecar (see `slots.rs`), so
//! opening copies nothing and the index is paged in from the page cache.
//!
//! A store with fewer than [`MIN_KEYS`] live keys opens fast enough by
//! walking, so its sidecar holds no tables (shard count 0): only the header,
//! which records how far the store reached at its last clean close. Open
//! reads that record from any sidecar ([`reach`]) to tell a truncated file
//! ("the file ends at X; the store reached Y") from a torn write.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

use crate::index::Index;
use crate::slots::SlotStore;
use crate::store::LiveTotals;
use crate::table::{Slot, Table};

const MAGIC: [u8; 8] = *b"MMBIDX\0\x02";
const HEADER_LEN: usize = 56;
/// Stores with fewer live keys open fast enough by walking.
pub(crate) const MIN_KEYS: u64 = 10_000;
/// Tables emptier than this are repacked before saving, so a loaded index
/// costs about 20 bytes per key.
const REPACK_BELOW_LOAD_PERCENT: usize = 75;

/// An index loaded from a sidecar, covering the store up to `tail`.
pub(crate) struct Snapshot {
    pub(crate) tail: u64,
    pub(crate) tables: Vec<Table>,
    pub(crate) live: LiveTotals,
}

/// `store.mmblob` → `store.mmblob.index`.
pub(crate) fn sidecar_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".index");
    PathBuf::from(name)
}

/// What a snapshot must match in the store file.
pub(crate) struct Expect {
    pub(crate) store_id: u64,
    /// The store's committed end; the snapshot must not cover more.
    pub(crate) tail: u64,
    /// The stored checksum of the entry ending at a given offset.
    pub(crate) crc_at: Box<dyn Fn(u64) -> Option<u32> + 'static>,
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(raw)
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(raw)
}

/// Loads the sidecar of `store` if it exists and matches; `None` otherwise.
pub(crate) fn load(store: &Path, expect: &Expect) -> Option<Snapshot> {
    if cfg!(target_endian = "big") {
        return None;
    }
    let file = File::open(sidecar_path(store)).ok()?;
    let shards = Index::shard_count();
    let mut head = vec![0u8; HEADER_LEN + 8 * shards];
    file.read_exact_at(&mut head, 0).ok()?;
    let tail = le_u64(&head, 16);
    let matches = head[..8] == MAGIC
        && le_u64(&head, 8) == expect.store_id
        && tail <= expect.tail
        && (expect.crc_at)(tail) == Some(le_u32(&head, 24))
        && le_u32(&head, 28) as usize == shards;
    if !matches {
        return None;
    }
    let counts: Vec<u64> = (0..shards)
        .map(|i| le_u64(&head, HEADER_LEN + 8 * i))
        .collect();
    // A damaged count must not make us allocate without bound: the slots of
    // a real table of this store fit in the covered file many times over.
    if counts.iter().any(|&c| c > tail) {
        return None;
    }
    let slots_start = head.len() as u64;
    let slots_len: u64 = counts.iter().sum::<u64>() * SLOT_LEN;
    let mut tail_part = vec![0u8; 8 * shards + 8];
    file.read_exact_at(&mut tail_part, slots_start + slots_len)
        .ok()?;
    if file.metadata().ok()?.len() != slots_start + slots_len + tail_part.len() as u64 {
        return None;
    }
    let digests = &tail_part[..8 * shards];
    if outer_digest(&head, digests) != le_u64(&tail_part, 8 * shards) {
        return None;
    }
    let mut offsets = Vec::with_capacity(shards);
    let mut offset = slots_start;
    for &count in &counts {
        offsets.push(offset);
        offset += count * SLOT_LEN;
    }
    let read_shard =
        |i: usize| read_table(&file, offsets[i], counts[i], le_u64(digests, 8 * i), tail);
    let tables = for_each_shard(shards, read_shard)
        .into_iter()
        .collect::<Option<Vec<Table>>>()?;
    let live = LiveTotals {
        entries: le_u64(&head, 32),
        payload_bytes: le_u64(&head, 40),
        entry_bytes: le_u64(&head, 48),
    };
    Some(Snapshot { tail, tables, live })
}

const SLOT_LEN: u64 = size_of::<Slot>() as u64;

/// How far a store reached at its last clean close, as its sidecar says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reach {
    pub(crate) store_id: u64,
    /// The end of the store file then.
    pub(crate) tail: u64,
    /// The stored checksum of the entry ending there.
    pub(crate) tail_crc: u32,
    /// Live keys then.
    pub(crate) live_entries: u64,
}

/// The record of how far the store reached, from a sidecar (with or
/// without tables) whose header, counts and digests check; the slots are
/// not read.
pub(crate) fn reach(store: &Path) -> Option<Reach> {
    if cfg!(target_endian = "big") {
        return None;
    }
    let file = File::open(sidecar_path(store)).ok()?;
    let file_len = file.metadata().ok()?.len();
    let mut fixed = [0u8; HEADER_LEN];
    file.read_exact_at(&mut fixed, 0).ok()?;
    let shards = le_u32(&fixed, 28) as usize;
    if fixed[..8] != MAGIC || shards > Index::shard_count() {
        return None;
    }
    let mut head = vec![0u8; HEADER_LEN + 8 * shards];
    file.read_exact_at(&mut head, 0).ok()?;
    let counts_total = (0..shards)
        .map(|i| le_u64(&head, HEADER_LEN + 8 * i))
        .try_fold(0u64, u64::checked_add)?;
    let slots_end = (head.len() as u64).checked_add(counts_total.checked_mul(SLOT_LEN)?)?;
    let mut tail_part = vec![0u8; 8 * shards + 8];
    if file_len != slots_end.checked_add(tail_part.len() as u64)? {
        return None;
    }
    file.read_exact_at(&mut tail_part, slots_end).ok()?;
    let digests = &tail_part[..8 * shards];
    if outer_digest(&head, digests) != le_u64(&tail_part, 8 * shards) {
        return None;
    }
    Some(Reach {
        store_id: le_u64(&head, 8),
        tail: le_u64(&head, 16),
        tail_crc: le_u32(&head, 24),
        live_entries: le_u64(&head, 32),
    })
}

/// The xxh3 of a table's slots as saved.
fn slots_digest(table: &Table) -> u64 {
    let mut hasher = Xxh3::new();
    let _: Result<(), std::convert::Infallible> = table.encode_slots(|bytes| {
        hasher.update(bytes);
        Ok(())
    });
    hasher.digest()
}

/// The digest over the header, the counts and the shard digests.
fn outer_digest(head: &[u8], shard_digests: &[u8]) -> u64 {
    let mut hasher = Xxh3::new();
    hasher.update(head);
    hasher.update(shard_digests);
    hasher.digest()
}

/// `f(0..n)`, in parallel when the `parallel` feature is on.
pub(crate) fn for_each_shard<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        (0..n).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        (0..n).map(f).collect()
    }
}

fn read_table(file: &File, offset: u64, count: u64, digest: u64, tail: u64) -> Option<Table> {
    let slots = SlotStore::map(file, offset, usize::try_from(count).ok()?, digest).ok()??;
    Table::from_slots(slots, tail + 1)
}

/// What a saved sidecar records about the store besides its tables.
pub(crate) struct Covered {
    pub(crate) store_id: u64,
    /// The end offset the tables cover.
    pub(crate) tail: u64,
    /// The stored crc of the entry ending at `tail`.
    pub(crate) tail_crc: u32,
    pub(crate) live: LiveTotals,
}

/// Where [`save`] writes a new sidecar before renaming it into place; a
/// process killed meanwhile leaves it behind, and the next writable open
/// removes it.
pub(crate) fn sidecar_temp_path(store: &Path) -> PathBuf {
    let mut temp_name = sidecar_path(store).into_os_string();
    temp_name.push(".tmp");
    PathBuf::from(temp_name)
}

/// Writes the sidecar for `tables`, replacing any previous one atomically.
pub(crate) fn save(store: &Path, covered: &Covered, tables: &[&Table]) -> io::Result<()> {
    if cfg!(target_endian = "big") {
        return Ok(());
    }
    let final_path = sidecar_path(store);
    let temp = sidecar_temp_path(store);
    let result =
        write_file(&temp, covered, tables).and_then(|()| std::fs::rename(&temp, &final_path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn write_file(path: &Path, covered: &Covered, tables: &[&Table]) -> io::Result<()> {
    let live = covered.live;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&covered.store_id.to_le_bytes());
    header.extend_from_slice(&covered.tail.to_le_bytes());
    header.extend_from_slice(&covered.tail_crc.to_le_bytes());
    header.extend_from_slice(&(tables.len() as u32).to_le_bytes());
    for n in [live.entries, live.payload_bytes, live.entry_bytes] {
        header.extend_from_slice(&n.to_le_bytes());
    }
    let repacked: Vec<Option<Table>> = tables
        .iter()
        .map(|table| {
            (table.load_percent() < REPACK_BELOW_LOAD_PERCENT).then(|| table.rebuilt(|_| true))
        })
        .collect();
    let packed: Vec<&Table> = repacked
        .iter()
        .zip(tables)
        .map(|(repacked, &table)| repacked.as_ref().unwrap_or(table))
        .collect();
    for table in &packed {
        header.extend_from_slice(&(table.slot_count() as u64).to_le_bytes());
    }
    let digests: Vec<u8> = for_each_shard(packed.len(), |i| slots_digest(packed[i]))
        .into_iter()
        .flat_map(u64::to_le_bytes)
        .collect();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    out.write_all(&header)?;
    for table in &packed {
        table.encode_slots(|bytes| out.write_all(bytes))?;
    }
    out.write_all(&digests)?;
    out.write_all(&outer_digest(&header, &digests).to_le_bytes())?;
    // No fsync: a torn or stale sidecar fails its checks and is ignored.
    out.flush()
}
