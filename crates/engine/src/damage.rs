//! Reports of damaged bytes and of verification runs, and the keys whose
//! newest entry is known to be damaged.
//!
//! Reads do not check checksums (that would cost a pass over every value
//! read). What is known to be damaged — found at open, by
//! [`DataStore::verify`] or by compaction — is hidden from the index, and a
//! read of a key whose newest entry is hidden that way fails with
//! [`Error::Corrupt`] instead of answering "not found" or an older value.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use mmblob_entry::display_key;

use crate::error::{Error, Result};
use crate::index::Change;
use crate::store::{DataStore, State};

/// What is wrong with a damaged stretch of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DamageKind {
    /// No valid entry could be found in these bytes; open skipped them.
    Unreadable,
    /// A complete entry whose checksum does not match its bytes.
    ChecksumMismatch {
        /// The key as stored, when its bytes agree with the key hash in the
        /// trailer; empty when the key itself is unreadable.
        key: Vec<u8>,
        /// Checksum stored in the trailer.
        expected: u32,
        /// Checksum of the bytes as they are.
        got: u32,
    },
    /// Intact entries of an atomic batch another entry of which is damaged:
    /// they are hidden too, so a batch is seen whole or not at all.
    IncompleteBatch {
        /// The keys of the hidden intact entries.
        keys: Vec<Vec<u8>>,
    },
    /// Bytes past the last complete entry that do not form one: an
    /// interrupted write (or a write still in progress, seen by a reader).
    /// A writable open cuts them off; a read-only open ignores them.
    TornTail {
        /// True when a writable open cut the bytes off the file.
        cut: bool,
    },
    /// The file ends before the point its index sidecar recorded at a
    /// clean close: committed entries are missing (for example after an
    /// interrupted copy). The range is the missing stretch.
    Truncated {
        /// Live keys the store held when it reached the recorded end.
        keys_then: u64,
        /// Live keys it holds now.
        keys_now: u64,
    },
}

/// One damaged stretch of a store file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Damage {
    /// File bytes affected (a whole entry, or the bytes open skipped).
    pub range: Range<u64>,
    /// What is wrong with them.
    pub kind: DamageKind,
}

impl Damage {
    /// A damaged stretch.
    #[must_use]
    pub fn new(range: Range<u64>, kind: DamageKind) -> Damage {
        Damage { range, kind }
    }

    /// The keys whose entries this damage hides, where they can be read.
    #[must_use]
    pub fn keys(&self) -> Vec<&[u8]> {
        match &self.kind {
            DamageKind::ChecksumMismatch { key, .. } if !key.is_empty() => vec![key.as_slice()],
            DamageKind::IncompleteBatch { keys } => keys.iter().map(Vec::as_slice).collect(),
            _ => Vec::new(),
        }
    }

    /// True for the bytes of an interrupted write past the last complete
    /// entry: expected after a crash, not damage to committed data.
    #[must_use]
    pub fn is_torn_tail(&self) -> bool {
        matches!(self.kind, DamageKind::TornTail { .. })
    }

    /// Number of bytes affected.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.range.end.saturating_sub(self.range.start)
    }

    /// True when the range is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn keys_list(keys: &[Vec<u8>]) -> String {
    const SHOWN: usize = 8;
    let mut out: Vec<String> = keys.iter().take(SHOWN).map(|k| display_key(k)).collect();
    if keys.len() > SHOWN {
        out.push(format!("and {} more", keys.len() - SHOWN));
    }
    out.join(", ")
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Range { start, end } = self.range;
        match &self.kind {
            DamageKind::Unreadable => write!(f, "bytes {start}..{end}: no valid entry, skipped"),
            DamageKind::ChecksumMismatch { key, expected, got } if key.is_empty() => write!(
                f,
                "bytes {start}..{end}: an entry with an unreadable key fails its checksum \
                 (stored {expected:#010x}, computed {got:#010x})"
            ),
            DamageKind::ChecksumMismatch { key, expected, got } => write!(
                f,
                "bytes {start}..{end}: entry {} fails its checksum (stored {expected:#010x}, computed {got:#010x})",
                display_key(key)
            ),
            DamageKind::IncompleteBatch { keys } => write!(
                f,
                "bytes {start}..{end}: a batch with a damaged entry; its {} intact entr{} hidden \
                 so the batch stays all-or-nothing: {}",
                keys.len(),
                if keys.len() == 1 { "y is" } else { "ies are" },
                keys_list(keys)
            ),
            DamageKind::TornTail { cut: true } => write!(
                f,
                "bytes {start}..{end}: {} bytes of an interrupted write after the last complete entry, cut off",
                end - start
            ),
            DamageKind::TornTail { cut: false } => write!(
                f,
                "bytes {start}..{end}: {} bytes after the last complete entry ignored (an interrupted \
                 write, or a write in progress)",
                end - start
            ),
            DamageKind::Truncated {
                keys_then,
                keys_now,
            } => write!(
                f,
                "the file ends at {start} but the store reached {end} (recorded at its last clean close, \
                 with {keys_then} live keys; {keys_now} now): {} bytes of committed entries are missing",
                end - start
            ),
        }
    }
}

/// The result of [`DataStore::verify`](crate::DataStore::verify).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Entries whose checksum was recomputed (live, overwritten and deleted).
    pub entries_checked: u64,
    /// Bytes covered by those checksums.
    pub bytes_checked: u64,
    /// Every damaged stretch known to this handle, in file order: found by
    /// this run, at open (skipped bytes, a damaged last batch, truncation),
    /// and the torn-tail bytes cut or ignored at open
    /// ([`Damage::is_torn_tail`]).
    pub damaged: Vec<Damage>,
}

