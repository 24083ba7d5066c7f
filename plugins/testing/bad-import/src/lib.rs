//! `bad-import`: a well-behaved processor that uses capabilities a test
//! declaration will not grant, for the host's grant tests. For each batch it:
//!
//! * publishes each payload on `bad-import/<device>`;
//! * opens the key-value bucket `bad-import` and counts the batch in it
//!   (key `batches`);
//! * appends one line to the journal `bad-import`.
//!
//! Every failure is collected, and `process` returns `Err` listing them (so
//! a host that links the imports and denies the calls sees a clean error,
//! not a trap). With everything granted it returns `Ok([])`.
//!
//! Settings: `topic` (default `bad-import`), `bucket` (default
//! `bad-import`), `journal` (default `bad-import`).

use weir_plugin::kv::Bucket;
use weir_plugin::{config, export_processor, journal, publish, Message, Outbound, Processor};

pub struct BadImport {
    topic: String,
    bucket: String,
    journal: String,
}

impl Processor for BadImport {
    fn new() -> Result<Self, String> {
        let get = |k: &str| config::get(k).unwrap_or_else(|| "bad-import".to_string());
        Ok(BadImport {
            topic: get("topic"),
            bucket: get("bucket"),
            journal: get("journal"),
        })
    }

    fn process(&mut self, batch: Vec<Message>) -> Result<Vec<Outbound>, String> {
        let mut errors = Vec::new();
        for m in &batch {
            if let Err(e) = publish(format!("{}/{}", self.topic, m.device), m.payload.clone()) {
                errors.push(format!("publish: {e}"));
                break;
            }
        }
        match Bucket::open(&self.bucket) {
            Ok(bucket) => {
                let count = bucket
                    .get("batches")
                    .ok()
                    .flatten()
                    .and_then(|v| String::from_utf8(v).ok())
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                if let Err(e) = bucket.set("batches", (count + 1).to_string().as_bytes()) {
                    errors.push(format!("kv: {e}"));
                }
            }
            Err(e) => errors.push(format!("kv: {e}")),
        }
        let line = format!("{{\"batch\":{}}}", batch.len());
        if let Err(e) = journal::append(&self.journal, &[line]) {
            errors.push(format!("journal: {e}"));
        }
        if errors.is_empty() {
            Ok(Vec::new())
        } else {
            Err(errors.join("; "))
        }
    }
}

export_processor!(BadImport);
