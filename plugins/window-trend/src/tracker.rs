//! The tracker of one plugin instance: every device's windows, what a
//! reading or a tick closes, the aggregate and trend-alert documents, and
//! which devices changed since the last checkpoint. Pure: no host calls.

use crate::device::{Closed, DeviceState, Placed};
use crate::settings::{Method, Settings};
use crate::timefmt::rfc3339;
use crate::trend::{self, Summary};
use serde::Serialize;
use serde_json::{json, Map, Value};
use weir_plugin::devices::Devices;
use weir_plugin::{MessageRef, Outbound};

/// A trend alert, serialized as the payload of the outbound message. The
/// field conventions follow zscore's alerts (`kind`, `device`,
/// `device_type`, `metric`, `value`, `threshold`, `rule`, `topic`,
/// `received_at`, `device_time`); `received_at`/`device_time` are those of
/// the newest reading in the newest window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendAlert {
    pub kind: &'static str,
    pub device: String,
    pub device_type: String,
    pub metric: String,
    /// Mean of the newest window.
    pub value: f64,
    /// Least-squares slope of the window means, per window.
    pub slope: f64,
    /// The change judged: `slope · K` (slope) or last − first mean (rising).
    pub rise: f64,
    pub pooled_stddev: f64,
    pub threshold: f64,
    pub min_delta: f64,
    pub method: &'static str,
    /// K, and the window size in ms.
    pub windows: usize,
    pub window_ms: i64,
    /// Span of the K windows judged.
    pub window_start: i64,
    pub window_end: i64,
    pub rule: String,
    pub topic: String,
    pub received_at: i64,
    pub device_time: Option<i64>,
}

/// What one call produced.
#[derive(Debug, Default)]
pub struct Output {
    pub messages: Vec<Outbound>,
    pub alerts: Vec<TrendAlert>,
    /// Devices with late readings in this call, and how many.
    pub late: Vec<(String, u64)>,
}

#[derive(Debug)]
pub struct Tracker {
    settings: Settings,
    devices: Devices<DeviceState>,
}

impl Tracker {
    pub fn new(settings: Settings) -> Tracker {
        Tracker {
            settings,
            devices: Devices::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Devices among `devices` not in memory yet (each once, in order of
    /// first appearance): load them before [`Tracker::observe`].
    pub fn unknown_devices<'a>(&self, devices: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        self.devices.unknown(devices)
    }

    /// Load the devices among `devices` not in memory yet from `bucket`.
    pub fn load_missing<'a>(
        &mut self,
        bucket: &weir_plugin::kv::Bucket,
        devices: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), String> {
        self.devices
            .load_missing(bucket, devices, "windows", DeviceState::from_json)
    }

    /// Install a device's saved state; an undecodable value is an error and
    /// the device starts afresh.
    pub fn load(&mut self, device: &str, saved: &[u8]) -> Result<(), String> {
        self.devices.load(device, saved, DeviceState::from_json)
    }

    /// Remember that `device` has no saved state.
    pub fn load_empty(&mut self, device: &str) {
        self.devices.insert_default(device);
    }

    /// Fold one reading in (a [`MessageRef`] of a batch, or
    /// `MessageRef::from(&message)`), and close what its event time closes.
    /// A device not in memory starts afresh (load it first).
    pub fn observe<'m>(&mut self, msg: impl Into<MessageRef<'m>>, out: &mut Output) {
        let msg = msg.into();
        let s = &self.settings;
        let Some(metrics) = kept(s, &msg) else {
            return;
        };
        let (device, changed) = self.devices.track(msg.device());
        record(s, &msg, metrics, device, changed, out);
    }

