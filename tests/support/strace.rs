//! Whether the system-call checks that need `strace` can run.
//!
//! Without `strace` those checks are skipped with a `skipped: strace not
//! installed` line, unless `MMBLOB_REQUIRE_STRACE=1` is set (the `./test`
//! script sets it and installs strace): then a missing or unusable strace
//! fails the test, so a check can never pass silently.

use std::process::{Command, Stdio};

/// The environment variable that turns a skipped strace check into a failure.
pub const REQUIRE: &str = "MMBLOB_REQUIRE_STRACE";

/// True when strace must be there.
pub fn required() -> bool {
    std::env::var(REQUIRE).is_ok_and(|v| v == "1")
}

/// True when `strace` can be run; otherwise says that `test` is skipped,
/// or panics when strace is [`required`].
pub fn available(test: &str) -> bool {
    let probe = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match probe {
        Ok(status) if status.success() => true,
        Ok(status) => unusable(test, &format!("`strace -V` exited with {status}")),
        Err(e) => {
            assert!(
                !required(),
                "{test}: {REQUIRE}=1 but strace is not installed ({e}); install it \
                 (apt-get install strace) or run ./test, which does"
            );
            eprintln!("skipped: strace not installed ({test})");
            false
        }
    }
}

/// Reports that strace is installed but cannot trace here: fails when
/// strace is [`required`], else says that `test` is skipped. Returns false.
pub fn unusable(test: &str, why: &str) -> bool {
    assert!(
        !required(),
        "{test}: {REQUIRE}=1 but strace cannot trace here: {why}"
    );
    eprintln!("skipped: strace cannot trace here ({test}): {why}");
    false
}
