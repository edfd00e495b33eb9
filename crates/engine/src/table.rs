//! The open-addressing hash table behind the index.
//!
//! Robin Hood linear probing over 16-byte slots `(key_hash, entry_end)`.
//! Capacity is any number (positions come from a multiply-shift of the hash,
//! not a mask), so a table sized for `n` keys at open costs ~20 bytes per
//! key instead of rounding up to a power of two. Slots do not hold keys: two
//! keys with the same hash occupy two slots, and the caller decides which one
//! matches by comparing the stored key bytes through `is_match`.
//!
//! A table is changed through `&self` (its slots are atomics) so that
//! lookups can run while the store's writer changes it: see `index.rs` for
//! how they notice a change and retry. Only one writer at a time may call
//! the changing methods ([`Table::upsert`], [`Table::insert_new`],
//! [`Table::remove`]); the index guarantees it with the shard's lock.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::slots::{AtomicSlot, SlotStore};

/// `entry_end` value of an empty slot (no entry ends inside the header).
const EMPTY: u64 = 0;
/// Slots per key when a table is built for a known number of keys.
const SIZING_LOAD_PERCENT: usize = 80;
/// Grow when an insert would take the load above this.
const MAX_LOAD_PERCENT: usize = 85;

/// One slot: `end == 0` marks it empty. `Pod` so that a table can be
/// written to a snapshot and mapped back from it as plain bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub(crate) struct Slot {
    pub(crate) hash: u64,
    pub(crate) end: u64,
}

const VACANT: Slot = Slot {
    hash: 0,
    end: EMPTY,
};

/// A multiset of `(hash, entry_end)` pairs with key-aware lookup.
#[derive(Debug)]
pub(crate) struct Table {
    slots: SlotStore,
    /// The slot count, kept beside the slots so that probing does not go
    /// through [`SlotStore`]'s dispatch for it.
    ring: Ring,
    len: AtomicUsize,
}

/// Positions on a ring of `size` slots.
#[derive(Clone, Copy, Debug)]
struct Ring {
    size: usize,
}

impl Ring {
    fn home(self, hash: u64) -> usize {
        ((u128::from(hash) * self.size as u128) >> 64) as usize
    }

    fn next(self, i: usize) -> usize {
        if i + 1 == self.size { 0 } else { i + 1 }
    }

    fn distance(self, i: usize, hash: u64) -> usize {
        let home = self.home(hash);
        if i >= home {
            i - home
        } else {
            i + self.size - home
        }
    }
}

impl Default for Table {
    fn default() -> Self {
        Table::with_capacity(0)
    }
}

