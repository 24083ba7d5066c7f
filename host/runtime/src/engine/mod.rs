//! The rules engine: worker threads fed by bounded queues.
//!
//! Listeners hand each message to the worker chosen by the device it is
//! about ([`partition_key`]), so one device's messages stay in order and
//! its per-device plugin state lives in one instance, whatever topics they
//! come on (its readings, shadow service requests for it from any client,
//! its lifecycle events). A full queue makes the listener wait, which
//! stops it reading that device's socket: back-pressure instead of growing
//! memory.

pub mod generation;
pub mod ingest;
pub mod message;
pub mod scan;
pub mod worker;

pub use generation::{Current, Generation};
pub use ingest::{Ingest, Publisher};

use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The sending side of the workers' queues.
#[derive(Clone)]
pub struct EngineHandle {
    queues: Vec<flume::Sender<Ingest>>,
    /// Closed while a backend's spool is full (see `sinks::Gate`).
    gate: Option<Arc<crate::sinks::Gate>>,
    /// The rules, which name the device of the topics they read.
    rules: Option<Arc<Current>>,
}

/// A generation a thread routes with: whose it is, its number, the generation.
type Routing = Option<(Arc<Current>, u64, Arc<Generation>)>;

thread_local! {
    /// The generation this thread last routed with: a message is routed
    /// with one atomic load, not a lock, until a reload.
    static ROUTING: std::cell::RefCell<Routing> = const { std::cell::RefCell::new(None) };
}

impl EngineHandle {
    pub fn new(queues: Vec<flume::Sender<Ingest>>) -> EngineHandle {
        EngineHandle {
            queues,
            gate: None,
            rules: None,
        }
    }

    /// Make `send` wait while `gate` is closed.
    pub fn with_gate(mut self, gate: Arc<crate::sinks::Gate>) -> EngineHandle {
        self.gate = Some(gate);
        self
    }

    /// Route by the device the current rules name for a topic (see
    /// [`partition_key`]).
    pub fn with_rules(mut self, current: Arc<Current>) -> EngineHandle {
        self.rules = Some(current);
        self
    }

    fn queue_for(&self, ingest: &Ingest) -> &flume::Sender<Ingest> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let (topic, client) = (&ingest.topic, &*ingest.from.client_id);
        match &self.rules {
            Some(current) => with_rules(current, |rules| {
                partition_key(topic, client, |t| rules.device_in(t)).hash(&mut h)
            }),
            None => partition_key(topic, client, |_| None).hash(&mut h),
        }
        let i = (h.finish() % self.queues.len() as u64) as usize;
        &self.queues[i]
    }

    /// Queue a message, waiting while the worker's queue is full or a
    /// backend's spool is (the sinks' gate is closed). Returns false when
    /// the engine has shut down.
    pub async fn send(&self, ingest: Ingest) -> bool {
        if let Some(gate) = &self.gate {
            gate.wait_open().await;
        }
        self.queue_for(&ingest).send_async(ingest).await.is_ok()
    }

    /// Blocking variant for threads outside the async runtime.
    pub fn send_blocking(&self, ingest: Ingest) -> bool {
        self.queue_for(&ingest).send(ingest).is_ok()
    }

    /// Messages waiting in all queues.
    pub fn queued(&self) -> usize {
        self.queues.iter().map(|q| q.len()).sum()
    }
}

/// Run `f` with the current rules, as this thread last fetched them.
///
/// Routing changes only when the rules do. A device whose worker changes at
/// a reload is loaded by its new worker's instances from the store; the old
/// worker checkpoints at its next batch, so within that one batch the new
/// instance may start from the state saved at the last checkpoint.
fn with_rules<R>(current: &Arc<Current>, f: impl FnOnce(&crate::rules::RuleSet) -> R) -> R {
    let version = current.version();
    ROUTING.with(|cell| {
        let mut cached = cell.borrow_mut();
        let (_, _, generation) = match &mut *cached {
            Some(c) if Arc::ptr_eq(&c.0, current) && c.1 == version => c,
            stale => stale.insert((current.clone(), version, current.get())),
        };
        f(&generation.rules)
    })
}

