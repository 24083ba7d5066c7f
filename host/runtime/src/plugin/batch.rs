//! Building the flat batches (`weir:plugin/batches`) the engine hands to
//! plugins, with their payload fields, and turning one back into
//! `list<message>` for plugins of the 0.1.0/0.1.1 worlds.
//!
//! Every string of a batch is appended once to its `text` and referred to
//! by a span. Strings that repeat from one message to the next (the rule,
//! the device type, a client id equal to the device, the metric names of a
//! rule's output) are stored once, so a batch of readings of one rule
//! carries each name once. A payload's fields, when the engine's scan read
//! them, are spans of the payload's own text in the batch.

use super::bindings::{Batch, Message, Metric, PayloadFields};
use std::borrow::Cow;
use std::sync::Arc;

/// `device-time` of a message without one.
pub const NO_DEVICE_TIME: i64 = i64::MIN;

/// Numbers per message in `strings` (six spans).
const STRINGS: usize = 12;

/// The field count of a message whose payload fields were not read.
pub const NO_FIELDS: u32 = u32::MAX;

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
    /// The payload's top-level fields, when the engine's scan read them.
    pub fields: Option<&'a [FieldSpan]>,
}

/// A top-level field of a payload: its name (the key without quotes) and
/// its value's JSON text, as byte ranges `(start, len)` of the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpan {
    pub name: (u32, u32),
    pub value: (u32, u32),
}

/// A flat batch and its payload fields: what one plugin call hands over.
/// The fields are shared with the plugin's store for the call
/// (`batches.payload-fields`).
#[derive(Debug, Clone)]
pub struct Flat {
    pub batch: Batch,
    pub fields: Arc<PayloadFields>,
}

/// Payload fields of no messages.
pub fn no_fields() -> PayloadFields {
    PayloadFields {
        messages: Vec::new(),
        spans: Vec::new(),
    }
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
    fields: PayloadFields,
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
            fields: no_fields(),
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
        match m.fields {
            Some(fields) => {
                let first = (self.fields.spans.len() / 4) as u32;
                self.fields.messages.extend([first, fields.len() as u32]);
                for f in fields {
                    self.fields.spans.extend([
                        payload.start + f.name.0,
                        f.name.1,
                        payload.start + f.value.0,
                        f.value.1,
                    ]);
                }
            }
            None => self.fields.messages.extend([0, NO_FIELDS]),
        }
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
        self.push_message_with(m, None);
    }

    /// Append a whole message with its payload's fields.
    fn push_message_with(&mut self, m: &Message, fields: Option<&[FieldSpan]>) {
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
            fields,
        });
    }

    pub fn finish(self) -> Flat {
        Flat {
            batch: self.batch,
            fields: Arc::new(self.fields),
        }
    }

    /// A builder holding the first `n` messages of this one (all of them
    /// when `n ≥ len`), to go on pushing to.
    pub fn prefix(&self, n: usize) -> BatchBuilder {
        let batch = self.batch.prefix(n);
        let n = batch.len();
        if n == 0 {
            return BatchBuilder::default();
        }
        let fields = fields_prefix(&self.fields, n);
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
            fields,
        }
    }
}

/// The fields of the first `n` messages (`n` at most the batch's length).
/// Messages append their fields in order, so theirs end where the last
/// message with fields ends.
fn fields_prefix(fields: &PayloadFields, n: usize) -> PayloadFields {
    let messages = &fields.messages[..(2 * n).min(fields.messages.len())];
    let end = messages
        .chunks_exact(2)
        .filter(|m| m[1] != NO_FIELDS)
        .map(|m| 4 * (m[0] + m[1]) as usize)
        .max()
        .unwrap_or(0);
    PayloadFields {
        messages: messages.to_vec(),
        spans: fields.spans[..end.min(fields.spans.len())].to_vec(),
    }
}

impl Flat {
    /// A batch of no messages.
    pub fn empty() -> Flat {
        BatchBuilder::default().finish()
    }

