//! Batches as the host hands them over: flat (`weir:plugin/batches`), read
//! through borrowed views.
//!
//! A [`Batch`] holds every string of its messages in one text; a
//! [`MessageRef`] is a message's position in it, and each accessor reads
//! its field from the batch when called. A view is two words, so handing
//! one around copies nothing, and a plugin that reads a message's device
//! and metrics never touches its topic or payload. `MessageRef::from(&message)`
//! gives the same view of an owned [`Message`], so logic written against
//! `MessageRef` serves both (and native tests). [`Batch::to_messages`]
//! copies a batch into owned messages.
//!
//! [`MessageRef::fields`] gives a payload's top-level fields as the host
//! read them (`batches.payload-fields`), fetched from the host once per
//! batch, the first time a plugin asks.
//!
//! A malformed batch (which a correct host never sends) cannot make a view
//! panic or read out of bounds: a span outside the text reads as `""`; a
//! metric range outside the metric columns reads as no metrics; the
//! message count is the shortest per-message column. Like wit-bindgen's
//! own string lifting, release builds trust the host to cut spans on
//! character boundaries (it builds them from whole strings); debug builds
//! check that too, and read a span that is not as `""`.

use crate::bindings::host::weir::plugin::batches;
use crate::{Message, Metric};
use std::cell::OnceCell;

/// `device-time` of a message without one.
const NO_DEVICE_TIME: i64 = i64::MIN;

/// Numbers per message in `strings` (six spans).
const STRINGS: usize = 12;

/// Position of each string field's span among a message's `strings`.
const RULE: usize = 0;
const TOPIC: usize = 2;
const CLIENT_ID: usize = 4;
const DEVICE: usize = 6;
const DEVICE_TYPE: usize = 8;
const PAYLOAD: usize = 10;

/// The field count of a message whose payload fields the host did not read.
const NO_FIELDS: u32 = u32::MAX;

/// One batch of messages, as received.
pub struct Batch {
    raw: batches::Batch,
    /// The shortest per-message column: views of `0..len` have every column.
    len: usize,
    /// The payload fields, fetched from the host when first asked for.
    fields: OnceCell<batches::Fields>,
}

/// The span at `at` (two numbers: start, length) of `spans` as text of
/// `text`; `""` when it is not a whole piece of `text`.
#[inline]
fn span<'a>(text: &'a str, spans: &[u32], at: usize) -> &'a str {
    match (spans.get(at), spans.get(at + 1)) {
        (Some(&start), Some(&len)) => {
            let start = start as usize;
            // `u32` sums cannot overflow `usize` on 64-bit hosts; on wasm32
            // an overflowing span is out of bounds anyway.
            match start.checked_add(len as usize) {
                Some(end) => piece(text, start, end),
                None => "",
            }
        }
        _ => "",
    }
}

/// `text[start..end]`, or `""` when that is out of bounds. Like
/// wit-bindgen's own string lifting, release builds trust the host to cut
/// spans on character boundaries (it builds them from whole strings); debug
/// builds check that too.
#[inline]
fn piece(text: &str, start: usize, end: usize) -> &str {
    if cfg!(debug_assertions) {
        return text.get(start..end).unwrap_or("");
    }
    match text.as_bytes().get(start..end) {
        // SAFETY: in bounds; on character boundaries as the host promises
        // (`weir:plugin/batches`), so the bytes are UTF-8.
        Some(bytes) => unsafe { std::str::from_utf8_unchecked(bytes) },
        None => "",
    }
}

