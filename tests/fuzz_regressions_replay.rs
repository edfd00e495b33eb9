//! Replays every input kept in `fuzz/regressions/<target>/` through the same
//! checks the fuzz targets run (`tests/support/fuzz_checks.rs`), so a bug
//! that fuzzing once found stays fixed without a nightly toolchain.

mod support;

use std::path::PathBuf;

use support::fuzz_checks;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no regression inputs in {}",
        dir.display()
    );
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).expect("read a regression input");
            (path, data)
        })
        .collect()
}

fn replay(target: &str, check: fn(&[u8])) {
    for (path, data) in inputs(target) {
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: {} fails again", path.display());
    }
}

#[test]
fn open_arbitrary_bytes_regressions_stay_fixed() {
    replay("open_arbitrary_bytes", fuzz_checks::open_arbitrary_bytes);
}

#[test]
fn random_operations_regressions_stay_fixed() {
    replay("random_operations", fuzz_checks::random_operations);
}
