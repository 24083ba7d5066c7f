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
}

impl Timeseries {
    /// `metrics` empty = every metric not in `ignore`.
    pub fn with(time: TimeSource, metrics: Vec<String>, ignore: Vec<String>) -> Self {
        Timeseries {
            time,
            metrics,
            ignore,
        }
    }

    /// The reading for one message, or `None` when it has no (kept) metric.
    pub fn reading<'m>(&self, m: impl Into<MessageRef<'m>>) -> Option<Reading> {
        let m = m.into();
        let measures: Vec<_> = m
            .metrics()
            .filter(|(name, value)| {
                value.is_finite() && config::selects(&self.metrics, &self.ignore, name)
            })
            .map(|(name, value)| Metric::new(name, value))
            .collect();
        if measures.is_empty() {
            return None;
        }
        let time = match self.time {
            TimeSource::Device => m.device_time.unwrap_or(m.received_at),
            TimeSource::Received => m.received_at,
        };
        Some(Reading::new(m.device, m.device_type, time, measures))
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
        let readings: Vec<Reading> = batch.iter().filter_map(|m| self.reading(m)).collect();
        timeseries::write(&readings)
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), String> {
        let readings: Vec<Reading> = batch.iter().filter_map(|m| self.reading(m)).collect();
        timeseries::write(&readings)
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