impl Batch {
    #[doc(hidden)]
    pub fn from_raw(raw: batches::Batch) -> Batch {
        let len = raw
            .received_at
            .len()
            .min(raw.device_time.len())
            .min(raw.strings.len() / STRINGS)
            .min(raw.metrics.len() / 2);
        Batch {
            raw,
            len,
            fields: OnceCell::new(),
        }
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
        // Built here, not received: no fields to ask the host for.
        let fields = batches::Fields {
            messages: Vec::new(),
            spans: Vec::new(),
        };
        let batch = Batch::from_raw(raw);
        let _ = batch.fields.set(fields);
        batch
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`th message.
    pub fn get(&self, i: usize) -> Option<MessageRef<'_>> {
        (i < self.len).then(|| self.view(i))
    }

    /// The device of each message, in order.
    pub fn devices(&self) -> impl ExactSizeIterator<Item = &str> + Clone + '_ {
        (0..self.len).map(move |i| self.string(i, DEVICE))
    }

    /// The messages, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = MessageRef<'_>> + Clone + '_ {
        (0..self.len).map(move |i| self.view(i))
    }

    /// Call `f` with each message's position and view, in order, stopping
    /// at the first error.
    pub fn try_for_each<E>(
        &self,
        mut f: impl FnMut(usize, &MessageRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        for i in 0..self.len {
            f(i, &self.view(i))?;
        }
        Ok(())
    }

    /// Owned copies of the messages.
    pub fn to_messages(&self) -> Vec<Message> {
        self.iter().map(|m| m.to_message()).collect()
    }

    /// The view of message `i`; `i < self.len`.
    #[inline]
    fn view(&self, i: usize) -> MessageRef<'_> {
        MessageRef(Source::Flat { batch: self, i })
    }

    /// String field `field` (one of `RULE`..`PAYLOAD`) of message `i`.
    #[inline]
    fn string(&self, i: usize, field: usize) -> &str {
        span(&self.raw.text, &self.raw.strings, i * STRINGS + field)
    }

    /// The payload fields of message `i` as spans (four numbers each), or
    /// `None` when the host did not read them (or sent a range outside
    /// its own columns).
    fn fields(&self, i: usize) -> Option<&[u32]> {
        let fields = self.fields.get_or_init(batches::payload_fields);
        match (fields.messages.get(2 * i), fields.messages.get(2 * i + 1)) {
            (Some(&first), Some(&count)) if count != NO_FIELDS => {
                let first = (first as usize).checked_mul(4)?;
                let end = first.checked_add((count as usize).checked_mul(4)?)?;
                fields.spans.get(first..end)
            }
            _ => None,
        }
    }

    /// The metrics of message `i`: none when its range is not inside the
    /// metric columns.
    #[inline]
    fn metrics(&self, i: usize) -> Metrics<'_> {
        let raw = &self.raw;
        let range = match (raw.metrics.get(2 * i), raw.metrics.get(2 * i + 1)) {
            (Some(&first), Some(&count)) => {
                let first = first as usize;
                first.checked_add(count as usize).map(|end| (first, end))
            }
            _ => None,
        };
        let names = range.and_then(|(first, end)| raw.metric_names.get(2 * first..2 * end));
        let values = range.and_then(|(first, end)| raw.metric_values.get(first..end));
        match (names, values) {
            (Some(names), Some(values)) => Metrics::Flat {
                text: &raw.text,
                names,
                values,
            },
            _ => Metrics::Owned(&[]),
        }
    }
}

/// A borrowed message: the fields of [`Message`], read when asked for.
#[derive(Clone, Copy)]
pub struct MessageRef<'a>(Source<'a>);

#[derive(Clone, Copy)]
enum Source<'a> {
    /// Message `i < batch.len` of a batch.
    Flat {
        batch: &'a Batch,
        i: usize,
    },
    Owned(&'a Message),
}

#[derive(Debug, Clone, Copy)]
enum Metrics<'a> {
    Owned(&'a [Metric]),
    Flat {
        text: &'a str,
        /// Two numbers (a span of `text`) per value.
        names: &'a [u32],
        values: &'a [f64],
    },
}

impl<'a> MessageRef<'a> {
    #[inline]
    fn string(&self, field: usize, owned: fn(&'a Message) -> &'a str) -> &'a str {
        match self.0 {
            Source::Flat { batch, i } => batch.string(i, field),
            Source::Owned(m) => owned(m),
        }
    }

    /// The rule whose output this is.
    #[inline]
    pub fn rule(&self) -> &'a str {
        self.string(RULE, |m| &m.rule)
    }

    /// The MQTT topic the reading arrived on.
    #[inline]
    pub fn topic(&self) -> &'a str {
        self.string(TOPIC, |m| &m.topic)
    }

    /// The MQTT client id of the publisher.
    #[inline]
    pub fn client_id(&self) -> &'a str {
        self.string(CLIENT_ID, |m| &m.client_id)
    }

    /// The device id (see `weir:plugin/types.message`).
    #[inline]
    pub fn device(&self) -> &'a str {
        self.string(DEVICE, |m| &m.device)
    }

    /// The device type (see `weir:plugin/types.message`).
    #[inline]
    pub fn device_type(&self) -> &'a str {
        self.string(DEVICE_TYPE, |m| &m.device_type)
    }

    /// The rule's output as JSON.
    #[inline]
    pub fn payload(&self) -> &'a str {
        self.string(PAYLOAD, |m| &m.payload)
    }

    /// Server receive time, ms since the epoch.
    #[inline]
    pub fn received_at(&self) -> i64 {
        match self.0 {
            Source::Flat { batch, i } => batch.raw.received_at.get(i).copied().unwrap_or(0),
            Source::Owned(m) => m.received_at,
        }
    }

    /// The device's own timestamp, when the host found a sane one.
    #[inline]
    pub fn device_time(&self) -> Option<i64> {
        match self.0 {
            Source::Flat { batch, i } => batch
                .raw
                .device_time
                .get(i)
                .copied()
                .filter(|&t| t != NO_DEVICE_TIME),
            Source::Owned(m) => m.device_time,
        }
    }

    /// The numeric fields, in output order, as `(name, value)`.
    #[inline]
    pub fn metrics(&self) -> impl ExactSizeIterator<Item = (&'a str, f64)> + Clone + 'a {
        let metrics = match self.0 {
            Source::Flat { batch, i } => batch.metrics(i),
            Source::Owned(m) => Metrics::Owned(&m.metrics),
        };
        (0..metrics.len()).map(move |j| metrics.get(j))
    }

    /// The value of the numeric field `name`, if the rule output has one.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The payload's top-level fields in order, as `(name, JSON text of
    /// the value)`, when the host read them: for a reading a rule passes
    /// on unchanged (`SELECT *`) that is an object without escapes or
    /// repeated keys, which is what devices send. `None` otherwise (and
    /// for owned messages): parse [`payload`](Self::payload) instead.
    /// Names are the keys as they appear in the payload; texts are exactly
    /// as sent (`21.50` stays `21.50`).
    #[inline]
    pub fn fields(&self) -> Option<impl ExactSizeIterator<Item = (&'a str, &'a str)> + Clone + 'a> {
        match self.0 {
            Source::Flat { batch, i } => {
                let spans = batch.fields(i)?;
                let text = batch.raw.text.as_str();
                Some(
                    spans
                        .chunks_exact(4)
                        .map(move |f| (span(text, f, 0), span(text, f, 2))),
                )
            }
            Source::Owned(_) => None,
        }
    }

    /// The device's own timestamp when the host found a sane one, else the
    /// server receive time (ms since the epoch).
    #[inline]
    pub fn event_time(&self) -> i64 {
        self.device_time().unwrap_or_else(|| self.received_at())
    }

    /// An owned copy.
    pub fn to_message(&self) -> Message {
        Message {
            rule: self.rule().to_string(),
            topic: self.topic().to_string(),
            client_id: self.client_id().to_string(),
            device: self.device().to_string(),
            device_type: self.device_type().to_string(),
            received_at: self.received_at(),
            device_time: self.device_time(),
            metrics: self.metrics().map(|(n, v)| Metric::new(n, v)).collect(),
            payload: self.payload().to_string(),
        }
    }
}

impl std::fmt::Debug for MessageRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageRef")
            .field("rule", &self.rule())
            .field("topic", &self.topic())
            .field("client_id", &self.client_id())
            .field("device", &self.device())
            .field("device_type", &self.device_type())
            .field("received_at", &self.received_at())
            .field("device_time", &self.device_time())
            .field("metrics", &self.metrics().collect::<Vec<_>>())
            .field("payload", &self.payload())
            .finish()
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
    #[inline]
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
        MessageRef(Source::Owned(m))
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

