//! # timeseries: readings to the time-series tier
//!
//! A sink plugin. Each message becomes one multi-measure reading (its
//! numeric fields) of its device, written through `weir:plugin/timeseries`
//! to whichever backend the operator configured (embedded store by default,
//! Timestream or InfluxDB). Messages without numeric fields are skipped.
//!
//! ## Settings
//!
//! | key       | default  | meaning |
//! |-----------|----------|---------|
//! | `time`    | `device` | `device`: the device's own timestamp when it is sane, else the receive time; `received`: always the server receive time |
//! | `metrics` | (all)    | comma-separated list of the fields to keep; default every numeric field not in `ignore` |
//! | `ignore`  | `ts,timestamp` | fields never kept when `metrics` is not set (the device clock is the reading's time, not a measure) |
//!
//! ## Grants
//!
//! `timeseries = true`.

use weir_plugin::timeseries::{self, Reading};
use weir_plugin::{config, export_sink, Batch, Message, MessageRef, Metric, Sink};

/// Which clock stamps a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    Device,
    Received,
}

/// The plugin instance.
pub struct Timeseries {
    time: TimeSource,
    metrics: Vec<String>,
    ignore: Vec<String>,
    /// The readings of the last batch, kept so that the next one refills
    /// their strings and measure lists instead of allocating its own: a
    /// batch of known devices and metrics allocates nothing.
    pool: Vec<Reading>,
}

/// `text` into `slot`, reusing its allocation.
fn assign(slot: &mut String, text: &str) {
    slot.clear();
    slot.push_str(text);
}

fn empty_reading() -> Reading {
    Reading::new(String::new(), String::new(), 0, Vec::new())
}

impl Timeseries {
    /// `metrics` empty = every metric not in `ignore`.
    pub fn with(time: TimeSource, metrics: Vec<String>, ignore: Vec<String>) -> Self {
        Timeseries {
            time,
            metrics,
            ignore,
            pool: Vec::new(),
        }
    }

    /// The reading for one message, or `None` when it has no (kept) metric.
    pub fn reading<'m>(&self, m: impl Into<MessageRef<'m>>) -> Option<Reading> {
        let mut reading = empty_reading();
        self.fill(&mut reading, &m.into()).then_some(reading)
    }

    /// Make `slot` the reading of `m`, reusing its strings and measures;
    /// `false` (and `slot` is left half-filled) when `m` has no kept metric.
    fn fill(&self, slot: &mut Reading, m: &MessageRef<'_>) -> bool {
        let mut kept = 0;
        for (name, value) in m.metrics() {
            if !(value.is_finite() && config::selects(&self.metrics, &self.ignore, name)) {
                continue;
            }
            match slot.measures.get_mut(kept) {
                Some(measure) => {
                    assign(&mut measure.name, name);
                    measure.value = value;
                }
                None => slot.measures.push(Metric::new(name, value)),
            }
            kept += 1;
        }
        if kept == 0 {
            return false;
        }
        slot.measures.truncate(kept);
        assign(&mut slot.device, m.device());
        assign(&mut slot.device_type, m.device_type());
        slot.time = match self.time {
            TimeSource::Device => m.device_time().unwrap_or(m.received_at()),
            TimeSource::Received => m.received_at(),
        };
        true
    }

    /// Add the reading of `m` (if it has a kept metric) to `pool`, whose
    /// first `used` slots are this batch's so far.
    fn add(&self, pool: &mut Vec<Reading>, used: &mut usize, m: &MessageRef<'_>) {
        if *used == pool.len() {
            pool.push(empty_reading());
        }
        if self.fill(&mut pool[*used], m) {
            *used += 1;
        }
    }

    /// Write the pool's first `used` readings, and keep the pool for the
    /// next batch.
    fn write_pool(&mut self, pool: Vec<Reading>, used: usize) -> Result<(), String> {
        let written = timeseries::write(&pool[..used]);
        self.pool = pool;
        written
    }
}