    /// A batch of `messages` (their payload fields not read).
    pub fn from_messages(messages: &[Message]) -> Flat {
        let mut b = BatchBuilder::new();
        for m in messages {
            b.push_message(m);
        }
        b.finish()
    }

    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Its first `n` messages as a batch of their own (all of it when
    /// `n ≥ len`).
    pub fn prefix(&self, n: usize) -> Flat {
        let batch = self.batch.prefix(n);
        let fields = fields_prefix(&self.fields, batch.len());
        Flat {
            batch,
            fields: Arc::new(fields),
        }
    }
}

impl Batch {
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
        let batch = Flat::from_messages(&messages);
        assert_eq!(
            format!("{:?}", batch.batch.to_messages()),
            format!("{messages:?}")
        );
        assert_eq!(batch.len(), 4);
        // "telemetry", "thermostat", "temperature" and "humidity" once each.
        // The rule once, plus the four topics.
        assert_eq!(batch.batch.text.matches("telemetry").count(), 5);
        assert_eq!(batch.batch.text.matches("thermostat").count(), 1);
        assert_eq!(batch.batch.text.matches("temperature").count(), 1);
        assert_eq!(batch.batch.text.matches("humidity").count(), 1);
        assert_eq!(batch.batch.text.matches("dev-1").count(), 2); // topic and device; client id shared
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
        let whole = Flat::from_messages(&messages);
        let mut builder = BatchBuilder::new();
        for m in &messages {
            builder.push_message(m);
        }
        for n in 0..=messages.len() + 1 {
            let fewer = Flat::from_messages(&messages[..n.min(messages.len())]);
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

    /// `(name, value)` pairs of `payload` as the engine's scan gives them.
    fn spans_of(payload: &str, fields: &[(&str, &str)]) -> Vec<FieldSpan> {
        fields
            .iter()
            .map(|(n, v)| {
                let name = payload.find(&format!("\"{n}\"")).unwrap() + 1;
                let value = payload[name..].find(v).unwrap() + name;
                FieldSpan {
                    name: (name as u32, n.len() as u32),
                    value: (value as u32, v.len() as u32),
                }
            })
            .collect()
    }

    /// Each message's fields read back from the columns, `None` for one
    /// whose fields were not read.
    fn fields_read_back(flat: &Flat) -> Vec<Option<Vec<(String, String)>>> {
        let text = &flat.batch.text;
        flat.fields
            .messages
            .chunks_exact(2)
            .map(|m| {
                (m[1] != NO_FIELDS).then(|| {
                    (m[0]..m[0] + m[1])
                        .map(|f| {
                            let s = &flat.fields.spans[4 * f as usize..4 * f as usize + 4];
                            (
                                text_of(text, s[0], s[1]).to_string(),
                                text_of(text, s[2], s[3]).to_string(),
                            )
                        })
                        .collect()
                })
            })
            .collect()
    }

    #[test]
    fn payload_fields_are_spans_of_each_payload_and_cut_with_prefixes() {
        // Each message, and the `(name, value)` pairs the scan read of it.
        type Reading<'a> = (Message, Option<Vec<(&'a str, &'a str)>>);
        let readings: Vec<Reading<'_>> = vec![
            (
                message("dev-1", &["t"], r#"{"t":21.50,"s":"ok"}"#),
                Some(vec![("t", "21.50"), ("s", "\"ok\"")]),
            ),
            (message("dev-2", &[], r#"{"t":"a\u0062"}"#), None),
            (
                message("dev-3", &[], r#" { "n" : {"a":[1,2]} , "é":null } "#),
                Some(vec![("n", r#"{"a":[1,2]}"#), ("é", "null")]),
            ),
            (message("dev-4", &[], "{}"), Some(vec![])),
        ];
        let spans: Vec<Option<Vec<FieldSpan>>> = readings
            .iter()
            .map(|(m, f)| f.as_ref().map(|f| spans_of(&m.payload, f)))
            .collect();
        let build = |n: usize| {
            let mut b = BatchBuilder::new();
            for ((m, _), s) in readings.iter().zip(&spans).take(n) {
                b.push_message_with(m, s.as_deref());
            }
            b
        };
        let whole = build(readings.len()).finish();
        let expected: Vec<Option<Vec<(String, String)>>> = readings
            .iter()
            .map(|(_, f)| {
                f.as_ref().map(|f| {
                    f.iter()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect()
                })
            })
            .collect();
        assert_eq!(fields_read_back(&whole), expected);
        for n in 0..=readings.len() {
            let fewer = build(n).finish();
            assert_eq!(
                format!("{:?}", whole.prefix(n)),
                format!("{fewer:?}"),
                "{n}"
            );
            assert_eq!(
                format!("{:?}", build(readings.len()).prefix(n).finish()),
                format!("{fewer:?}"),
                "builder prefix {n}"
            );
        }
    }

    #[test]
    fn an_empty_batch_is_empty() {
        let batch = BatchBuilder::new().finish();
        assert!(batch.is_empty());
        assert!(batch.batch.to_messages().is_empty());
        assert!(batch.fields.messages.is_empty());
    }
}
