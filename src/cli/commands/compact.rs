//! `mmblob compact`: rewrite the live entries, give back dead space.

use std::path::Path;
use std::time::Instant;

use mmblob::StoreStats;
use serde::Serialize;

use crate::cli::args::CompactArgs;
use crate::cli::error::{CliError, CliResult};
use crate::cli::interrupt::{self, Kind};
use crate::cli::output::{self, Out, Table};
use crate::cli::{own_files, progress, store};

/// `mmblob --json compact`.
#[derive(Debug, Serialize)]
struct CompactJson {
    before: Sizes,
    after: Sizes,
    entries_kept: u64,
    entries_dropped: u64,
    /// Whether the store was synced before reporting (not with `--no-sync`;
    /// compaction itself always syncs the new file before it replaces the old).
    synced: bool,
    seconds: f64,
}

/// The store's sizes before or after compaction.
#[derive(Debug, Serialize)]
struct Sizes {
    entries: u64,
    live_bytes: u64,
    reclaimable_bytes: u64,
    file_size: u64,
}

impl From<StoreStats> for Sizes {
    fn from(s: StoreStats) -> Self {
        Sizes {
            entries: s.live_entries,
            live_bytes: s.live_bytes,
            reclaimable_bytes: s.reclaimable_bytes,
            file_size: s.file_size,
        }
    }
}

/// Runs `compact`. Ctrl-C stops it at once and removes the half-written
/// new file; until the final rename the store file is not touched.
pub fn run(store_path: &Path, args: &CompactArgs, json: bool) -> CliResult {
    let db = store::open_writable(store_path, false)?;
    let before = db.stats();
    let started = Instant::now();
    let temp = store_path
        .canonicalize()
        .map(|real| own_files::compaction_temp(&real))
        .map_err(|e| CliError::io("cannot resolve", store_path, &e))?;
    let interrupted = interrupt::remove_on_interrupt(&temp, Kind::File);
    let bar = progress::bytes(before.live_bytes, "compact");
    let stats = db.compact_with_progress(|n| bar.inc(n));
    bar.finish_and_clear();
    drop(interrupted);
    let stats = stats.map_err(|e| CliError::store(store_path, e))?;
    store::sync(&db, store_path, args.sync.no_sync)?;
    let report = CompactJson {
        before: before.into(),
        after: db.stats().into(),
        entries_kept: stats.entries_kept,
        entries_dropped: stats.entries_dropped,
        synced: !args.sync.no_sync,
        seconds: started.elapsed().as_secs_f64(),
    };
    let mut out = Out::new();
    if json {
        out.json(&report)?;
    } else {
        human(&report).print(&mut out)?;
        out.line(format!(
            "gave back {} in {}; dropped {} dead entries",
            output::bytes(
                report
                    .before
                    .file_size
                    .saturating_sub(report.after.file_size)
            ),
            output::duration(started.elapsed()),
            output::count(report.entries_dropped)
        ))?;
    }
    out.flush()
}

fn human(report: &CompactJson) -> Table {
    let mut table = Table::new(&[false, true, true]);
    let (b, a) = (&report.before, &report.after);
    table.row(["", "before", "after"].map(String::from));
    table.row([
        "entries".into(),
        output::count(b.entries),
        output::count(a.entries),
    ]);
    table.row([
        "live bytes".into(),
        output::bytes(b.live_bytes),
        output::bytes(a.live_bytes),
    ]);
    table.row([
        "reclaimable".into(),
        output::bytes(b.reclaimable_bytes),
        output::bytes(a.reclaimable_bytes),
    ]);
    table.row([
        "file size".into(),
        output::bytes(b.file_size),
        output::bytes(a.file_size),
    ]);
    table
}
