//! A process writing with the default `Durability::Flush` is SIGKILLed at
//! random moments, again and again on the same store. After every kill the
//! store opens, every write the child acknowledged is there with its exact
//! bytes, every acknowledged delete holds, every value found at all is
//! intact, every batch is there completely or not at all, a rename (a
//! two-entry batch) has happened or not but never half, `verify()` finds
//! nothing, and the store takes new writes. A read-only handle held open
//! through all of it sees every acknowledged write after `refresh()`, and
//! reads every byte it lists before and after recovery cuts a torn tail.
//!
//! Single writes and batches are copied into a writable shared map of space
//! reserved ahead; the test checks that the kills really leave such a
//! reservation behind (zeros after the last entry, cut at open), so the
//! crash guarantees are tested on that path. Streams are written with
//! `pwrite`, into or past the reservation.

mod support;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use mmblob::{DataStore, OpenOptions};
use support::child::{self, ChildProcess};
use support::rng::{Rng, value_for};

/// Kill rounds; each one restarts the writer on the store the last one left.
const ROUNDS: u64 = 40;
/// Operations a child does before it stops by itself.
const OPS_PER_ROUND: u64 = 250;

/// A reader that hands out a value in uneven chunks, like a socket.
struct Chunky<'a> {
    data: &'a [u8],
    rng: Rng,
}

impl Read for Chunky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self
            .data
            .len()
            .min(buf.len())
            .min(1 + self.rng.below(3000) as usize);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Batch keys are `b<round>.<op>.<size>.<member>`: the batch id is everything
/// before the last dot and the size is the third field.
fn batch_of(key: &str) -> Option<(String, usize)> {
    let rest = key.strip_prefix('b')?;
    let (id, _member) = rest.rsplit_once('.')?;
    let size = id.rsplit_once('.')?.1.parse().ok()?;
    Some((id.to_owned(), size))
}

/// A renamed key is the old key with an `m` in front and keeps its value.
/// (Remembered: the checks compare every value after every round.)
fn expected_value(key: &str) -> Rc<Vec<u8>> {
    thread_local! {
        static MEMO: RefCell<HashMap<String, Rc<Vec<u8>>>> = RefCell::default();
    }
    MEMO.with_borrow_mut(|memo| {
        let value = memo
            .entry(key.to_owned())
            .or_insert_with(|| Rc::new(value_for(key.strip_prefix('m').unwrap_or(key).as_bytes())));
        Rc::clone(value)
    })
}

/// The child: opens the store (recovering whatever the last kill left) and
/// writes, printing an acknowledgement after each call returns.
#[test]
fn child_writer() {
    if child::role().as_deref() != Some("writer") {
        return;
    }
    let round = child::seed();
    let mut rng = Rng::new(round.wrapping_mul(0x9e37_79b9) ^ 0x00c0_ffee);
    let store = DataStore::open(child::store_path()).expect("child: open the store");
    child::say("open");
    let mut deletable: Vec<String> = Vec::new();
    for op in 0..OPS_PER_ROUND {
        match rng.below(10) {
            0..=4 => {
                let key = format!("w{round}.{op}");
                store
                    .write(key.as_bytes(), &value_for(key.as_bytes()))
                    .expect("child: write");
                child::say(&format!("put {key}"));
                deletable.push(key);
            }
            5 | 6 => {
                let size = rng.range(2, 6);
                let keys: Vec<String> = (0..size)
                    .map(|member| format!("b{round}.{op}.{size}.{member}"))
                    .collect();
                let values: Vec<Vec<u8>> = keys.iter().map(|k| value_for(k.as_bytes())).collect();
                let entries: Vec<(&[u8], &[u8])> = keys
                    .iter()
                    .zip(&values)
                    .map(|(k, v)| (k.as_bytes(), v.as_slice()))
                    .collect();
                store.batch_write(&entries).expect("child: batch write");
                child::say(&format!("batch b{round}.{op}.{size}"));
            }
            7 | 8 => {
                let key = format!("s{round}.{op}");
                let value = value_for(key.as_bytes());
                let mut reader = Chunky {
                    data: &value,
                    rng: rng.clone(),
                };
                store
                    .write_stream(key.as_bytes(), &mut reader)
                    .expect("child: write stream");
                child::say(&format!("put {key}"));
                deletable.push(key);
            }
            _ => {
                if deletable.is_empty() {
                    continue;
                }
                let key = deletable.swap_remove(rng.below(deletable.len() as u64) as usize);
                if rng.one_in(2) {
                    child::say(&format!("deleting {key}"));
                    assert!(store.delete(key.as_bytes()).expect("child: delete"));
                    child::say(&format!("del {key}"));
                } else {
                    child::say(&format!("renaming {key}"));
                    let new = format!("m{key}");
                    store
                        .rename(key.as_bytes(), new.as_bytes())
                        .expect("child: rename");
                    child::say(&format!("renamed {key}"));
                }
            }
        }
    }
    child::say("done");
}