impl Table {
    /// A table that holds `keys` entries at 80 % load without growing.
    pub(crate) fn with_capacity(keys: usize) -> Table {
        let size = (keys.saturating_mul(100) / SIZING_LOAD_PERCENT).max(8);
        Table {
            slots: SlotStore::vacant(size),
            ring: Ring { size },
            len: AtomicUsize::new(0),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    /// How many slots the table has.
    pub(crate) fn slot_count(&self) -> usize {
        self.ring.size
    }

    /// Hands the slots, as saved in a snapshot, to `sink` a chunk at a time.
    pub(crate) fn encode_slots<E>(
        &self,
        mut sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        const SLOTS_PER_CHUNK: usize = 4096;
        let mut chunk = Vec::with_capacity(SLOTS_PER_CHUNK * size_of::<Slot>());
        for slots in self.slots.chunks(SLOTS_PER_CHUNK) {
            chunk.clear();
            for slot in slots {
                chunk.extend_from_slice(bytemuck::bytes_of(&slot.load()));
            }
            sink(&chunk)?;
        }
        Ok(())
    }

    /// A table from slots saved by a snapshot, or `None` if they are not a
    /// valid table (wrong count, ends outside `1..limit`).
    pub(crate) fn from_slots(slots: SlotStore, limit: u64) -> Option<Table> {
        let ends = || slots.iter().map(|s| s.load().end);
        let len = ends().filter(|&end| end != EMPTY).count();
        let valid = !slots.is_empty() && len < slots.len() && ends().all(|end| end < limit);
        let ring = Ring { size: slots.len() };
        valid.then(|| Table {
            slots,
            ring,
            len: AtomicUsize::new(len),
        })
    }

    /// Fraction of slots in use, in percent.
    pub(crate) fn load_percent(&self) -> usize {
        self.len() * 100 / self.ring.size
    }

    /// Bytes of memory held by the slots.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slots.len() * size_of::<Slot>()
    }

    /// Where the key that `is_match` recognises lives and its entry end
    /// (`Ok`), or where its probe stopped (`Err`): the slot and distance at
    /// which Robin Hood insertion of that key would begin. A lookup racing
    /// the writer may see no empty slot, so the probe stops after a lap.
    fn probe(
        &self,
        hash: u64,
        mut is_match: impl FnMut(u64) -> bool,
    ) -> Result<(usize, u64), (usize, usize)> {
        let (slots, ring) = (&*self.slots, self.ring);
        let mut i = ring.home(hash);
        for dist in 0..ring.size {
            let slot = slots[i].load();
            if slot.end == EMPTY || ring.distance(i, slot.hash) < dist {
                return Err((i, dist));
            }
            if slot.hash == hash && is_match(slot.end) {
                return Ok((i, slot.end));
            }
            i = ring.next(i);
        }
        Err((i, ring.size))
    }

    fn find(&self, hash: u64, is_match: impl FnMut(u64) -> bool) -> Option<(usize, u64)> {
        self.probe(hash, is_match).ok()
    }

    /// Starts loading the slots where a lookup of `hash` begins (its cache
    /// line and the next), so that a batch of lookups overlaps its cache
    /// misses instead of taking them in turn.
    pub(crate) fn prefetch(&self, hash: u64) {
        const SLOTS_PER_LINE: usize = 64 / size_of::<Slot>();
        let home = self.ring.home(hash);
        for i in [home, home + SLOTS_PER_LINE] {
            if let Some(slot) = self.slots.get(i) {
                mmblob_entry::prefetch(slot);
            }
        }
    }

    /// The entry end stored for the key that `is_match` recognises.
    ///
    /// Most keys sit within a few slots of home, so those are tried first
    /// (see [`Table::end_near_home`]) before the probe loop.
    pub(crate) fn get(&self, hash: u64, mut is_match: impl FnMut(u64) -> bool) -> Option<u64> {
        match self.end_near_home(hash) {
            Some(end) if is_match(end) => Some(end),
            _ => self.find(hash, is_match).map(|(_, end)| end),
        }
    }

    /// The entry end in the first of the `NEAR_HOME` slots from home of
    /// `hash` that holds `hash`, if one does: the likely place of its key.
    /// The slots are compared without branching on what they hold: a probe
    /// loop whose length depends on slots still on their way from memory
    /// mispredicts its exit, and the CPU then drops the work it had started
    /// on the caller's next lookup.
    pub(crate) fn end_near_home(&self, hash: u64) -> Option<u64> {
        const NEAR_HOME: usize = 4;
        let home = self.ring.home(hash);
        let near = self.slots.get(home..home + NEAR_HOME)?;
        let same_hash = near.iter().enumerate().fold(0u32, |mask, (i, slot)| {
            mask | u32::from(slot.load().hash == hash) << i
        });
        if same_hash == 0 {
            return None;
        }
        let end = near[same_hash.trailing_zeros() as usize].load().end;
        (end != EMPTY).then_some(end)
    }

    /// True when `extra` more inserts keep the load within the maximum.
    pub(crate) fn has_room(&self, extra: usize) -> bool {
        (self.len() + extra) * 100 <= self.ring.size * MAX_LOAD_PERCENT
    }

    /// A copy with room for `extra` more keys and then half again.
    pub(crate) fn grown(&self, extra: usize) -> Table {
        let keys = self.len() + extra;
        let table = Table::with_capacity(keys + keys / 2 + 8);
        for slot in self.occupied() {
            table.insert_new(slot.hash, slot.end);
        }
        table
    }

    /// A copy sized for its current contents, leaving out ends that `keep` rejects.
    pub(crate) fn rebuilt(&self, mut keep: impl FnMut(u64) -> bool) -> Table {
        let kept = self.occupied().filter(|s| keep(s.end)).count();
        let table = Table::with_capacity(kept);
        for slot in self.occupied().filter(|s| keep(s.end)) {
            table.insert_new(slot.hash, slot.end);
        }
        table
    }

    /// Points the matching key at `end`; returns the end it replaced, if any.
    /// The caller makes room first (see [`Table::has_room`]).
    pub(crate) fn upsert(
        &self,
        hash: u64,
        end: u64,
        is_match: impl FnMut(u64) -> bool,
    ) -> Option<u64> {
        debug_assert_ne!(end, EMPTY);
        match self.probe(hash, is_match) {
            Ok((i, old)) => {
                self.slots[i].set_end(end);
                Some(old)
            }
            Err((i, dist)) => {
                self.insert_from(Slot { hash, end }, i, dist);
                None
            }
        }
    }

    /// Adds a slot for a key known to be absent.
    pub(crate) fn insert_new(&self, hash: u64, end: u64) {
        self.insert_from(Slot { hash, end }, self.ring.home(hash), 0);
    }

    /// Robin Hood insertion of `carry`, starting at slot `i`, `dist` slots
    /// from its home. Every slot before `i` on its probe path is known to
    /// hold a resident at least as far from home, so none of them moves.
    fn insert_from(&self, mut carry: Slot, mut i: usize, mut dist: usize) {
        assert!(
            self.len() < self.ring.size,
            "table full: grow before inserting"
        );
        let (slots, ring) = (&*self.slots, self.ring);
        loop {
            let slot = slots[i].load();
            if slot.end == EMPTY {
                slots[i].store(carry);
                self.len.store(self.len() + 1, Relaxed);
                return;
            }
            let resident = ring.distance(i, slot.hash);
            if resident < dist {
                slots[i].store(carry);
                carry = slot;
                dist = resident;
            }
            i = ring.next(i);
            dist += 1;
        }
    }

    /// Removes the matching key; returns its end, if it was present.
    pub(crate) fn remove(&self, hash: u64, is_match: impl FnMut(u64) -> bool) -> Option<u64> {
        let (mut i, removed) = self.find(hash, is_match)?;
        let (slots, ring) = (&*self.slots, self.ring);
        loop {
            let next = ring.next(i);
            let slot = slots[next].load();
            if slot.end == EMPTY || ring.distance(next, slot.hash) == 0 {
                slots[i].store(VACANT);
                break;
            }
            slots[i].store(slot);
            i = next;
        }
        self.len.store(self.len() - 1, Relaxed);
        Some(removed)
    }

    fn occupied(&self) -> impl Iterator<Item = Slot> + '_ {
        self.slots
            .iter()
            .map(AtomicSlot::load)
            .filter(|s| s.end != EMPTY)
    }

