//! Process memory from /proc/self/status: anonymous resident memory
//! (`RssAnon`, the heap and other private memory, not the file-backed pages
//! of a memory map), file-backed resident memory (`RssFile`) and the peak
//! resident set (`VmHWM`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// One field of /proc/self/status, in bytes.
fn status_field(name: &str) -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(':'))
        .with_context(|| format!("{name} missing from /proc/self/status"))?;
    let kib: u64 = line[name.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("parsing {line:?}"))?;
    Ok(kib * 1024)
}

/// Anonymous resident memory of this process, in bytes.
pub fn rss_anon() -> Result<u64> {
    status_field("RssAnon")
}

/// Peak resident set size of this process (file-backed pages included), in bytes.
/// Resident file-backed pages of this process, in bytes (`RssFile`):
/// mapped files, including pages mapped copy-on-write and not yet written.
pub fn rss_file() -> Result<u64> {
    status_field("RssFile")
}

pub fn vm_hwm() -> Result<u64> {
    status_field("VmHWM")
}

/// A thread sampling `RssAnon` every few milliseconds and keeping the maximum.
pub struct PeakSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl PeakSampler {
    /// Starts sampling.
    pub fn start() -> Result<PeakSampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_anon()?));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(now) = rss_anon() {
                    p.fetch_max(now, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Ok(PeakSampler {
            stop,
            peak,
            thread: Some(thread),
        })
    }

    /// Stops sampling and returns the peak seen, in bytes.
    pub fn finish(mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("memory sampler panicked"))?;
        }
        let last = rss_anon()?;
        Ok(self.peak.load(Ordering::Relaxed).max(last))
    }
}