/// What the children acknowledged so far.
#[derive(Default)]
struct Acked {
    present: BTreeSet<String>,
    deleted: BTreeSet<String>,
    batches: BTreeSet<String>,
    /// Renames begun: acknowledged ones are also in `present`/`deleted`.
    renames: BTreeSet<String>,
    /// Deletes begun but not acknowledged: a kill may land after the delete
    /// took effect and before the child said so, so these keys may be
    /// there or not (if there, intact).
    deleting: BTreeSet<String>,
}

impl Acked {
    fn record(&mut self, event: &str) {
        if let Some(key) = event.strip_prefix("put ") {
            self.present.insert(key.to_owned());
        } else if let Some(key) = event.strip_prefix("deleting ") {
            assert!(self.present.remove(key), "child deletes an unknown key");
            self.deleting.insert(key.to_owned());
        } else if let Some(key) = event.strip_prefix("del ") {
            assert!(self.deleting.remove(key), "child deleted an unknown key");
            self.deleted.insert(key.to_owned());
        } else if let Some(id) = event.strip_prefix("batch b") {
            self.batches.insert(id.to_owned());
        } else if let Some(key) = event.strip_prefix("renaming ") {
            // Until the rename is acknowledged the key may be under either
            // name; the rename check covers it.
            assert!(self.present.remove(key), "child renamed an unknown key");
            self.renames.insert(key.to_owned());
        } else if let Some(key) = event.strip_prefix("renamed ") {
            self.deleted.insert(key.to_owned());
            self.present.insert(format!("m{key}"));
        }
    }
}

/// Opens the store as the next process would and checks it against what
/// was acknowledged.
fn check(path: &Path, acked: &Acked, round: u64) {
    let store = DataStore::open(path)
        .unwrap_or_else(|e| panic!("round {round}: open after kill failed: {e}"));
    // The interrupted write is cut and reported as such; nothing else is
    // damaged.
    assert!(
        store.damage().iter().all(|d| d.is_torn_tail()),
        "round {round}: {:?}",
        store.damage()
    );
    for key in &acked.present {
        let entry = store
            .read(key.as_bytes())
            .expect("read")
            .unwrap_or_else(|| panic!("round {round}: acknowledged write of {key} is lost"));
        assert!(
            *entry == **expected_value(key),
            "round {round}: value of {key} changed"
        );
    }
    for key in &acked.deleted {
        assert!(
            !store.exists(key.as_bytes()).expect("exists"),
            "round {round}: acknowledged delete of {key} is undone"
        );
    }
    let mut batches: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for entry in store.iter_entries() {
        let key = std::str::from_utf8(entry.key()).expect("test keys are text");
        assert!(
            *entry == **expected_value(key),
            "round {round}: value of unacknowledged {key} is not intact"
        );
        if let Some((id, size)) = batch_of(key) {
            batches.entry(id).or_insert((0, size)).0 += 1;
        }
    }
    for (id, (found, size)) in &batches {
        assert_eq!(found, size, "round {round}: batch {id} is partly there");
    }
    for id in &acked.batches {
        assert!(
            batches.contains_key(id),
            "round {round}: acknowledged batch {id} is lost"
        );
    }
    for key in &acked.renames {
        let old = store.exists(key.as_bytes()).expect("exists");
        let new = store.exists(format!("m{key}").as_bytes()).expect("exists");
        assert!(
            old != new,
            "round {round}: rename of {key} is half done ({old}, {new})"
        );
    }
    let report = store.verify().expect("verify");
    assert!(report.is_ok(), "round {round}: {:?}", report.damaged);
}

