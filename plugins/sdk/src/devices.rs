//! Per-device state a plugin keeps in memory and saves to its key-value
//! bucket: which devices it holds, and which changed since they were last
//! saved. The shipped detectors and the shadow sink all keep their state
//! this way; `checkpoint` (or `flush`) stores `dirty_entries` with one
//! `set-many` and then calls `saved`.

use crate::device_table::Table;
use crate::kv::Bucket;
use std::collections::HashSet;

/// One device's state and whether it changed since it was last saved.
#[derive(Debug)]
struct Slot<T> {
    state: T,
    dirty: bool,
}

#[derive(Debug)]
pub struct Devices<T> {
    states: Table<Slot<T>>,
}

impl<T> Default for Devices<T> {
    fn default() -> Self {
        Devices {
            states: Table::default(),
        }
    }
}

impl<T: Default> Devices<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Devices among `devices` not held yet, each once, in order of first
    /// appearance: load these from the bucket before using them.
    pub fn unknown<'a>(&self, devices: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut seen = HashSet::new();
        devices
            .into_iter()
            .filter(|d| !self.states.contains(d) && seen.insert(*d))
            .map(String::from)
            .collect()
    }

    /// Install a device's state (loaded from the bucket, or fresh).
    pub fn insert(&mut self, device: &str, state: T) {
        self.slot(device).state = state;
    }

    /// Install a device's saved state, decoded by `decode`. A value that
    /// does not decode is an error, and the device starts from its default.
    pub fn load(
        &mut self,
        device: &str,
        saved: &[u8],
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<(), String> {
        let (state, result) = match decode(saved) {
            Ok(state) => (state, Ok(())),
            Err(e) => (T::default(), Err(e)),
        };
        self.insert(device, state);
        result
    }

    /// Load from `bucket`, with one `get-many`, every device of `devices` not
    /// held yet; a device with nothing saved starts from its default. A value
    /// that does not decode is logged (as the device's `what`) and the device
    /// starts afresh: one bad entry never fails a batch.
    pub fn load_missing<'a>(
        &mut self,
        bucket: &Bucket,
        devices: impl IntoIterator<Item = &'a str>,
        what: &str,
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<(), String> {
        let unknown = self.unknown(devices);
        if unknown.is_empty() {
            return Ok(());
        }
        for (device, saved) in bucket.get_many(&unknown)? {
            if let Err(e) = self.load(&device, &saved, &decode) {
                crate::log::warn(format!(
                    "saved {what} of device `{device}` is unreadable ({e}); starting afresh"
                ));
            }
        }
        for device in &unknown {
            self.insert_default(device);
        }
        Ok(())
    }

    /// Hold `device` with a default state unless it is held already (so a
    /// device with nothing saved is not looked up again).
    pub fn insert_default(&mut self, device: &str) {
        self.slot(device);
    }

    /// The slot of `device`, created when new (one lookup; the key is
    /// allocated only for a new device).
    fn slot(&mut self, device: &str) -> &mut Slot<T> {
        self.states.get_or_insert_with(device, || Slot {
            state: T::default(),
            dirty: false,
        })
    }

    /// The state of `device`, created with its default when new. The key is
    /// allocated only then, so the hot path allocates nothing.
    pub fn get_mut_or_default(&mut self, device: &str) -> &mut T {
        &mut self.slot(device).state
    }

    /// As [`Devices::get_mut_or_default`], with the device's changed flag:
    /// set it to have the device saved (one lookup for both).
    pub fn track(&mut self, device: &str) -> (&mut T, &mut bool) {
        let slot = self.slot(device);
        (&mut slot.state, &mut slot.dirty)
    }

    /// As [`Devices::track`], for a device already held: `None` for one that
    /// is not (load it first). One lookup, nothing inserted, so a batch of
    /// known devices costs one lookup per message instead of a pass looking
    /// for new devices and then another.
    #[inline(always)]
    pub fn track_held(&mut self, device: &str) -> Option<(&mut T, &mut bool)> {
        self.states
            .get_mut(device)
            .map(|slot| (&mut slot.state, &mut slot.dirty))
    }

    pub fn get(&self, device: &str) -> Option<&T> {
        self.states.get(device).map(|s| &s.state)
    }

    /// Note that `device` changed and must be saved.
    pub fn mark_dirty(&mut self, device: &str) {
        if let Some(slot) = self.states.get_mut(device) {
            slot.dirty = true;
        }
    }

    /// Visit every device, in the order they were first held; those for
    /// which `f` returns true are marked changed.
    pub fn update_each(&mut self, mut f: impl FnMut(&str, &mut T) -> bool) {
        for (name, slot) in self.states.iter_mut() {
            if f(name, &mut slot.state) {
                slot.dirty = true;
            }
        }
    }

    /// Every changed device, sorted, encoded by `encode`, as bucket entries.
    pub fn dirty_entries(&self, encode: impl Fn(&T) -> Vec<u8>) -> Vec<(String, Vec<u8>)> {
        let mut dirty: Vec<(&str, &Slot<T>)> =
            self.states.iter().filter(|(_, s)| s.dirty).collect();
        dirty.sort_by(|a, b| a.0.cmp(b.0));
        dirty
            .into_iter()
            .map(|(d, s)| (d.to_string(), encode(&s.state)))
            .collect()
    }

    /// The entries from [`Devices::dirty_entries`] were stored.
    pub fn saved(&mut self, entries: &[(String, Vec<u8>)]) {
        for (device, _) in entries {
            if let Some(slot) = self.states.get_mut(device) {
                slot.dirty = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_tracking_round_trip() {
        let mut d: Devices<u32> = Devices::new();
        assert_eq!(d.unknown(["a", "b", "a"]), vec!["a", "b"]);
        d.insert("a", 1);
        d.insert_default("b");
        assert_eq!(d.unknown(["a", "b", "c"]), vec!["c"]);
        assert!(d.track_held("c").is_none());
        assert!(d.unknown(["c"]) == vec!["c"], "track_held inserts nothing");
        *d.track_held("a").expect("held").1 = true;
        *d.get_mut_or_default("c") += 5;
        d.mark_dirty("c");
        d.update_each(|name, v| {
            *v += 1;
            name == "a"
        });
        let entries = d.dirty_entries(|v| v.to_string().into_bytes());
        assert_eq!(
            entries,
            vec![
                ("a".to_string(), b"2".to_vec()),
                ("c".to_string(), b"6".to_vec())
            ]
        );
        d.saved(&entries);
        assert!(d.dirty_entries(|v| v.to_string().into_bytes()).is_empty());
        assert_eq!(d.get("b"), Some(&1));
    }

    #[test]
    fn devices_are_visited_in_the_order_first_held() {
        let mut d: Devices<u32> = Devices::new();
        let ids: Vec<String> = (0..100)
            .map(|i| format!("dev-{}", (i * 37) % 100))
            .collect();
        for id in &ids {
            d.insert_default(id);
        }
        d.insert_default(&ids[5]);
        let mut seen = Vec::new();
        d.update_each(|name, _| {
            seen.push(name.to_string());
            false
        });
        assert_eq!(seen, ids);
        assert!(d.dirty_entries(|v| v.to_string().into_bytes()).is_empty());
    }
}