    /// `try_for_each` sees what `iter` yields, in order, and stops at the
    /// first error.
    #[test]
    fn try_for_each_visits_the_views_of_iter() {
        let messages: Vec<Message> = ["a", "b", "c"].into_iter().map(message).collect();
        let batch = Batch::from_messages(&messages);
        let mut seen = Vec::new();
        let done: Result<(), ()> = batch.try_for_each(|i, m| {
            seen.push((i, m.to_message()));
            Ok(())
        });
        assert!(done.is_ok());
        let expected: Vec<(usize, Message)> =
            batch.iter().map(|m| m.to_message()).enumerate().collect();
        assert_eq!(format!("{seen:?}"), format!("{expected:?}"));
        let mut visited = 0;
        let stopped = batch.try_for_each(|i, _| {
            visited += 1;
            if i == 1 {
                Err("stop")
            } else {
                Ok(())
            }
        });
        assert_eq!((stopped, visited), (Err("stop"), 2));
    }

    /// Payload fields read as the host's spans say; a message the host
    /// did not read, a range outside the columns, and an owned message
    /// have none; a batch built by the plugin has none without asking
    /// the host.
    #[test]
    fn payload_fields_read_from_the_spans_the_host_sent() {
        let mut messages: Vec<Message> = ["a", "b", "c"].into_iter().map(message).collect();
        messages[0].payload = r#"{"t":21.50,"s":"ok"}"#.into();
        let built = Batch::from_messages(&messages);
        assert!(built.get(0).unwrap().fields().is_none());
        assert!(MessageRef::from(&messages[0]).fields().is_none());

        let mut batch = Batch::from_messages(&messages);
        // Message 0's payload is the 6th span of its strings.
        let at = batch.raw.strings[PAYLOAD];
        batch.fields = OnceCell::from(batches::Fields {
            messages: vec![0, 2, 0, NO_FIELDS, 1, 5],
            spans: vec![at + 2, 1, at + 5, 5, at + 12, 1, at + 15, 4],
        });
        let fields: Vec<(&str, &str)> = batch.get(0).unwrap().fields().unwrap().collect();
        assert_eq!(fields, vec![("t", "21.50"), ("s", "\"ok\"")]);
        assert!(batch.get(1).unwrap().fields().is_none());
        assert!(
            batch.get(2).unwrap().fields().is_none(),
            "range past the spans"
        );
    }

