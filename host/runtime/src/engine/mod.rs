//! The rules engine: worker threads fed by bounded queues.
//!
//! Listeners hand each message to the worker chosen by its topic, so one
//! device's readings stay in order and its per-device plugin state lives in
//! one instance. A full queue makes the listener wait, which stops it
//! reading that device's socket: back-pressure instead of growing memory.

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
}

impl EngineHandle {
    pub fn new(queues: Vec<flume::Sender<Ingest>>) -> EngineHandle {
        EngineHandle { queues, gate: None }
    }

    /// Make `send` wait while `gate` is closed.
    pub fn with_gate(mut self, gate: Arc<crate::sinks::Gate>) -> EngineHandle {
        self.gate = Some(gate);
        self
    }

    fn queue_for(&self, topic: &str) -> &flume::Sender<Ingest> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        topic.hash(&mut h);
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
        self.queue_for(&ingest.topic)
            .send_async(ingest)
            .await
            .is_ok()
    }

    /// Blocking variant for threads outside the async runtime.
    pub fn send_blocking(&self, ingest: Ingest) -> bool {
        self.queue_for(&ingest.topic).send(ingest).is_ok()
    }

    /// Messages waiting in all queues.
    pub fn queued(&self) -> usize {
        self.queues.iter().map(|q| q.len()).sum()
    }
}
