//! What the demo did, as a table for people or JSON for scripts.

use std::time::Duration;

use serde::Serialize;

use crate::cli::error::CliResult;
use crate::cli::output::{self, Out, Table};

/// One timed step of the demo.
#[derive(Debug, Serialize)]
pub struct Step {
    /// Short name, e.g. `batch write`.
    pub name: &'static str,
    /// Entries (or reads) handled.
    pub items: u64,
    /// Payload bytes handled.
    pub bytes: u64,
    /// Wall-clock time.
    pub seconds: f64,
}

impl Step {
    /// A step that handled `items` entries and `bytes` bytes in `elapsed`.
    pub fn new(name: &'static str, items: u64, bytes: u64, elapsed: Duration) -> Self {
        Step {
            name,
            items,
            bytes,
            seconds: elapsed.as_secs_f64(),
        }
    }

    fn elapsed(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }

    fn work(&self) -> String {
        match (self.items, self.bytes) {
            (0, bytes) => output::bytes(bytes),
            (items, 0) => format!("{} entries", output::count(items)),
            (items, bytes) => format!("{} entries, {}", output::count(items), output::bytes(bytes)),
        }
    }

    fn throughput(&self) -> String {
        let rates = [
            (self.items > 0).then(|| output::count_rate(self.items, self.elapsed(), "entries")),
            (self.bytes > 0).then(|| output::byte_rate(self.bytes, self.elapsed())),
        ];
        rates.into_iter().flatten().collect::<Vec<_>>().join(", ")
    }
}

/// Everything `mmblob demo` reports.
#[derive(Debug, Serialize)]
pub struct DemoReport {
    /// Where the store was (a temporary directory is removed at the end).
    pub store: String,
    /// True when the store is kept (`--store`).
    pub kept: bool,
    /// The timed steps, in order.
    pub steps: Vec<Step>,
    /// File length before compaction.
    pub file_size_before_compact: u64,
    /// File length after compaction.
    pub file_size_after_compact: u64,
    /// Live keys at the end.
    pub live_entries: u64,
    /// Heap bytes of the in-memory index at the end.
    pub index_memory_bytes: u64,
    /// Wall-clock time of the whole demo.
    pub total_seconds: f64,
}

impl DemoReport {
    /// Prints the table and a few summary lines.
    pub fn print_human(&self, out: &mut Out) -> CliResult {
        let mut table = Table::new(&[false, true, true, false]);
        table.row(["step", "work", "time", "throughput"]);
        for step in &self.steps {
            table.row([
                step.name.to_owned(),
                step.work(),
                output::duration(step.elapsed()),
                step.throughput(),
            ]);
        }
        table.print(out)?;
        out.line("")?;
        out.line(format!(
            "file size {} before compaction, {} after; {} live keys, index {} in memory",
            output::bytes(self.file_size_before_compact),
            output::bytes(self.file_size_after_compact),
            output::count(self.live_entries),
            output::bytes(self.index_memory_bytes),
        ))?;
        let whereabouts = if self.kept { "kept at" } else { "removed from" };
        out.line(format!(
            "total {}; store {whereabouts} {}",
            output::duration(Duration::from_secs_f64(self.total_seconds)),
            self.store
        ))
    }
}
