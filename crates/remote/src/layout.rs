//! Where things live under a remote prefix.
//!
//! ```text
//! <prefix>/manifest.json                       the one mutable object
//! <prefix>/<store id, 16 hex digits>/          one directory per generation
//!     <start, 20 digits>-<end, 20 digits>.seg  bytes start..end of that store file
//! ```

use object_store::path::Path;

/// Name of the manifest object under the prefix.
pub const MANIFEST_NAME: &str = "manifest.json";
/// Ending of segment objects.
const SEGMENT_SUFFIX: &str = ".seg";

/// The manifest object of `prefix`.
pub fn manifest(prefix: &Path) -> Path {
    prefix.child(MANIFEST_NAME)
}

/// The directory of one generation.
pub fn generation_dir(prefix: &Path, store_id: u64) -> Path {
    prefix.child(generation_name(store_id))
}

/// The directory name of a generation: the store id in 16 hex digits.
pub fn generation_name(store_id: u64) -> String {
    format!("{store_id:016x}")
}

/// The store id a generation directory name stands for, if it is one.
pub fn parse_generation_name(name: &str) -> Option<u64> {
    if name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        u64::from_str_radix(name, 16).ok()
    } else {
        None
    }
}

/// The object name (inside its generation directory) of bytes `start..end`.
pub fn segment_name(start: u64, end: u64) -> String {
    format!("{start:020}-{end:020}{SEGMENT_SUFFIX}")
}

/// The full path of a segment object.
pub fn segment(prefix: &Path, store_id: u64, name: &str) -> Path {
    generation_dir(prefix, store_id).child(name)
}

/// True for names this crate writes into a generation directory.
pub fn is_segment_name(name: &str) -> bool {
    name.ends_with(SEGMENT_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_offset() {
        assert_eq!(
            parse_generation_name(&generation_name(0xdead_beef)),
            Some(0xdead_beef)
        );
        assert_eq!(parse_generation_name("manifest.json"), None);
        assert!(segment_name(64, 128) < segment_name(128, 4096));
        assert!(is_segment_name(&segment_name(0, 64)));
        let p = segment(&Path::from("a/b"), 1, &segment_name(0, 64));
        assert_eq!(
            p.as_ref(),
            "a/b/0000000000000001/00000000000000000000-00000000000000000064.seg"
        );
    }
}
