//! Counters every part of the host reports into, read by `weir status`.
//!
//! Plain atomics for the hot path; per-plugin and per-rule counters sit in a
//! map behind a mutex that is only touched when something goes wrong.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    pub messages_received: AtomicU64,
    pub messages_malformed: AtomicU64,
    /// Messages whose rules have all been evaluated and actions delivered.
    pub messages_processed: AtomicU64,
    pub messages_internal: AtomicU64,
    pub rule_matches: AtomicU64,
    pub rule_errors: AtomicU64,
    pub plugin_calls: AtomicU64,
    pub plugin_messages: AtomicU64,
    pub plugin_failures: AtomicU64,
    pub error_action_messages: AtomicU64,
    pub dead_letters: AtomicU64,
    pub published: AtomicU64,
    pub publish_refused: AtomicU64,
    pub loops_stopped: AtomicU64,
    pub connections: AtomicI64,
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
    pub connections_refused: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub policy_violations: AtomicU64,
    named: Mutex<BTreeMap<String, u64>>,
    notes: Mutex<BTreeMap<String, String>>,
}

impl Metrics {
    /// Add to a named counter such as `plugin.zscore.failures`.
    pub fn count(&self, name: &str, n: u64) {
        if let Ok(mut m) = self.named.lock() {
            *m.entry(name.to_string()).or_default() += n;
        }
    }

    /// Record a status line such as `plugin.zscore = quarantined: …`; `None` clears it.
    pub fn note(&self, name: &str, text: Option<String>) {
        if let Ok(mut m) = self.notes.lock() {
            match text {
                Some(t) => {
                    m.insert(name.to_string(), t);
                }
                None => {
                    m.remove(name);
                }
            }
        }
    }

    pub fn named(&self, name: &str) -> u64 {
        self.named
            .lock()
            .map(|m| m.get(name).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Everything as one JSON document.
    pub fn snapshot(&self) -> Value {
        let mut counters = Map::new();
        for (k, v) in [
            ("messages_received", &self.messages_received),
            ("messages_malformed", &self.messages_malformed),
            ("messages_processed", &self.messages_processed),
            ("messages_internal", &self.messages_internal),
            ("rule_matches", &self.rule_matches),
            ("rule_errors", &self.rule_errors),
            ("plugin_calls", &self.plugin_calls),
            ("plugin_messages", &self.plugin_messages),
            ("plugin_failures", &self.plugin_failures),
            ("error_action_messages", &self.error_action_messages),
            ("dead_letters", &self.dead_letters),
            ("published", &self.published),
            ("publish_refused", &self.publish_refused),
            ("loops_stopped", &self.loops_stopped),
            ("connects", &self.connects),
            ("disconnects", &self.disconnects),
            ("connections_refused", &self.connections_refused),
            ("protocol_errors", &self.protocol_errors),
            ("policy_violations", &self.policy_violations),
        ] {
            counters.insert(k.into(), json!(v.load(Relaxed)));
        }
        counters.insert("connections".into(), json!(self.connections.load(Relaxed)));
        if let Ok(m) = self.named.lock() {
            for (k, v) in m.iter() {
                counters.insert(k.clone(), json!(v));
            }
        }
        let notes: Map<String, Value> = self
            .notes
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
            .unwrap_or_default();
        json!({ "counters": counters, "status": notes })
    }
}
