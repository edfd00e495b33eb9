//! Reports of damaged bytes and of verification runs.

use std::fmt;
use std::ops::Range;

/// What is wrong with a damaged stretch of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DamageKind {
    /// No valid entry could be found in these bytes; open skipped them.
    Unreadable,
    /// A complete entry whose checksum does not match its bytes.
    ChecksumMismatch {
        /// The key as stored (itself possibly damaged).
        key: Vec<u8>,
        /// Checksum stored in the trailer.
        expected: u32,
        /// Checksum of the bytes as they are.
        got: u32,
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

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Range { start, end } = self.range;
        match &self.kind {
            DamageKind::Unreadable => write!(f, "bytes {start}..{end}: no valid entry, skipped"),
            DamageKind::ChecksumMismatch { key, expected, got } => write!(
                f,
                "bytes {start}..{end}: entry {} fails its checksum (stored {expected:#010x}, computed {got:#010x})",
                mmblob_entry::display_key(key)
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
    /// Every damaged stretch found, in file order.
    pub damaged: Vec<Damage>,
}

impl VerifyReport {
    /// True when no damage was found.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.damaged.is_empty()
    }
}
