//! `mmblob pull URL DEST`: create or bring up to date a local replica.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use mmblob_remote::{PullOptions, PullStats, pull};
use serde::Serialize;

use crate::cli::commands::remote;
use crate::cli::error::CliResult;
use crate::cli::output::{self, Out};

/// Arguments of `mmblob pull`.
#[derive(Debug, ClapArgs)]
pub struct PullArgs {
    /// Where to pull from: s3://BUCKET/PREFIX or file:///DIR
    #[arg(long_help = remote::URL_HELP)]
    pub url: String,
    /// The replica to create or extend (an ordinary store; open it read-only)
    pub dest: PathBuf,
}

/// `mmblob --json pull` (and each line of `mmblob --json follow`).
#[derive(Debug, Serialize)]
pub struct PullJson {
    /// Store id of the replica.
    pub store_id: String,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// Entries checked before they became visible.
    pub entries_checked: u64,
    /// Replica length before.
    pub previous_end: u64,
    /// Replica length now.
    pub end: u64,
    /// True when the replica was written anew.
    pub replaced: bool,
    /// Wall time.
    pub seconds: f64,
}

impl From<&PullStats> for PullJson {
    fn from(stats: &PullStats) -> Self {
        PullJson {
            store_id: format!("{:016x}", stats.store_id),
            downloaded_bytes: stats.downloaded_bytes,
            entries_checked: stats.entries_checked,
            previous_end: stats.previous_end,
            end: stats.end,
            replaced: stats.replaced,
            seconds: stats.elapsed.as_secs_f64(),
        }
    }
}

/// One line for people about a pull.
pub fn describe(stats: &PullStats) -> String {
    if stats.downloaded_bytes == 0 {
        return format!("up to date ({})", output::bytes(stats.end));
    }
    format!(
        "pulled {} in {} ({}), {} entries checked{}; the replica holds {}",
        output::bytes(stats.downloaded_bytes),
        output::duration(stats.elapsed),
        output::byte_rate(stats.downloaded_bytes, stats.elapsed),
        output::count(stats.entries_checked),
        if stats.replaced { ", written anew" } else { "" },
        output::bytes(stats.end)
    )
}

/// Runs `pull`.
pub fn run(args: &PullArgs, json: bool) -> CliResult {
    let source = remote::open(&args.url)?;
    let (bar, feed) = remote::bar("pull");
    let options = PullOptions::default().progress(feed);
    let stats = pull(source.store.as_ref(), &source.prefix, &args.dest, &options);
    bar.finish_and_clear();
    let stats = stats.map_err(|e| remote::error(&args.dest, e))?;
    let mut out = Out::new();
    if json {
        out.json(&PullJson::from(&stats))?;
    } else {
        out.line(describe(&stats))?;
    }
    out.flush()
}
