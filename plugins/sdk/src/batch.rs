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
///
/// Invariant (established by [`Batch::checked`], character boundaries
/// trusted to the host in release builds): every span lies inside `text` on
/// character boundaries, every message's metric range lies inside
/// the metric columns, and every per-message column has at least `len`
/// entries. Views then read the columns without further checks.
pub struct Batch {
    raw: batches::Batch,
    len: usize,
}

/// Replace each span of `spans` (pairs) that ends past `text` by the empty
/// span. Like wit-bindgen's own string lifting, release builds trust the host
/// to cut spans on character boundaries (it builds them from whole strings);
/// debug builds check that too.
fn clear_bad_spans(text: &str, spans: &mut [u32]) {
    // The common case, every span in bounds, in one branch-free pass.
    let furthest = spans
        .chunks_exact(2)
        .map(|pair| pair[0] as u64 + pair[1] as u64)
        .fold(0, u64::max);
    if furthest <= text.len() as u64 && !cfg!(debug_assertions) {
        return;
    }
    for pair in spans.chunks_exact_mut(2) {
        let (start, len) = (pair[0], pair[1]);
        let ok = start
            .checked_add(len)
            .is_some_and(|end| end as usize <= text.len())
            && text.is_char_boundary(start as usize)
            && text.is_char_boundary((start + len) as usize);
        if !ok {
            pair.copy_from_slice(&[0, 0]);
        }
    }
}

/// The span at `at` (two numbers) of `spans`, as text.
///
/// # Safety
/// `at + 1 < spans.len()` and the span is valid in `text` (see [`Batch`]).
unsafe fn span<'a>(text: &'a str, spans: &[u32], at: usize) -> &'a str {
    // SAFETY: the caller guarantees `at + 1` is in bounds and that the span
    // lies inside `text` on character boundaries.
    unsafe {
        let start = *spans.get_unchecked(at) as usize;
        let len = *spans.get_unchecked(at + 1) as usize;
        text.get_unchecked(start..start + len)
    }
}

impl Batch {
    #[doc(hidden)]
    pub fn from_raw(raw: batches::Batch) -> Batch {
        Batch::checked(raw)
    }

    /// Check the layout once, so views need no checks: the message count is
    /// the shortest per-message column; an out-of-range span or metric range
    /// (which a correct host never sends) reads as empty. This is the only
    /// pass over the spans; views compute nothing but slices.
    fn checked(mut raw: batches::Batch) -> Batch {
        let len = raw
            .received_at
            .len()
            .min(raw.device_time.len())
            .min(raw.strings.len() / STRINGS)
            .min(raw.metrics.len() / 2);
        let text = raw.text.as_str();
        clear_bad_spans(text, &mut raw.strings);
        clear_bad_spans(text, &mut raw.metric_names);
        let metrics = raw.metric_values.len().min(raw.metric_names.len() / 2);
        for range in raw.metrics.chunks_exact_mut(2) {
            let end = range[0].checked_add(range[1]).map(|end| end as usize);
            if end.is_none_or(|end| end > metrics) {
                range.copy_from_slice(&[0, 0]);
            }
        }
        Batch { raw, len }
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
        Batch::checked(raw)
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
        (i < self.len()).then(|| self.view(i))
    }

    /// The device of each message, in order (cheaper than [`Batch::iter`]
    /// when that is all a pass needs, such as finding devices to load).
    pub fn devices(&self) -> impl ExactSizeIterator<Item = &str> + Clone + '_ {
        let t = self.raw.text.as_str();
        // SAFETY: `i < self.len`, so `strings` holds message `i`'s spans,
        // valid in `text` (see `Batch::checked`).
        (0..self.len).map(move |i| unsafe { span(t, &self.raw.strings, i * STRINGS + 6) })
    }

    /// The messages, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = MessageRef<'_>> + Clone + '_ {
        (0..self.len()).map(|i| self.view(i))
    }

    /// Call `f` with each message's position and a reference to its view,
    /// in order, stopping at the first error. The view is built where `f`
    /// borrows it: cheaper than [`Batch::iter`] in Wasm, where moving a
    /// view out of an iterator is a `memory.copy` call per message.
    pub fn try_for_each<E>(
        &self,
        mut f: impl FnMut(usize, &MessageRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        for i in 0..self.len {
            let m = self.view(i);
            f(i, &m)?;
        }
        Ok(())
    }

    /// Owned copies of the messages.
    pub fn to_messages(&self) -> Vec<Message> {
        self.iter().map(|m| m.to_message()).collect()
    }

    /// The view of message `i`; `i < self.len`.
    fn view(&self, i: usize) -> MessageRef<'_> {
        debug_assert!(i < self.len);
        let raw = &self.raw;
        let t = raw.text.as_str();
        let at = i * STRINGS;
        // SAFETY: `i < self.len`, so every per-message column has entry `i`
        // (and `strings` its 12 numbers); `checked` made every span and
        // metric range valid.
        unsafe {
            let first = *raw.metrics.get_unchecked(2 * i) as usize;
            let end = first + *raw.metrics.get_unchecked(2 * i + 1) as usize;
            let device_time = *raw.device_time.get_unchecked(i);
            MessageRef {
                rule: span(t, &raw.strings, at),
                topic: span(t, &raw.strings, at + 2),
                client_id: span(t, &raw.strings, at + 4),
                device: span(t, &raw.strings, at + 6),
                device_type: span(t, &raw.strings, at + 8),
                received_at: *raw.received_at.get_unchecked(i),
                device_time: (device_time != NO_DEVICE_TIME).then_some(device_time),
                metrics: Metrics::Flat {
                    text: t,
                    names: raw.metric_names.get_unchecked(2 * first..2 * end),
                    values: raw.metric_values.get_unchecked(first..end),
                },
                payload: span(t, &raw.strings, at + 10),
            }
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
    pub fn metrics(&self) -> impl ExactSizeIterator<Item = (&'a str, f64)> + Clone + 'a {
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
            } => {
                let value = values[j];
                // SAFETY: `names` holds two numbers per value, each pair a
                // valid span of `text` (checked when the batch was built).
                (unsafe { span(text, names, 2 * j) }, value)
            }
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
            (first.device, first.device_type, first.payload),
            ("ab", "", "")
        );
        assert_eq!(first.metrics().collect::<Vec<_>>(), vec![("a", 1.5)]);
        let second = batch.get(1).expect("second");
        assert_eq!(second.device, "");
        assert_eq!(second.device_time, Some(5));
        assert_eq!(second.metrics().len(), 0);
        assert!(batch.get(2).is_none());
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