    #[test]
    fn a_malformed_batch_reads_as_empty_fields_not_a_panic() {
        let mut strings = vec![0u32; 24];
        strings[6..8].copy_from_slice(&[0, 2]); // "ab": valid
        strings[8..10].copy_from_slice(&[3, 1]); // inside the two-byte 'é'
        strings[10..12].copy_from_slice(&[u32::MAX, 2]); // overflows
        strings[18..20].copy_from_slice(&[1, 100]); // past the end
        let raw = batches::Batch {
            text: "abé".into(),
            strings,
            received_at: vec![1, 2, 3], // longer than the other columns
            device_time: vec![NO_DEVICE_TIME, 5],
            metrics: vec![0, 1, u32::MAX, 2],
            metric_names: vec![0, 1],
            metric_values: vec![1.5],
        };
        let batch = Batch::from_raw(raw);
        assert_eq!(batch.len(), 2);
        let first = batch.get(0).expect("first");
        assert_eq!(
            (first.device(), first.device_type(), first.payload()),
            ("ab", "", "")
        );
        assert_eq!(first.metrics().collect::<Vec<_>>(), vec![("a", 1.5)]);
        let second = batch.get(1).expect("second");
        assert_eq!(second.device(), "");
        assert_eq!(second.device_time(), Some(5));
        assert_eq!(second.metrics().len(), 0);
        assert!(batch.get(2).is_none());
    }

