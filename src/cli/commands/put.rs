//! `mmblob put KEY [FILE]`: store a file or standard input, streamed.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::Path;
use std::time::Instant;

use indicatif::ProgressBar;

use crate::cli::args::PutArgs;
use crate::cli::error::{CliError, CliResult};
use crate::cli::{output, progress, store};

/// Runs `put`.
pub fn run(store_path: &Path, args: &PutArgs) -> CliResult {
    let key = store::key_bytes(&args.key)?;
    let started = Instant::now();
    let (mut source, bar) = open_source(args.file.as_deref())?;
    let db = store::open_writable(store_path, true)?;
    let written = db.write_stream(key, &mut bar.wrap_read(&mut source));
    bar.finish_and_clear();
    written.map_err(|e| source_error(store_path, args.file.as_deref(), e))?;
    eprintln!(
        "stored {} ({}) in {}",
        output::key(key),
        output::bytes(bar.position()),
        output::duration(started.elapsed())
    );
    Ok(())
}

/// The value's source and a progress bar fitting its size.
fn open_source(file: Option<&Path>) -> CliResult<(Box<dyn Read>, ProgressBar)> {
    let Some(path) = file else {
        if io::stdin().is_terminal() {
            eprintln!("reading the value from standard input; end it with Ctrl-D");
        }
        return Ok((Box::new(io::stdin().lock()), progress::stream("put")));
    };
    let opened = File::open(path).map_err(|e| CliError::io("cannot read", path, &e))?;
    let len = opened
        .metadata()
        .map_err(|e| CliError::io("cannot read", path, &e))?
        .len();
    Ok((Box::new(opened), progress::value(len, "put")))
}

/// Names the input file when reading it failed, else the store.
pub fn source_error(store_path: &Path, file: Option<&Path>, err: mmblob::Error) -> CliError {
    match (&err, file) {
        (mmblob::Error::Io { context, source }, Some(path))
            if context.starts_with("reading the value") =>
        {
            CliError::io("cannot read", path, source)
        }
        _ => CliError::store(store_path, err),
    }
}
