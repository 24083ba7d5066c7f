//! # archive: every message to the Parquet archive
//!
//! A sink plugin. Each message becomes one archive row (receive and device
//! times, device id and type, topic, numeric fields, raw payload), appended
//! through `weir:plugin/archive`. The host partitions rows by device type
//! and date, rolls Parquet files by size and age, and puts them on local
//! disk or in S3, as the operator configured.
//!
//! ## Settings
//!
//! None.
//!
//! ## Grants
//!
//! `archive = true`.

use weir_plugin::archive::{self, Row};
use weir_plugin::{export_sink, Batch, Message, MessageRef, Metric, Sink};

/// The plugin instance.
pub struct Archive;

/// The rows for a batch, in order.
pub fn rows(batch: &[Message]) -> Vec<Row> {
    batch.iter().map(Row::from_message).collect()
}

/// The row of one message of a batch.
pub fn row(m: MessageRef<'_>) -> Row {
    Row {
        device: m.device.to_string(),
        device_type: m.device_type.to_string(),
        topic: m.topic.to_string(),
        received_at: m.received_at,
        device_time: m.device_time,
        metrics: m.metrics().map(|(n, v)| Metric::new(n, v)).collect(),
        payload: m.payload.to_string(),
    }
}

impl Sink for Archive {
    fn new() -> Result<Self, String> {
        Ok(Archive)
    }

    fn write(&mut self, batch: Vec<Message>) -> Result<(), String> {
        archive::append(&rows(&batch))
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), String> {
        archive::append(&batch.iter().map(row).collect::<Vec<_>>())
    }
}

export_sink!(Archive);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin::Metric;

    #[test]
    fn a_row_keeps_every_field() {
        let m = Message {
            rule: "telemetry".into(),
            topic: "dt/pump/p-7/telemetry".into(),
            client_id: "p-7".into(),
            device: "p-7".into(),
            device_type: "pump".into(),
            received_at: 10,
            device_time: Some(9),
            metrics: vec![Metric {
                name: "rpm".into(),
                value: 1200.0,
            }],
            payload: r#"{"rpm":1200}"#.into(),
        };
        let r = rows(std::slice::from_ref(&m));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].device, "p-7");
        assert_eq!(r[0].device_type, "pump");
        assert_eq!(r[0].topic, "dt/pump/p-7/telemetry");
        assert_eq!((r[0].received_at, r[0].device_time), (10, Some(9)));
        assert_eq!(r[0].metrics[0].value, 1200.0);
        assert_eq!(r[0].payload, r#"{"rpm":1200}"#);
    }
}
