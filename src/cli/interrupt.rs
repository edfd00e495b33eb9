//! Ctrl-C (also SIGTERM and SIGHUP, as when the terminal is closed): the
//! command stops at once, and the temporary files it was writing (a
//! `get -o` or `export` file on its way into place, a compaction's new
//! file, the demo's store) are removed first.
//!
//! One handler serves the whole process; commands register the paths to
//! remove with [`remove_on_interrupt`] and drop the returned guard once the
//! path is renamed into place or removed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Paths to remove when the user presses Ctrl-C, with a registration number.
static PENDING: Mutex<Vec<(u64, PathBuf, Kind)>> = Mutex::new(Vec::new());
/// Set when the user pressed Ctrl-C: the handler is removing files and
/// will end the process.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The next registration number.
static NEXT: Mutex<u64> = Mutex::new(0);

/// What a registered path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A file.
    File,
    /// A directory, removed with everything in it.
    Dir,
}

/// Installs the handler. Ctrl-C then removes every registered path, says
/// so, and exits with status 130 (what a shell reports for an interrupted
/// command) within moments, whatever the command is doing.
pub fn install() {
    // Fails only when a handler is already installed, which leaves that one.
    let _ = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::SeqCst);
        let pending = std::mem::take(&mut *PENDING.lock().unwrap_or_else(PoisonError::into_inner));
        for (_, path, kind) in &pending {
            if remove(path, *kind) {
                eprintln!("\ninterrupted; removed {}", path.display());
            }
        }
        if pending.is_empty() {
            eprintln!("\ninterrupted");
        }
        std::process::exit(130);
    });
}

/// Whether the user pressed Ctrl-C. The command is then being stopped:
/// errors it meets (its files vanish under it) are not worth reporting.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Removes `path`; true if something was removed. The command goes on
/// while this runs and may create a file in a directory being removed
/// (an index sidecar, say), so a directory is tried a few times.
fn remove(path: &Path, kind: Kind) -> bool {
    match kind {
        Kind::File => std::fs::remove_file(path).is_ok(),
        Kind::Dir => {
            for _ in 0..20 {
                if std::fs::remove_dir_all(path).is_ok() || !path.exists() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            false
        }
    }
}

/// Removes `path` if the user presses Ctrl-C before the guard is dropped.
#[must_use = "the path is forgotten when the guard is dropped"]
pub fn remove_on_interrupt(path: &Path, kind: Kind) -> Registered {
    let id = {
        let mut next = NEXT.lock().unwrap_or_else(PoisonError::into_inner);
        *next += 1;
        *next
    };
    PENDING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((id, path.to_path_buf(), kind));
    Registered(id)
}

/// A path registered with [`remove_on_interrupt`]; dropping it forgets the path.
#[derive(Debug)]
pub struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        PENDING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(id, _, _)| *id != self.0);
    }
}
