//! The in-memory side of the store: every known series (key, id, last day,
//! device type) with its head — the points accepted since the last
//! checkpoint, in arrival order — and the heads a running checkpoint is
//! sealing, kept visible to queries until they are in redb.
//!
//! A write is staged first ([`Stage`]: ids resolved, WAL frames encoded)
//! and applied only once its frames are in the WAL, so a failed append
//! leaves the catalog untouched.

use std::collections::HashMap;

use crate::FastMap;
use std::sync::Arc;

use super::key;
use super::wal::{Entry, FrameBuf};

/// One series and its unsealed points.
pub struct Series {
    pub key: Vec<u8>,
    pub id: u64,
    /// Latest day any point was written to.
    pub last_day: i64,
    /// `last_day` as the `series` table holds it (`None`: no row yet).
    stored_day: Option<i64>,
    pub device_type: String,
    head: Vec<(i64, f64)>,
    /// The head's times are strictly increasing (no sort needed to read).
    head_sorted: bool,
}

impl Series {
    fn new(key: Vec<u8>, id: u64, last_day: i64, device_type: String) -> Self {
        Series {
            key,
            id,
            last_day,
            stored_day: None,
            device_type,
            head: Vec::new(),
            head_sorted: true,
        }
    }

    #[inline]
    fn push(&mut self, time_ms: i64, value: f64) {
        if let Some(&(last, _)) = self.head.last() {
            if time_ms <= last {
                self.head_sorted = false;
            }
        }
        self.head.push((time_ms, value));
    }
}

/// A `series` table row to write at the next checkpoint.
pub struct SeriesRow {
    pub key: Vec<u8>,
    pub device_type: String,
    pub last_day: i64,
    pub id: u64,
}

/// One series' head as taken by a checkpoint.
pub struct SealedHead {
    pub id: u64,
    pub points: Vec<(i64, f64)>,
    pub sorted: bool,
}

/// What one checkpoint seals: the heads (sorted by id) and catalog changes.
pub struct Sealing {
    pub heads: Vec<SealedHead>,
    pub rows: Vec<SeriesRow>,
    pub next_id: u64,
}

impl Sealing {
    /// The sealed head of series `id`, if it had points.
    pub fn head(&self, id: u64) -> Option<&SealedHead> {
        self.heads
            .binary_search_by_key(&id, |h| h.id)
            .ok()
            .map(|i| &self.heads[i])
    }

    pub fn points(&self) -> usize {
        self.heads.iter().map(|h| h.points.len()).sum()
    }
}

/// What a query needs from memory, captured under the lock.
pub struct Captured {
    pub id: u64,
    /// Head points within the query range, in arrival order.
    pub head: Vec<(i64, f64)>,
    pub head_sorted: bool,
    pub sealing: Option<Arc<Sealing>>,
}

/// A new series staged by a write.
struct NewSeries {
    key: Vec<u8>,
    device_type: String,
    day: i64,
}

/// One write call, staged: resolved series, encoded frames, points to push.
#[derive(Default)]
pub struct Stage {
    key: Vec<u8>,
    device_len: usize,
    new_series: Vec<NewSeries>,
    new_index: FastMap<Vec<u8>, usize>,
    /// Existing slot → (later day, device type of that write).
    day_updates: HashMap<usize, (i64, String)>,
    pushes: Vec<(usize, i64, f64)>,
    pub frames: FrameBuf,
}

impl Stage {
    /// Starts staging a new write call.
    pub fn clear(&mut self) {
        if self.pushes.capacity() > 1 << 20 {
            self.pushes = Vec::new();
        }
        self.new_series.clear();
        self.new_index.clear();
        self.day_updates.clear();
        self.pushes.clear();
        self.frames.clear();
    }

    /// Starts the points of one record: encodes its device once.
    pub fn device(&mut self, device: &str) {
        self.key.clear();
        key::push_str(&mut self.key, device);
        self.device_len = self.key.len();
    }

    /// Points staged so far.
    pub fn points(&self) -> usize {
        self.pushes.len()
    }
}

