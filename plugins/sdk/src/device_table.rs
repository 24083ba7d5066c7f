//! The table behind [`crate::devices::Devices`]: values by device id, in
//! an open-addressing index built so that finding a held device is
//! straight-line code.
//!
//! In Wasm every loop header and every function entry is an epoch check
//! (the host's call deadline), and Cranelift's code around them keeps much
//! of the loop's state on the stack. A general-purpose map pays for that
//! on every lookup: hashbrown's probe is a function call with two loops. Here
//! the common case (the device is in the first slot its hash names) is
//! inline in the caller: one slot load, one entry load, one comparison of
//! the id, no loop and no call. The table is at most a quarter full, so
//! that case is most lookups (up to half full, linear probing finds about
//! a third of the ids past their home slot, and zscore was 8% slower in
//! the boundary bench); the rest go through [`Table::probe`], out of line.
//!
//! Entries are never removed (a plugin holds each device it has seen until
//! the instance goes), so the index needs no tombstones.

use crate::bytes::same;
use foldhash::fast::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};

/// A device id as hashed: its bytes in one `write` (`str`'s own `Hash`
/// adds a terminator byte, which foldhash folds in with a second round).
struct Id<'a>(&'a str);

impl Hash for Id<'_> {
    #[inline(always)]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.as_bytes())
    }
}

/// One held device: its id, the id's hash (so the index grows without
/// hashing again) and its value.
#[derive(Debug)]
struct Entry<V> {
    id: Box<str>,
    hash: u64,
    value: V,
}

/// Values by device id, in insertion order.
#[derive(Debug)]
pub(crate) struct Table<V> {
    /// Open addressing with linear probing; a power of two long (or
    /// empty), at most a quarter full: 32 to 64 bytes of index per device
    /// (4 MiB for 100,000). 0 is a free slot; a held one has the high 32
    /// bits of the id's hash above its entry's position + 1.
    slots: Vec<u64>,
    entries: Vec<Entry<V>>,
    hasher: RandomState,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table {
            slots: Vec::new(),
            entries: Vec::new(),
            hasher: RandomState::default(),
        }
    }
}

/// The slot of an entry at `position` whose id hashes to `hash`.
#[inline(always)]
fn slot_of(hash: u64, position: usize) -> u64 {
    (hash & !0xffff_ffff) | (position as u64 + 1)
}

/// Whether `slot` may hold an id hashing to `hash` (same high 32 bits).
#[inline(always)]
fn tag_matches(slot: u64, hash: u64) -> bool {
    (slot ^ hash) >> 32 == 0
}

/// The entry position a held slot points at.
#[inline(always)]
fn position(slot: u64) -> usize {
    (slot as u32 as usize).wrapping_sub(1)
}

