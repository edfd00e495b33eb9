//! `mmblob del KEY...`: delete keys.

use std::path::Path;

use serde::Serialize;

use crate::cli::args::DelArgs;
use crate::cli::error::{CliError, CliResult};
use crate::cli::output::{self, Out};
use crate::cli::space::Space;
use crate::cli::store;

/// `mmblob --json del`.
#[derive(Debug, Serialize)]
struct DelJson {
    /// How many of the keys existed and were deleted.
    deleted: u64,
    /// The keys that did not exist, as `ls` would show them.
    missing: Vec<String>,
    /// Whether the store was synced before reporting (not with `--no-sync`).
    synced: bool,
}

/// Runs `del`: deletes every listed key that exists in one atomic step, then
/// fails with "key not found" for the others unless `--force` is given.
pub fn run(store_path: &Path, args: &DelArgs, json: bool) -> CliResult {
    let keys = args
        .keys
        .iter()
        .map(|k| store::key_bytes(k, args.key_args.raw_keys))
        .collect::<CliResult<Vec<Vec<u8>>>>()?;
    let db = store::open_writable(store_path, false)?;
    let space = Space::new(&db, args.key_args.ns.as_deref())?;
    // `--prefix`: every key under it, as it is now (keys inside the
    // namespace with `--ns`; plain keys otherwise).
    let matched: Vec<Vec<u8>> = match &args.prefix {
        Some(prefix) => {
            let prefix = store::key_arg(prefix, args.key_args.raw_keys);
            space
                .entries_with_prefix(&prefix)
                .map(|e| space.key_of(e.key()).to_vec())
                .collect()
        }
        None => Vec::new(),
    };
    let keys: Vec<&[u8]> = keys.iter().chain(&matched).map(Vec::as_slice).collect();
    let mut missing = Vec::new();
    for &key in &keys {
        if !space
            .exists(key)
            .map_err(|e| CliError::store(store_path, e))?
        {
            missing.push(key);
        }
    }
    let deleted = space
        .batch_delete(&keys)
        .map_err(|e| CliError::store(store_path, e))?;
    store::sync(&db, store_path, args.sync.no_sync)?;
    if json {
        let mut out = Out::new();
        out.json(&DelJson {
            deleted: deleted as u64,
            missing: missing.iter().map(|k| output::key(k)).collect(),
            synced: !args.sync.no_sync,
        })?;
        out.flush()?;
    } else {
        eprintln!(
            "deleted {} of {} keys",
            output::count(deleted as u64),
            output::count(keys.len() as u64)
        );
    }
    match missing.first() {
        Some(key) if !args.force => Err(CliError::key_not_found(store_path, key)),
        _ => Ok(()),
    }
}
