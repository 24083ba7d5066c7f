//! The detector: per device and metric, score each reading against its
//! baseline, decide alert / recovered, and keep track of which devices
//! changed since the last checkpoint. Pure: no host calls, so every rule is
//! tested natively.

use crate::baseline::{Baseline, Mode};
use crate::metric_map::MetricMap;
use crate::settings::Settings;
use serde::{Deserialize, Serialize};
use weir_plugin::devices::Devices;
use weir_plugin::{MessageRef, Outbound};

/// What the detector remembers about one metric of one device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricState {
    #[serde(flatten)]
    pub baseline: Baseline,
    /// An alert was raised and its excursion has not recovered yet.
    #[serde(default)]
    pub alerting: bool,
    /// Consecutive readings within threshold since the last anomalous one,
    /// while `alerting`.
    #[serde(default)]
    pub calm: u32,
}

/// All the baselines of one device: the value stored under the device's key
/// in the bucket, as JSON (`{"v":1,"metrics":{"temperature":{"n":…,"mean":…,
/// "var":…,"alerting":false,"calm":0}}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    #[serde(default = "version")]
    pub v: u32,
    #[serde(default)]
    pub metrics: MetricMap,
}

fn version() -> u32 {
    1
}

impl Default for DeviceState {
    fn default() -> Self {
        DeviceState {
            v: version(),
            metrics: MetricMap::default(),
        }
    }
}

/// A device's saved state, keeping only the metrics `settings` score (the
/// settings may have changed since it was saved).
fn decode(settings: &Settings, saved: &[u8]) -> Result<DeviceState, String> {
    let mut state = DeviceState::from_json(saved)?;
    state.metrics.retain(|name, _| settings.scores(name));
    Ok(state)
}

impl DeviceState {
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain numbers, strings and maps cannot fail; non-finite
        // numbers never get in (see `Detector::observe`).
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<DeviceState, String> {
        let mut s: DeviceState = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        // Drop baselines that cannot be used rather than poisoning z.
        s.metrics.retain(|_, m| m.baseline.is_valid());
        s.v = version();
        Ok(s)
    }
}

/// The kind of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A reading's |z| went over the threshold.
    Zscore,
    /// The metric is back within the threshold after an alert.
    Recovered,
}

/// An alert or recovery notice, serialized as the payload of the outbound
/// message. `mean` and `stddev` are the baseline *before* the reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub kind: Kind,
    pub device: String,
    pub device_type: String,
    pub metric: String,
    pub value: f64,
    pub mean: f64,
    pub stddev: f64,
    pub z: f64,
    pub threshold: f64,
    pub rule: String,
    pub topic: String,
    pub received_at: i64,
    pub device_time: Option<i64>,
}

/// The detector of one plugin instance.
#[derive(Debug)]
pub struct Detector {
    settings: Settings,
    mode: Mode,
    devices: Devices<DeviceState>,
    /// The last field found not scored (most readings carry the same one,
    /// `ts`): checked with one comparison before the settings' lists.
    unscored: Unscored,
}

/// The name of the last field [`Settings::scores`] turned down.
#[derive(Debug, Default)]
struct Unscored(Option<Box<str>>);

impl Unscored {
    /// Whether `name` is the remembered field.
    #[inline(always)]
    fn is(&self, name: &str) -> bool {
        self.0
            .as_deref()
            .is_some_and(|u| weir_plugin::bytes::same(u, name))
    }

    /// Whether `settings` score `name`, remembering it when they do not.
    #[cold]
    #[inline(never)]
    fn check(&mut self, settings: &Settings, name: &str) -> bool {
        let scored = settings.scores(name);
        if !scored {
            self.0 = Some(name.into());
        }
        scored
    }
}

