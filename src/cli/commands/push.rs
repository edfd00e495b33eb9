//! `mmblob push URL`: ship the store's new bytes to an object store.

use std::path::Path;

use clap::Args as ClapArgs;
use mmblob_remote::{PushOptions, push};
use serde::Serialize;

use crate::cli::commands::remote;
use crate::cli::error::CliResult;
use crate::cli::output::{self, Out};
use crate::cli::store;

/// Arguments of `mmblob push`.
#[derive(Debug, ClapArgs)]
pub struct PushArgs {
    /// Where to push: s3://BUCKET/PREFIX or file:///DIR
    #[arg(long_help = remote::URL_HELP)]
    pub url: String,
    /// Older generations (stores replaced by a compaction) to keep next to the current one
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub retain: usize,
}

/// `mmblob --json push`.
#[derive(Debug, Serialize)]
struct PushJson {
    store_id: String,
    new_generation: bool,
    uploaded_bytes: u64,
    previous_end: u64,
    end: u64,
    segments: usize,
    removed_objects: usize,
    seconds: f64,
}

/// Runs `push`.
pub fn run(store_path: &Path, args: &PushArgs, json: bool) -> CliResult {
    // Read-only: a writer can go on writing while we push.
    let db = store::open_read_only(store_path)?;
    let target = remote::open(&args.url)?;
    let (bar, feed) = remote::bar("push");
    let options = PushOptions::default()
        .retain_generations(args.retain)
        .progress(feed);
    let stats = push(&db, target.store.as_ref(), &target.prefix, &options);
    bar.finish_and_clear();
    let stats = stats.map_err(|e| remote::error(store_path, e))?;
    let mut out = Out::new();
    if json {
        out.json(&PushJson {
            store_id: format!("{:016x}", stats.store_id),
            new_generation: stats.new_generation,
            uploaded_bytes: stats.uploaded_bytes,
            previous_end: stats.previous_end,
            end: stats.end,
            segments: stats.segments,
            removed_objects: stats.removed_objects,
            seconds: stats.elapsed.as_secs_f64(),
        })?;
    } else if stats.uploaded_bytes == 0 {
        out.line(format!(
            "{} is up to date ({})",
            args.url,
            output::bytes(stats.end)
        ))?;
    } else {
        out.line(format!(
            "pushed {} in {} ({}){}; the remote copy now holds {} in {} segment(s)",
            output::bytes(stats.uploaded_bytes),
            output::duration(stats.elapsed),
            output::byte_rate(stats.uploaded_bytes, stats.elapsed),
            if stats.new_generation {
                " as a new generation"
            } else {
                ""
            },
            output::bytes(stats.end),
            stats.segments
        ))?;
    }
    out.flush()
}
