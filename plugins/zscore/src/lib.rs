//! # zscore: per-device anomaly detection for Weir
//!
//! A processor plugin (`weir:plugin/processor-plugin`). For every device and
//! every scored metric it keeps an online baseline (mean and variance) and
//! scores each reading as `z = (value - mean) / stddev` against the baseline
//! *before* the reading. When `|z| > threshold` after the warm-up it returns
//! an alert on `$weir/alerts/<device>`:
//!
//! ```json
//! {"kind":"zscore","device":"dev-1","device_type":"thermostat","metric":"temperature",
//!  "value":35.2,"mean":21.4,"stddev":0.8,"z":17.25,"threshold":3.0,"rule":"telemetry",
//!  "topic":"dt/thermostat/dev-1/telemetry","received_at":1764300000123,"device_time":1764300000000}
//! ```
//!
//! A sustained excursion raises one alert; when the metric has been back
//! within the threshold for `cooldown` consecutive readings, a notice with
//! `"kind":"recovered"` (same fields, for the recovering reading) follows.
//!
//! ## Settings (all optional)
//!
//! | key                 | default          | meaning |
//! |---------------------|------------------|---------|
//! | `threshold`         | `3`              | alert when \|z\| is greater |
//! | `warmup`            | `20`             | readings that only build the baseline (at least 2) |
//! | `half_life`         | `0`              | 0 = Welford (all readings weigh the same, z in *sample* stddev); h > 0 = exponentially weighted mean/variance whose weights halve every h readings |
//! | `metrics`           | (all)            | comma list of metrics to score; default every numeric metric not in `ignore` |
//! | `ignore`            | `ts,timestamp`   | metrics never scored when `metrics` is not set |
//! | `exclude_anomalies` | `true`           | keep readings with \|z\| > threshold out of the baseline |
//! | `cooldown`          | `3`              | consecutive readings within threshold that end an excursion (`recovered`); 0 = no de-duplication: every anomalous reading alerts and no recovery notices |
//! | `min_stddev`        | `0`              | floor of the stddev z is measured in (a flat baseline otherwise scores every change as 0) |
//! | `bucket`            | `zscore`         | key-value bucket of the baselines |
//! | `alert_topic`       | `$weir/alerts`   | alerts go to `<alert_topic>/<device>` |
//!
//! ## State
//!
//! Baselines live in memory and in the key-value bucket `zscore`, key
//! `<device>`, value the JSON of all that device's metrics (see
//! [`detector::DeviceState`]). A device seen for the first time by an
//! instance is loaded from the bucket (one `get-many` per batch for all new
//! devices); `checkpoint` writes the devices changed since the last one (one
//! `set-many`). So a reloaded plugin or a restarted host continues from the
//! saved baselines.
//!
//! ## Grants
//!
//! key-value bucket `zscore`; publish to `$weir/alerts/#`.

pub mod baseline;
pub mod detector;
pub mod metric_map;
pub mod settings;

use detector::Detector;
use settings::Settings;
use weir_plugin::kv::Bucket;
use weir_plugin::{config, export_processor, log, Batch, Message, MessageRef, Outbound, Processor};

/// The plugin instance: the detector and its bucket.
pub struct ZScore {
    detector: Detector,
    bucket: Bucket,
}

impl Processor for ZScore {
    fn new() -> Result<Self, String> {
        let settings = Settings::from_lookup(config::get)?;
        let bucket = Bucket::open(&settings.bucket)?;
        log::debug(format!("zscore settings: {settings:?}"));
        Ok(ZScore {
            detector: Detector::new(settings),
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
        let mut events = Vec::new();
        batch.try_for_each(|i, msg| {
            if !self.detector.observe_held(*msg, &mut events) {
                self.first_seen(batch, i, *msg, &mut events)?;
            }
            Ok::<(), String>(())
        })?;
        Ok(self.encode(&events))
    }

    fn checkpoint(&mut self) -> Result<(), String> {
        let entries = self.detector.dirty_entries();
        if entries.is_empty() {
            return Ok(());
        }
        self.bucket.set_many(&entries)?;
        self.detector.saved(&entries);
        Ok(())
    }
}

impl ZScore {
    /// Score every message, encode alerts. Baselines of devices not in
    /// memory are loaded when the first of them is met: those of the rest
    /// of the batch, with one `get-many`.
    fn run<'a>(
        &mut self,
        devices: impl Iterator<Item = &'a str> + Clone,
        messages: impl Iterator<Item = MessageRef<'a>>,
    ) -> Result<Vec<Outbound>, String> {
        let mut events = Vec::new();
        for (i, msg) in messages.enumerate() {
            if !self.detector.observe_held(msg, &mut events) {
                self.detector
                    .load_missing(&self.bucket, devices.clone().skip(i))?;
                self.detector.observe(msg, &mut events);
            }
        }
        Ok(self.encode(&events))
    }

    /// A device not in memory: load the batch's unknown devices, then
    /// score. Rare (once per device per instance), so kept out of the
    /// per-message loop.
    #[cold]
    #[inline(never)]
    fn first_seen(
        &mut self,
        batch: &Batch,
        i: usize,
        msg: MessageRef<'_>,
        events: &mut Vec<detector::Event>,
    ) -> Result<(), String> {
        self.detector
            .load_missing(&self.bucket, batch.devices().skip(i))?;
        self.detector.observe(msg, events);
        Ok(())
    }

    /// The alerts of `events` as outbound messages.
    fn encode(&self, events: &[detector::Event]) -> Vec<Outbound> {
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            match self.detector.outbound(event) {
                Ok(o) => out.push(o),
                Err(e) => log::error(format!("cannot encode alert: {e}")),
            }
        }
        out
    }
}

export_processor!(ZScore);