    /// As [`Tracker::observe`], for a reading whose device is in memory:
    /// `false` (nothing done) when it is not, so the caller loads it first
    /// (with [`Tracker::load_missing`]). A batch of known devices then
    /// costs one device lookup per reading.
    pub fn observe_held<'m>(&mut self, msg: impl Into<MessageRef<'m>>, out: &mut Output) -> bool {
        let msg = msg.into();
        let s = &self.settings;
        let Some(metrics) = kept(s, &msg) else {
            return true;
        };
        match self.devices.track_held(msg.device()) {
            Some((device, changed)) => {
                record(s, &msg, metrics, device, changed, out);
                true
            }
            None => false,
        }
    }

    /// Close, at wall-clock `now`, what each device's event clock closes.
    /// Devices come in no particular order.
    pub fn tick(&mut self, now: i64, out: &mut Output) {
        let s = &self.settings;
        self.devices.update_each(|name, device| {
            if device.open.is_empty() {
                return false;
            }
            let Some(clock) = device.clock(now) else {
                return false;
            };
            let closed = device.close(clock, s.window_ms, s.lateness_ms);
            if closed.is_empty() {
                return false;
            }
            Self::emit(s, name, device, closed, out);
            true
        });
    }

    /// Aggregates and trend alerts of the windows that closed.
    fn emit(
        s: &Settings,
        name: &str,
        device: &mut DeviceState,
        closed: Vec<Closed>,
        out: &mut Output,
    ) {
        for c in closed {
            if s.publish_aggregates {
                out.messages.push(aggregate(s, name, device, &c));
            }
            for (metric, acc) in c.window.metrics.sorted() {
                let summary = Summary {
                    start: c.start,
                    n: acc.n,
                    mean: acc.mean,
                    m2: acc.m2,
                };
                let state = device.trends.entry(metric.to_string()).or_default();
                let change = state
                    .history
                    .back()
                    .filter(|p| p.start.saturating_add(s.window_ms) == c.start)
                    .map(|p| acc.mean - p.mean);
                let drift = state.drift.stddev(s.trend_windows as u64);
                state.history.push_back(summary);
                while state.history.len() > s.trend_windows {
                    state.history.pop_front();
                }
                let history: Vec<Summary> = state.history.iter().cloned().collect();
                let finding = trend::evaluate(&history, s, drift);
                if let Some(change) = change {
                    state.drift.update(change, s.trend_drift_half_life);
                }
                let Some(f) = finding else {
                    if state.alerting {
                        state.calm += 1;
                        if state.calm >= s.trend_cooldown {
                            state.alerting = false;
                            state.calm = 0;
                        }
                    }
                    continue;
                };
                state.calm = 0;
                if state.alerting && s.trend_cooldown > 0 {
                    continue;
                }
                state.alerting = true;
                out.alerts.push(TrendAlert {
                    kind: "trend",
                    device: name.to_string(),
                    device_type: device.device_type.clone(),
                    metric: metric.to_string(),
                    value: acc.mean,
                    slope: f.slope,
                    rise: f.rise,
                    pooled_stddev: f.pooled_stddev,
                    threshold: s.trend_threshold,
                    min_delta: s.trend_min_delta,
                    method: match s.trend_method {
                        Method::Slope => "slope",
                        Method::Rising => "rising",
                    },
                    windows: s.trend_windows,
                    window_ms: s.window_ms,
                    window_start: history.first().map_or(c.start, |h| h.start),
                    window_end: c.end,
                    rule: device.rule.clone(),
                    topic: device.topic.clone(),
                    received_at: c.window.received_at,
                    device_time: c.window.device_time,
                });
            }
        }
    }

    /// The outbound message of a trend alert: `<alert_topic>/<device>`.
    pub fn alert_outbound(&self, alert: &TrendAlert) -> Result<Outbound, String> {
        let payload = serde_json::to_string(alert).map_err(|e| e.to_string())?;
        Ok(Outbound::new(
            format!("{}/{}", self.settings.alert_topic, alert.device),
            payload,
        ))
    }

    /// Every device changed since the last [`Tracker::saved`], as bucket
    /// entries (device, JSON).
    pub fn dirty_entries(&self) -> Vec<(String, Vec<u8>)> {
        self.devices.dirty_entries(DeviceState::to_json)
    }

    /// The entries from [`Tracker::dirty_entries`] were stored.
    pub fn saved(&mut self, entries: &[(String, Vec<u8>)]) {
        self.devices.saved(entries);
    }

    pub fn device(&self, device: &str) -> Option<&DeviceState> {
        self.devices.get(device)
    }
}

/// The closed-window document on `<aggregate_topic>/<device_type>/<device>`
/// (`_` when the device type is empty).
fn aggregate(s: &Settings, name: &str, device: &DeviceState, c: &Closed) -> Outbound {
    let mut metrics = Map::new();
    for (metric, a) in c.window.metrics.sorted() {
        metrics.insert(
            metric.to_string(),
            json!({
                "count": a.n,
                "min": a.min,
                "max": a.max,
                "mean": a.mean,
                "stddev": a.stddev(),
                "first": a.first,
                "last": a.last,
            }),
        );
    }
    let doc = json!({
        "device": name,
        "device_type": device.device_type,
        "window_start": c.start,
        "window_end": c.end,
        "window_start_rfc3339": rfc3339(c.start),
        "window_end_rfc3339": rfc3339(c.end),
        "window_ms": s.window_ms,
        "late": c.late,
        "metrics": Value::Object(metrics),
    });
    let device_type = if device.device_type.is_empty() {
        "_"
    } else {
        device.device_type.as_str()
    };
    Outbound::new(
        format!("{}/{device_type}/{name}", s.aggregate_topic),
        doc.to_string(),
    )
}

