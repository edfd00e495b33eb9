//! `mmblob put KEY [FILE]`: store a file or standard input, streamed.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::Path;
use std::time::Instant;

use indicatif::ProgressBar;

use crate::cli::args::PutArgs;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::{output, progress, store};

/// Runs `put`.
pub fn run(store_path: &Path, args: &PutArgs) -> CliResult {
    let key = store::key_bytes(&args.key)?;
    let started = Instant::now();
    let (reader, bar) = open_source(args.file.as_deref())?;
    let mut source = Source::new(bar.wrap_read(reader));
    let db = store::open_writable(store_path, true)?;
    let written = db.write_stream(key, &mut source);
    bar.finish_and_clear();
    let input = args
        .file
        .as_ref()
        .map_or_else(|| "standard input".to_owned(), |p| p.display().to_string());
    written.map_err(|e| source.blame(&input, store_path, e))?;
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

/// The input of `write_stream`; it remembers a failed read, so that a failed
/// write can be blamed on the input rather than on the store.
pub struct Source<R> {
    inner: R,
    failure: Option<String>,
}

impl<R: Read> Source<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Source {
            inner,
            failure: None,
        }
    }

    /// The error to report for a failed `write_stream` from this source,
    /// named `input` in the message.
    pub fn blame(&self, input: &str, store_path: &Path, err: mmblob::Error) -> CliError {
        match &self.failure {
            Some(reason) => CliError::new(Exit::Failure, format!("cannot read {input}: {reason}")),
            None => CliError::store(store_path, err),
        }
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failure = Some(e.to_string());
            }
        })
    }
}
