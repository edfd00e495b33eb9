//! `mmblob del KEY...`: delete keys.

use std::path::Path;

use crate::cli::args::DelArgs;
use crate::cli::error::{CliError, CliResult};
use crate::cli::{output, store};

/// Runs `del`: deletes every listed key that exists in one atomic step, then
/// fails with "key not found" for the others unless `--force` is given.
pub fn run(store_path: &Path, args: &DelArgs) -> CliResult {
    let keys = args
        .keys
        .iter()
        .map(|k| store::key_bytes(k))
        .collect::<CliResult<Vec<&[u8]>>>()?;
    let db = store::open_writable(store_path, false)?;
    let mut missing = Vec::new();
    for &key in &keys {
        if !db.exists(key).map_err(|e| CliError::store(store_path, e))? {
            missing.push(key);
        }
    }
    let deleted = db
        .batch_delete(&keys)
        .map_err(|e| CliError::store(store_path, e))?;
    eprintln!(
        "deleted {} of {} keys",
        output::count(deleted as u64),
        output::count(keys.len() as u64)
    );
    match missing.first() {
        Some(key) if !args.force => Err(CliError::key_not_found(store_path, key)),
        _ => Ok(()),
    }
}