impl<V> Table<V> {
    #[inline(always)]
    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(Id(id))
    }

    /// Position of `id`'s entry.
    #[inline(always)]
    pub fn find(&self, id: &str) -> Option<usize> {
        self.find_hashed(self.hash(id), id)
    }

    /// [`Table::find`] for an id hashing to `hash`: the home slot inline,
    /// the slots after it out of line.
    #[inline(always)]
    fn find_hashed(&self, hash: u64, id: &str) -> Option<usize> {
        let mask = self.slots.len().wrapping_sub(1);
        let home = hash as usize & mask;
        let slot = *self.slots.get(home)?;
        if slot == 0 {
            return None;
        }
        match self.holds(slot, hash, id) {
            Some(at) => Some(at),
            None => self.probe(hash, id, home),
        }
    }

    /// The position `slot` points at, if that entry is `id`'s.
    #[inline(always)]
    fn holds(&self, slot: u64, hash: u64, id: &str) -> Option<usize> {
        if !tag_matches(slot, hash) {
            return None;
        }
        let at = position(slot);
        self.entries
            .get(at)
            .is_some_and(|e| same(&e.id, id))
            .then_some(at)
    }

    /// [`Table::find`] past the slot `from`: the slots after it, up to the
    /// first free one.
    #[cold]
    #[inline(never)]
    fn probe(&self, hash: u64, id: &str, from: usize) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut i = (from + 1) & mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return None;
            }
            if let Some(at) = self.holds(slot, hash, id) {
                return Some(at);
            }
            i = (i + 1) & mask;
        }
    }

    /// The value of `id`, if held.
    #[inline(always)]
    pub fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        let at = self.find(id)?;
        self.entries.get_mut(at).map(|e| &mut e.value)
    }

    pub fn get(&self, id: &str) -> Option<&V> {
        let at = self.find(id)?;
        self.entries.get(at).map(|e| &e.value)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.find(id).is_some()
    }

    /// The value of `id`, inserted with `new()` when not held yet (the id
    /// is copied only then).
    #[inline(always)]
    pub fn get_or_insert_with(&mut self, id: &str, new: impl FnOnce() -> V) -> &mut V {
        let hash = self.hash(id);
        let at = match self.find_hashed(hash, id) {
            Some(at) => at,
            None => self.insert(hash, id, new()),
        };
        &mut self.entries[at].value
    }

    /// Add `id` (not held; hashing to `hash`) with `value`; its entry's
    /// position.
    #[cold]
    #[inline(never)]
    fn insert(&mut self, hash: u64, id: &str, value: V) -> usize {
        if (self.entries.len() + 1) * 4 > self.slots.len() {
            self.grow();
        }
        let at = self.entries.len();
        self.entries.push(Entry {
            id: id.into(),
            hash,
            value,
        });
        self.place(hash, at);
        at
    }

    /// Point the first free slot from `hash`'s home at entry `at`.
    fn place(&mut self, hash: u64, at: usize) {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot_of(hash, at);
    }

    /// Double the index (16 slots at first) and place every entry again.
    fn grow(&mut self) {
        let len = (self.slots.len() * 2).max(16);
        self.slots = vec![0; len];
        for at in 0..self.entries.len() {
            let hash = self.entries[at].hash;
            self.place(hash, at);
        }
    }

    /// Every id and value, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.entries.iter().map(|e| (&*e.id, &e.value))
    }

    /// Every id and value, mutably, in insertion order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut V)> {
        self.entries.iter_mut().map(|e| (&*e.id, &mut e.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_id_it_holds_and_none_other() {
        let mut t: Table<usize> = Table::default();
        assert_eq!(t.find("a"), None, "empty table");
        for i in 0..5000 {
            *t.get_or_insert_with(&format!("dev-{i}"), || i) += 0;
        }
        for i in 0..5000 {
            assert_eq!(t.get(&format!("dev-{i}")), Some(&i));
        }
        for i in 5000..6000 {
            assert!(!t.contains(&format!("dev-{i}")));
        }
        assert!(!t.contains(""));
        assert_eq!(t.iter().count(), 5000);
        assert_eq!(t.iter().nth(17), Some(("dev-17", &17)));
        assert!(t.slots.len() >= 4 * 5000 && t.slots.len().is_power_of_two());
    }

    #[test]
    fn colliding_ids_are_told_apart() {
        // Every id hashes to the same home and tag: lookups must probe and
        // compare ids.
        let mut t: Table<u32> = Table::default();
        t.grow();
        let hash = 0xdead_beef_0000_0003;
        for (at, id) in ["x", "y", "z"].iter().enumerate() {
            t.entries.push(Entry {
                id: (*id).into(),
                hash,
                value: at as u32,
            });
            t.place(hash, at);
        }
        for (at, id) in ["x", "y", "z"].iter().enumerate() {
            assert_eq!(t.find_hashed(hash, id), Some(at));
        }
        assert_eq!(t.find_hashed(hash, "w"), None);
        // Same home, another tag: never compared as the same id.
        assert_eq!(t.find_hashed(0xfeed_0000_0000_0003, "x"), None);
    }

    #[test]
    fn empty_and_long_ids() {
        let mut t: Table<u8> = Table::default();
        let long = "a-device-id-longer-than-sixteen-bytes";
        *t.get_or_insert_with("", || 1) += 1;
        *t.get_or_insert_with(long, || 5) += 1;
        *t.get_or_insert_with("", || 9) += 1;
        assert_eq!(t.get(""), Some(&3));
        assert_eq!(t.get(long), Some(&6));
        assert_eq!(t.get(&long[..20]), None);
        for (_, v) in t.iter_mut() {
            *v = 0;
        }
        assert_eq!(t.iter().map(|(_, v)| *v).sum::<u8>(), 0);
    }
}