impl Detector {
    pub fn new(settings: Settings) -> Detector {
        Detector {
            mode: Mode::from_half_life(settings.half_life),
            settings,
            devices: Devices::new(),
            unscored: Unscored::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Devices of `batch` that are not in memory yet (each once, in order of
    /// first appearance): load them with [`Detector::load`] before
    /// [`Detector::observe`], or they start from an empty baseline.
    pub fn unknown_devices<'a>(&self, devices: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        self.devices.unknown(devices)
    }

    /// Load the batch's devices not in memory yet from `bucket`.
    pub fn load_missing<'a>(
        &mut self,
        bucket: &weir_plugin::kv::Bucket,
        devices: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), String> {
        let settings = &self.settings;
        self.devices
            .load_missing(bucket, devices, "baselines", |saved| {
                decode(settings, saved)
            })
    }

    /// Install a device's saved state (the bucket value). A value that does
    /// not decode is an error, and the device starts from scratch.
    pub fn load(&mut self, device: &str, saved: &[u8]) -> Result<(), String> {
        let settings = &self.settings;
        self.devices
            .load(device, saved, |saved| decode(settings, saved))
    }

    /// Remember that `device` has no saved state (so it is not looked up
    /// again).
    pub fn load_empty(&mut self, device: &str) {
        self.devices.insert_default(device);
    }

    /// Score one message (a [`MessageRef`] of a batch, or
    /// `MessageRef::from(&message)`); appends at most one event per metric
    /// to `events`.
    pub fn observe<'m>(&mut self, msg: impl Into<MessageRef<'m>>, events: &mut Vec<Event>) {
        let msg = msg.into();
        let (devices, scoring) = self.split();
        let (device, dirty) = devices.track(msg.device());
        score(scoring, device, dirty, &msg, events);
    }

    /// As [`Detector::observe`], for a message whose device is held:
    /// `false` (nothing done) when it is not, so the caller loads it first
    /// (with [`Detector::load_missing`]). A batch of known devices then
    /// costs one device lookup per message.
    #[inline(always)]
    pub fn observe_held<'m>(
        &mut self,
        msg: impl Into<MessageRef<'m>>,
        events: &mut Vec<Event>,
    ) -> bool {
        let msg = msg.into();
        let (devices, scoring) = self.split();
        match devices.track_held(msg.device()) {
            Some((device, dirty)) => {
                score(scoring, device, dirty, &msg, events);
                true
            }
            None => false,
        }
    }

    /// The devices' states and what scoring one needs, borrowed apart.
    #[inline(always)]
    fn split(&mut self) -> (&mut Devices<DeviceState>, Scoring<'_>) {
        let scoring = Scoring {
            settings: &self.settings,
            mode: self.mode,
            unscored: &mut self.unscored,
        };
        (&mut self.devices, scoring)
    }

    /// The outbound message of an event: topic `<alert_topic>/<device>`,
    /// payload the event as JSON.
    pub fn outbound(&self, event: &Event) -> Result<Outbound, String> {
        let payload = serde_json::to_string(event).map_err(|e| e.to_string())?;
        Ok(Outbound::new(
            format!("{}/{}", self.settings.alert_topic, event.device),
            payload,
        ))
    }

    /// The state of every device changed since the last [`Detector::saved`],
    /// as bucket entries (device, JSON).
    pub fn dirty_entries(&self) -> Vec<(String, Vec<u8>)> {
        self.devices.dirty_entries(DeviceState::to_json)
    }

    /// The entries returned by [`Detector::dirty_entries`] were stored.
    pub fn saved(&mut self, entries: &[(String, Vec<u8>)]) {
        self.devices.saved(entries);
    }

    /// The in-memory state of a device.
    pub fn device(&self, device: &str) -> Option<&DeviceState> {
        self.devices.get(device)
    }
}

/// What scoring a reading needs besides the device: the settings, the
/// baseline mode and the memo of the last unscored field.
struct Scoring<'a> {
    settings: &'a Settings,
    mode: Mode,
    unscored: &'a mut Unscored,
}

