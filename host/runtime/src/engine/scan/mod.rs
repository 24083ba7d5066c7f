//! One pass over a JSON payload for what a pass-through rule's output needs
//! (`SELECT *` with no WHERE, whose templates do not read the payload): its
//! numeric fields flattened as [`metrics`](super::message::metrics) does,
//! its top-level `ts` and `timestamp`, and (from the quick scanner) where
//! each top-level field's name and value are, for plugins that need a
//! reading's fields (`batches.payload-fields`). The payload is checked as fully
//! as a parse would check it, but no map or value tree is built: metric
//! names are borrowed from the payload where they appear in it whole.
//!
//! Two scanners give the same answer:
//! - [`quick`] is a hand-written scanner for the payloads devices send (keys
//!   and strings without escapes, numbers, literals, nesting). It gives up
//!   on anything else, and on anything invalid, without deciding it.
//! - [`visitor`] drives serde_json's parser and handles every payload, with
//!   the parser's own error message for one that is not JSON. It runs only
//!   when the quick scanner gave up.
//!
//! A payload with a repeated key gives `None`: a parsed map keeps one of
//! the values (the last, at the first key's place), which a single pass
//! cannot know early enough, so the engine parses such a payload instead.

mod quick;
mod visitor;

use crate::text::same;

use crate::plugin::batch::{FieldSpan, MetricRef};
use serde_json::Value;

/// What a pass-through output needs from its payload.
#[derive(Debug, Default)]
pub struct Scan<'a> {
    /// Numeric fields, nested objects flattened with `.`, in payload order.
    pub metrics: Vec<MetricRef<'a>>,
    /// The top-level `ts` and `timestamp` fields, when present.
    pub ts: Option<Value>,
    pub timestamp: Option<Value>,
    /// The payload's top-level fields in order, when it is an object and
    /// the quick scanner read it.
    pub fields: Option<Vec<FieldSpan>>,
}

impl Scan<'_> {
    /// The field the device time is read from: `ts`, else `timestamp`.
    pub fn device_time(&self) -> Option<&Value> {
        self.ts.as_ref().or(self.timestamp.as_ref())
    }
}

/// Scan `payload`. `Err`: not valid JSON (the parser's own message).
/// `Ok(None)`: valid, but an object repeats a key.
pub fn scan(payload: &str) -> Result<Option<Scan<'_>>, serde_json::Error> {
    match quick::scan(payload) {
        Some(scan) => Ok(Some(scan)),
        None => visitor::scan(payload),
    }
}

#[cfg(test)]
mod tests;
