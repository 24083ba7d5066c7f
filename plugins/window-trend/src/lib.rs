//! # window-trend: tumbling windows and trend alerts for Weir
//!
//! An aggregator plugin (`weir:plugin/aggregator-plugin`). Per device and
//! metric it keeps tumbling windows (`window_size`, aligned to the epoch)
//! of count, min, max, mean, sample stddev, first and last. Event time is
//! the message's `device-time` when the device sent a sane one, else the
//! server receive time. Windows close on the device's *event clock* (see
//! [`device`]): its newest event time, advanced by the wall clock on every
//! `tick`, so a replay at 1000× closes windows at its own pace and a
//! silent device's window still closes. A window closes when that clock
//! reaches `end + allowed_lateness`; a reading for a closed window is
//! *late*: counted, logged and reported in the `late` field of the
//! device's next closed window, never folded in silently.
//!
//! Each closed window is returned as a message on
//! `weir/aggregates/<device_type>/<device>` (`_` for an empty type):
//!
//! ```json
//! {"device":"dev-1","device_type":"thermostat","window_start":1764300000000,
//!  "window_end":1764300060000,"window_start_rfc3339":"2025-11-28T03:20:00.000Z",
//!  "window_end_rfc3339":"2025-11-28T03:21:00.000Z","window_ms":60000,"late":0,
//!  "metrics":{"temperature":{"count":60,"min":20.1,"max":21.9,"mean":21.0,
//!  "stddev":0.41,"first":20.9,"last":21.2}}}
//! ```
//!
//! After each closed window the last `trend_windows` (K) window means of
//! each metric are checked for a trend ([`trend`]); a trend raises one
//! alert on `$weir/alerts/<device>` (field conventions of zscore's):
//!
//! ```json
//! {"kind":"trend","device":"dev-1","device_type":"thermostat","metric":"temperature",
//!  "value":24.0,"slope":1.0,"rise":5.0,"pooled_stddev":1.0,"threshold":2.0,"min_delta":0.0,
//!  "method":"slope","windows":5,"window_ms":60000,"window_start":…,"window_end":…,
//!  "rule":"telemetry","topic":"dt/thermostat/dev-1/telemetry",
//!  "received_at":1764300299950,"device_time":1764300299900}
//! ```
//!
//! A sustained trend alerts once: another alert needs `trend_cooldown`
//! closed windows without a trend first.
//!
//! ## Settings (all optional)
//!
//! | key                  | default          | meaning |
//! |----------------------|------------------|---------|
//! | `window_size`        | `60s`            | window length (`ms`, `s`, `m`, `h`, `d`; a plain number is seconds) |
//! | `allowed_lateness`   | `10s`            | how long after its end (in event time) a window stays open for out-of-order readings |
//! | `trend_windows`      | `5`              | K, the closed windows a trend is judged over (≥ 2) |
//! | `trend_method`       | `slope`          | `slope` (least-squares slope of the means; rise = slope·K) or `rising` (K strictly monotone means; rise = last − first) |
//! | `trend_threshold`    | `2`              | the rise must exceed this many pooled within-window stddevs (0 = off) |
//! | `trend_min_delta`    | `0`              | and be at least this much in the metric's own unit (0 = off) |
//! | `trend_direction`    | `both`           | `up`, `down` or `both` |
//! | `trend_cooldown`     | K                | closed windows without a trend before a new trend alert (0 = alert on every window with a trend) |
//! | `trend_drift_threshold` | `0`           | optional third test: the rise must also exceed this many σₘ, the metric's usual change of the mean between adjacent windows (an EWMA, see [`trend::Drift`]); for autocorrelated signals whose windows wander more than their within-window spread suggests (0 = off) |
//! | `trend_drift_half_life` | `30`          | half-life of that estimate, in windows |
//! | `metrics`            | (all)            | comma list of metrics; default every numeric metric not in `ignore` |
//! | `ignore`             | `ts,timestamp`   | metrics never aggregated when `metrics` is not set |
//! | `publish_aggregates` | `true`           | return closed windows as messages |
//! | `bucket`             | `window-trend`   | key-value bucket of the state |
//! | `alert_topic`        | `$weir/alerts`   | trend alerts go to `<alert_topic>/<device>` |
//! | `aggregate_topic`    | `weir/aggregates`| closed windows go to `<aggregate_topic>/<device_type>/<device>` |
//!
//! ## State
//!
//! Open windows, the event clock, late counts and each metric's last K
//! window summaries, drift estimate and alert state live in memory and in the bucket
//! `window-trend`, key `<device>` ([`device::DeviceState`] as JSON). A
//! device is loaded when an instance first sees it; `checkpoint` writes the
//! devices changed since the last one. After a restart, a device's saved
//! open windows close once it publishes again (an instance only ticks the
//! devices it has seen, since the host shards devices across workers).
//!
//! ## Grants
//!
//! key-value bucket `window-trend`; publish to `weir/aggregates/#` and
//! `$weir/alerts/+`.