    /// A small deterministic xorshift generator for the test below.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u32) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as u32
        }

        /// Mostly below `limit`; sometimes far past it, or near `u32::MAX`.
        fn number(&mut self, limit: u32) -> u32 {
            match self.below(8) {
                0 => u32::MAX - self.below(4),
                1 => self.below(1000),
                _ => self.below(limit),
            }
        }
    }

    /// Random columns (spans anywhere, some inside a multi-byte character,
    /// some overflowing; metric ranges anywhere; columns of different
    /// lengths): every accessor of every view answers without panicking,
    /// and what it answers lies in the batch.
    #[test]
    #[cfg_attr(
        not(debug_assertions),
        ignore = "release builds trust the host's character boundaries"
    )]
    fn random_malformed_batches_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        // Read fields and metrics, so the run is known to have read some.
        let (mut fields_read, mut metrics_read) = (0, 0);
        let text = "dev-1é€dt/t/dev-1/telemetry{\"t\":1}temperature";
        let limit = text.len() as u32 + 2;
        for _ in 0..2000 {
            let messages = rng.below(6) as usize;
            let strings = (0..messages * STRINGS + rng.below(3) as usize)
                .map(|_| rng.number(limit))
                .collect();
            let metric_names = (0..rng.below(12)).map(|_| rng.number(limit)).collect();
            let metric_values = (0..rng.below(6)).map(f64::from).collect();
            let metrics = (0..2 * messages + rng.below(2) as usize)
                .map(|_| rng.number(6))
                .collect();
            let raw = batches::Batch {
                text: text.to_string(),
                strings,
                received_at: vec![1; messages + rng.below(2) as usize],
                device_time: vec![NO_DEVICE_TIME; messages],
                metrics,
                metric_names,
                metric_values,
            };
            let batch = Batch::from_raw(raw);
            assert!(batch.len() <= messages);
            for m in batch.iter() {
                for field in [
                    m.rule(),
                    m.topic(),
                    m.client_id(),
                    m.device(),
                    m.device_type(),
                    m.payload(),
                ] {
                    assert!(field.is_empty() || text.contains(field));
                    fields_read += usize::from(!field.is_empty());
                }
                for (name, value) in m.metrics() {
                    assert!(name.is_empty() || text.contains(name));
                    assert!(value.is_finite());
                    metrics_read += 1;
                }
                assert_eq!(m.device_time(), None);
                let _ = (m.metric("temperature"), m.event_time(), m.to_message());
                let _ = format!("{m:?}");
            }
            assert_eq!(batch.devices().len(), batch.len());
        }
        assert!(
            fields_read > 100 && metrics_read > 100,
            "{fields_read} {metrics_read}"
        );
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
        assert!(batch
            .devices()
            .eq(messages.iter().map(|m| m.device.as_str())));
        for (view, owned) in batch.iter().zip(&messages) {
            assert_eq!(view.device(), owned.device);
            assert_eq!(view.metrics().len(), owned.metrics.len());
            assert_eq!(
                view.metrics().collect::<Vec<_>>(),
                MessageRef::from(owned).metrics().collect::<Vec<_>>()
            );
            assert_eq!(view.metric("temperature"), owned.metric("temperature"));
        }
        assert_eq!(batch.get(1).map(|m| m.topic()), Some("dt/t/d2/telemetry"));
        assert!(batch.get(3).is_none());
    }
}
