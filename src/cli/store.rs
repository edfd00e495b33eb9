//! Opening the store the way each command needs it.

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

/// The bytes of a key given on the command line.
pub fn key_bytes(key: &OsStr) -> CliResult<&[u8]> {
    let bytes = key.as_bytes();
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