pub mod device;
pub mod settings;
pub mod stats;
pub mod timefmt;
pub mod tracker;
pub mod trend;

use settings::Settings;
use tracker::{Output, Tracker};
use weir_plugin::kv::Bucket;
use weir_plugin::{
    config, export_aggregator, log, Aggregator, Batch, Message, MessageRef, Outbound, Processor,
};

/// The plugin instance: the tracker and its bucket.
pub struct WindowTrend {
    tracker: Tracker,
    bucket: Bucket,
}

impl WindowTrend {
    /// Load the devices not in memory, then fold every message in.
    /// Fold every reading in. Devices not in memory are loaded when the
    /// first of them is met: those of the rest of the batch, with one
    /// `get-many`.
    fn run<'a>(
        &mut self,
        devices: impl Iterator<Item = &'a str> + Clone,
        messages: impl Iterator<Item = MessageRef<'a>>,
    ) -> Result<Vec<Outbound>, String> {
        let mut out = Output::default();
        for (i, msg) in messages.enumerate() {
            if !self.tracker.observe_held(msg, &mut out) {
                self.tracker
                    .load_missing(&self.bucket, devices.clone().skip(i))?;
                self.tracker.observe(msg, &mut out);
            }
        }
        Ok(self.finish(out))
    }

    /// Turn a call's output into outbound messages, logging late readings.
    fn finish(&self, out: Output) -> Vec<Outbound> {
        for (device, n) in &out.late {
            log::warn(format!(
                "{n} late reading(s) from device `{device}`: window already closed (counted in its next window's `late`)"
            ));
        }
        let mut messages = out.messages;
        for alert in &out.alerts {
            match self.tracker.alert_outbound(alert) {
                Ok(o) => messages.push(o),
                Err(e) => log::error(format!("cannot encode trend alert: {e}")),
            }
        }
        messages
    }
}

impl Processor for WindowTrend {
    fn new() -> Result<Self, String> {
        let settings = Settings::from_lookup(config::get)?;
        let bucket = Bucket::open(&settings.bucket)?;
        log::debug(format!("window-trend settings: {settings:?}"));
        Ok(WindowTrend {
            tracker: Tracker::new(settings),
            bucket,
        })
    }

    fn process(&mut self, batch: Vec<Message>) -> Result<Vec<Outbound>, String> {
        self.run(
            batch.iter().map(|m| m.device.as_str()),
            batch.iter().map(MessageRef::from),
        )
    }

    fn process_batch(&mut self, batch: &Batch) -> Result<Vec<Outbound>, String> {
        let mut out = Output::default();
        batch.try_for_each(|i, msg| {
            if !self.tracker.observe_held(*msg, &mut out) {
                self.tracker
                    .load_missing(&self.bucket, batch.devices().skip(i))?;
                self.tracker.observe(*msg, &mut out);
            }
            Ok::<(), String>(())
        })?;
        Ok(self.finish(out))
    }

    fn checkpoint(&mut self) -> Result<(), String> {
        let entries = self.tracker.dirty_entries();
        if entries.is_empty() {
            return Ok(());
        }
        self.bucket.set_many(&entries)?;
        self.tracker.saved(&entries);
        Ok(())
    }
}

impl Aggregator for WindowTrend {
    fn tick(&mut self, now: i64) -> Result<Vec<Outbound>, String> {
        let mut out = Output::default();
        self.tracker.tick(now, &mut out);
        Ok(self.finish(out))
    }
}

export_aggregator!(WindowTrend);
