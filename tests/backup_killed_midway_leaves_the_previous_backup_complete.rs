//! A process that writes and backs up a store in a loop (incremental
//! appends, and full copies after compactions) is SIGKILLed at random
//! moments. After every kill the backup opens and holds every entry of the
//! last backup the child acknowledged, intact; and the next backup to the
//! same path succeeds and is again byte-identical to the store.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use mmblob::{DataStore, OpenOptions};
use support::child;
use support::rng::Rng;

const ROUNDS: u64 = 12;

fn value(key: &str) -> Vec<u8> {
    let mut v = key.as_bytes().repeat(1 + 64 * 1024 / key.len());
    v.truncate(64 * 1024 + key.len());
    v
}

fn backup_path(store: &std::path::Path) -> std::path::PathBuf {
    store.with_extension("backup")
}

/// The child: opens the store and, until killed, writes a few large
/// values, sometimes compacts, backs up and acknowledges the backup.
#[test]
fn child_backing_up() {
    if child::role().as_deref() != Some("backup") {
        return;
    }
    let round = child::seed();
    let path = child::store_path();
    let store = DataStore::open(&path).expect("child: open");
    let backup = backup_path(&path);
    let mut rng = Rng::new(round ^ 0xbac0_0b5e);
    for step in 0.. {
        let keys: Vec<String> = (0..8).map(|i| format!("r{round}.{step}.{i}")).collect();
        for key in &keys {
            store
                .write(key.as_bytes(), &value(key))
                .expect("child: write");
        }
        if rng.one_in(4) {
            // Overwrite something so compaction has work, then compact:
            // the next backup is a full copy.
            store
                .write(keys[0].as_bytes(), &value(&keys[0]))
                .expect("child: rewrite");
            store.compact().expect("child: compact");
        }
        let stats = store.backup_to(&backup).expect("child: backup");
        child::say(&format!(
            "backup {} {} {}",
            stats.incremental,
            stats.to,
            keys.join(",")
        ));
    }
}

#[test]
fn sigkill_during_backup_leaves_the_previous_backup_openable_and_complete() {
    if child::role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.mmblob");
    let backup = backup_path(&path);
    let mut rng = Rng::new(7);
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    // Kills that landed inside a backup: the backup is longer than the
    // last acknowledged one (an append under way) or a full copy's
    // temporary file is left.
    let mut mid_backup = 0;
    let mut last_to = 0u64;
    for round in 0..ROUNDS {
        let mut proc = child::spawn("child_backing_up", "backup", &path, round);
        // Let it run through a few backups, then kill it at a random moment.
        let wanted = 1 + rng.below(4);
        for _ in 0..wanted {
            let event = proc.expect_event("a backup");
            record(&event, &mut acked, &mut kinds, &mut last_to);
        }
        std::thread::sleep(Duration::from_millis(rng.below(40)));
        for event in proc.kill_and_drain() {
            record(&event, &mut acked, &mut kinds, &mut last_to);
        }
        let temp = backup.with_file_name(".store.backup.backup");
        let len = std::fs::metadata(&backup).map_or(0, |m| m.len());
        if temp.exists() || len != last_to {
            mid_backup += 1;
        }
        // The backup opens (read-only: a restore would open it as is) and
        // holds everything acknowledged, intact.
        let copy = OpenOptions::new().read_only(true).open(&backup).unwrap();
        for key in &acked {
            let got = copy.read(key.as_bytes()).unwrap();
            assert_eq!(
                got.as_deref(),
                Some(value(key).as_slice()),
                "round {round}: {key} of an acknowledged backup is missing or wrong"
            );
        }
        // A backup killed while appending leaves the bytes of that append
        // after the previous backup's end: a torn tail, ignored here and
        // cut by the next backup, never damage to what the copy holds.
        assert!(copy.verify().unwrap().is_ok(), "round {round}");
        drop(copy);
    }
    assert!(
        kinds.contains("true") && kinds.contains("false"),
        "{kinds:?}"
    );
    eprintln!("{mid_backup} of {ROUNDS} kills landed inside a backup");
    // The next backup after all those kills is exact.
    let store = DataStore::open(&path).unwrap();
    store.backup_to(&backup).unwrap();
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        std::fs::read(&path).unwrap()
    );
}

fn record(
    event: &str,
    acked: &mut BTreeSet<String>,
    kinds: &mut BTreeSet<String>,
    last_to: &mut u64,
) {
    let mut parts = event.split(' ');
    assert_eq!(parts.next(), Some("backup"), "{event}");
    kinds.insert(parts.next().unwrap().to_owned());
    *last_to = parts.next().unwrap().parse().unwrap();
    for key in parts.next().unwrap().split(',') {
        acked.insert(key.to_owned());
    }
}