/// The metrics of `msg` that are aggregated (finite, and selected by the
/// settings), or `None` when there are none.
fn kept<'s, 'm>(
    s: &'s Settings,
    msg: &MessageRef<'m>,
) -> Option<impl Iterator<Item = (&'m str, f64)> + Clone + use<'s, 'm>> {
    let metrics = msg
        .metrics()
        .filter(|(name, value)| value.is_finite() && s.aggregates(name));
    metrics.clone().next().map(|_| metrics)
}

/// Fold `msg` (its kept `metrics`, at least one) into `device`, close what
/// its event time closes and emit the closed windows; `changed` is set.
fn record<'m>(
    s: &Settings,
    msg: &MessageRef<'m>,
    metrics: impl Iterator<Item = (&'m str, f64)>,
    device: &mut DeviceState,
    changed: &mut bool,
    out: &mut Output,
) {
    *changed = true;
    let fields: [(&mut String, &str); 3] = [
        (&mut device.device_type, msg.device_type()),
        (&mut device.rule, msg.rule()),
        (&mut device.topic, msg.topic()),
    ];
    for (held, now) in fields {
        if !weir_plugin::bytes::same(held, now) {
            held.clear();
            held.push_str(now);
        }
    }
    let t = msg.device_time().unwrap_or(msg.received_at());
    let placed = device.add(
        t,
        msg.received_at(),
        msg.device_time(),
        metrics,
        s.window_ms,
        s.lateness_ms,
    );
    if placed == Placed::Late {
        match out.late.last_mut() {
            Some((d, n)) if *d == msg.device() => *n += 1,
            _ => out.late.push((msg.device().to_string(), 1)),
        }
    }
    let closed = match device.clock(msg.received_at()) {
        Some(clock) => device.close(clock, s.window_ms, s.lateness_ms),
        None => Vec::new(),
    };
    Tracker::emit(s, msg.device(), device, closed, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin::Message;
    use weir_plugin::Metric;

    const MIN: i64 = 60_000;

    fn settings() -> Settings {
        Settings {
            lateness_ms: 5_000,
            ..Settings::default()
        }
    }

    /// A reading of metric `t` (plus `ts`, never aggregated) at device
    /// time `at`, received 50 ms later.
    fn reading(device: &str, at: i64, value: f64) -> Message {
        Message {
            rule: "telemetry".into(),
            topic: format!("dt/thermostat/{device}/telemetry"),
            client_id: device.into(),
            device: device.into(),
            device_type: "thermostat".into(),
            received_at: at + 50,
            device_time: Some(at),
            metrics: vec![Metric::new("t", value), Metric::new("ts", at as f64)],
            payload: String::new(),
        }
    }

    fn feed(tr: &mut Tracker, device: &str, readings: &[(i64, f64)]) -> Output {
        let mut out = Output::default();
        for &(at, v) in readings {
            tr.observe(&reading(device, at, v), &mut out);
        }
        out
    }

    /// Ten readings per minute for `minutes` minutes: the minute's base
    /// value `level(minute)` plus a fixed ±1 pattern (window stddev
    /// sqrt(10/9) ≈ 1.054, mean exactly the base).
    fn series(minutes: i64, level: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
        let pattern = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0];
        (0..minutes)
            .flat_map(|m| {
                let base = level(m);
                pattern
                    .iter()
                    .enumerate()
                    .map(move |(i, p)| (m * MIN + i as i64 * 6_000, base + p))
            })
            .collect()
    }

    fn payload(o: &Outbound) -> Value {
        serde_json::from_str(&o.payload).unwrap()
    }

    #[test]
    fn aggregate_document_by_hand() {
        let mut tr = Tracker::new(settings());
        // [0, 60 s): 1, 2, 6 → mean 3, squares 4+1+9 = 14, var 7.
        let out = feed(
            &mut tr,
            "d",
            &[(0, 1.0), (20_000, 2.0), (40_000, 6.0), (65_000, 0.0)],
        );
        assert_eq!(out.messages.len(), 1);
        let o = &out.messages[0];
        assert_eq!(o.topic, "weir/aggregates/thermostat/d");
        let v = payload(o);
        assert_eq!(v["device"], "d");
        assert_eq!(v["device_type"], "thermostat");
        assert_eq!(v["window_start"], 0);
        assert_eq!(v["window_end"], MIN);
        assert_eq!(v["window_start_rfc3339"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["window_end_rfc3339"], "1970-01-01T00:01:00.000Z");
        assert_eq!(v["late"], 0);
        let t = &v["metrics"]["t"];
        assert_eq!(t["count"], 3);
        assert_eq!(
            (t["min"].as_f64(), t["max"].as_f64()),
            (Some(1.0), Some(6.0))
        );
        assert_eq!(
            (t["first"].as_f64(), t["last"].as_f64()),
            (Some(1.0), Some(6.0))
        );
        assert_eq!(t["mean"].as_f64(), Some(3.0));
        assert!((t["stddev"].as_f64().unwrap() - 7f64.sqrt()).abs() < 1e-12);
        assert!(v["metrics"].get("ts").is_none(), "ts is not aggregated");
    }

    /// `observe_held` skips a device not in memory (and holds nothing for
    /// it); once held, it folds readings in as `observe` does.
    #[test]
    fn observe_held_only_touches_devices_in_memory() {
        let mut held = Tracker::new(settings());
        let mut out = Output::default();
        assert!(!held.observe_held(&reading("d", 0, 1.0), &mut out));
        assert_eq!(held.unknown_devices(["d"]), vec!["d".to_string()]);
        held.load_empty("d");
        let mut plain = Tracker::new(settings());
        let mut plain_out = Output::default();
        for (at, x) in [(0, 1.0), (20_000, 2.0), (40_000, 6.0), (65_000, 0.0)] {
            assert!(held.observe_held(&reading("d", at, x), &mut out));
            plain.observe(&reading("d", at, x), &mut plain_out);
        }
        assert_eq!(out.messages.len(), 1);
        assert_eq!(out.messages, plain_out.messages);
    }

    #[test]
    fn late_readings_are_reported_not_dropped_silently() {
        let mut tr = Tracker::new(settings());
        let mut out = feed(&mut tr, "d", &[(0, 1.0), (66_000, 2.0)]);
        assert_eq!(out.messages.len(), 1); // [0, 60 s) closed at 65 s
        let late = feed(&mut tr, "d", &[(10_000, 7.0), (11_000, 7.0)]);
        assert_eq!(late.late, vec![("d".to_string(), 2)]);
        assert!(late.messages.is_empty());
        tr.tick(200_000 + 50, &mut out); // wall clock ≈ device clock here
        let v = payload(out.messages.last().unwrap());
        assert_eq!(v["window_start"], MIN);
        assert_eq!(v["late"], 2);
        assert_eq!(
            v["metrics"]["t"]["count"], 1,
            "late readings are not folded in"
        );
    }

    #[test]
    fn a_device_silent_mid_window_closes_on_tick() {
        let mut tr = Tracker::new(settings());
        let out = feed(&mut tr, "d", &[(1_000, 5.0), (2_000, 7.0)]);
        assert!(out.messages.is_empty());
        // Last reading: event 2_000, received 2_050. [0, 60 s) closes when
        // the clock 2_000 + (now − 2_050) reaches 65_000: now = 65_050.
        let mut out = Output::default();
        tr.tick(65_049, &mut out);
        assert!(out.messages.is_empty());
        tr.tick(65_050, &mut out);
        assert_eq!(out.messages.len(), 1);
        assert_eq!(payload(&out.messages[0])["metrics"]["t"]["mean"], 6.0);
        // Nothing left to close.
        let mut again = Output::default();
        tr.tick(1_000_000, &mut again);
        assert!(again.messages.is_empty());
    }

    #[test]
    fn ramp_alerts_once_noise_never() {
        let mut tr = Tracker::new(settings());
        // Flat for 10 minutes, then +1 per minute for 10 minutes, then flat.
        // Pooled stddev sqrt(10/9) = 1.054; threshold 2 → rise > 2.108.
        // Slope over 5 windows: the first window with a rise above it is
        // the one whose history is 20,20,20,21,22 (slope 0.5, rise 2.5).
        let level = |m: i64| {
            if m < 10 {
                20.0
            } else if m < 20 {
                20.0 + (m - 9) as f64
            } else {
                30.0
            }
        };
        let out = feed(&mut tr, "ramp", &series(40, level));
        assert_eq!(out.alerts.len(), 1, "{:?}", out.alerts);
        let a = &out.alerts[0];
        assert_eq!(a.kind, "trend");
        assert_eq!(a.metric, "t");
        assert_eq!(a.value, 22.0);
        assert!((a.slope - 0.5).abs() < 1e-9, "{}", a.slope);
        assert!((a.rise - 2.5).abs() < 1e-9);
        assert!((a.pooled_stddev - (10.0f64 / 9.0).sqrt()).abs() < 1e-9);
        assert_eq!(a.window_end, 12 * MIN);
        assert_eq!(a.window_start, 7 * MIN); // windows 7..=11
        assert_eq!(a.device_time, Some(11 * MIN + 54_000));
        assert_eq!(a.received_at, 11 * MIN + 54_050);
        let o = tr.alert_outbound(a).unwrap();
        assert_eq!(o.topic, "$weir/alerts/ramp");
        let v = payload(&o);
        for k in [
            "kind",
            "device",
            "device_type",
            "metric",
            "value",
            "slope",
            "windows",
            "received_at",
            "device_time",
        ] {
            assert!(!v[k].is_null(), "missing {k}");
        }

        // Noise around a constant: the ±1 pattern plus a small wobble of
        // the minute means (±0.3): never a trend.
        let wobble = |m: i64| 20.0 + [0.3, -0.3, 0.0, 0.2, -0.2][(m % 5) as usize];
        let out = feed(&mut tr, "noise", &series(60, wobble));
        assert!(out.alerts.is_empty(), "{:?}", out.alerts);
        assert_eq!(out.messages.len(), 59);
        // 59 closed, adjacent windows: 58 changes of the mean feed the drift.
        assert_eq!(tr.device("noise").unwrap().trends["t"].drift.n, 58);
    }

    #[test]
    fn a_second_ramp_after_the_cooldown_alerts_again() {
        let mut tr = Tracker::new(settings());
        // Ramp, 15 flat minutes (≥ cooldown of 5 windows without trend),
        // ramp again.
        let level = |m: i64| match m {
            0..10 => 20.0 + m as f64,
            10..25 => 30.0,
            _ => 30.0 + (m - 24) as f64,
        };
        let out = feed(&mut tr, "d", &series(35, level));
        assert_eq!(out.alerts.len(), 2, "{:?}", out.alerts);
    }

    #[test]
    fn state_round_trip() {
        let mut tr = Tracker::new(settings());
        let ramp = series(30, |m| 20.0 + m as f64);
        let (first, second) = ramp.split_at(125); // mid-window
        feed(&mut tr, "d", first);
        let entries = tr.dirty_entries();
        assert_eq!(entries.len(), 1);
        tr.saved(&entries);
        assert!(tr.dirty_entries().is_empty());

        // A new instance (plugin reload, host restart) starts from the
        // saved JSON and behaves exactly like the old one.
        let mut fresh = Tracker::new(settings());
        assert_eq!(fresh.unknown_devices(["d"]), vec!["d"]);
        fresh.load("d", &entries[0].1).unwrap();
        assert_eq!(fresh.device("d"), tr.device("d"));
        let a = feed(&mut tr, "d", second);
        let b = feed(&mut fresh, "d", second);
        assert_eq!(a.messages, b.messages);
        assert_eq!(a.alerts, b.alerts);
    }

    #[test]
    fn an_alert_in_progress_survives_a_reload() {
        let mut tr = Tracker::new(settings());
        let ramp = series(30, |m| 20.0 + m as f64);
        let (first, second) = ramp.split_at(100);
        assert_eq!(feed(&mut tr, "d", first).alerts.len(), 1);
        let entries = tr.dirty_entries();
        let mut fresh = Tracker::new(settings());
        fresh.load("d", &entries[0].1).unwrap();
        assert!(
            feed(&mut fresh, "d", second).alerts.is_empty(),
            "the ramp was already reported"
        );
    }

    #[test]
    fn corrupt_state_starts_fresh() {
        let mut tr = Tracker::new(settings());
        assert!(tr.load("d", b"{not json").is_err());
        assert_eq!(tr.device("d"), Some(&DeviceState::default()));
    }
}
