//! The windows of one device: open windows per metric, the device's event
//! clock, late readings, and per-metric trend history. Pure: the tests
//! drive it with hand-made readings.
//!
//! ## When a window closes
//!
//! Windows are tumbling, aligned to the epoch: `[start, start + size)`. A
//! window closes once the device's *event clock* reaches `end +
//! allowed_lateness`. The event clock is
//!
//! ```text
//! latest event time + max(0, now − received_at of the reading that set it)
//! ```
//!
//! i.e. the device's own clock, advanced by the wall clock since it last
//! moved. On a reading (`now` = its receive time) this is the newest event
//! time, so a replay at 1000× closes windows as fast as its timestamps
//! move; on a `tick(now)` a silent device's clock keeps running with the
//! wall clock, so its last window still closes. A device whose clock is
//! years behind the wall clock (historical replay) is therefore handled
//! like a live one. The cost: a reading that waits in the host's queues
//! for longer than `allowed_lateness` may arrive after its window closed.
//!
//! A reading whose window has closed (`end + lateness ≤ watermark`, the
//! furthest the clock has been) is *late*: it is not added anywhere, it is
//! counted, reported in the `late` field of the device's next closed
//! window, and logged.

use crate::stats::Acc;
use crate::timefmt::window_start;
use crate::trend::{Drift, Summary};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use weir_plugin::names::NameMap;

/// One open window: its metrics and what the latest reading in it was.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenWindow {
    /// By name (looked up by the metric's position in the reading first;
    /// stored sorted by name, as the `BTreeMap` it was).
    pub metrics: NameMap<Acc>,
    /// Server receive time of the window's newest reading (by event time).
    pub received_at: i64,
    /// Device time of that reading, when the device sent one.
    pub device_time: Option<i64>,
    /// Event time of that reading.
    pub event_time: i64,
}

/// A window that has just closed.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    pub start: i64,
    pub end: i64,
    pub window: OpenWindow,
    /// Late readings counted since the previous closed window.
    pub late: u64,
}

/// Trend history and alert state of one metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrendState {
    /// The last K closed windows, oldest first.
    pub history: VecDeque<Summary>,
    /// A trend alert was raised and the trend has not ended yet.
    #[serde(default)]
    pub alerting: bool,
    /// Closed windows without a trend since `alerting` was set.
    #[serde(default)]
    pub calm: u32,
    /// Usual change of the mean between adjacent windows.
    #[serde(default)]
    pub drift: Drift,
}

/// Everything kept for one device: the value stored under its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    #[serde(default = "version")]
    pub v: u32,
    /// From the device's latest reading, for outputs made on a tick.
    #[serde(default)]
    pub device_type: String,
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub topic: String,
    /// Newest event time seen, and the receive time of that reading.
    pub last_event: Option<i64>,
    #[serde(default)]
    pub last_received: i64,
    /// The furthest the event clock has been (windows ending at or before
    /// `watermark − lateness` are closed).
    pub watermark: Option<i64>,
    /// Late readings not yet reported, and all late readings ever.
    #[serde(default)]
    pub late: u64,
    #[serde(default)]
    pub late_total: u64,
    /// Open windows by start time.
    #[serde(default)]
    pub open: BTreeMap<i64, OpenWindow>,
    #[serde(default)]
    pub trends: BTreeMap<String, TrendState>,
}

fn version() -> u32 {
    1
}

impl Default for DeviceState {
    fn default() -> Self {
        DeviceState {
            v: version(),
            device_type: String::new(),
            rule: String::new(),
            topic: String::new(),
            last_event: None,
            last_received: 0,
            watermark: None,
            late: 0,
            late_total: 0,
            open: BTreeMap::new(),
            trends: BTreeMap::new(),
        }
    }
}

/// What happened to one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Added to its open window.
    Open,
    /// Its window had closed: counted as late.
    Late,
}

