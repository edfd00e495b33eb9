//! What `push`, `pull` and `follow` share: opening the URL, the progress
//! bar and turning remote errors into exit codes.

use std::path::Path;

use indicatif::ProgressBar;
use mmblob_remote::{Progress, Remote, RemoteError, open_url};

use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::progress;

/// Help text on URLs and credentials, shown by the three commands.
pub const URL_HELP: &str = "URL is s3://BUCKET/PREFIX (S3 or any S3-compatible store; credentials, \
region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, \
and AWS_ALLOW_HTTP=true for a plain-HTTP endpoint) or file:///DIR (a directory on this machine).";

/// Opens the object store `url` names.
pub fn open(url: &str) -> CliResult<Remote> {
    open_url(url).map_err(|e| error(Path::new(""), e))
}

/// A byte bar fed by a push or pull progress callback.
pub fn bar(label: &'static str) -> (ProgressBar, impl Fn(Progress) + Send + Sync + 'static) {
    let bar = progress::bytes(0, label);
    let feed = bar.clone();
    (bar, move |p: Progress| {
        feed.set_length(p.total);
        feed.set_position(p.done);
    })
}

/// A remote error as a one-line message and an exit status; `local` is the
/// store or replica concerned.
pub fn error(local: &Path, err: RemoteError) -> CliError {
    let exit = match &err {
        RemoteError::Local(_) => None,
        RemoteError::NotAReplica { .. } => Some(Exit::NotAStore),
        RemoteError::Locked { .. } => Some(Exit::Locked),
        RemoteError::CorruptEntry { .. } | RemoteError::BadSegment { .. } => Some(Exit::Damage),
        RemoteError::InvalidUrl { .. } => Some(Exit::Usage),
        _ => Some(Exit::Failure),
    };
    match (exit, err) {
        (None, RemoteError::Local(e)) => CliError::store(local, e),
        (exit, err) => CliError::new(exit.unwrap_or(Exit::Failure), err.to_string()),
    }
}
