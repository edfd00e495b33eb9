//! `mmblob mv OLD NEW`: rename a key in one atomic step.

use std::path::Path;

use crate::cli::args::MvArgs;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::{output, store};

/// Runs `mv`: moves the value of OLD to NEW; a value under NEW is replaced
/// unless `--no-clobber` is given.
pub fn run(store_path: &Path, args: &MvArgs) -> CliResult {
    let old = store::key_bytes(&args.old)?;
    let new = store::key_bytes(&args.new)?;
    let db = store::open_writable(store_path, false)?;
    if !db.exists(old).map_err(|e| CliError::store(store_path, e))? {
        return Err(CliError::key_not_found(store_path, old));
    }
    if args.no_clobber
        && old != new
        && db.exists(new).map_err(|e| CliError::store(store_path, e))?
    {
        return Err(CliError::new(
            Exit::Failure,
            format!(
                "key {} already exists in {}; nothing was moved (drop --no-clobber to replace it)",
                output::key(new),
                store_path.display()
            ),
        ));
    }
    db.rename(old, new)
        .map_err(|e| CliError::store(store_path, e))?;
    db.close().map_err(|e| CliError::store(store_path, e))?;
    eprintln!("moved {} to {}", output::key(old), output::key(new));
    Ok(())
}
