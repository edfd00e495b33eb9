//! `mmblob cp KEY [NEW] [--to STORE]`: copy a value, within the store or
//! into another store, streamed.

use std::path::Path;

use mmblob::DataStore;
use serde::Serialize;

use crate::cli::args::CpArgs;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::output::{self, Out};
use crate::cli::space::Space;
use crate::cli::{progress, store};

/// `mmblob --json cp`.
#[derive(Debug, Serialize)]
struct CpJson {
    key: String,
    to_key: String,
    to_store: String,
    size: u64,
    synced: bool,
}

/// Runs `cp`.
pub fn run(store_path: &Path, args: &CpArgs, json: bool) -> CliResult {
    let raw = args.keys.raw_keys;
    let key = store::key_bytes(&args.key, raw)?;
    let new = args
        .new
        .as_deref()
        .map(|k| store::key_bytes(k, raw))
        .transpose()?;
    let same_store = args.to.as_deref().is_none_or(|t| same_file(t, store_path));
    let dest_key = new.unwrap_or_else(|| key.clone());
    if same_store && dest_key == key {
        return Err(CliError::new(
            Exit::Usage,
            "nothing to do: give a new key, or another store with --to",
        ));
    }
    let target_path = if same_store {
        store_path
    } else {
        args.to.as_deref().unwrap_or(store_path)
    };
    // Within one store a single writable handle reads and writes; into
    // another, the source is opened read-only so its writer may go on.
    let source_handle = if same_store {
        None
    } else {
        Some(store::open_read_only(store_path)?)
    };
    let writable = store::open_writable(target_path, !same_store)?;
    let source: &DataStore = source_handle.as_ref().unwrap_or(&writable);
    let ns = args.keys.ns.as_deref();
    let source = Space::new(source, ns)?;
    let target = Space::new(&writable, ns)?;
    let entry = source
        .read(&key)
        .map_err(|e| CliError::store(store_path, e))?
        .ok_or_else(|| CliError::key_not_found(store_path, &key))?;
    if args.no_clobber
        && target
            .exists(&dest_key)
            .map_err(|e| CliError::store(target_path, e))?
    {
        return Err(CliError::new(
            Exit::Failure,
            format!(
                "key {} already exists in {}; nothing was copied (drop --no-clobber to replace it)",
                output::key(&dest_key),
                target_path.display()
            ),
        ));
    }
    let bar = progress::value(entry.len() as u64, "cp");
    let result = target.write_stream(&dest_key, &mut bar.wrap_read(entry.stream()));
    bar.finish_and_clear();
    result.map_err(|e| CliError::store(target_path, e))?;
    drop((source, target));
    store::finish(writable, target_path, args.sync.no_sync)?;
    if json {
        let mut out = Out::new();
        out.json(&CpJson {
            key: output::key(&key),
            to_key: output::key(&dest_key),
            to_store: target_path.display().to_string(),
            size: entry.len() as u64,
            synced: !args.sync.no_sync,
        })?;
        return out.flush();
    }
    eprintln!(
        "copied {} to {} in {}",
        output::key(&key),
        output::key(&dest_key),
        target_path.display()
    );
    Ok(())
}

/// True when both paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
