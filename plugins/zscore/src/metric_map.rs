//! A device's metrics by name: a short vector looked up by name with a
//! position hint, stored as a JSON object sorted by name (the shape a
//! `BTreeMap` gives, so saved baselines keep their format).
//!
//! A device has a handful of metrics and they arrive in the same order
//! reading after reading, so the metric at position `i` of a reading is
//! almost always entry `i` here: one length check and one comparison,
//! where a `BTreeMap` made several (each a `memcmp` call in Wasm).

use crate::detector::MetricState;
use serde::de::Deserializer;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricMap {
    entries: Vec<(String, MetricState)>,
}

impl MetricMap {
    /// Index of `name`, trying `hint` first.
    fn position(&self, name: &str, hint: usize) -> Option<usize> {
        let same = |n: &String| weir_plugin::bytes::same(n, name);
        match self.entries.get(hint) {
            Some((n, _)) if same(n) => Some(hint),
            _ => self.entries.iter().position(|(n, _)| same(n)),
        }
    }

    /// The state of `name`, if held; `hint` is where it is expected.
    pub fn get_mut(&mut self, name: &str, hint: usize) -> Option<&mut MetricState> {
        self.position(name, hint).map(|i| &mut self.entries[i].1)
    }

    /// A new entry for `name` (not held yet), with the default state.
    pub fn push(&mut self, name: &str) -> &mut MetricState {
        self.entries
            .push((name.to_string(), MetricState::default()));
        let last = self.entries.len() - 1;
        &mut self.entries[last].1
    }

    pub fn get(&self, name: &str) -> Option<&MetricState> {
        self.position(name, 0).map(|i| &self.entries[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name, 0).is_some()
    }

    pub fn insert(&mut self, name: &str, state: MetricState) {
        match self.position(name, 0) {
            Some(i) => self.entries[i].1 = state,
            None => self.entries.push((name.to_string(), state)),
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &MetricState) -> bool) {
        self.entries.retain(|(n, s)| keep(n, s));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries in name order.
    pub fn sorted(&self) -> Vec<(&str, &MetricState)> {
        let mut v: Vec<(&str, &MetricState)> =
            self.entries.iter().map(|(n, s)| (n.as_str(), s)).collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }
}

impl std::ops::Index<&str> for MetricMap {
    type Output = MetricState;

    /// Panics when `name` is absent (for tests; use `get` elsewhere).
    fn index(&self, name: &str) -> &MetricState {
        match self.get(name) {
            Some(s) => s,
            None => panic!("no metric {name:?}"),
        }
    }
}

impl Serialize for MetricMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let sorted = self.sorted();
        let mut map = serializer.serialize_map(Some(sorted.len()))?;
        for (name, state) in sorted {
            map.serialize_entry(name, state)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for MetricMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, MetricState>::deserialize(deserializer)?;
        Ok(MetricMap {
            entries: map.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_with_and_without_hints() {
        let mut m = MetricMap::default();
        m.push("temperature").calm = 1;
        m.push("humidity").calm = 2;
        // A wrong hint still finds the metric; an unknown one is not held.
        assert_eq!(m.get_mut("temperature", 1).map(|s| s.calm), Some(1));
        assert_eq!(m.get_mut("humidity", 7).map(|s| s.calm), Some(2));
        assert_eq!(m.get_mut("humidity", 1).map(|s| s.calm), Some(2));
        assert!(m.get_mut("pressure", 0).is_none());
        assert_eq!(m.push("pressure").calm, 0);
        assert_eq!(m.len(), 3);
        assert!(m.contains_key("pressure") && !m.contains_key("press"));
        m.retain(|n, _| n != "humidity");
        assert_eq!(m.len(), 2);
        assert_eq!(m["temperature"].calm, 1);
    }

    #[test]
    fn serializes_sorted_like_a_btreemap() {
        let mut m = MetricMap::default();
        m.insert("t", MetricState::default());
        m.insert("a", MetricState::default());
        let json = serde_json::to_string(&m).unwrap();
        let expected: BTreeMap<&str, MetricState> =
            [("a", MetricState::default()), ("t", MetricState::default())].into();
        assert_eq!(json, serde_json::to_string(&expected).unwrap());
        let back: MetricMap = serde_json::from_str(&json).unwrap();
        assert_eq!(back.sorted(), m.sorted());
    }
}