impl DeviceState {
    pub fn to_json(&self) -> Vec<u8> {
        // Plain numbers, strings and maps; non-finite numbers never get in.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<DeviceState, String> {
        let mut s: DeviceState = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        for w in s.open.values_mut() {
            w.metrics.retain(|_, a| a.is_valid());
        }
        for t in s.trends.values_mut() {
            t.history.retain(|h| h.mean.is_finite() && h.m2.is_finite());
        }
        s.v = version();
        Ok(s)
    }

    /// Add one reading (`metrics` already filtered to finite, aggregated
    /// ones, and not empty) at event time `t`, received at `received_at`.
    pub fn add<'m>(
        &mut self,
        t: i64,
        received_at: i64,
        device_time: Option<i64>,
        metrics: impl IntoIterator<Item = (&'m str, f64)>,
        size: i64,
        lateness: i64,
    ) -> Placed {
        let start = window_start(t, size);
        let end = start.saturating_add(size);
        if self
            .watermark
            .is_some_and(|w| end.saturating_add(lateness) <= w)
        {
            self.late += 1;
            self.late_total += 1;
            return Placed::Late;
        }
        let window = self.open.entry(start).or_default();
        if window.metrics.is_empty() || t >= window.event_time {
            window.event_time = t;
            window.received_at = received_at;
            window.device_time = device_time;
        }
        for (i, (name, x)) in metrics.into_iter().enumerate() {
            match window.metrics.get_mut(name, i) {
                Some(acc) => acc.add(x, t),
                None => {
                    window.metrics.push(name, Acc::new(x, t));
                }
            }
        }
        if self.last_event.is_none_or(|e| t >= e) {
            self.last_event = Some(t);
            self.last_received = received_at;
        }
        Placed::Open
    }

    /// The event clock at wall-clock time `now` (see the module docs).
    pub fn clock(&self, now: i64) -> Option<i64> {
        self.last_event
            .map(|e| e.saturating_add(now.saturating_sub(self.last_received).max(0)))
    }

    /// Advance the watermark to `clock` and close every open window with
    /// `end + lateness ≤ watermark`, oldest first.
    pub fn close(&mut self, clock: i64, size: i64, lateness: i64) -> Vec<Closed> {
        let watermark = self.watermark.map_or(clock, |w| w.max(clock));
        self.watermark = Some(watermark);
        let mut closed = Vec::new();
        while let Some((&start, _)) = self.open.first_key_value() {
            let end = start.saturating_add(size);
            if end.saturating_add(lateness) > watermark {
                break;
            }
            if let Some(window) = self.open.remove(&start) {
                closed.push(Closed {
                    start,
                    end,
                    window,
                    late: std::mem::take(&mut self.late),
                });
            }
        }
        closed
    }

