//! Group commit: concurrent writers that need their bytes synced share one
//! `fdatasync` instead of queueing for one each.
//!
//! A writer whose bytes are not yet covered either starts a sync (if none
//! is running) or waits for the running one to finish. The lock is never
//! held during the sync itself; when it finishes, every waiter wakes at
//! once, those it covered return, and one of the rest starts the next sync
//! for all of them.

use std::io;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// A durable point in the store: `(file epoch, end offset)`. Offsets of a
/// newer epoch (a compacted file) are all durable once it is installed.
pub(crate) type Point = (u64, u64);

struct Progress {
    synced: Point,
    running: bool,
}

/// Coordinates syncs between writers; see the module docs.
pub(crate) struct GroupCommit {
    progress: Mutex<Progress>,
    finished: Condvar,
}

impl GroupCommit {
    /// Everything up to `synced` is already durable.
    pub(crate) fn new(synced: Point) -> Self {
        GroupCommit {
            progress: Mutex::new(Progress {
                synced,
                running: false,
            }),
            finished: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once `point` is durable. `sync` makes everything written so
    /// far durable and returns the point it covered; it is run by at most
    /// one caller at a time.
    pub(crate) fn sync_through(
        &self,
        point: Point,
        sync: impl Fn() -> io::Result<Point>,
    ) -> io::Result<()> {
        let mut progress = self.lock();
        loop {
            if progress.synced >= point {
                return Ok(());
            }
            if progress.running {
                progress = self
                    .finished
                    .wait(progress)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            progress.running = true;
            drop(progress);
            // Writers woken by the last sync may not have run yet (more
            // writers than cores): let them append first, so this sync
            // covers them too instead of leaving them to the next one.
            std::thread::yield_now();
            let result = sync();
            progress = self.lock();
            progress.running = false;
            if let Ok(covered) = result {
                progress.synced = progress.synced.max(covered);
            }
            self.finished.notify_all();
            result?;
        }
    }

    /// Records that everything up to `point` was made durable elsewhere.
    pub(crate) fn record(&self, point: Point) {
        let mut progress = self.lock();
        progress.synced = progress.synced.max(point);
    }
}
