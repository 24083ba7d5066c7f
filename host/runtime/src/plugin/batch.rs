//! Building the flat batches (`weir:plugin/batches`) the engine hands to
//! plugins, and turning one back into `list<message>` for plugins of the
//! 0.1.0/0.1.1 worlds.
//!
//! Every string of a batch is appended once to its `text` and referred to
//! by a span. Strings that repeat from one message to the next (the rule,
//! the device type, a client id equal to the device, the metric names of a
//! rule's output) are stored once, so a batch of readings of one rule
//! carries each name once.

use super::bindings::{Batch, Message, Metric};
use std::borrow::Cow;

/// `device-time` of a message without one.
pub const NO_DEVICE_TIME: i64 = i64::MIN;

/// Numbers per message in `strings` (six spans).
const STRINGS: usize = 12;

/// The borrowed parts of one message, as the engine has them.
pub struct Parts<'a> {
    pub rule: &'a str,
    pub topic: &'a str,
    pub client_id: &'a str,
    pub device: &'a str,
    pub device_type: &'a str,
    pub received_at: i64,
    pub device_time: Option<i64>,
    pub metrics: &'a [MetricRef<'a>],
    pub payload: &'a str,
}

/// A numeric field of a message, its name borrowed where it can be (from
/// the payload, or from a parsed value's keys).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRef<'a> {
    pub name: Cow<'a, str>,
    pub value: f64,
}

impl<'a> From<&'a Metric> for MetricRef<'a> {
    fn from(m: &'a Metric) -> Self {
        MetricRef {
            name: Cow::Borrowed(&m.name),
            value: m.value,
        }
    }
}

/// A span of a batch's text.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Span {
    start: u32,
    len: u32,
}

const EMPTY: Span = Span { start: 0, len: 0 };

/// Accumulates messages into one flat batch.
pub struct BatchBuilder {
    batch: Batch,
    /// The previous message's rule and device type spans.
    last_rule: Option<Span>,
    last_device_type: Option<Span>,
    /// Metric-name spans of the previous message, for reuse.
    last_names: Vec<Span>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        BatchBuilder {
            batch: Batch {
                text: String::new(),
                strings: Vec::new(),
                received_at: Vec::new(),
                device_time: Vec::new(),
                metrics: Vec::new(),
                metric_names: Vec::new(),
                metric_values: Vec::new(),
            },
            last_rule: None,
            last_device_type: None,
            last_names: Vec::new(),
        }
    }
}

/// Bytes `start..start + len` of `text`, or "" when out of bounds (never,
/// for batches built here).
fn text_of(text: &str, start: u32, len: u32) -> &str {
    let start = start as usize;
    text.get(start..start + len as usize).unwrap_or("")
}

impl BatchBuilder {
    pub fn new() -> BatchBuilder {
        BatchBuilder::default()
    }

    pub fn len(&self) -> usize {
        self.batch.received_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.received_at.is_empty()
    }

    fn append(&mut self, s: &str) -> Span {
        if s.is_empty() {
            return EMPTY;
        }
        let start = self.batch.text.len();
        self.batch.text.push_str(s);
        Span {
            start: start as u32,
            len: s.len() as u32,
        }
    }

    /// `s`, reusing `previous` when it holds the same text.
    fn append_or_reuse(&mut self, s: &str, previous: Option<Span>) -> Span {
        match previous {
            Some(p) if crate::text::same(text_of(&self.batch.text, p.start, p.len), s) => p,
            _ => self.append(s),
        }
    }

    pub fn push(&mut self, m: &Parts<'_>) {
        let rule = self.append_or_reuse(m.rule, self.last_rule);
        self.last_rule = Some(rule);
        let topic = self.append(m.topic);
        let device = self.append(m.device);
        let client_id = self.append_or_reuse(m.client_id, Some(device));
        let device_type = self.append_or_reuse(m.device_type, self.last_device_type);
        self.last_device_type = Some(device_type);
        let first_metric = self.batch.metric_values.len();
        for (i, metric) in m.metrics.iter().enumerate() {
            let previous = self.last_names.get(i).copied();
            let name = self.append_or_reuse(&metric.name, previous);
            if i < self.last_names.len() {
                self.last_names[i] = name;
            } else {
                self.last_names.push(name);
            }
            self.batch.metric_names.extend([name.start, name.len]);
            self.batch.metric_values.push(metric.value);
        }
        let payload = self.append(m.payload);
        for span in [rule, topic, client_id, device, device_type, payload] {
            self.batch.strings.extend([span.start, span.len]);
        }
        self.batch.received_at.push(m.received_at);
        self.batch
            .device_time
            .push(m.device_time.unwrap_or(NO_DEVICE_TIME));
        self.batch
            .metrics
            .extend([first_metric as u32, m.metrics.len() as u32]);
    }

