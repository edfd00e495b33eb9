//! Model test: random writes, batches, deletes, clears, compactions and
//! reopens on plain keys and several namespaces agree at every step with a
//! `HashMap<(Option<namespace>, key), value>`. Keys are drawn from a small
//! alphabet that includes 0xFF and length bytes, and plain keys are
//! sometimes built in the stored form of a namespaced key, so collisions
//! would show.

mod support;

use std::collections::{BTreeSet, HashMap};

use mmblob::namespace::{namespaced_key, split_key};
use mmblob::{DataStore, Error};
use support::rng::Rng;

type Model = HashMap<(Option<String>, Vec<u8>), Vec<u8>>;

const NAMES: [&str; 4] = ["a", "ab", "b", "users"];

fn key(rng: &mut Rng) -> Vec<u8> {
    const ALPHABET: [u8; 6] = [0xFF, 0x01, 0x02, b'a', b'b', b'u'];
    let len = rng.range(1, 4) as usize;
    (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
        .collect()
}

fn plain_key(rng: &mut Rng) -> Vec<u8> {
    if rng.one_in(5) {
        let name = NAMES[rng.below(NAMES.len() as u64) as usize];
        namespaced_key(name, &key(rng))
    } else {
        key(rng)
    }
}

fn check(store: &DataStore, model: &Model, step: usize) {
    for ((ns, k), v) in model {
        let got = match ns {
            None => store.read(k).unwrap(),
            Some(name) => store.namespace(name).unwrap().read(k).unwrap(),
        };
        assert_eq!(
            got.as_deref(),
            Some(v.as_slice()),
            "step {step}: {ns:?} {k:?}"
        );
    }
    for name in NAMES {
        let ns = store.namespace(name).unwrap();
        let mut got: Vec<Vec<u8>> = ns.keys().collect();
        got.sort();
        let mut want: Vec<Vec<u8>> = model
            .keys()
            .filter(|(n, _)| n.as_deref() == Some(name))
            .map(|(_, k)| k.clone())
            .collect();
        want.sort();
        assert_eq!(got, want, "step {step}: keys of {name}");
        assert_eq!(ns.len(), want.len(), "step {step}: len of {name}");
    }
    let names: BTreeSet<String> = model.keys().filter_map(|(n, _)| n.clone()).collect();
    assert_eq!(
        store.namespaces().unwrap(),
        names.into_iter().collect::<Vec<_>>(),
        "step {step}: namespaces"
    );
    assert_eq!(store.len(), model.len(), "step {step}: total live keys");
    // Plain keys as the store lists them are the model's plain keys.
    let mut plain: Vec<Vec<u8>> = store.keys().filter(|k| split_key(k).is_none()).collect();
    plain.sort();
    let mut want: Vec<Vec<u8>> = model
        .keys()
        .filter(|(n, _)| n.is_none())
        .map(|(_, k)| k.clone())
        .collect();
    want.sort();
    assert_eq!(plain, want, "step {step}: plain keys");
}

fn run(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.mmblob");
    let mut rng = Rng::new(seed);
    let mut model: Model = HashMap::new();
    let mut store = DataStore::open(&path).unwrap();
    for step in 0..400 {
        let name = NAMES[rng.below(NAMES.len() as u64) as usize];
        let len = rng.below(40) as usize;
        let value = rng.bytes(len);
        match rng.below(20) {
            0..=4 => {
                let k = plain_key(&mut rng);
                match store.write(&k, &value) {
                    Ok(_) => {
                        assert!(split_key(&k).is_none(), "reserved key {k:?} was written");
                        model.insert((None, k), value);
                    }
                    Err(Error::ReservedKey { .. }) => assert!(split_key(&k).is_some()),
                    Err(e) => panic!("step {step}: {e}"),
                }
            }
            5..=8 => {
                let k = key(&mut rng);
                store.namespace(name).unwrap().write(&k, &value).unwrap();
                model.insert((Some(name.to_owned()), k), value);
            }
            9 | 10 => {
                let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..rng.range(1, 5))
                    .map(|_| {
                        let len = rng.below(10) as usize;
                        (key(&mut rng), rng.bytes(len))
                    })
                    .collect();
                let refs: Vec<(&[u8], &[u8])> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_slice(), v.as_slice()))
                    .collect();
                store.namespace(name).unwrap().batch_write(&refs).unwrap();
                for (k, v) in pairs {
                    model.insert((Some(name.to_owned()), k), v);
                }
            }
            11 | 12 => {
                let k = key(&mut rng);
                let existed = store.namespace(name).unwrap().delete(&k).unwrap();
                assert_eq!(
                    existed,
                    model.remove(&(Some(name.to_owned()), k)).is_some(),
                    "step {step}"
                );
            }
            13 | 14 => {
                let k = key(&mut rng);
                if split_key(&k).is_none() {
                    let existed = store.delete(&k).unwrap();
                    assert_eq!(existed, model.remove(&(None, k)).is_some(), "step {step}");
                }
            }
            15 => {
                let cleared = store.namespace(name).unwrap().clear().unwrap();
                let before = model.len();
                model.retain(|(n, _), _| n.as_deref() != Some(name));
                assert_eq!(cleared, before - model.len(), "step {step}");
            }
            16 => {
                store.compact().unwrap();
            }
            _ => {
                drop(store);
                store = DataStore::open_existing(&path).unwrap();
            }
        }
        check(&store, &model, step);
    }
}

#[test]
fn random_operations_on_namespaces_and_plain_keys_match_the_model() {
    for seed in 0..4 {
        run(0x5eed_0000 + seed);
    }
}
