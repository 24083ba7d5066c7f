//! Batches as the host hands them over: flat (`weir:plugin/batches`), read
//! through borrowed views.
//!
//! A [`Batch`] holds every string of its messages in one text; a
//! [`MessageRef`] borrows its fields from it, so reading a batch allocates
//! nothing. `MessageRef::from(&message)` gives the same view of an owned
//! [`Message`],
//! so logic written against `MessageRef` serves both (and native tests).
//! [`Batch::to_messages`] copies a batch into owned messages.

use crate::bindings::host::weir::plugin::batches;
use crate::{Message, Metric};

/// `device-time` of a message without one.
const NO_DEVICE_TIME: i64 = i64::MIN;

/// Numbers per message in `strings` (six spans).
const STRINGS: usize = 12;

/// One batch of messages, as received.
pub struct Batch {
    raw: batches::Batch,
}

fn text(text: &str, start: u32, len: u32) -> &str {
    let start = start as usize;
    text.get(start..start.saturating_add(len as usize))
        .unwrap_or("")
}

/// The span at `at` (two numbers) of `spans`, as text.
fn span<'a>(t: &'a str, spans: &[u32], at: usize) -> &'a str {
    match spans.get(at..at + 2) {
        Some(&[start, len]) => text(t, start, len),
        _ => "",
    }
}

impl Batch {
    #[doc(hidden)]
    pub fn from_raw(raw: batches::Batch) -> Batch {
        Batch { raw }
    }

    /// A batch holding `messages` (for tests, and for plugins that build
    /// batches themselves).
    pub fn from_messages(messages: &[Message]) -> Batch {
        let mut raw = batches::Batch {
            text: String::new(),
            strings: Vec::with_capacity(messages.len() * STRINGS),
            received_at: Vec::with_capacity(messages.len()),
            device_time: Vec::with_capacity(messages.len()),
            metrics: Vec::with_capacity(messages.len() * 2),
            metric_names: Vec::new(),
            metric_values: Vec::new(),
        };
        for m in messages {
            for s in [
                &m.rule,
                &m.topic,
                &m.client_id,
                &m.device,
                &m.device_type,
                &m.payload,
            ] {
                raw.strings.extend([raw.text.len() as u32, s.len() as u32]);
                raw.text.push_str(s);
            }
            raw.received_at.push(m.received_at);
            raw.device_time
                .push(m.device_time.unwrap_or(NO_DEVICE_TIME));
            raw.metrics
                .extend([raw.metric_values.len() as u32, m.metrics.len() as u32]);
            for metric in &m.metrics {
                raw.metric_names
                    .extend([raw.text.len() as u32, metric.name.len() as u32]);
                raw.text.push_str(&metric.name);
                raw.metric_values.push(metric.value);
            }
        }
        Batch { raw }
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.raw.received_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.received_at.is_empty()
    }

    /// The `i`th message.
    pub fn get(&self, i: usize) -> Option<MessageRef<'_>> {
        (i < self.len()).then(|| self.view(i))
    }

    /// The messages, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = MessageRef<'_>> + Clone + '_ {
        (0..self.len()).map(|i| self.view(i))
    }

    /// Owned copies of the messages.
    pub fn to_messages(&self) -> Vec<Message> {
        self.iter().map(|m| m.to_message()).collect()
    }

    fn view(&self, i: usize) -> MessageRef<'_> {
        let raw = &self.raw;
        let t = raw.text.as_str();
        let at = i * STRINGS;
        let (first, count) = match raw.metrics.get(2 * i..2 * i + 2) {
            Some(&[first, count]) => (first as usize, count as usize),
            _ => (0, 0),
        };
        let end = first.saturating_add(count);
        let device_time = raw.device_time.get(i).copied().unwrap_or(NO_DEVICE_TIME);
        MessageRef {
            rule: span(t, &raw.strings, at),
            topic: span(t, &raw.strings, at + 2),
            client_id: span(t, &raw.strings, at + 4),
            device: span(t, &raw.strings, at + 6),
            device_type: span(t, &raw.strings, at + 8),
            received_at: raw.received_at.get(i).copied().unwrap_or(0),
            device_time: (device_time != NO_DEVICE_TIME).then_some(device_time),
            metrics: Metrics::Flat {
                text: t,
                names: raw.metric_names.get(2 * first..2 * end).unwrap_or(&[]),
                values: raw.metric_values.get(first..end).unwrap_or(&[]),
            },
            payload: span(t, &raw.strings, at + 10),
        }
    }
}

