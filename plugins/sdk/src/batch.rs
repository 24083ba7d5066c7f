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

/// One batch of messages, as received.
pub struct Batch {
    raw: batches::Batch,
}

fn text(text: &str, span: batches::Span) -> &str {
    let start = span.start as usize;
    text.get(start..start.saturating_add(span.len as usize))
        .unwrap_or("")
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
            metrics: Vec::new(),
            messages: Vec::with_capacity(messages.len()),
        };
        let mut push = |s: &str| {
            let start = raw.text.len() as u32;
            raw.text.push_str(s);
            batches::Span {
                start,
                len: s.len() as u32,
            }
        };
        let mut entries = Vec::with_capacity(messages.len());
        let mut fields = Vec::new();
        for m in messages {
            let first = fields.len() as u32;
            for metric in &m.metrics {
                fields.push(batches::Field {
                    name: push(&metric.name),
                    value: metric.value,
                });
            }
            entries.push(batches::Entry {
                rule: push(&m.rule),
                topic: push(&m.topic),
                client_id: push(&m.client_id),
                device: push(&m.device),
                device_type: push(&m.device_type),
                received_at: m.received_at,
                device_time: m.device_time,
                metrics: batches::Span {
                    start: first,
                    len: m.metrics.len() as u32,
                },
                payload: push(&m.payload),
            });
        }
        raw.metrics = fields;
        raw.messages = entries;
        Batch { raw }
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.raw.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.messages.is_empty()
    }

    /// The `i`th message.
    pub fn get(&self, i: usize) -> Option<MessageRef<'_>> {
        self.raw.messages.get(i).map(|e| self.view(e))
    }

    /// The messages, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = MessageRef<'_>> + Clone + '_ {
        self.raw.messages.iter().map(|e| self.view(e))
    }

    /// Owned copies of the messages.
    pub fn to_messages(&self) -> Vec<Message> {
        self.iter().map(|m| m.to_message()).collect()
    }

    fn view<'a>(&'a self, e: &'a batches::Entry) -> MessageRef<'a> {
        let t = self.raw.text.as_str();
        let start = e.metrics.start as usize;
        let fields = self
            .raw
            .metrics
            .get(start..start.saturating_add(e.metrics.len as usize))
            .unwrap_or(&[]);
        MessageRef {
            rule: text(t, e.rule),
            topic: text(t, e.topic),
            client_id: text(t, e.client_id),
            device: text(t, e.device),
            device_type: text(t, e.device_type),
            received_at: e.received_at,
            device_time: e.device_time,
            metrics: Metrics::Flat { text: t, fields },
            payload: text(t, e.payload),
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
        fields: &'a [batches::Field],
    },
}

impl<'a> MessageRef<'a> {
    /// The numeric fields, in output order, as `(name, value)`.
    pub fn metrics(&self) -> impl ExactSizeIterator<Item = (&'a str, f64)> + 'a {
        let (owned, flat, t): (&'a [Metric], &'a [batches::Field], &'a str) = match self.metrics {
            Metrics::Owned(m) => (m, &[], ""),
            Metrics::Flat { text, fields } => (&[], fields, text),
        };
        let owned = owned.iter().map(|m| (m.name.as_str(), m.value));
        let flat = flat.iter().map(move |f| (text(t, f.name), f.value));
        Chained {
            owned,
            flat,
            len: owned_len(self.metrics),
        }
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

fn owned_len(m: Metrics<'_>) -> usize {
    match m {
        Metrics::Owned(m) => m.len(),
        Metrics::Flat { fields, .. } => fields.len(),
    }
}

/// The metrics iterator: one of the two halves is always empty.
struct Chained<A, B> {
    owned: A,
    flat: B,
    len: usize,
}

impl<'a, A, B> Iterator for Chained<A, B>
where
    A: Iterator<Item = (&'a str, f64)>,
    B: Iterator<Item = (&'a str, f64)>,
{
    type Item = (&'a str, f64);

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.owned.next().or_else(|| self.flat.next());
        if item.is_some() {
            self.len -= 1;
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl<'a, A, B> ExactSizeIterator for Chained<A, B>
where
    A: Iterator<Item = (&'a str, f64)>,
    B: Iterator<Item = (&'a str, f64)>,
{
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