/// Score `msg` against its device's state (`device`, and `dirty`, set
/// when the state changed).
#[inline(always)]
fn score(
    scoring: Scoring<'_>,
    device: &mut DeviceState,
    dirty: &mut bool,
    msg: &MessageRef<'_>,
    events: &mut Vec<Event>,
) {
    let Scoring {
        settings,
        mode,
        unscored,
    } = scoring;
    let mut changed = false;
    // Where the next held metric is expected: a device sends its metrics
    // in the same order reading after reading, so right after the last
    // one found. (Not the metric's position in the reading: fields that
    // are not scored, as the `ts` most readings start with, are not held
    // and would put every lookup off by one.)
    let mut next = 0;

    for (name, value) in msg.metrics() {
        if !value.is_finite() {
            continue;
        }
        let x = value;
        // Held metrics are all scored ones (see `decode`): a name not at
        // the expected place is checked against the settings before the
        // held ones are searched, so an unscored field costs a comparison
        // per reading (with the last unscored name, which is the `ts` most
        // readings carry), not a search.
        let i = if device.metrics.is_at(name, next) {
            next
        } else if unscored.is(name) || !unscored.check(settings, name) {
            continue;
        } else {
            match device.metrics.index_of(name) {
                Some(i) => i,
                None => {
                    device.metrics.push(name, MetricState::default());
                    device.metrics.len() - 1
                }
            }
        };
        next = i + 1;
        let Some(state) = device.metrics.value_mut(i) else {
            continue;
        };
        changed = true;
        let before = state.baseline;

        // Warm-up: the first `warmup` readings only build the baseline.
        if before.n < settings.warmup.max(2) {
            state.baseline.update(x, mode);
            continue;
        }

        let stddev = before.stddev(mode);
        let scale = crate::baseline::max(stddev, settings.min_stddev);
        let z = if scale > 0.0 {
            (x - before.mean) / scale
        } else {
            // A perfectly flat baseline: any change is infinitely
            // unlikely, which no one can page on. Score it 0 (and set
            // `min_stddev` to catch steps off flat signals).
            0.0
        };
        let anomalous = z.abs() > settings.threshold;
        let event = |kind| Event {
            kind,
            device: msg.device().to_string(),
            device_type: msg.device_type().to_string(),
            metric: name.to_string(),
            value: x,
            mean: before.mean,
            stddev,
            z,
            threshold: settings.threshold,
            rule: msg.rule().to_string(),
            topic: msg.topic().to_string(),
            received_at: msg.received_at(),
            device_time: msg.device_time(),
        };

        if anomalous {
            if !settings.exclude_anomalies {
                state.baseline.update(x, mode);
            }
            state.calm = 0;
            if settings.cooldown == 0 {
                // No de-duplication: every anomalous reading alerts.
                events.push(event(Kind::Zscore));
            } else if !state.alerting {
                state.alerting = true;
                events.push(event(Kind::Zscore));
            }
        } else {
            state.baseline.update(x, mode);
            if state.alerting {
                state.calm += 1;
                if state.calm >= settings.cooldown {
                    state.alerting = false;
                    state.calm = 0;
                    events.push(event(Kind::Recovered));
                }
            }
        }
    }
    if changed {
        *dirty = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin::{Message, Metric};

    fn settings(warmup: u64) -> Settings {
        Settings {
            warmup,
            ..Settings::default()
        }
    }

    fn reading(device: &str, metric: &str, value: f64, at: i64) -> Message {
        Message {
            rule: "telemetry".into(),
            topic: format!("dt/thermostat/{device}/telemetry"),
            client_id: device.into(),
            device: device.into(),
            device_type: "thermostat".into(),
            received_at: at,
            device_time: Some(at - 5),
            metrics: vec![Metric::new(metric, value), Metric::new("ts", at as f64)],
            payload: String::new(),
        }
    }

    /// Feed values of metric `t` for device `d`; return the events.
    fn feed(det: &mut Detector, values: &[f64]) -> Vec<Event> {
        let mut events = Vec::new();
        for (i, &v) in values.iter().enumerate() {
            det.observe(&reading("d", "t", v, 1000 + i as i64), &mut events);
        }
        events
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * (1.0 + b.abs())
    }

    const BASE: [f64; 5] = [10.0, 12.0, 11.0, 13.0, 9.0];

    #[test]
    fn z_on_a_known_sequence() {
        // Baseline 10, 12, 11, 13, 9: mean 11, sample stddev sqrt(10/4) =
        // 1.5811388. Then 14: z = 3/1.5811 = 1.897 (normal). The baseline
        // becomes 6 readings: mean 69/6 = 11.5, squares around 11.5:
        // 2.25+.25+.25+2.25+6.25+6.25 = 17.5, sample var 17.5/5 = 3.5,
        // stddev 1.8708287. Then 18: z = 6.5/1.8708287 = 3.4743961 > 3.
        let mut det = Detector::new(settings(5));
        let mut values = BASE.to_vec();
        values.extend([14.0, 18.0]);
        let events = feed(&mut det, &values);
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(e.kind, Kind::Zscore);
        assert_eq!((e.device.as_str(), e.metric.as_str()), ("d", "t"));
        assert_eq!(e.value, 18.0);
        assert!(close(e.mean, 11.5));
        assert!(close(e.stddev, 3.5f64.sqrt()));
        assert!(close(e.z, 6.5 / 3.5f64.sqrt()), "{}", e.z);
        assert!(close(e.z, 3.474396144), "{}", e.z);
        assert_eq!(e.threshold, 3.0);
        assert_eq!(e.received_at, 1006);
        assert_eq!(e.device_time, Some(1001));
        assert_eq!(e.device_type, "thermostat");
        assert_eq!(e.rule, "telemetry");
        assert_eq!(e.topic, "dt/thermostat/d/telemetry");
        // the `ts` metric is ignored by default
        assert!(!det.device("d").unwrap().metrics.contains_key("ts"));
    }

    #[test]
    fn negative_excursions_alert_too() {
        // After BASE: mean 11, stddev 1.5811; 5.9 gives z = -5.1/1.5811 = -3.2255.
        let mut det = Detector::new(settings(5));
        let mut values = BASE.to_vec();
        values.push(5.9);
        let events = feed(&mut det, &values);
        assert_eq!(events.len(), 1);
        assert!(close(events[0].z, -5.1 / 2.5f64.sqrt()));
    }

    #[test]
    fn no_alert_during_warmup() {
        // With warm-up 6, the sixth reading (16, which would be z = 3.16 after
        // five) is still warm-up and only joins the baseline.
        let mut det = Detector::new(settings(6));
        let mut values = BASE.to_vec();
        values.push(16.0);
        assert!(feed(&mut det, &values).is_empty());
        assert_eq!(det.device("d").unwrap().metrics["t"].baseline.n, 6);
        // With warm-up 5 it alerts: z = 5/1.5811388 = 3.1622777.
        let mut det = Detector::new(settings(5));
        let events = feed(&mut det, &values);
        assert_eq!(events.len(), 1);
        assert!(close(events[0].z, 10f64.sqrt()));
    }

    #[test]
    fn anomalies_are_kept_out_of_the_baseline() {
        let mut values = BASE.to_vec();
        values.push(30.0);
        let mut det = Detector::new(settings(5));
        feed(&mut det, &values);
        let b = det.device("d").unwrap().metrics["t"].baseline;
        assert_eq!(b.n, 5);
        assert!(close(b.mean, 11.0));

        // exclude_anomalies = false: 30 joins, mean (55 + 30)/6.
        let mut det = Detector::new(Settings {
            exclude_anomalies: false,
            ..settings(5)
        });
        let events = feed(&mut det, &values);
        assert_eq!(events.len(), 1);
        let b = det.device("d").unwrap().metrics["t"].baseline;
        assert_eq!(b.n, 6);
        assert!(close(b.mean, 85.0 / 6.0));
    }

    #[test]
    fn a_sustained_excursion_alerts_once_then_recovers() {
        // cooldown 3: one alert for the run of 30s, the calm count restarts
        // at the 31 after two normal readings, and `recovered` comes with
        // the third consecutive normal reading.
        let mut det = Detector::new(Settings {
            cooldown: 3,
            ..settings(5)
        });
        let mut values = BASE.to_vec();
        values.extend([30.0, 30.0, 30.0, 11.0, 11.0, 31.0, 11.0, 11.0]);
        let events = feed(&mut det, &values);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].value, 30.0);
        let events = feed(&mut det, &[11.0]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, Kind::Recovered);
        assert_eq!(events[0].value, 11.0);
        assert!(events[0].z.abs() <= 3.0);
        // The next excursion alerts again.
        let events = feed(&mut det, &[40.0, 40.0]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, Kind::Zscore);
    }

    #[test]
    fn cooldown_zero_alerts_every_anomalous_reading() {
        let mut det = Detector::new(Settings {
            cooldown: 0,
            ..settings(5)
        });
        let mut values = BASE.to_vec();
        values.extend([30.0, 30.0, 11.0, 30.0]);
        let events = feed(&mut det, &values);
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e.kind == Kind::Zscore));
    }

    #[test]
    fn half_life_mode_scores_with_the_weighted_baseline() {
        // half-life 1 (alpha .5), warm-up 4, readings 0, 2, 4, 4 give mean
        // 3.25 and weighted var 1.9375 (see baseline tests); stddev
        // sqrt(1.9375) = 1.3919411. Then 8: z = 4.75/1.3919411 = 3.4125.
        let mut det = Detector::new(Settings {
            half_life: 1.0,
            ..settings(4)
        });
        let events = feed(&mut det, &[0.0, 2.0, 4.0, 4.0, 8.0]);
        assert_eq!(events.len(), 1);
        assert!(close(events[0].mean, 3.25));
        assert!(close(events[0].stddev, 1.9375f64.sqrt()));
        assert!(close(events[0].z, 4.75 / 1.9375f64.sqrt()));
    }

    #[test]
    fn devices_and_metrics_are_independent() {
        let mut det = Detector::new(settings(5));
        let mut events = Vec::new();
        for (i, v) in BASE.iter().enumerate() {
            det.observe(&reading("a", "t", *v, i as i64), &mut events);
            det.observe(&reading("b", "t", *v * 100.0, i as i64), &mut events);
        }
        // 16 is anomalous for a (z 3.16) but not for b (baseline ~1100).
        det.observe(&reading("a", "t", 16.0, 9), &mut events);
        det.observe(&reading("b", "t", 16.0 * 70.0, 9), &mut events);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].device, "a");
    }

    #[test]
    fn metric_list_and_flat_signals() {
        let mut det = Detector::new(Settings {
            metrics: vec!["other".into()],
            ..settings(5)
        });
        assert!(feed(&mut det, &[1.0, 1.0, 1.0, 1.0, 1.0, 50.0]).is_empty());
        assert!(det.device("d").unwrap().metrics.is_empty());

        // A flat baseline has stddev 0: no alert by default...
        let mut det = Detector::new(settings(5));
        assert!(feed(&mut det, &[1.0, 1.0, 1.0, 1.0, 1.0, 50.0]).is_empty());
        // ...but min_stddev gives it a floor: z = (5 - 1)/1 = 4.
        let mut det = Detector::new(Settings {
            min_stddev: 1.0,
            ..settings(5)
        });
        let events = feed(&mut det, &[1.0, 1.0, 1.0, 1.0, 1.0, 5.0]);
        assert_eq!(events.len(), 1);
        assert!(close(events[0].z, 4.0));
        assert_eq!(events[0].stddev, 0.0);
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let mut det = Detector::new(settings(5));
        let mut values = BASE.to_vec();
        values.extend([f64::NAN, f64::INFINITY]);
        assert!(feed(&mut det, &values).is_empty());
        assert_eq!(det.device("d").unwrap().metrics["t"].baseline.n, 5);
    }

    #[test]
    fn outbound_alert_document() {
        let mut det = Detector::new(settings(5));
        let mut values = BASE.to_vec();
        values.push(16.0);
        let events = feed(&mut det, &values);
        let out = det.outbound(&events[0]).unwrap();
        assert_eq!(out.topic, "$weir/alerts/d");
        let v: serde_json::Value = serde_json::from_str(&out.payload).unwrap();
        assert_eq!(v["kind"], "zscore");
        assert_eq!(v["device"], "d");
        assert_eq!(v["device_type"], "thermostat");
        assert_eq!(v["metric"], "t");
        assert_eq!(v["value"], 16.0);
        assert_eq!(v["mean"], 11.0);
        assert_eq!(v["threshold"], 3.0);
        assert_eq!(v["received_at"], 1005);
        assert_eq!(v["device_time"], 1000);
        assert!(close(v["z"].as_f64().unwrap(), 10f64.sqrt()));
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        for k in [
            "kind",
            "device",
            "device_type",
            "metric",
            "value",
            "mean",
            "stddev",
            "z",
            "threshold",
            "rule",
            "topic",
            "received_at",
            "device_time",
        ] {
            assert!(keys.contains(&k), "missing {k}");
        }
        let mut msg = reading("d", "t", 1.0, 1);
        msg.device_time = None;
        let mut e = events[0].clone();
        e.device_time = msg.device_time;
        let v: serde_json::Value =
            serde_json::from_str(&det.outbound(&e).unwrap().payload).unwrap();
        assert!(v["device_time"].is_null());
    }

    #[test]
    fn persistence_round_trip() {
        let mut det = Detector::new(settings(5));
        feed(&mut det, &BASE);
        feed(&mut det, &[30.0]); // alerting, excluded
        let entries = det.dirty_entries();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, "d");
        let saved = DeviceState::from_json(&entries[0].1).unwrap();
        assert_eq!(&saved, det.device("d").unwrap());
        det.saved(&entries);
        assert!(det.dirty_entries().is_empty());

        // A new instance loads the saved state and continues exactly where
        // the first one is: same z, and the ongoing excursion is not
        // re-alerted.
        let mut fresh = Detector::new(settings(5));
        assert_eq!(fresh.unknown_devices(["d"]), vec!["d"]);
        fresh.load("d", &entries[0].1).unwrap();
        assert!(fresh.unknown_devices(["d"]).is_empty());
        assert!(fresh.dirty_entries().is_empty());
        let a = feed(&mut det, &[30.0, 11.0, 11.0, 11.0, 17.0]);
        let b = feed(&mut fresh, &[30.0, 11.0, 11.0, 11.0, 17.0]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 2, "{a:?}"); // recovered, then a new alert for 17
        assert_eq!(a[0].kind, Kind::Recovered);
        assert_eq!(a[1].kind, Kind::Zscore);
    }

    #[test]
    fn corrupt_saved_state_starts_fresh() {
        let mut det = Detector::new(settings(5));
        assert!(det.load("d", b"not json").is_err());
        assert_eq!(det.device("d"), Some(&DeviceState::default()));
        // A decodable document with an unusable baseline drops that metric.
        det.load(
            "e",
            br#"{"v":1,"metrics":{"t":{"n":3,"mean":1.0,"var":-1.0},"u":{"n":2,"mean":1.0,"var":0.5}}}"#,
        )
        .unwrap();
        let e = det.device("e").unwrap();
        assert!(!e.metrics.contains_key("t"));
        assert_eq!(e.metrics["u"].baseline.n, 2);
    }

    #[test]
    fn a_metric_no_longer_scored_is_dropped_on_load_and_not_scored() {
        let mut det = Detector::new(settings(5));
        feed(&mut det, &BASE);
        let entries = det.dirty_entries();
        // The operator now ignores `t`: its saved baseline is not loaded,
        // and a spike in it raises nothing.
        let mut fresh = Detector::new(Settings {
            ignore: vec!["t".into(), "ts".into()],
            ..settings(5)
        });
        fresh.load("d", &entries[0].1).unwrap();
        assert!(fresh.device("d").unwrap().metrics.is_empty());
        assert!(feed(&mut fresh, &[1000.0]).is_empty());
        assert!(fresh.device("d").unwrap().metrics.is_empty());
    }

    #[test]
    fn saved_format_is_stable() {
        let mut s = DeviceState::default();
        s.metrics.insert(
            "temperature",
            MetricState {
                baseline: Baseline {
                    n: 2,
                    mean: 1.5,
                    var: 0.25,
                },
                alerting: false,
                calm: 0,
            },
        );
        s.v = 1;
        assert_eq!(
            String::from_utf8(s.to_json()).unwrap(),
            r#"{"v":1,"metrics":{"temperature":{"n":2,"mean":1.5,"var":0.25,"alerting":false,"calm":0}}}"#
        );
    }

    /// The memo of the last unscored field never turns a scored metric
    /// down: not one named "" (the memo starts empty), not one read after
    /// unscored fields that take turns.
    #[test]
    fn the_unscored_memo_never_hides_a_scored_metric() {
        let with = |metrics: &[(&str, f64)], at: i64| Message {
            metrics: metrics.iter().map(|&(n, v)| Metric::new(n, v)).collect(),
            ..reading("d", "x", 0.0, at)
        };
        let mut det = Detector::new(settings(5));
        let mut events = Vec::new();
        for i in 0..8 {
            let unscored = if i % 2 == 0 { "ts" } else { "timestamp" };
            let metrics = [
                ("", 10.0 + (i % 2) as f64),
                (unscored, 1.0),
                ("t", 20.0 + (i % 3) as f64),
            ];
            det.observe(&with(&metrics, 1000 + i), &mut events);
        }
        let held = &det.device("d").unwrap().metrics;
        assert_eq!(held.len(), 2, "{held:?}");
        assert_eq!(held[""].baseline.n, 8);
        assert_eq!(held["t"].baseline.n, 8);
        assert!(events.is_empty(), "{events:?}");
    }

    /// Unscored fields among the metrics (a leading `ts`) and readings
    /// whose metrics come in another order score each metric against its
    /// own baseline, as readings of the scored metrics alone do.
    #[test]
    fn metric_order_and_unscored_fields_do_not_mix_baselines() {
        let with = |metrics: &[(&str, f64)], at: i64| Message {
            metrics: metrics.iter().map(|&(n, v)| Metric::new(n, v)).collect(),
            ..reading("d", "x", 0.0, at)
        };
        let (mut mixed, mut plain) = (Detector::new(settings(5)), Detector::new(settings(5)));
        let (mut got, mut want) = (Vec::new(), Vec::new());
        for i in 0..12 {
            let (t, h, p) = (
                20.0 + (i % 3) as f64,
                40.0 + (i % 4) as f64,
                1000.0 + (i % 2) as f64,
            );
            let at = 1000 + i;
            let shuffled: Vec<(&str, f64)> = match i % 3 {
                0 => vec![("ts", at as f64), ("t", t), ("h", h), ("p", p)],
                1 => vec![("p", p), ("ts", at as f64), ("h", h), ("t", t)],
                _ => vec![("h", h), ("t", t), ("p", p), ("timestamp", 7.0)],
            };
            mixed.observe(&with(&shuffled, at), &mut got);
            plain.observe(&with(&[("t", t), ("h", h), ("p", p)], at), &mut want);
        }
        // A spike on each metric, in the shuffled order.
        mixed.observe(
            &with(
                &[("ts", 2000.0), ("p", 2000.0), ("h", 90.0), ("t", 60.0)],
                2000,
            ),
            &mut got,
        );
        plain.observe(
            &with(&[("t", 60.0), ("h", 90.0), ("p", 2000.0)], 2000),
            &mut want,
        );
        let z = |events: &[Event]| {
            let mut v: Vec<(String, u64)> = events
                .iter()
                .map(|e| (e.metric.clone(), e.z.to_bits()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(want.len(), 3, "{want:?}");
        assert_eq!(z(&got), z(&want));
        let held = &mixed.device("d").unwrap().metrics;
        assert_eq!(held.len(), 3);
        assert!(!held.contains_key("ts") && !held.contains_key("timestamp"));
    }
}
