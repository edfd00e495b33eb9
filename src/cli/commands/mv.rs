//! `mmblob mv OLD NEW`: rename a key in one atomic step.

use std::path::Path;

use serde::Serialize;

use crate::cli::args::MvArgs;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::output::{self, Out};
use crate::cli::store;

/// `mmblob --json mv`.
#[derive(Debug, Serialize)]
struct MvJson {
    from: String,
    to: String,
    /// Whether a value under the new key was replaced.
    replaced: bool,
    synced: bool,
}

/// Runs `mv`: moves the value of OLD to NEW; a value under NEW is replaced
/// unless `--no-clobber` is given.
pub fn run(store_path: &Path, args: &MvArgs, json: bool) -> CliResult {
    let old = store::key_bytes(&args.old, args.keys.raw_keys)?;
    let new = store::key_bytes(&args.new, args.keys.raw_keys)?;
    let db = store::open_writable(store_path, false)?;
    let space = crate::cli::space::Space::new(&db, args.keys.ns.as_deref())?;
    let exists = |key: &[u8]| {
        space
            .exists(key)
            .map_err(|e| CliError::store(store_path, e))
    };
    if !exists(&old)? {
        return Err(CliError::key_not_found(store_path, &old));
    }
    let replaced = old != new && exists(&new)?;
    if replaced && args.no_clobber {
        return Err(CliError::new(
            Exit::Failure,
            format!(
                "key {} already exists in {}; nothing was moved (drop --no-clobber to replace it)",
                output::key(&new),
                store_path.display()
            ),
        ));
    }
    space
        .rename(&old, &new)
        .map_err(|e| CliError::store(store_path, e))?;
    drop(space);
    store::finish(db, store_path, args.sync.no_sync)?;
    if json {
        let mut out = Out::new();
        out.json(&MvJson {
            from: output::key(&old),
            to: output::key(&new),
            replaced,
            synced: !args.sync.no_sync,
        })?;
        return out.flush();
    }
    eprintln!("moved {} to {}", output::key(&old), output::key(&new));
    Ok(())
}