    /// Append a whole message.
    pub fn push_message(&mut self, m: &Message) {
        let metrics: Vec<MetricRef<'_>> = m.metrics.iter().map(MetricRef::from).collect();
        self.push(&Parts {
            rule: &m.rule,
            topic: &m.topic,
            client_id: &m.client_id,
            device: &m.device,
            device_type: &m.device_type,
            received_at: m.received_at,
            device_time: m.device_time,
            metrics: &metrics,
            payload: &m.payload,
        });
    }

    pub fn finish(self) -> Batch {
        self.batch
    }

    /// A builder holding the first `n` messages of this one (all of them
    /// when `n ≥ len`), to go on pushing to.
    pub fn prefix(&self, n: usize) -> BatchBuilder {
        let batch = self.batch.prefix(n);
        let n = batch.len();
        if n == 0 {
            return BatchBuilder::default();
        }
        // The reuse state after message `n - 1`: its rule and device type,
        // and for each metric position the name of the latest message
        // that had one there (as `push` leaves it).
        let at = (n - 1) * STRINGS;
        let span = |k: usize| Span {
            start: batch.strings[at + 2 * k],
            len: batch.strings[at + 2 * k + 1],
        };
        let mut last_names: Vec<Span> = Vec::new();
        for range in batch.metrics.chunks_exact(2) {
            let (first, count) = (range[0] as usize, range[1] as usize);
            for (i, j) in (first..first + count).enumerate() {
                let name = Span {
                    start: batch.metric_names[2 * j],
                    len: batch.metric_names[2 * j + 1],
                };
                match last_names.get_mut(i) {
                    Some(slot) => *slot = name,
                    None => last_names.push(name),
                }
            }
        }
        BatchBuilder {
            last_rule: Some(span(0)),
            last_device_type: Some(span(4)),
            last_names,
            batch,
        }
    }
}

impl Batch {
    /// A batch of no messages.
    pub fn empty() -> Batch {
        BatchBuilder::default().finish()
    }

    /// A batch of `messages`.
    pub fn from_messages(messages: &[Message]) -> Batch {
        let mut b = BatchBuilder::new();
        for m in messages {
            b.push_message(m);
        }
        b.finish()
    }