impl VerifyReport {
    /// True when no committed data is damaged. Bytes of an interrupted
    /// write cut or ignored at the end are not damage (see
    /// [`VerifyReport::torn_bytes`]).
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.committed_damage().next().is_none()
    }

    /// Bytes of an interrupted write cut or ignored at the end of the file.
    #[must_use]
    pub fn torn_bytes(&self) -> u64 {
        self.damaged
            .iter()
            .filter(|d| d.is_torn_tail())
            .map(Damage::len)
            .sum()
    }

    /// The damage to committed data: everything but torn-tail bytes.
    pub fn committed_damage(&self) -> impl Iterator<Item = &Damage> {
        self.damaged.iter().filter(|d| !d.is_torn_tail())
    }
}

/// Keys whose newest entry is hidden because it is damaged, with the file
/// offset of the damage; consulted only when a lookup finds nothing.
#[derive(Debug, Default)]
pub(crate) struct DamagedKeys {
    keys: BTreeMap<Vec<u8>, u64>,
}

impl DataStore {
    /// Hides the entries `found` names from the index (unless a newer entry
    /// of the key exists) and remembers their keys as damaged.
    pub(crate) fn hide_damaged(&self, found: &[Damage]) {
        let named: Vec<(&[u8], &Damage)> = found
            .iter()
            .flat_map(|d| d.keys().into_iter().map(move |k| (k, d)))
            .collect();
        if named.is_empty() {
            return;
        }
        self.hide_named(&mut self.lock_state(), &named);
    }

    /// [`DataStore::hide_damaged`] with the state already locked.
    pub(crate) fn hide_damaged_locked(&self, state: &mut State, found: &[Damage]) {
        let named: Vec<(&[u8], &Damage)> = found
            .iter()
            .flat_map(|d| d.keys().into_iter().map(move |k| (k, d)))
            .collect();
        if !named.is_empty() {
            self.hide_named(state, &named);
        }
    }

    fn hide_named(&self, state: &mut State, named: &[(&[u8], &Damage)]) {
        let map = std::sync::Arc::clone(&state.map);
        let bytes = map.readable();
        let mut registry = self
            .damaged_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut changes = Vec::new();
        for &(key, damage) in named {
            // Only a live entry inside the damaged stretch is hidden: a key
            // written (or deleted) again since is not affected, and a key
            // not in the index was hidden already (or is deleted).
            let hash = self.hash(key);
            match self.index.get(hash, key) {
                Some((_, end)) if end > damage.range.start && end <= damage.range.end => {
                    changes.push(Change {
                        hash,
                        end,
                        tombstone: true,
                        key,
                        payload_len: 0,
                        size: 0,
                    });
                }
                _ => continue,
            }
            registry
                .keys
                .entry(key.to_vec())
                .or_insert(damage.range.start);
        }
        if !changes.is_empty() {
            let mut live = state.live;
            self.index.apply(&mut live, bytes, &changes);
            state.live = live;
        }
        self.any_damaged_key
            .store(!registry.keys.is_empty(), Ordering::Release);
    }

    /// Remembers `keys` (whose newest entry is damaged and not in the
    /// index) with the offset of that entry.
    pub(crate) fn register_damaged_keys(&self, keys: Vec<(Vec<u8>, u64)>) {
        if keys.is_empty() {
            return;
        }
        let mut registry = self
            .damaged_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (key, offset) in keys {
            registry.keys.entry(key).or_insert(offset);
        }
        self.any_damaged_key.store(true, Ordering::Release);
    }

    /// True when `key` is hidden because its newest entry is damaged.
    pub(crate) fn is_damaged_key(&self, key: &[u8]) -> bool {
        self.any_damaged_key.load(Ordering::Acquire)
            && self
                .damaged_keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .keys
                .contains_key(key)
    }

    /// Forgets `keys` as damaged: newer entries were written for them.
    pub(crate) fn forget_damaged_keys<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) {
        if !self.any_damaged_key.load(Ordering::Acquire) {
            return;
        }
        let mut registry = self
            .damaged_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            registry.keys.remove(key);
        }
        self.any_damaged_key
            .store(!registry.keys.is_empty(), Ordering::Release);
    }

    /// `Err(Corrupt)` when the newest entry of `key` is known to be damaged;
    /// called after a lookup found nothing.
    pub(crate) fn refuse_damaged_key(&self, key: &[u8]) -> Result<()> {
        if !self.any_damaged_key.load(Ordering::Acquire) {
            return Ok(());
        }
        let registry = self
            .damaged_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match registry.keys.get(key) {
            None => Ok(()),
            Some(&offset) => Err(Error::Corrupt {
                offset,
                reason: format!(
                    "the newest entry of key {} is damaged, so it is hidden; salvage copies \
                     every intact entry into a new store",
                    display_key(key)
                ),
            }),
        }
    }

    /// Keys whose newest entry is known to be damaged (and is therefore
    /// hidden: reading them fails with [`Error::Corrupt`]), with the file
    /// offset of the damage, in key order. Writing such a key again, or
    /// deleting it, takes it off the list.
    #[must_use]
    pub fn damaged_keys(&self) -> Vec<(Vec<u8>, u64)> {
        let keys: Vec<(Vec<u8>, u64)> = self
            .damaged_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys
            .iter()
            .map(|(k, &o)| (k.clone(), o))
            .collect();
        keys.into_iter()
            .filter(|(key, _)| !self.index.contains(self.hash(key), key))
            .collect()
    }

    /// Forgets the damaged keys (the file they were found in was replaced).
    pub(crate) fn clear_damaged_keys(&self) {
        self.damaged_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys
            .clear();
        self.any_damaged_key.store(false, Ordering::Release);
    }
}
