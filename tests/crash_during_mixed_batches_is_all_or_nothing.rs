//! A process committing mixed batches (writes and deletes in one
//! `WriteBatch`) is SIGKILLed in the middle of a commit, again and again on
//! the same store. Each batch writes a new group of keys (some values larger
//! than the writer's 256 KiB chunk, so one batch spans many write calls),
//! writes and deletes a scratch key, and deletes every key of the group
//! before it. After every kill the store holds exactly one complete group:
//! the last acknowledged one, or the one being committed, all of it; never
//! parts of two, never a scratch key, every value intact, and `verify()`
//! finds nothing. Between rounds the store is compacted.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use mmblob::DataStore;
use support::child::{self, ChildProcess};
use support::rng::Rng;

/// Kill rounds; each one restarts the writer on the store the last one left.
const ROUNDS: u64 = 24;
/// Batches a child commits before it stops by itself.
const BATCHES_PER_ROUND: u64 = 6;
const CHUNK: u64 = 256 * 1024;

/// Group keys are `g<round>.<batch>.<members>.<member>.<len>`.
fn parse(key: &str) -> Option<(String, usize, usize)> {
    let mut fields = key.strip_prefix('g')?.split('.');
    let (round, batch) = (fields.next()?, fields.next()?);
    let members = fields.next()?.parse().ok()?;
    let _member = fields.next()?;
    let len = fields.next()?.parse().ok()?;
    Some((format!("g{round}.{batch}"), members, len))
}

/// Random bytes that values are cut from: making a batch's values costs
/// nothing, so the child spends its time committing, where the kills land.
const POOL_LEN: usize = 4 << 20;

fn pool() -> &'static [u8] {
    static POOL: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| Rng::new(0x9001).bytes(POOL_LEN))
}

/// The value stored under `key`: `len` bytes of the pool from a place that
/// follows from the key.
fn value_for(key: &str, len: usize) -> &'static [u8] {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let at = (hash % (POOL_LEN - len) as u64) as usize;
    &pool()[at..at + len]
}

/// The child: commits batches, announcing each before and after.
#[test]
fn child_batch_writer() {
    if child::role().as_deref() != Some("batcher") {
        return;
    }
    let round = child::seed();
    let mut rng = Rng::new(round.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0xba7c4);
    let store = DataStore::open(child::store_path()).expect("child: open the store");
    let mut previous: Vec<Vec<u8>> = store.keys().collect();
    child::say("open");
    for batch_no in 0..BATCHES_PER_ROUND {
        let id = format!("g{round}.{batch_no}");
        let members = rng.range(200, 1500) as usize;
        let mut batch = store.batch();
        let scratch = format!("t{round}.{batch_no}");
        batch.write(scratch.clone(), b"never visible".to_vec());
        let mut keys = Vec::with_capacity(members);
        for member in 0..members {
            let len = if rng.one_in(25) {
                rng.range(CHUNK - 10, 3 * CHUNK) as usize
            } else {
                rng.below(3000) as usize
            };
            let key = format!("{id}.{members}.{member}.{len}");
            batch.write(key.clone(), value_for(&key, len));
            keys.push(key.into_bytes());
            if member == members / 2 {
                for old in &previous {
                    batch.delete(old.as_slice());
                }
                batch.delete(scratch.clone());
            }
        }
        child::say(&format!("committing {id}"));
        let done = batch.commit().expect("child: commit");
        assert_eq!(done.deleted, previous.len() + 1);
        child::say(&format!("committed {id}"));
        previous = keys;
    }
    child::say("done");
}

/// Opens the store as the next process would; returns the group it holds
/// and whether recovery cut a torn batch.
fn check(
    path: &Path,
    round: u64,
    acked: Option<&str>,
    committing: Option<&str>,
) -> (Option<String>, bool) {
    let len_before = std::fs::metadata(path).expect("store file").len();
    let store = DataStore::open(path)
        .unwrap_or_else(|e| panic!("round {round}: open after kill failed: {e}"));
    let torn = store.file_size().expect("size") < len_before;
    // The interrupted batch's bytes are reported as a torn tail, nothing else.
    assert!(
        store.damage().iter().all(|d| d.is_torn_tail()),
        "round {round}: {:?}",
        store.damage()
    );
    let mut groups: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for entry in store.iter_entries() {
        let key = std::str::from_utf8(entry.key()).expect("test keys are text");
        let (id, members, len) =
            parse(key).unwrap_or_else(|| panic!("round {round}: scratch or stray key {key}"));
        assert!(
            *entry == *value_for(key, len),
            "round {round}: value of {key} is not intact"
        );
        groups.entry(id).or_insert((0, members)).0 += 1;
    }
    assert!(
        groups.len() <= 1,
        "round {round}: parts of several batches: {groups:?}"
    );
    let found = groups.into_iter().next().map(|(id, (count, members))| {
        assert_eq!(count, members, "round {round}: batch {id} is partly there");
        id
    });
    let allowed = [acked, committing];
    assert!(
        allowed.contains(&found.as_deref()),
        "round {round}: found {found:?}, acknowledged {acked:?}, committing {committing:?}"
    );
    assert!(store.verify().expect("verify").is_ok(), "round {round}");
    // Keeps the file small: each round's batches delete the last group.
    store.compact().expect("compact");
    (found, torn)
}

#[test]
fn crash_during_mixed_batches_is_all_or_nothing() {
    if child::role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("batches.mmblob");
    let mut rng = Rng::new(0x5eed_ba7c);
    let mut acked: Option<String> = None;
    let mut torn_rounds = 0;
    for round in 0..ROUNDS {
        let mut writer: ChildProcess = child::spawn("child_batch_writer", "batcher", &path, round);
        // Kill soon after the child announces the commit of a random batch,
        // while that commit plans or writes its chunks.
        let kill_at = rng.below(BATCHES_PER_ROUND);
        let mut committing: Option<String> = None;
        let mut events = Vec::new();
        while let Some(event) = writer.next_event() {
            let at_target = event == format!("committing g{round}.{kill_at}");
            events.push(event);
            if at_target {
                break;
            }
        }
        // The commit first plans (in memory), then writes for tens of
        // milliseconds: a random delay spreads the kills over both.
        std::thread::sleep(std::time::Duration::from_millis(rng.below(60)));
        events.extend(writer.kill_and_drain());
        for event in &events {
            if let Some(id) = event.strip_prefix("committing ") {
                committing = Some(id.to_owned());
            } else if let Some(id) = event.strip_prefix("committed ") {
                acked = Some(id.to_owned());
                committing = None;
            }
        }
        let (found, torn) = check(&path, round, acked.as_deref(), committing.as_deref());
        if found.is_some() && found == committing {
            acked = found;
        }
        torn_rounds += u64::from(torn);
    }
    eprintln!("{torn_rounds} of {ROUNDS} kills left a torn batch for recovery to cut");
    assert!(
        torn_rounds >= ROUNDS / 4,
        "only {torn_rounds} of {ROUNDS} kills landed inside a commit"
    );
}