impl Sink for Timeseries {
    fn new() -> Result<Self, String> {
        let time = match config::get("time").as_deref().map(str::trim) {
            None | Some("") | Some("device") => TimeSource::Device,
            Some("received") => TimeSource::Received,
            Some(other) => {
                return Err(format!(
                    "setting `time` must be `device` or `received`, not {other:?}"
                ))
            }
        };
        let metrics = config::get("metrics")
            .map(|s| config::parse_list(&s))
            .unwrap_or_default();
        let ignore = config::get("ignore")
            .map(|s| config::parse_list(&s))
            .unwrap_or_else(|| vec!["ts".into(), "timestamp".into()]);
        Ok(Timeseries::with(time, metrics, ignore))
    }

    fn write(&mut self, batch: Vec<Message>) -> Result<(), String> {
        let (mut pool, mut used) = (std::mem::take(&mut self.pool), 0);
        for m in &batch {
            self.add(&mut pool, &mut used, &MessageRef::from(m));
        }
        self.write_pool(pool, used)
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), String> {
        let (mut pool, mut used) = (std::mem::take(&mut self.pool), 0);
        let _ = batch.try_for_each(|_, m| {
            self.add(&mut pool, &mut used, m);
            Ok::<(), ()>(())
        });
        self.write_pool(pool, used)
    }
}

export_sink!(Timeseries);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin::Metric;

    fn msg(device_time: Option<i64>) -> Message {
        Message {
            rule: "telemetry".into(),
            topic: "dt/thermostat/dev-1/telemetry".into(),
            client_id: "dev-1".into(),
            device: "dev-1".into(),
            device_type: "thermostat".into(),
            received_at: 1_764_300_000_500,
            device_time,
            metrics: vec![
                Metric {
                    name: "ts".into(),
                    value: 1.0,
                },
                Metric {
                    name: "temperature".into(),
                    value: 21.5,
                },
                Metric {
                    name: "humidity".into(),
                    value: f64::NAN,
                },
            ],
            payload: "{}".into(),
        }
    }

    /// A pooled slot refilled by another message holds exactly what a
    /// fresh reading of that message holds.
    #[test]
    fn a_reused_slot_equals_a_fresh_reading() {
        let p = Timeseries::with(TimeSource::Device, vec![], vec!["ts".into()]);
        let mut wide = msg(Some(7));
        wide.metrics.push(Metric::new("pressure", 1013.0));
        wide.metrics.push(Metric::new("battery", 3.7));
        let mut other = msg(None);
        other.device = "dev-22".into();
        other.device_type = "meter".into();
        let mut none = msg(None);
        none.metrics.retain(|m| m.name == "ts");
        let mut slot = empty_reading();
        for m in [&wide, &none, &other, &wide, &other] {
            let filled = p.fill(&mut slot, &MessageRef::from(m));
            match p.reading(m) {
                Some(fresh) => {
                    assert!(filled);
                    assert_eq!(
                        (&slot.device, &slot.device_type, slot.time),
                        (&fresh.device, &fresh.device_type, fresh.time)
                    );
                    let pairs = |r: &Reading| -> Vec<(String, u64)> {
                        r.measures
                            .iter()
                            .map(|x| (x.name.clone(), x.value.to_bits()))
                            .collect()
                    };
                    assert_eq!(pairs(&slot), pairs(&fresh));
                }
                None => assert!(!filled),
            }
        }
    }

    #[test]
    fn device_time_preferred_and_non_finite_dropped() {
        let p = Timeseries::with(TimeSource::Device, vec![], vec!["ts".into()]);
        let r = p.reading(&msg(Some(1_764_300_000_000))).unwrap();
        assert_eq!(r.time, 1_764_300_000_000);
        assert_eq!(r.device, "dev-1");
        assert_eq!(r.device_type, "thermostat");
        let names: Vec<_> = r.measures.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["temperature"]);
        assert_eq!(p.reading(&msg(None)).unwrap().time, 1_764_300_000_500);
    }

    #[test]
    fn received_time_and_metric_filter() {
        let p = Timeseries::with(TimeSource::Received, vec!["temperature".into()], vec![]);
        let r = p.reading(&msg(Some(1))).unwrap();
        assert_eq!(r.time, 1_764_300_000_500);
        assert_eq!(r.measures.len(), 1);
        assert_eq!(r.measures[0].value, 21.5);
        let none = Timeseries::with(TimeSource::Device, vec!["pressure".into()], vec![]);
        assert!(none.reading(&msg(None)).is_none());
    }
}