    /// Record a closed window's summary of `metric` in its trend history,
    /// keeping the newest `k`; returns the history (oldest first).
    pub fn push_history(&mut self, metric: &str, summary: Summary, k: usize) -> &mut TrendState {
        let state = self.trends.entry(metric.to_string()).or_default();
        state.history.push_back(summary);
        while state.history.len() > k {
            state.history.pop_front();
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const LATE: i64 = 5_000;

    fn add(d: &mut DeviceState, t: i64, x: f64) -> Placed {
        // Received 100 ms after the event.
        d.add(t, t + 100, Some(t), [("t", x)], MIN, LATE)
    }

    #[test]
    fn window_boundaries() {
        // 59_999 is the last ms of [0, 60_000); 60_000 opens the next.
        let mut d = DeviceState::default();
        add(&mut d, 0, 1.0);
        add(&mut d, 59_999, 3.0);
        add(&mut d, 60_000, 10.0);
        assert_eq!(d.open.keys().copied().collect::<Vec<_>>(), vec![0, MIN]);
        assert_eq!(d.open[&0].metrics["t"].n, 2);
        assert_eq!(d.open[&0].metrics["t"].mean, 2.0);

        // The clock is at 60_000: [0, 60_000) closes at 65_000, not before.
        assert!(d.close(d.clock(60_100).unwrap(), MIN, LATE).is_empty());
        assert!(d.close(64_999, MIN, LATE).is_empty());
        let closed = d.close(65_000, MIN, LATE);
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].start, closed[0].end), (0, MIN));
        assert_eq!(closed[0].window.metrics["t"].last, 3.0);
        assert_eq!(d.open.keys().copied().collect::<Vec<_>>(), vec![MIN]);
    }

    #[test]
    fn late_within_lateness_is_kept_after_is_counted() {
        let mut d = DeviceState::default();
        add(&mut d, 10_000, 1.0);
        add(&mut d, 62_000, 2.0);
        // Out of order but within lateness (clock 62_000 < 65_000): it goes
        // into [0, 60_000), and by event time (59_000 > 10_000) it is `last`.
        assert_eq!(add(&mut d, 59_000, 5.0), Placed::Open);
        assert_eq!(d.open[&0].metrics["t"].n, 2);
        assert_eq!(d.open[&0].metrics["t"].last, 5.0);
        assert_eq!(
            d.last_event,
            Some(62_000),
            "an older reading does not move the clock"
        );

        add(&mut d, 66_000, 3.0);
        let closed = d.close(66_000, MIN, LATE);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].late, 0);

        // Now [0, 60_000) is closed: a reading for it is late, twice.
        assert_eq!(add(&mut d, 30_000, 9.0), Placed::Late);
        assert_eq!(add(&mut d, 1_000, 9.0), Placed::Late);
        assert_eq!((d.late, d.late_total), (2, 2));
        assert!(!d.open.contains_key(&0));
        // Reported with the next closed window, then reset.
        add(&mut d, 125_000, 4.0);
        let closed = d.close(125_000, MIN, LATE);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].start, MIN);
        assert_eq!(closed[0].late, 2);
        assert_eq!((d.late, d.late_total), (0, 2));
    }

    #[test]
    fn a_window_never_opened_beyond_lateness_is_late_too() {
        // The clock is at 200_000; a reading for [60_000, 120_000), which
        // never had data, ended long before 200_000 − 5_000: late.
        let mut d = DeviceState::default();
        add(&mut d, 200_000, 1.0);
        d.close(200_000, MIN, LATE);
        assert_eq!(add(&mut d, 70_000, 1.0), Placed::Late);
    }

    #[test]
    fn silent_device_closes_on_the_wall_clock() {
        // Last reading at event time 30_000, received at 1_000_030_000 (a
        // device clock far behind the wall clock, as in a replay). Silent
        // afterwards: the event clock runs with the wall clock, so [0,
        // 60_000) closes when now − 1_000_030_000 ≥ 65_000 − 30_000.
        let mut d = DeviceState::default();
        d.add(30_000, 1_000_030_000, Some(30_000), [("t", 1.0)], MIN, LATE);
        let now = 1_000_030_000 + 34_999;
        assert!(d.close(d.clock(now).unwrap(), MIN, LATE).is_empty());
        let closed = d.close(d.clock(now + 1).unwrap(), MIN, LATE);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].window.received_at, 1_000_030_000);
        assert_eq!(closed[0].window.device_time, Some(30_000));
        // A wall clock that goes backwards never reopens anything.
        assert!(d.close(d.clock(0).unwrap(), MIN, LATE).is_empty());
        assert_eq!(d.watermark, Some(65_000));
    }

    #[test]
    fn history_keeps_the_newest_k() {
        let mut d = DeviceState::default();
        for i in 0..7 {
            let s = Summary {
                start: i * MIN,
                n: 1,
                mean: i as f64,
                m2: 0.0,
            };
            d.push_history("t", s, 5);
        }
        let h = &d.trends["t"].history;
        assert_eq!(h.len(), 5);
        assert_eq!(h[0].start, 2 * MIN);
    }
}
