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
//! 0..8 magic "MMBIDX\0\x01" | 8..16 store id | 16..24 covered end | 24..28 crc of the entry ending there
//! 28..32 shard count | 32..56 live entries, payload bytes, entry bytes (u64 each)
//! then per shard: slot count u64, slots (16 B each: key hash u64, entry end u64)
//! then xxh3-64 of everything before
//! ```

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

use crate::index::Index;
use crate::store::LiveTotals;
use crate::table::{Slot, Table};

const MAGIC: [u8; 8] = *b"MMBIDX\0\x01";
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
    // Unbuffered: slot arrays are read straight into place (a buffer would
    // copy every byte twice); only the 64 small counts cost a call each.
    let mut file = File::open(sidecar_path(store)).ok()?;
    let mut header = [0u8; HEADER_LEN];
    file.read_exact(&mut header).ok()?;
    let tail = le_u64(&header, 16);
    let matches = header[..8] == MAGIC
        && le_u64(&header, 8) == expect.store_id
        && tail <= expect.tail
        && (expect.crc_at)(tail) == Some(le_u32(&header, 24))
        && le_u32(&header, 28) as usize == Index::shard_count();
    if !matches {
        return None;
    }
    let mut hasher = Xxh3::new();
    hasher.update(&header);
    let mut tables = Vec::with_capacity(Index::shard_count());
    for _ in 0..Index::shard_count() {
        tables.push(read_table(&mut file, &mut hasher, tail)?);
    }
    let mut digest = [0u8; 8];
    file.read_exact(&mut digest).ok()?;
    if u64::from_le_bytes(digest) != hasher.digest() || file.read(&mut [0u8; 1]).ok()? != 0 {
        return None;
    }
    let live = LiveTotals {
        entries: le_u64(&header, 32),
        payload_bytes: le_u64(&header, 40),
        entry_bytes: le_u64(&header, 48),
    };
    Some(Snapshot { tail, tables, live })
}

fn read_table(file: &mut impl Read, hasher: &mut Xxh3, tail: u64) -> Option<Table> {
    let mut count = [0u8; 8];
    file.read_exact(&mut count).ok()?;
    hasher.update(&count);
    let count = usize::try_from(u64::from_le_bytes(count)).ok()?;
    // A damaged count must not make us allocate without bound: the slots
    // of a real table of this store fit in the covered file many times over.
    if count > usize::try_from(tail).ok()? {
        return None;
    }
    // Zeroed allocation: fresh pages, no memset before the read fills them.
    let mut slots: Box<[Slot]> = bytemuck::allocation::zeroed_slice_box(count);
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut slots);
    file.read_exact(bytes).ok()?;
    hasher.update(bytes);
    Table::from_slots(slots, tail + 1)
}

/// Writes the sidecar for `tables` covering the store up to `tail`,
/// replacing any previous one atomically.
pub(crate) fn save(
    store: &Path,
    store_id: u64,
    tail: u64,
    tail_crc: u32,
    tables: &[&Table],
    live: LiveTotals,
) -> io::Result<()> {
    if cfg!(target_endian = "big") {
        return Ok(());
    }
    let final_path = sidecar_path(store);
    let mut temp_name = final_path.as_os_str().to_owned();
    temp_name.push(".tmp");
    let temp = PathBuf::from(temp_name);
    let result = write_file(&temp, store_id, tail, tail_crc, tables, live)
        .and_then(|()| std::fs::rename(&temp, &final_path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn write_file(
    path: &Path,
    store_id: u64,
    tail: u64,
    tail_crc: u32,
    tables: &[&Table],
    live: LiveTotals,
) -> io::Result<()> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&store_id.to_le_bytes());
    header.extend_from_slice(&tail.to_le_bytes());
    header.extend_from_slice(&tail_crc.to_le_bytes());
    header.extend_from_slice(&(tables.len() as u32).to_le_bytes());
    for n in [live.entries, live.payload_bytes, live.entry_bytes] {
        header.extend_from_slice(&n.to_le_bytes());
    }
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut hasher = Xxh3::new();
    let mut put = |bytes: &[u8]| {
        hasher.update(bytes);
        out.write_all(bytes)
    };
    put(&header)?;
    for &table in tables {
        let packed;
        let table = if table.load_percent() < REPACK_BELOW_LOAD_PERCENT {
            packed = table.rebuilt(|_| true);
            &packed
        } else {
            table
        };
        put(&(table.slots().len() as u64).to_le_bytes())?;
        put(bytemuck::cast_slice(table.slots()))?;
    }
    out.write_all(&hasher.digest().to_le_bytes())?;
    // No fsync: a torn or stale sidecar fails its checks and is ignored.
    out.flush()
}
