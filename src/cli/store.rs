//! Opening the store the way each command needs it, syncing it before a
//! command reports success, and reading keys given on the command line.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use mmblob::{DataStore, OpenOptions};

use crate::cli::error::{CliError, CliResult, Exit};

/// Opens an existing store without the write lock, so it works while another
/// process writes (get, ls, stat, verify, export).
pub fn open_read_only(path: &Path) -> CliResult<DataStore> {
    OpenOptions::new()
        .read_only(true)
        .create(false)
        .open(path)
        .map_err(|e| CliError::store(path, e))
}

/// Opens the store for writing, creating it first when `create` is set.
///
/// A store file whose permissions allow no writes is refused even when the
/// operating system would let this user write it (as it does for root).
pub fn open_writable(path: &Path, create: bool) -> CliResult<DataStore> {
    if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().readonly()) {
        return Err(CliError::permission_denied(path));
    }
    OpenOptions::new()
        .create(create)
        .open(path)
        .map_err(|e| CliError::store(path, e))
}

/// Puts what a mutating command wrote on stable storage (`fdatasync`)
/// before it reports success, unless the user passed `--no-sync`.
pub fn sync(db: &DataStore, path: &Path, no_sync: bool) -> CliResult {
    if no_sync {
        return Ok(());
    }
    db.sync().map_err(|e| CliError::store(path, e))
}

/// Ends a mutating command: [`DataStore::close`] (sync, index sidecar,
/// unlock, with their errors), or with `--no-sync` just a drop.
pub fn finish(db: DataStore, path: &Path, no_sync: bool) -> CliResult {
    if no_sync {
        drop(db);
        return Ok(());
    }
    db.close().map_err(|e| CliError::store(path, e))
}

/// The bytes of a key given on the command line.
///
/// `0x` followed by an even, non-zero number of hex digits (either case)
/// names the key with those bytes, the way `ls` shows keys that are not
/// printable text; anything else is the key's bytes as given. With `raw`
/// (`--raw-keys`) every argument is taken as given.
pub fn key_bytes(key: &OsStr, raw: bool) -> CliResult<Vec<u8>> {
    let bytes = key_arg(key, raw);
    if bytes.is_empty() || bytes.len() > mmblob::format::MAX_KEY_LEN {
        return Err(CliError::new(
            Exit::Usage,
            format!(
                "invalid key of {} bytes: keys must be 1 to 65535 bytes long",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// The bytes of a key argument or key prefix, by the rule of [`key_bytes`]
/// (no length check: a prefix may be empty).
pub fn key_arg(key: &OsStr, raw: bool) -> Vec<u8> {
    let bytes = key.as_bytes();
    if raw {
        return bytes.to_vec();
    }
    decode_hex_key(bytes).unwrap_or_else(|| bytes.to_vec())
}

/// The bytes `0x…` stands for, when `text` is `0x` and an even, non-zero
/// number of hex digits.
pub fn decode_hex_key(text: &[u8]) -> Option<Vec<u8>> {
    let digits = text.strip_prefix(b"0x")?;
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| Some(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?))
        .collect()
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys_decode_and_everything_else_is_literal() {
        assert_eq!(decode_hex_key(b"0xff00"), Some(vec![0xff, 0x00]));
        assert_eq!(decode_hex_key(b"0xAb"), Some(vec![0xab]));
        for literal in [&b"0x"[..], b"0xabc", b"0xzz", b"ff00", b"x0ff"] {
            assert_eq!(decode_hex_key(literal), None, "{literal:?}");
        }
        assert_eq!(key_arg(OsStr::new("0x6869"), false), b"hi");
        assert_eq!(key_arg(OsStr::new("0x6869"), true), b"0x6869");
    }
}
