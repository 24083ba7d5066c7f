//! # kinesis: every message as a stream record
//!
//! A sink plugin. Each message becomes one record of the stream named by
//! the `stream` setting (an operator-configured `[stream.<name>]`, for
//! example a Kinesis data stream), partitioned by device so one device's
//! records stay in order. The host paces records to each shard's budget and
//! retries exactly the records that fail.
//!
//! The record data is the rule output (the message payload), or with
//! `envelope = true` a JSON envelope
//! `{"device","device_type","topic","received_at","payload"}`.
//!
//! ## Settings
//!
//! | key        | default | meaning |
//! |------------|---------|---------|
//! | `stream`   | (none)  | the stream to put to (required) |
//! | `envelope` | `false` | wrap the payload with the message's metadata |
//!
//! ## Grants
//!
//! `stream = ["<name>"]`.

use weir_plugin::stream::{self, Entry};
use weir_plugin::{config, export_sink, Message, Sink};

/// The plugin instance.
pub struct Kinesis {
    stream: String,
    envelope: bool,
}

impl Kinesis {
    pub fn with(stream: impl Into<String>, envelope: bool) -> Self {
        Kinesis {
            stream: stream.into(),
            envelope,
        }
    }

    /// The record for one message.
    pub fn entry(&self, m: &Message) -> Entry {
        let data = if self.envelope {
            let payload = serde_json::from_str::<serde_json::Value>(&m.payload)
                .unwrap_or_else(|_| serde_json::Value::String(m.payload.clone()));
            serde_json::json!({
                "device": m.device,
                "device_type": m.device_type,
                "topic": m.topic,
                "received_at": m.received_at,
                "payload": payload,
            })
            .to_string()
        } else {
            m.payload.clone()
        };
        Entry::new(m.device.clone(), data.into_bytes())
    }
}

impl Sink for Kinesis {
    fn new() -> Result<Self, String> {
        let stream = config::get("stream")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or("setting `stream` is required (the name of a [stream.<name>] in weir.toml)")?;
        let envelope = config::get_parsed("envelope", false)?;
        Ok(Kinesis::with(stream, envelope))
    }

    fn write(&mut self, batch: Vec<Message>) -> Result<(), String> {
        let entries: Vec<Entry> = batch.iter().map(|m| self.entry(m)).collect();
        stream::put(&self.stream, &entries)
    }
}

export_sink!(Kinesis);

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            rule: "r".into(),
            topic: "dt/pump/p-7/telemetry".into(),
            client_id: "p-7".into(),
            device: "p-7".into(),
            device_type: "pump".into(),
            received_at: 42,
            device_time: None,
            metrics: vec![],
            payload: r#"{"rpm":1200}"#.into(),
        }
    }

    #[test]
    fn partitioned_by_device_with_payload_or_envelope() {
        let plain = Kinesis::with("s", false).entry(&msg());
        assert_eq!(plain.partition_key, "p-7");
        assert_eq!(plain.data, br#"{"rpm":1200}"#);
        let wrapped = Kinesis::with("s", true).entry(&msg());
        let v: serde_json::Value = serde_json::from_slice(&wrapped.data).unwrap();
        assert_eq!(v["device_type"], "pump");
        assert_eq!(v["received_at"], 42);
        assert_eq!(v["payload"]["rpm"], 1200);
    }
}
