//! `my-plugin`: a template Weir processor. It raises an alert when a metric
//! goes over a fixed limit, once per excursion.
//!
//! Settings (the `settings` table of the declaration, read through
//! `wasi:config`):
//!
//! * `metric`: the metric to watch (default `temperature`);
//! * `limit`: alert when the value is greater (default `30`).
//!
//! Alerts go to `$weir/alerts/<device>` as JSON, where the shipped `alerts`
//! rule picks them up; the declaration must grant `publish` to that topic.
//!
//! Keep the logic in plain Rust types and functions (like `Limit::check`) so
//! `cargo test` checks it natively; the `Processor` impl only glues it to the
//! host.

use std::collections::HashSet;
use weir_plugin::{config, export_processor, Message, Outbound, Processor};

pub struct Limit {
    metric: String,
    limit: f64,
    /// Devices currently over the limit (so an excursion alerts once).
    over: HashSet<String>,
}

impl Limit {
    /// The alert for `msg`, if it starts an excursion over the limit.
    pub fn check(&mut self, msg: &Message) -> Option<Outbound> {
        let value = msg.metric(&self.metric)?;
        if value <= self.limit {
            self.over.remove(&msg.device);
            return None;
        }
        if !self.over.insert(msg.device.clone()) {
            return None; // still over: already alerted
        }
        let payload = format!(
            r#"{{"kind":"limit","device":{:?},"metric":{:?},"value":{value},"limit":{},"received_at":{}}}"#,
            msg.device, self.metric, self.limit, msg.received_at
        );
        Some(Outbound::new(
            format!("$weir/alerts/{}", msg.device),
            payload,
        ))
    }
}

impl Processor for Limit {
    /// Called once, before the first batch.
    fn new() -> Result<Self, String> {
        Ok(Limit {
            metric: config::get("metric").unwrap_or_else(|| "temperature".into()),
            limit: config::get_parsed("limit", 30.0)?,
            over: HashSet::new(),
        })
    }

    fn process(&mut self, batch: Vec<Message>) -> Result<Vec<Outbound>, String> {
        Ok(batch.iter().filter_map(|m| self.check(m)).collect())
    }

    // The host hands over batches in flat form; the SDK copies each into
    // `Vec<Message>` for `process`. On a hot path, skip the copy: override
    // `process_batch(&mut self, batch: &weir_plugin::Batch)` and read
    // `batch.iter()`: `MessageRef`s whose accessors (`m.device()`,
    // `m.metrics()`, …) read each field in place, as the shipped zscore does.

    // State that must survive a reload or restart belongs in a key-value
    // bucket (`weir_plugin::kv::Bucket`), saved here.
    // fn checkpoint(&mut self) -> Result<(), String> { Ok(()) }
}

export_processor!(Limit);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin::Metric;

    fn reading(value: f64) -> Message {
        Message {
            device: "dev-1".into(),
            metrics: vec![Metric::new("temperature", value)],
            ..Default::default()
        }
    }

    #[test]
    fn one_alert_per_excursion() {
        let mut p = Limit::new().unwrap(); // off-host: no settings, defaults
        assert!(p.check(&reading(25.0)).is_none());
        let alert = p.check(&reading(31.0)).unwrap();
        assert_eq!(alert.topic, "$weir/alerts/dev-1");
        assert!(alert.payload.contains(r#""value":31"#));
        assert!(p.check(&reading(32.0)).is_none());
        assert!(p.check(&reading(20.0)).is_none());
        assert!(p.check(&reading(35.0)).is_some());
    }
}