    /// The batch as `list<message>`, for plugins of the 0.1.0/0.1.1 worlds.
    pub fn to_messages(&self) -> Vec<Message> {
        (0..self.len())
            .map(|i| {
                let span = |k: usize| {
                    let at = i * STRINGS + 2 * k;
                    match self.strings.get(at..at + 2) {
                        Some(&[start, len]) => text_of(&self.text, start, len).to_string(),
                        _ => String::new(),
                    }
                };
                let (first, count) = match self.metrics.get(2 * i..2 * i + 2) {
                    Some(&[first, count]) => (first as usize, count as usize),
                    _ => (0, 0),
                };
                let metrics = (first..first + count)
                    .filter_map(|j| {
                        let value = *self.metric_values.get(j)?;
                        let name = match self.metric_names.get(2 * j..2 * j + 2) {
                            Some(&[start, len]) => text_of(&self.text, start, len),
                            _ => "",
                        };
                        Some(Metric {
                            name: name.to_string(),
                            value,
                        })
                    })
                    .collect();
                let device_time = self.device_time.get(i).copied().unwrap_or(NO_DEVICE_TIME);
                Message {
                    rule: span(0),
                    topic: span(1),
                    client_id: span(2),
                    device: span(3),
                    device_type: span(4),
                    received_at: self.received_at[i],
                    device_time: (device_time != NO_DEVICE_TIME).then_some(device_time),
                    metrics,
                    payload: span(5),
                }
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.received_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.received_at.is_empty()
    }

    /// Its first `n` messages as a batch of their own (all of it when
    /// `n ≥ len`). Messages append their strings in order, so the text they
    /// need ends where the furthest of their spans ends.
    pub fn prefix(&self, n: usize) -> Batch {
        let n = n.min(self.len());
        let values = match n {
            0 => 0,
            _ => (self.metrics[2 * (n - 1)] + self.metrics[2 * (n - 1) + 1]) as usize,
        };
        let strings = &self.strings[..n * STRINGS];
        let names = &self.metric_names[..2 * values];
        let text_end = strings
            .chunks_exact(2)
            .chain(names.chunks_exact(2))
            .map(|span| (span[0] + span[1]) as usize)
            .max()
            .unwrap_or(0);
        Batch {
            text: self.text[..text_end].to_string(),
            strings: strings.to_vec(),
            received_at: self.received_at[..n].to_vec(),
            device_time: self.device_time[..n].to_vec(),
            metrics: self.metrics[..2 * n].to_vec(),
            metric_names: names.to_vec(),
            metric_values: self.metric_values[..values].to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(device: &str, names: &[&str], payload: &str) -> Message {
        Message {
            rule: "telemetry".into(),
            topic: format!("dt/t/{device}/telemetry"),
            client_id: device.into(),
            device: device.into(),
            device_type: "thermostat".into(),
            received_at: 7,
            device_time: Some(5),
            metrics: names
                .iter()
                .enumerate()
                .map(|(i, n)| Metric {
                    name: n.to_string(),
                    value: i as f64 + 0.5,
                })
                .collect(),
            payload: payload.into(),
        }
    }

    #[test]
    fn round_trips_and_shares_repeated_strings() {
        let messages = vec![
            message("dev-1", &["temperature", "humidity"], "{\"a\":1}"),
            message("dev-2", &["temperature", "humidity"], ""),
            message("dev-3", &["temperature", "pressure", "é.ü"], "{}"),
            Message {
                client_id: "gateway".into(),
                device_type: String::new(),
                device_time: None,
                ..message("dev-4", &[], "{\"ü\":\"…\"}")
            },
        ];
        let batch = Batch::from_messages(&messages);
        assert_eq!(
            format!("{:?}", batch.to_messages()),
            format!("{messages:?}")
        );
        assert_eq!(batch.len(), 4);
        // "telemetry", "thermostat", "temperature" and "humidity" once each.
        // The rule once, plus the four topics.
        assert_eq!(batch.text.matches("telemetry").count(), 5);
        assert_eq!(batch.text.matches("thermostat").count(), 1);
        assert_eq!(batch.text.matches("temperature").count(), 1);
        assert_eq!(batch.text.matches("humidity").count(), 1);
        assert_eq!(batch.text.matches("dev-1").count(), 2); // topic and device; client id shared
    }

    /// A prefix holds the same messages as a batch built from them alone,
    /// and a builder cut to a prefix goes on as one that never had more.
    #[test]
    fn prefixes_equal_batches_of_fewer_messages() {
        let messages = vec![
            message("dev-1", &["temperature", "humidity"], "{\"a\":1}"),
            message("dev-2", &["temperature", "humidity"], ""),
            message("dev-3", &["temperature", "pressure", "é.ü"], "{}"),
            message("dev-4", &[], ""),
            message("dev-5", &["temperature"], "{\"ü\":\"…\"}"),
        ];
        let whole = Batch::from_messages(&messages);
        let mut builder = BatchBuilder::new();
        for m in &messages {
            builder.push_message(m);
        }
        for n in 0..=messages.len() + 1 {
            let fewer = Batch::from_messages(&messages[..n.min(messages.len())]);
            assert_eq!(
                format!("{:?}", whole.prefix(n)),
                format!("{fewer:?}"),
                "prefix {n}"
            );
            let mut cut = builder.prefix(n);
            let mut grown = BatchBuilder::new();
            for m in &messages[..n.min(messages.len())] {
                grown.push_message(m);
            }
            for m in &messages[1..3] {
                cut.push_message(m);
                grown.push_message(m);
            }
            assert_eq!(
                format!("{:?}", cut.finish()),
                format!("{:?}", grown.finish()),
                "prefix {n}, then more"
            );
        }
    }

    #[test]
    fn an_empty_batch_is_empty() {
        let batch = BatchBuilder::new().finish();
        assert!(batch.is_empty());
        assert!(batch.to_messages().is_empty());
    }
}