    /// Every stored entry end, in table order.
    pub(crate) fn ends(&self) -> impl Iterator<Item = u64> + '_ {
        self.occupied().map(|s| s.end)
    }

    /// Calls `f` with every stored end, in table order, until it returns
    /// `false`; returns whether it never did.
    pub(crate) fn all_ends(&self, f: impl FnMut(u64) -> bool) -> bool {
        self.ends().all(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Keys live in a Vec; an entry end is index + 1 (0 is the empty marker).
    struct Model {
        keys: Vec<Vec<u8>>,
    }

    impl Model {
        fn add(&mut self, key: &[u8]) -> u64 {
            self.keys.push(key.to_vec());
            self.keys.len() as u64
        }
        fn key(&self, end: u64) -> &[u8] {
            &self.keys[end as usize - 1]
        }
    }

    fn upsert(t: &mut Table, m: &Model, hash: u64, key: &[u8], end: u64) -> Option<u64> {
        if !t.has_room(1) {
            *t = t.grown(1);
        }
        t.upsert(hash, end, |e| m.key(e) == key)
    }

    #[test]
    fn keys_with_the_same_hash_both_stay_readable() {
        let mut m = Model { keys: Vec::new() };
        let mut t = Table::with_capacity(4);
        let a = m.add(b"alpha");
        let b = m.add(b"beta");
        assert_eq!(upsert(&mut t, &m, 99, b"alpha", a), None);
        assert_eq!(upsert(&mut t, &m, 99, b"beta", b), None);
        assert_eq!(t.get(99, |e| m.key(e) == b"alpha"), Some(a));
        assert_eq!(t.get(99, |e| m.key(e) == b"beta"), Some(b));
        let a2 = m.add(b"alpha");
        assert_eq!(upsert(&mut t, &m, 99, b"alpha", a2), Some(a));
        assert_eq!(t.len(), 2);
        assert_eq!(t.remove(99, |e| m.key(e) == b"beta"), Some(b));
        assert_eq!(t.get(99, |e| m.key(e) == b"alpha"), Some(a2));
        assert_eq!(t.get(99, |e| m.key(e) == b"beta"), None);
    }

    #[test]
    fn sized_table_costs_at_most_24_bytes_per_key() {
        let t = Table::with_capacity(1_000_000);
        assert!(
            t.memory_bytes() <= 24 * 1_000_000,
            "{} bytes",
            t.memory_bytes()
        );
    }

    proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn behaves_like_a_hashmap(ops in prop::collection::vec((0u8..40, any::<bool>()), 1..400)) {
                // Six distinct hashes for forty keys force long collision chains.
                let hash_of = |k: u8| u64::from(k % 6).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let mut m = Model { keys: Vec::new() };
                let mut t = Table::default();
                let mut model: HashMap<Vec<u8>, u64> = HashMap::new();
                for (k, insert) in ops {
                    let key = vec![k];
                    if insert {
                        let end = m.add(&key);
                        let old = upsert(&mut t, &m, hash_of(k), &key, end);
                        prop_assert_eq!(old, model.insert(key.clone(), end));
                    } else {
                        let old = t.remove(hash_of(k), |e| m.key(e) == key.as_slice());
                        prop_assert_eq!(old, model.remove(&key));
                    }
                    prop_assert_eq!(t.len(), model.len());
                }
                for k in 0u8..40 {
                    let found = t.get(hash_of(k), |e| m.key(e) == [k]);
                    prop_assert_eq!(found, model.get(&vec![k]).copied());
                }
            }
    }
}
