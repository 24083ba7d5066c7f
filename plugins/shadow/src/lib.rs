//! # shadow: latest reported state per device
//!
//! A sink plugin (`weir:plugin/sink-plugin`). Each message's payload (a JSON
//! object: the rule output) is merged into its device's shadow document,
//! AWS IoT style (see [`shadow_doc`] for the format and merge rules):
//!
//! ```json
//! {"state":{"reported":{…}},"metadata":{"reported":{"<field>":{"timestamp":<secs>}}},
//!  "version":N,"timestamp":<secs>,"device_type":"…"}
//! ```
//!
//! Shadows are cached in memory and stored in the key-value bucket `shadow`,
//! key `<device>`, value the document as JSON (the host serves `weir shadow
//! get` from it). A device new to the instance is first loaded from the
//! bucket, so versions continue across reloads and restarts. Writes are
//! coalesced per flush interval: `flush` (every checkpoint interval and at
//! shutdown) stores every device changed since the last flush with one
//! `set-many`, however many readings it got meanwhile. A failed store is
//! reported by `flush` and retried by the next one.
//!
//! A reading's fields come from the host (`batches.payload-fields`: the
//! engine read them in its own pass over the payload), or, for a payload
//! the host did not read, from this plugin's own scan. A payload that is
//! not a JSON object is skipped and counted in one log line per batch; the
//! rest of the batch is applied.
//!
//! ## The Device Shadow service
//!
//! A message on a shadow request topic (`$aws/things/<thing>/shadow/update`,
//! `…/get`, `…/delete`, and the same under `…/shadow/name/<shadow>/`) is a
//! request to AWS IoT's Device Shadow service, served from the same
//! documents (see [`service`]): the answers are published on AWS's topics,
//! so AWS's device SDKs work unchanged. A classic shadow is the device's
//! shadow that telemetry merges into; a named shadow is stored under
//! `<thing>/<shadow>`. The shipped rules route requests here with
//! `SELECT encode(*, 'base64') AS request`, so an empty or broken request
//! reaches the service (and gets its `rejected` answer) instead of the
//! rule's error action; a rule output without `request` is taken as the
//! request itself.
//!
//! ## Settings
//!
//! | key      | default  | meaning |
//! |----------|----------|---------|
//! | `bucket` | `shadow` | key-value bucket of the shadows |
//!
//! ## Grants
//!
//! key-value bucket `shadow`; to serve the Device Shadow service, publish
//! on `$aws/things/+/shadow/#`.

pub mod doc;
pub mod fields;
pub mod service;
pub mod shadow_doc;

use base64::Engine as _;
use service::Request;
use shadow_doc::Shadows;
use std::borrow::Cow;
use weir_plugin::kv::Bucket;
use weir_plugin::{config, export_sink, log, Batch, Message, MessageRef, Sink};

/// The plugin instance.
pub struct Shadow {
    shadows: Shadows,
    bucket: Bucket,
}

impl Shadow {
    fn store(&mut self) -> Result<usize, String> {
        let entries = self.shadows.dirty_entries();
        if entries.is_empty() {
            return Ok(0);
        }
        self.bucket.set_many(&entries)?;
        self.shadows.saved(&entries);
        Ok(entries.len())
    }
}

impl Sink for Shadow {
    fn new() -> Result<Self, String> {
        let name = config::get("bucket")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "shadow".to_string());
        Ok(Shadow {
            shadows: Shadows::default(),
            bucket: Bucket::open(&name)?,
        })
    }

    fn write(&mut self, batch: Vec<Message>) -> Result<(), String> {
        let mut problems = Problems::default();
        for (i, m) in batch.iter().enumerate() {
            let m = MessageRef::from(m);
            match Request::parse(m.topic()) {
                Some(request) => self.serve(&request, &m, &mut problems)?,
                None => {
                    let rest = || batch[i..].iter().map(|m| m.device.as_str());
                    self.merge_one(&m, rest, &mut problems.skipped)?
                }
            }
        }
        problems.report(batch.len());
        Ok(())
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), String> {
        let mut problems = Problems::default();
        batch.try_for_each(|i, m| match Request::parse(m.topic()) {
            Some(request) => self.serve(&request, m, &mut problems),
            None => self.merge_one(m, || batch.devices().skip(i), &mut problems.skipped),
        })?;
        problems.report(batch.len());
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.store().map(|_| ())
    }
}

/// What went wrong in a batch, logged once per batch.
#[derive(Default)]
struct Problems {
    /// Messages that did not merge.
    skipped: Skipped,
    /// Shadow service answers that could not be published.
    unanswered: Skipped,
}

