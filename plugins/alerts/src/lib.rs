//! # alerts: the embedded alert sink
//!
//! A sink plugin (`weir:plugin/sink-plugin`). It receives alert documents
//! (from `zscore` and the other detectors, routed by a rule from
//! `$weir/alerts/+`) and, for each one:
//!
//! * publishes it as JSON on `weir/alerts/<device>` (the `publish` import),
//!   where operators and dashboards subscribe (`mosquitto_sub -t
//!   'weir/alerts/#'`);
//! * appends it as one line to the journal `alerts`, which the embedded host
//!   keeps as `<data-dir>/alerts.jsonl`; one `append` call per batch.
//!
//! The device is the alert's `device` field (else the message's device). A
//! payload that is not JSON is skipped and counted in one log line per
//! batch. The journal is written first; a failed journal append or publish
//! makes `write` return an error naming what failed (the batch goes to the
//! rule's error action).
//!
//! ## Settings
//!
//! | key            | default       | meaning |
//! |----------------|---------------|---------|
//! | `topic_prefix` | `weir/alerts` | alerts are published on `<topic_prefix>/<device>` |
//! | `journal`      | `alerts`      | journal the alerts are appended to |
//!
//! ## Grants
//!
//! publish to `weir/alerts/#`; journal `alerts`.

pub mod alert;

use weir_plugin::{config, export_sink, journal, log, publish, Message, Sink};

/// The plugin instance.
pub struct Alerts {
    topic_prefix: String,
    journal: String,
}

fn setting(key: &str, default: &str) -> String {
    config::get(key)
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_string())
}

impl Sink for Alerts {
    fn new() -> Result<Self, String> {
        Ok(Alerts {
            topic_prefix: setting("topic_prefix", "weir/alerts"),
            journal: setting("journal", "alerts"),
        })
    }

    fn write(&mut self, batch: Vec<Message>) -> Result<(), String> {
        let mut prepared = Vec::with_capacity(batch.len());
        let mut skipped = 0usize;
        let mut first_skip = None;
        for m in &batch {
            match alert::prepare(m, &self.topic_prefix) {
                Ok(p) => prepared.push(p),
                Err(e) => {
                    skipped += 1;
                    first_skip.get_or_insert_with(|| {
                        format!("device `{}` (rule `{}`): {e}", m.device, m.rule)
                    });
                }
            }
        }
        if let Some(e) = first_skip {
            log::warn(format!(
                "skipped {skipped} of {} alerts; first: {e}",
                batch.len()
            ));
        }
        if prepared.is_empty() {
            return Ok(());
        }

        let lines: Vec<String> = prepared.iter().map(|p| p.line.clone()).collect();
        let journal_result = journal::append(&self.journal, &lines);

        let mut failed = 0usize;
        let mut first_failure = None;
        for p in prepared {
            if let Err(e) = publish(p.topic.clone(), p.line) {
                failed += 1;
                first_failure.get_or_insert_with(|| format!("`{}`: {e}", p.topic));
            }
        }

        match (journal_result, first_failure) {
            (Ok(()), None) => Ok(()),
            (Err(e), None) => Err(format!("appending to journal `{}`: {e}", self.journal)),
            (Ok(()), Some(p)) => Err(format!("publishing {failed} alerts failed; first {p}")),
            (Err(e), Some(p)) => Err(format!(
                "appending to journal `{}`: {e}; publishing {failed} alerts failed; first {p}",
                self.journal
            )),
        }
    }
}

export_sink!(Alerts);
