//! What a store file holds past its logical end.

use std::path::Path;

/// Asserts that the store file at `path` holds `end` bytes of entries and,
/// past them, nothing but zeros: space a writer reserved for its next
/// writes (see docs/format.md), never part of an entry.
pub fn assert_only_reserved_space_after(path: &Path, end: u64, what: &str) {
    let bytes = std::fs::read(path).expect("read the store file");
    let end = usize::try_from(end).expect("small test file");
    assert!(
        bytes.len() >= end,
        "{what}: the file is {} bytes, shorter than its end {end}",
        bytes.len()
    );
    if let Some(at) = bytes[end..].iter().position(|&b| b != 0) {
        panic!(
            "{what}: bytes after the end {end} (at {}) are not reserved zeros",
            end + at
        );
    }
}