/// The device a message is about, which picks its worker:
///
/// - the thing of AWS's per-thing topics (`$aws/things/<thing>/…`: a
///   shadow request for a thing meets that thing's own readings);
/// - the client of a lifecycle event (`$aws/events/presence/<event>/<clientId>`);
/// - the device the rules name for the topic (`rule_device`: the first
///   matching rule whose plugin actions read the device from one topic
///   level, as the shipped telemetry rule's `${topic(3)}`), so a device's
///   readings meet its shadow requests whoever publishes them (the device,
///   a gateway, `mosquitto_pub` with a made-up client id, a backend over
///   HTTP);
/// - the publisher's client id when it is one of the topic's levels: a
///   device publishing as itself (AWS's convention, and what thing
///   policies check), whose every topic then meets its `$aws/things/…`;
/// - else the topic: one device's readings stay together whoever sends
///   them, and a gateway's children spread over the workers. The host's
///   own messages spread by topic too.
pub fn partition_key<'a>(
    topic: &'a str,
    client_id: &'a str,
    rule_device: impl FnOnce(&'a str) -> Option<&'a str>,
) -> &'a str {
    if let Some(rest) = topic.strip_prefix("$aws/things/") {
        if let Some((thing, _)) = rest.split_once('/') {
            return thing;
        }
    }
    if let Some(rest) = topic.strip_prefix("$aws/events/presence/") {
        if let Some((_, client)) = rest.split_once('/') {
            return client;
        }
    }
    if let Some(device) = rule_device(topic) {
        return device;
    }
    if client_id != ingest::HOST_CLIENT_ID
        && !client_id.is_empty()
        && topic
            .split(weir_sql::topic::is_separator)
            .any(|level| level == client_id)
    {
        return client_id;
    }
    topic
}

#[cfg(test)]
mod tests {
    use super::partition_key as key;

    fn partition_key<'a>(topic: &'a str, client_id: &'a str) -> &'a str {
        key(topic, client_id, |_| None)
    }

    #[test]
    fn everything_about_one_device_has_one_key() {
        let device = [
            partition_key("dt/lamp/lamp-1/telemetry", "lamp-1"),
            partition_key("dt/lamp/lamp-1/status", "lamp-1"),
            partition_key("$aws/things/lamp-1/shadow/update", "console-app"),
            partition_key("$aws/things/lamp-1/shadow/name/cfg/get", "lamp-1"),
            partition_key("$aws/events/presence/connected/lamp-1", "weir"),
            partition_key("lamp-1/dt/x", "lamp-1"),
        ];
        assert!(device.iter().all(|k| *k == "lamp-1"), "{device:?}");
        assert_eq!(partition_key("$weir/x/y", "weir"), "$weir/x/y");
        assert_eq!(
            partition_key("$aws/things/lamp-1", "c"),
            "$aws/things/lamp-1"
        );
        // Readings sent by another client (a gateway, `mosquitto_pub`
        // without -i, a backend) stay together by topic, whoever sends them.
        let other = [
            partition_key("dt/lamp/lamp-2/telemetry", "mosq-AbC123"),
            partition_key("dt/lamp/lamp-2/telemetry", "gateway-7"),
            partition_key("dt/lamp/lamp-2/telemetry", ""),
        ];
        assert!(
            other.iter().all(|k| *k == "dt/lamp/lamp-2/telemetry"),
            "{other:?}"
        );
        // A client id that is only part of a level is not the device.
        assert_eq!(
            partition_key("dt/lamp/lamp-10/telemetry", "lamp-1"),
            "dt/lamp/lamp-10/telemetry"
        );
    }

    #[test]
    fn the_device_the_rules_name_comes_before_the_publisher() {
        let level3 = |t: &'static str| t.starts_with("dt/").then(|| t.split('/').nth(2)).flatten();
        // Whoever publishes a reading, it meets the device's shadow requests.
        for client in ["lamp-2", "mosq-AbC123", "weir-http", ""] {
            assert_eq!(key("dt/lamp/lamp-2/telemetry", client, level3), "lamp-2");
        }
        // A gateway's child is the device the rule names, not the gateway.
        assert_eq!(key("dt/lamp/child-1/telemetry", "gw", level3), "child-1");
        // Per-thing topics and presence keep their own rules.
        assert_eq!(
            key("$aws/things/lamp-2/shadow/get", "x", |_| Some("no")),
            "lamp-2"
        );
        // Topics no rule names a device for fall back as before.
        assert_eq!(key("status/lamp-2", "lamp-2", level3), "lamp-2");
    }
}