/// Every known series, by key; plus the sealing set.
#[derive(Default)]
pub struct Catalog {
    slots: Vec<Series>,
    by_key: FastMap<Vec<u8>, usize>,
    next_id: u64,
    stored_next_id: u64,
    sealing: Option<Arc<Sealing>>,
    head_points: usize,
}

impl Catalog {
    /// The catalog as the redb file holds it.
    pub fn new(next_id: u64) -> Self {
        Catalog {
            next_id,
            stored_next_id: next_id,
            ..Catalog::default()
        }
    }

    /// Adds a series read from the `series` table.
    pub fn insert_stored(&mut self, key: Vec<u8>, device_type: String, last_day: i64, id: u64) {
        let mut s = Series::new(key.clone(), id, last_day, device_type);
        s.stored_day = Some(last_day);
        self.by_key.insert(key, self.slots.len());
        self.slots.push(s);
        self.next_id = self.next_id.max(id + 1);
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn get(&self, key: &[u8]) -> Option<&Series> {
        self.by_key.get(key).map(|&slot| &self.slots[slot])
    }

    /// Keys of every series, or of those starting with `prefix`, unsorted.
    pub fn keys(&self, prefix: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.slots
            .iter()
            .filter(|s| prefix.is_none_or(|p| s.key.starts_with(p)))
            .map(|s| s.key.clone())
            .collect()
    }

    /// Head points not yet taken by a checkpoint.
    pub fn head_points(&self) -> usize {
        self.head_points
    }

    /// Stages one point of the record whose device [`Stage::device`] set.
    #[inline]
    pub fn stage_point(
        &self,
        st: &mut Stage,
        metric: &str,
        device_type: &str,
        day: i64,
        time_ms: i64,
        value: f64,
    ) {
        st.key.truncate(st.device_len);
        key::push_str(&mut st.key, metric);
        let (slot, id) = match self.by_key.get(st.key.as_slice()) {
            Some(&slot) => {
                let s = &self.slots[slot];
                if day > s.last_day {
                    let staged = st.day_updates.get(&slot).map_or(s.last_day, |u| u.0);
                    if day > staged {
                        st.frames.series(s.id, day, &s.key, device_type);
                        st.day_updates.insert(slot, (day, device_type.to_string()));
                    }
                }
                (slot, s.id)
            }
            None => self.stage_new(st, device_type, day),
        };
        st.frames.point(id, time_ms, value);
        st.pushes.push((slot, time_ms, value));
    }

    fn stage_new(&self, st: &mut Stage, device_type: &str, day: i64) -> (usize, u64) {
        let index = match st.new_index.get(st.key.as_slice()) {
            Some(&i) => i,
            None => {
                let i = st.new_series.len();
                st.new_series.push(NewSeries {
                    key: st.key.clone(),
                    device_type: device_type.to_string(),
                    day: i64::MIN,
                });
                st.new_index.insert(st.key.clone(), i);
                i
            }
        };
        let id = self.next_id + index as u64;
        let ns = &mut st.new_series[index];
        if day > ns.day {
            ns.day = day;
            ns.device_type = device_type.to_string();
            st.frames.series(id, day, &ns.key, device_type);
        }
        (self.slots.len() + index, id)
    }

    /// Applies a staged write whose frames are in the WAL.
    pub fn apply(&mut self, st: &mut Stage) {
        for ns in st.new_series.drain(..) {
            let slot = self.slots.len();
            self.by_key.insert(ns.key.clone(), slot);
            self.slots
                .push(Series::new(ns.key, self.next_id, ns.day, ns.device_type));
            self.next_id += 1;
        }
        for (slot, (day, device_type)) in st.day_updates.drain() {
            let s = &mut self.slots[slot];
            s.last_day = s.last_day.max(day);
            s.device_type = device_type;
        }
        self.head_points += st.pushes.len();
        for &(slot, t, v) in &st.pushes {
            self.slots[slot].push(t, v);
        }
        st.pushes.clear();
    }

    /// What a query over `[from, to)` of `key` needs from memory.
    pub fn capture(&self, key: &[u8], from: i64, to: i64) -> Option<Captured> {
        let s = self.get(key)?;
        Some(Captured {
            id: s.id,
            head: s
                .head
                .iter()
                .filter(|p| p.0 >= from && p.0 < to)
                .copied()
                .collect(),
            head_sorted: s.head_sorted,
            sealing: self.sealing.clone(),
        })
    }

    /// Takes every non-empty head and every unstored catalog change into a
    /// new sealing set (visible to queries until [`sealed`](Self::sealed)
    /// or [`unseal`](Self::unseal)); `None` if there is nothing to seal.
    pub fn take_for_seal(&mut self) -> Option<Arc<Sealing>> {
        let mut heads = Vec::new();
        let mut rows = Vec::new();
        for s in &mut self.slots {
            if s.stored_day != Some(s.last_day) {
                rows.push(SeriesRow {
                    key: s.key.clone(),
                    device_type: s.device_type.clone(),
                    last_day: s.last_day,
                    id: s.id,
                });
            }
            if !s.head.is_empty() {
                heads.push(SealedHead {
                    id: s.id,
                    points: std::mem::take(&mut s.head),
                    sorted: std::mem::replace(&mut s.head_sorted, true),
                });
            }
        }
        if heads.is_empty() && rows.is_empty() && self.next_id == self.stored_next_id {
            return None;
        }
        heads.sort_unstable_by_key(|h| h.id);
        let sealing = Arc::new(Sealing {
            heads,
            rows,
            next_id: self.next_id,
        });
        self.head_points = 0;
        self.sealing = Some(Arc::clone(&sealing));
        Some(sealing)
    }

    /// The sealing set is in redb: forget it and note what is stored.
    pub fn sealed(&mut self, sealing: &Sealing) {
        self.sealing = None;
        for row in &sealing.rows {
            if let Some(&slot) = self.by_key.get(&row.key) {
                let s = &mut self.slots[slot];
                if s.id == row.id {
                    s.stored_day = Some(row.last_day);
                }
            }
        }
        self.stored_next_id = self.stored_next_id.max(sealing.next_id);
    }

    /// Sealing failed: put its points back in front of the heads.
    pub fn unseal(&mut self, sealing: &Sealing) {
        self.sealing = None;
        let ids: HashMap<u64, usize> = self
            .slots
            .iter()
            .enumerate()
            .map(|(slot, s)| (s.id, slot))
            .collect();
        for h in &sealing.heads {
            if let Some(&slot) = ids.get(&h.id) {
                let s = &mut self.slots[slot];
                let newer = std::mem::replace(&mut s.head, h.points.clone());
                s.head_sorted = false;
                s.head.extend(newer);
                self.head_points += h.points.len();
            }
        }
    }

    /// Applies one replayed WAL entry; `ids` maps series ids to slots.
    /// Returns false for a point of an unknown series (skipped).
    pub fn replay(&mut self, entry: Entry<'_>, ids: &mut HashMap<u64, usize>) -> bool {
        match entry {
            Entry::Series {
                id,
                last_day,
                key,
                device_type,
            } => {
                match self.by_key.get(key) {
                    Some(&slot) => {
                        let s = &mut self.slots[slot];
                        if s.id != id {
                            // Re-created after a prune: a new identity.
                            ids.remove(&s.id);
                            s.id = id;
                            s.last_day = last_day;
                            s.stored_day = None;
                        } else {
                            s.last_day = s.last_day.max(last_day);
                        }
                        s.device_type = device_type.to_string();
                        ids.insert(id, slot);
                    }
                    None => {
                        let slot = self.slots.len();
                        let s = Series::new(key.to_vec(), id, last_day, device_type.to_string());
                        self.slots.push(s);
                        self.by_key.insert(key.to_vec(), slot);
                        ids.insert(id, slot);
                    }
                }
                self.next_id = self.next_id.max(id + 1);
                true
            }
            Entry::Point { id, time_ms, value } => match ids.get(&id) {
                Some(&slot) => {
                    self.slots[slot].push(time_ms, value);
                    self.head_points += 1;
                    true
                }
                None => false,
            },
        }
    }

    /// Series id → slot, to start a replay.
    pub fn id_slots(&self) -> HashMap<u64, usize> {
        self.slots
            .iter()
            .enumerate()
            .map(|(slot, s)| (s.id, slot))
            .collect()
    }

    /// Drops head points before `cutoff_ms` (the start of the horizon's
    /// day: their days are gone). Returns how many.
    pub fn drop_points_before(&mut self, cutoff_ms: i64) -> u64 {
        let mut dropped = 0;
        for s in &mut self.slots {
            let before = s.head.len();
            s.head.retain(|p| p.0 >= cutoff_ms);
            dropped += (before - s.head.len()) as u64;
        }
        self.head_points -= dropped as usize;
        dropped
    }

    /// Notes that the `series` rows of `keys` were deleted: any of them
    /// still known is written again at the next checkpoint.
    pub fn mark_unstored(&mut self, keys: &[Vec<u8>]) {
        for k in keys {
            if let Some(&slot) = self.by_key.get(k) {
                self.slots[slot].stored_day = None;
            }
        }
    }

    /// Forgets every series whose last day ends at or before `horizon_ms`,
    /// returning their keys.
    pub fn prune(&mut self, horizon_ms: i64) -> Vec<Vec<u8>> {
        let mut pruned = Vec::new();
        let mut dropped_points = 0;
        self.slots.retain_mut(|s| {
            let keep = crate::date::Day(s.last_day).end_ms() > horizon_ms;
            if !keep {
                dropped_points += s.head.len();
                pruned.push(std::mem::take(&mut s.key));
            }
            keep
        });
        if !pruned.is_empty() {
            self.head_points -= dropped_points;
            self.by_key = self
                .slots
                .iter()
                .enumerate()
                .map(|(slot, s)| (s.key.clone(), slot))
                .collect();
        }
        pruned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(c: &mut Catalog, st: &mut Stage, device: &str, points: &[(&str, i64, i64, f64)]) {
        st.clear();
        st.device(device);
        for &(metric, day, t, v) in points {
            c.stage_point(st, metric, "dt", day, t, v);
        }
        c.apply(st);
    }

    #[test]
    fn staging_assigns_ids_and_days_once() {
        let mut c = Catalog::new(5);
        let mut st = Stage::default();
        write(
            &mut c,
            &mut st,
            "d",
            &[("t", 1, 10, 1.0), ("u", 1, 10, 2.0), ("t", 2, 5, 3.0)],
        );
        assert_eq!(c.len(), 2);
        let t = c.get(&key::series_prefix("d", "t")).unwrap();
        assert_eq!((t.id, t.last_day), (5, 2));
        assert_eq!(c.get(&key::series_prefix("d", "u")).unwrap().id, 6);
        assert_eq!(c.head_points(), 3);

        let cap = c.capture(&key::series_prefix("d", "t"), 0, 100).unwrap();
        assert_eq!(cap.head, vec![(10, 1.0), (5, 3.0)]);
        assert!(!cap.head_sorted);

        let sealing = c.take_for_seal().unwrap();
        assert_eq!(sealing.rows.len(), 2);
        assert_eq!(sealing.points(), 3);
        assert_eq!(c.head_points(), 0);
        assert!(c
            .capture(&key::series_prefix("d", "t"), 0, 100)
            .unwrap()
            .sealing
            .is_some());
        c.unseal(&sealing);
        assert_eq!(c.head_points(), 3);
        let sealing = c.take_for_seal().unwrap();
        c.sealed(&sealing);
        assert!(c.take_for_seal().is_none());

        // A later day for a known series is a catalog change again.
        write(&mut c, &mut st, "d", &[("t", 3, 20, 4.0)]);
        let sealing = c.take_for_seal().unwrap();
        assert_eq!(sealing.rows.len(), 1);
        c.sealed(&sealing);
        assert_eq!(c.prune(crate::date::Day(2).end_ms()).len(), 1);
        assert_eq!(c.keys(None), vec![key::series_prefix("d", "t")]);
    }
}
