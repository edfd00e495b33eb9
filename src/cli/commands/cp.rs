//! `mmblob cp KEY [NEW] [--to STORE]`: copy a value, within the store or
//! into another store, streamed.

use std::path::Path;

use crate::cli::args::CpArgs;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::{output, progress, store};

/// Runs `cp`.
pub fn run(store_path: &Path, args: &CpArgs) -> CliResult {
    let key = store::key_bytes(&args.key)?;
    let new = args.new.as_deref().map(store::key_bytes).transpose()?;
    let target_path = args.to.as_deref();
    let same_store = target_path.is_none_or(|t| same_file(t, store_path));
    let dest_key = new.unwrap_or(key);
    if same_store && dest_key == key {
        return Err(CliError::new(
            Exit::Usage,
            "nothing to do: give a new key, or another store with --to",
        ));
    }
    if same_store {
        let db = store::open_writable(store_path, false)?;
        let entry = db
            .read(key)
            .map_err(|e| CliError::store(store_path, e))?
            .ok_or_else(|| CliError::key_not_found(store_path, key))?;
        refuse_clobber(&db, dest_key, store_path, args.no_clobber)?;
        let bar = progress::value(entry.len() as u64, "cp");
        let result = db.write_stream(dest_key, &mut bar.wrap_read(entry.stream()));
        bar.finish_and_clear();
        result.map_err(|e| CliError::store(store_path, e))?;
        db.close().map_err(|e| CliError::store(store_path, e))?;
        eprintln!("copied {} to {}", output::key(key), output::key(dest_key));
        return Ok(());
    }
    let target_path = target_path.unwrap_or(store_path);
    let source = store::open_read_only(store_path)?;
    let entry = source
        .read(key)
        .map_err(|e| CliError::store(store_path, e))?
        .ok_or_else(|| CliError::key_not_found(store_path, key))?;
    let target = store::open_writable(target_path, true)?;
    refuse_clobber(&target, dest_key, target_path, args.no_clobber)?;
    let bar = progress::value(entry.len() as u64, "cp");
    let result = target.write_stream(dest_key, &mut bar.wrap_read(entry.stream()));
    bar.finish_and_clear();
    result.map_err(|e| CliError::store(target_path, e))?;
    target
        .close()
        .map_err(|e| CliError::store(target_path, e))?;
    eprintln!(
        "copied {} to {} in {}",
        output::key(key),
        output::key(dest_key),
        target_path.display()
    );
    Ok(())
}

fn refuse_clobber(db: &mmblob::DataStore, key: &[u8], path: &Path, no_clobber: bool) -> CliResult {
    if no_clobber && db.exists(key).map_err(|e| CliError::store(path, e))? {
        return Err(CliError::new(
            Exit::Failure,
            format!(
                "key {} already exists in {}; nothing was copied (drop --no-clobber to replace it)",
                output::key(key),
                path.display()
            ),
        ));
    }
    Ok(())
}

/// True when both paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