/// A borrowed message: the fields of [`Message`], without copies.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    pub rule: &'a str,
    pub topic: &'a str,
    pub client_id: &'a str,
    pub device: &'a str,
    pub device_type: &'a str,
    pub received_at: i64,
    pub device_time: Option<i64>,
    /// The numeric fields; iterate with [`MessageRef::metrics`].
    metrics: Metrics<'a>,
    pub payload: &'a str,
}

#[derive(Debug, Clone, Copy)]
enum Metrics<'a> {
    Owned(&'a [Metric]),
    Flat {
        text: &'a str,
        /// Two numbers (a span of `text`) per metric.
        names: &'a [u32],
        values: &'a [f64],
    },
}

impl<'a> MessageRef<'a> {
    /// The numeric fields, in output order, as `(name, value)`.
    pub fn metrics(&self) -> impl ExactSizeIterator<Item = (&'a str, f64)> + 'a {
        let metrics = self.metrics;
        (0..metrics.len()).map(move |j| metrics.get(j))
    }

    /// The value of the numeric field `name`, if the rule output has one.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The device's own timestamp when the host found a sane one, else the
    /// server receive time (ms since the epoch).
    pub fn event_time(&self) -> i64 {
        self.device_time.unwrap_or(self.received_at)
    }

    /// An owned copy.
    pub fn to_message(&self) -> Message {
        Message {
            rule: self.rule.to_string(),
            topic: self.topic.to_string(),
            client_id: self.client_id.to_string(),
            device: self.device.to_string(),
            device_type: self.device_type.to_string(),
            received_at: self.received_at,
            device_time: self.device_time,
            metrics: self.metrics().map(|(n, v)| Metric::new(n, v)).collect(),
            payload: self.payload.to_string(),
        }
    }
}

impl<'a> Metrics<'a> {
    fn len(self) -> usize {
        match self {
            Metrics::Owned(m) => m.len(),
            Metrics::Flat { values, .. } => values.len(),
        }
    }

    /// Metric `j` as `(name, value)`; `j < self.len()`.
    fn get(self, j: usize) -> (&'a str, f64) {
        match self {
            Metrics::Owned(m) => (m[j].name.as_str(), m[j].value),
            Metrics::Flat {
                text,
                names,
                values,
            } => (span(text, names, 2 * j), values[j]),
        }
    }
}

/// An owned message as a [`MessageRef`].
impl<'a> From<&'a Message> for MessageRef<'a> {
    fn from(m: &'a Message) -> MessageRef<'a> {
        MessageRef {
            rule: &m.rule,
            topic: &m.topic,
            client_id: &m.client_id,
            device: &m.device,
            device_type: &m.device_type,
            received_at: m.received_at,
            device_time: m.device_time,
            metrics: Metrics::Owned(&m.metrics),
            payload: &m.payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(device: &str) -> Message {
        Message {
            rule: "r".into(),
            topic: format!("dt/t/{device}/telemetry"),
            client_id: device.into(),
            device: device.into(),
            device_type: "t".into(),
            received_at: 10,
            device_time: Some(9),
            metrics: vec![Metric::new("temperature", 21.5), Metric::new("é", -1.0)],
            payload: "{\"temperature\":21.5}".into(),
        }
    }

    #[test]
    fn views_of_a_batch_and_of_messages_agree() {
        let messages = vec![message("d1"), message("d2"), Message::default()];
        let batch = Batch::from_messages(&messages);
        assert_eq!(batch.len(), 3);
        assert_eq!(
            format!("{:?}", batch.to_messages()),
            format!("{messages:?}")
        );
        for (view, owned) in batch.iter().zip(&messages) {
            assert_eq!(view.device, owned.device);
            assert_eq!(view.metrics().len(), owned.metrics.len());
            assert_eq!(
                view.metrics().collect::<Vec<_>>(),
                MessageRef::from(owned).metrics().collect::<Vec<_>>()
            );
            assert_eq!(view.metric("temperature"), owned.metric("temperature"));
        }
        assert_eq!(batch.get(1).map(|m| m.topic), Some("dt/t/d2/telemetry"));
        assert!(batch.get(3).is_none());
    }
}
