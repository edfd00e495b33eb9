//! The command-line tool's crates sit behind the default `cli` feature:
//! `mmblob` with `default-features = false` builds the bare library, and
//! the `mmblob` binary needs `cli`.

use std::process::Command;

/// The crates only the tool uses.
const CLI_ONLY: [&str; 6] = [
    "clap",
    "indicatif",
    "serde_json",
    "tracing-subscriber",
    "ctrlc",
    "tempfile",
];

/// The names of the packages `mmblob` depends on (normal dependencies,
/// transitively) with the given feature arguments.
fn dependencies(features: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--offline", "-p", "mmblob", "-e", "normal"])
        .args(["--prefix", "none", "--format", "{p}"])
        .args(features)
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .filter_map(|line| line.split(' ').next().map(str::to_owned))
        .collect()
}

#[test]
fn the_bare_library_does_not_depend_on_the_tools_crates() {
    let bare = dependencies(&["--no-default-features"]);
    assert!(bare.iter().any(|p| p == "mmblob-engine"), "{bare:?}");
    for krate in CLI_ONLY.iter().chain(&["serde", "rayon"]) {
        assert!(
            !bare.iter().any(|p| p == krate),
            "{krate} is a dependency of the bare library: {bare:?}"
        );
    }
    let parallel = dependencies(&["--no-default-features", "--features", "parallel"]);
    assert!(parallel.iter().any(|p| p == "rayon"), "{parallel:?}");
    for krate in CLI_ONLY {
        assert!(
            !parallel.iter().any(|p| p == krate),
            "{krate}: {parallel:?}"
        );
    }
}

#[test]
fn the_default_build_has_the_tool() {
    let full = dependencies(&[]);
    for krate in CLI_ONLY {
        assert!(full.iter().any(|p| p == krate), "{krate} missing: {full:?}");
    }
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("Cargo.toml");
    let bin = manifest
        .split("[[bin]]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [[bin]] section");
    assert!(
        bin.contains("required-features = [\"cli\"]"),
        "the binary requires the cli feature: {bin}"
    );
}
