//! [`NameMap`]: a plugin's per-device values by metric name.
//!
//! A device has a handful of metrics and sends them in the same order
//! reading after reading, so the metric at position `i` of a reading is
//! almost always entry `i` here: one length check and one comparison,
//! where a `BTreeMap<String, _>` makes several string comparisons (each a
//! `memcmp` call in Wasm) and a hash map hashes the name. It is stored as a
//! JSON object sorted by name, the shape a `BTreeMap` gives, so state
//! saved by either reads back in either.

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::collections::BTreeMap;

/// Values by name, in the order the names were first seen.
#[derive(Debug, Clone)]
pub struct NameMap<T> {
    entries: Vec<(String, T)>,
}

impl<T> Default for NameMap<T> {
    fn default() -> Self {
        NameMap {
            entries: Vec::new(),
        }
    }
}

impl<T> NameMap<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Index of `name`, trying `hint` first.
    fn position(&self, name: &str, hint: usize) -> Option<usize> {
        if self.is_at(name, hint) {
            Some(hint)
        } else {
            self.index_of(name)
        }
    }

    /// The value of `name`, if held; `hint` is where it is expected (the
    /// metric's position in the reading).
    pub fn get_mut(&mut self, name: &str, hint: usize) -> Option<&mut T> {
        self.position(name, hint).map(|i| &mut self.entries[i].1)
    }

    /// Whether entry `i` is `name`: the one comparison a lookup at the
    /// expected position costs.
    pub fn is_at(&self, name: &str, i: usize) -> bool {
        self.entries
            .get(i)
            .is_some_and(|(n, _)| crate::bytes::same(n, name))
    }

    /// Index of `name`, searched from the first entry.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(n, _)| crate::bytes::same(n, name))
    }

    /// The value at index `i`.
    pub fn value_mut(&mut self, i: usize) -> Option<&mut T> {
        self.entries.get_mut(i).map(|(_, v)| v)
    }

    /// Add `name` (not held yet) with `value`.
    pub fn push(&mut self, name: &str, value: T) -> &mut T {
        self.entries.push((name.to_string(), value));
        let last = self.entries.len() - 1;
        &mut self.entries[last].1
    }

    pub fn get(&self, name: &str) -> Option<&T> {
        self.position(name, 0).map(|i| &self.entries[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name, 0).is_some()
    }

    /// Set `name` to `value`, replacing what it held.
    pub fn insert(&mut self, name: &str, value: T) {
        match self.position(name, 0) {
            Some(i) => self.entries[i].1 = value,
            None => self.entries.push((name.to_string(), value)),
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &T) -> bool) {
        self.entries.retain(|(n, v)| keep(n, v));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries in name order.
    pub fn sorted(&self) -> Vec<(&str, &T)> {
        let mut v: Vec<(&str, &T)> = self.entries.iter().map(|(n, s)| (n.as_str(), s)).collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }
}

/// Equal when they hold the same names with equal values, in any order
/// (as maps are).
impl<T: PartialEq> PartialEq for NameMap<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .entries
                .iter()
                .all(|(n, v)| other.get(n).is_some_and(|o| o == v))
    }
}

impl<T> std::ops::Index<&str> for NameMap<T> {
    type Output = T;

    /// Panics when `name` is absent (for tests; use `get` elsewhere).
    fn index(&self, name: &str) -> &T {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no entry {name:?}"),
        }
    }
}

impl<T: Serialize> Serialize for NameMap<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let sorted = self.sorted();
        let mut map = serializer.serialize_map(Some(sorted.len()))?;
        for (name, value) in sorted {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NameMap<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, T>::deserialize(deserializer)?;
        Ok(NameMap {
            entries: map.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_with_and_without_hints() {
        let mut m = NameMap::new();
        *m.push("temperature", 0) = 1;
        m.push("humidity", 2);
        // A wrong hint still finds the name; an unknown one is not held.
        assert_eq!(m.get_mut("temperature", 1).copied(), Some(1));
        assert_eq!(m.get_mut("humidity", 7).copied(), Some(2));
        assert_eq!(m.get_mut("humidity", 1).copied(), Some(2));
        assert!(m.get_mut("pressure", 0).is_none());
        assert_eq!(*m.push("pressure", 0), 0);
        assert_eq!(m.len(), 3);
        assert!(m.contains_key("pressure") && !m.contains_key("press"));
        m.retain(|n, _| n != "humidity");
        m.insert("pressure", 9);
        assert_eq!(m.len(), 2);
        assert_eq!((m["temperature"], m["pressure"]), (1, 9));
    }

    #[test]
    fn stored_as_a_sorted_map_and_equal_in_any_order() {
        let mut m = NameMap::new();
        m.insert("t", 1.5);
        m.insert("a", 2.5);
        let json = serde_json::to_string(&m).unwrap();
        let expected: BTreeMap<&str, f64> = [("a", 2.5), ("t", 1.5)].into();
        assert_eq!(json, serde_json::to_string(&expected).unwrap());
        let back: NameMap<f64> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.sorted(), m.sorted());
        assert_eq!(back, m, "same entries, other order");
        let mut other = back.clone();
        other.insert("a", 0.0);
        assert_ne!(other, m);
    }
}