/// What the long-lived read-only handle shows: every acknowledged write,
/// and every byte of every entry it lists readable and intact.
fn check_reader(reader: &DataStore, acked: &Acked, round: u64) {
    for key in &acked.present {
        assert!(
            reader.exists(key.as_bytes()).expect("exists"),
            "round {round}: the reader misses {key}"
        );
    }
    for entry in reader.iter_entries() {
        let key = std::str::from_utf8(entry.key()).expect("test keys are text");
        assert!(
            *entry == **expected_value(key),
            "round {round}: reader's {key}"
        );
    }
}

#[test]
fn crash_during_writes_loses_nothing_acknowledged() {
    if child::role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crash.mmblob");
    let mut rng = Rng::new(0x0dd_ba11);
    let mut acked = Acked::default();
    let mut mid_write_kills = 0;
    let mut reservations_cut = 0;
    // A read-only handle held across every crash and recovery: it must
    // follow the store and never fault on bytes recovery cuts off.
    drop(DataStore::open(&path).expect("create"));
    let reader = OpenOptions::new()
        .read_only(true)
        .open(&path)
        .expect("read-only open");
    for round in 0..ROUNDS {
        let mut writer: ChildProcess = child::spawn("child_writer", "writer", &path, round);
        // One round in eight is killed at once, while it may still be
        // recovering the store; the others after a random number of
        // acknowledged operations, while the child keeps writing.
        let kill_after = if rng.one_in(8) {
            0
        } else {
            rng.range(1, OPS_PER_ROUND * 4 / 5)
        };
        let mut events = Vec::new();
        while (events.len() as u64) < kill_after {
            match writer.next_event() {
                Some(event) => events.push(event),
                None => break,
            }
        }
        events.extend(writer.kill_and_drain());
        if !events.iter().any(|e| e == "done") {
            mid_write_kills += 1;
        }
        for event in &events {
            acked.record(event);
        }
        // The torn tail is still there: refresh must stop before it.
        reader.refresh().expect("refresh after a kill");
        let killed = std::fs::read(&path).expect("read the store file");
        check(&path, &acked, round); // recovery cuts the torn tail
        let len_after_open = std::fs::metadata(&path).expect("metadata").len();
        // The file ended in zeros (reserved space) that open cut.
        if killed.len() as u64 > len_after_open && killed.last() == Some(&0) {
            reservations_cut += 1;
        }
        check_reader(&reader, &acked, round);
    }
    assert!(
        mid_write_kills >= ROUNDS / 2,
        "only {mid_write_kills} of {ROUNDS} kills hit a running writer"
    );
    assert!(!acked.present.is_empty() && !acked.batches.is_empty());
    assert!(
        reservations_cut >= ROUNDS / 4,
        "only {reservations_cut} of {ROUNDS} kills left a reservation to cut: \
         the writes did not go through the writable map"
    );

    // The store takes new writes after all that.
    let store = DataStore::open(&path).expect("open");
    store.write(b"after", b"the storm").expect("write");
    drop(store);
    let store = DataStore::open(&path).expect("reopen");
    assert_eq!(
        store.read(b"after").expect("read").as_deref(),
        Some(&b"the storm"[..])
    );
}