impl Problems {
    fn report(self, total: usize) {
        if let Some(e) = self.skipped.first {
            log::warn(format!(
                "skipped {} of {total} messages; first: {e}",
                self.skipped.count
            ));
        }
        if let Some(e) = self.unanswered.first {
            log::warn(format!(
                "could not publish {} shadow service answers (is publish on \
                 `$aws/things/+/shadow/#` granted?); first: {e}",
                self.unanswered.count
            ));
        }
    }
}

/// A count of failures and the first reason.
#[derive(Default)]
struct Skipped {
    count: usize,
    first: Option<String>,
}

impl Skipped {
    fn add(&mut self, reason: impl FnOnce() -> String) {
        self.count += 1;
        self.first.get_or_insert_with(reason);
    }
}

/// A shadow service request's bytes: the rule output's `request`, base64
/// (`SELECT encode(*, 'base64') AS request`), else the output itself.
fn request_body(payload: &str) -> Cow<'_, [u8]> {
    let encoded = match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(mut m)) => match m.remove("request") {
            Some(serde_json::Value::String(s)) => s,
            _ => return Cow::Borrowed(payload.as_bytes()),
        },
        _ => return Cow::Borrowed(payload.as_bytes()),
    };
    match base64::engine::general_purpose::STANDARD.decode(encoded.as_bytes()) {
        Ok(bytes) => Cow::Owned(bytes),
        // Not base64 after all: the service answers it as the bytes it is.
        Err(_) => Cow::Owned(encoded.into_bytes()),
    }
}

impl Shadow {
    /// Merge one message into its device's shadow. A shadow not in memory
    /// is loaded when the first of them is met, with those of the rest of
    /// the batch (`rest`, from this message on), with one `get-many`.
    /// Writes are coalesced: every device changed since the last flush is
    /// stored once, in `flush` (the host calls it every checkpoint interval
    /// and at shutdown).
    fn merge_one<'a, I: Iterator<Item = &'a str>>(
        &mut self,
        m: &MessageRef<'_>,
        rest: impl FnOnce() -> I,
        skipped: &mut Skipped,
    ) -> Result<(), String> {
        // The fields as the host read them (its scan checked the whole
        // payload), else parsed here completely before anything changes:
        // a broken payload leaves the shadow as it was.
        match m.fields() {
            Some(read) => self.merge_fields(m, read, rest),
            None => match fields::parse(m.payload()) {
                Ok(fields) => self.merge_fields(m, fields.iter(), rest),
                Err(e) => {
                    skipped.add(|| format!("device `{}` (rule `{}`): {e}", m.device(), m.rule()));
                    Ok(())
                }
            },
        }
    }

    /// Merge `fields` into the shadow of `m`'s device, loading it (and
    /// those of the `rest` of the batch) first when it is not in memory.
    fn merge_fields<'a, 'f, I: Iterator<Item = &'a str>>(
        &mut self,
        m: &MessageRef<'_>,
        fields: impl Iterator<Item = (&'f str, &'f str)> + Clone,
        rest: impl FnOnce() -> I,
    ) -> Result<(), String> {
        let (device, at, device_type) = (m.device(), m.received_at(), m.device_type());
        if self
            .shadows
            .merge_held(device, fields.clone(), at, device_type)
            .is_none()
        {
            self.shadows.load_missing(&self.bucket, rest())?;
            self.shadows.merge(device, fields, at, device_type);
        }
        Ok(())
    }

    /// Serve one Device Shadow service request and publish its answers.
    /// Only a failed load of the shadow fails the batch (it is retried).
    fn serve(
        &mut self,
        request: &Request<'_>,
        m: &MessageRef<'_>,
        problems: &mut Problems,
    ) -> Result<(), String> {
        let key = request.key();
        self.shadows
            .load_missing(&self.bucket, std::iter::once(key.as_str()))?;
        let body = request_body(m.payload());
        let now = m.received_at().div_euclid(1000);
        let served = self.shadows.serve(&key, request, &body, now);
        for answer in served.answers {
            if let Err(e) = weir_plugin::publish(answer.topic, answer.payload) {
                problems.unanswered.add(|| e);
            }
        }
        Ok(())
    }
}

export_sink!(Shadow);

#[cfg(test)]
mod tests {
    use super::request_body;

    #[test]
    fn request_bodies_from_the_rule_output() {
        // `SELECT encode(*, 'base64') AS request`: the bytes as published.
        assert_eq!(
            &*request_body(r#"{"request":"eyJhIjoxfQ=="}"#),
            br#"{"a":1}"#
        );
        assert_eq!(&*request_body(r#"{"request":""}"#), b"");
        // `SELECT *`: the output is the request.
        let plain = r#"{"state":{"reported":{"a":1}}}"#;
        assert_eq!(&*request_body(plain), plain.as_bytes());
        assert_eq!(&*request_body(r#"{"request":"%%"}"#), b"%%");
    }
}
