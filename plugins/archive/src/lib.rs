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

/// Payload buffers up to this size are kept in the pool between batches.
const KEEP_PAYLOAD_BYTES: usize = 16 * 1024;

/// The plugin instance.
#[derive(Default)]
pub struct Archive {
    /// The rows of the last batch, kept so that the next one refills their
    /// strings and metric lists instead of allocating its own.
    pool: Vec<Row>,
}

/// The rows for a batch, in order.
pub fn rows(batch: &[Message]) -> Vec<Row> {
    batch.iter().map(Row::from_message).collect()
}

/// The row of one message of a batch.
pub fn row(m: MessageRef<'_>) -> Row {
    let mut row = empty_row();
    fill(&mut row, &m);
    row
}

fn empty_row() -> Row {
    Row {
        device: String::new(),
        device_type: String::new(),
        topic: String::new(),
        received_at: 0,
        device_time: None,
        metrics: Vec::new(),
        payload: String::new(),
    }
}

/// `text` into `slot`, reusing its allocation.
fn assign(slot: &mut String, text: &str) {
    slot.clear();
    slot.push_str(text);
}

/// Make `slot` the row of `m`, reusing its strings and metric list.
fn fill(slot: &mut Row, m: &MessageRef<'_>) {
    assign(&mut slot.device, m.device());
    assign(&mut slot.device_type, m.device_type());
    assign(&mut slot.topic, m.topic());
    assign(&mut slot.payload, m.payload());
    slot.received_at = m.received_at();
    slot.device_time = m.device_time();
    let metrics = m.metrics();
    slot.metrics.truncate(metrics.len());
    for (j, (name, value)) in metrics.enumerate() {
        match slot.metrics.get_mut(j) {
            Some(metric) => {
                assign(&mut metric.name, name);
                metric.value = value;
            }
            None => slot.metrics.push(Metric::new(name, value)),
        }
    }
}

impl Archive {
    /// Room in the pool for `count` rows.
    fn reserve(&mut self, count: usize) {
        if self.pool.len() < count {
            self.pool.resize_with(count, empty_row);
        }
    }

    /// Append the pool's first `count` rows (filled for this batch).
    fn append_pool(&mut self, count: usize) -> Result<(), String> {
        let appended = archive::append(&self.pool[..count]);
        // An unusually large payload's buffer is not kept for the next batch.
        for slot in &mut self.pool[..count] {
            if slot.payload.capacity() > KEEP_PAYLOAD_BYTES {
                slot.payload = String::new();
            }
        }
        appended
    }
}

impl Sink for Archive {
    fn new() -> Result<Self, String> {
        Ok(Archive::default())
    }

    fn write(&mut self, batch: Vec<Message>) -> Result<(), String> {
        self.reserve(batch.len());
        for (slot, m) in self.pool.iter_mut().zip(&batch) {
            fill(slot, &MessageRef::from(m));
        }
        self.append_pool(batch.len())
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), String> {
        self.reserve(batch.len());
        let pool = &mut self.pool;
        let _ = batch.try_for_each(|i, m| {
            if let Some(slot) = pool.get_mut(i) {
                fill(slot, m);
            }
            Ok::<(), ()>(())
        });
        self.append_pool(batch.len())
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

    /// A pooled row refilled by another message holds exactly what a fresh
    /// row of that message holds.
    #[test]
    fn a_reused_row_equals_a_fresh_one() {
        let message = |device: &str, metrics: &[(&str, f64)], device_time| Message {
            rule: "telemetry".into(),
            topic: format!("dt/pump/{device}/telemetry"),
            client_id: device.into(),
            device: device.into(),
            device_type: "pump".into(),
            received_at: 10,
            device_time,
            metrics: metrics.iter().map(|(n, v)| Metric::new(*n, *v)).collect(),
            payload: format!("{{\"device\":\"{device}\"}}"),
        };
        let wide = message(
            "p-7",
            &[("rpm", 1.0), ("temp", 2.0), ("flow", 3.0)],
            Some(9),
        );
        let narrow = message("pump-long-name-22", &[("rpm", 4.0)], None);
        let bare = message("p", &[], Some(1));
        let mut slot = empty_row();
        for m in [&wide, &narrow, &bare, &wide, &narrow] {
            fill(&mut slot, &MessageRef::from(m));
            let fresh = Row::from_message(m);
            let metrics = |r: &Row| -> Vec<(String, u64)> {
                r.metrics
                    .iter()
                    .map(|x| (x.name.clone(), x.value.to_bits()))
                    .collect()
            };
            assert_eq!(
                (&slot.device, &slot.device_type, &slot.topic, &slot.payload),
                (
                    &fresh.device,
                    &fresh.device_type,
                    &fresh.topic,
                    &fresh.payload
                )
            );
            assert_eq!(
                (slot.received_at, slot.device_time),
                (fresh.received_at, fresh.device_time)
            );
            assert_eq!(metrics(&slot), metrics(&fresh));
        }
    }
}
