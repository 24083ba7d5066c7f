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
//! A payload that is not a JSON object is skipped and counted in one log
//! line per batch; the rest of the batch is applied.
//!
//! ## Settings
//!
//! | key      | default  | meaning |
//! |----------|----------|---------|
//! | `bucket` | `shadow` | key-value bucket of the shadows |
//!
//! ## Grants
//!
//! key-value bucket `shadow`.

pub mod doc;
pub mod fields;
pub mod shadow_doc;

use shadow_doc::Shadows;
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
        let mut skipped = Skipped::default();
        for (i, m) in batch.iter().enumerate() {
            let rest = || batch[i..].iter().map(|m| m.device.as_str());
            self.merge_one(&MessageRef::from(m), rest, &mut skipped)?;
        }
        skipped.report(batch.len());
        Ok(())
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), String> {
        let mut skipped = Skipped::default();
        batch.try_for_each(|i, m| self.merge_one(m, || batch.devices().skip(i), &mut skipped))?;
        skipped.report(batch.len());
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.store().map(|_| ())
    }
}

/// Messages of a batch that did not merge, and the first reason.
#[derive(Default)]
struct Skipped {
    count: usize,
    first: Option<String>,
}

impl Skipped {
    fn report(self, total: usize) {
        if let Some(e) = self.first {
            log::warn(format!(
                "skipped {} of {total} messages; first: {e}",
                self.count
            ));
        }
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
        let merged =
            match self
                .shadows
                .merge_held(m.device(), m.payload(), m.received_at(), m.device_type())
            {
                Some(merged) => merged,
                None => {
                    self.shadows.load_missing(&self.bucket, rest())?;
                    self.shadows
                        .merge(m.device(), m.payload(), m.received_at(), m.device_type())
                }
            };
        if let Err(e) = merged {
            skipped.count += 1;
            skipped.first.get_or_insert_with(|| {
                format!("device `{}` (rule `{}`): {e}", m.device(), m.rule())
            });
        }
        Ok(())
    }
}

export_sink!(Shadow);
