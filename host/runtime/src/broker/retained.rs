//! Retained messages kept in the store as well as in the router: rumqttd
//! holds them in memory only, so without this a restart would lose every
//! device's retained state (AWS keeps them). Each retained publish is
//! recorded (an empty one clears its topic, as MQTT says); at start the
//! recorded ones are published into the router again. They are also what
//! the HTTP API's GetRetainedMessage and ListRetainedMessages read.

use super::{qos1_publish, Broker, BrokerError};
use crate::metrics::Metrics;
use crate::store::KvStore;
use base64::Engine as _;
use bytes::Bytes;
use rumqttd::protocol::Packet;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The store's bucket: topic → [`Stored`].
pub const BUCKET: &str = "$retained";

/// One retained message as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// The payload, base64.
    pub payload: String,
    pub qos: u8,
    /// When it was published (ms since the epoch).
    pub last_modified: i64,
}

impl Stored {
    pub fn bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .unwrap_or_default()
    }
}

pub struct Retained {
    kv: Arc<KvStore>,
    metrics: Arc<Metrics>,
}

impl Retained {
    pub fn new(kv: Arc<KvStore>, metrics: Arc<Metrics>) -> Retained {
        Retained { kv, metrics }
    }

    /// A retained publish on `topic` (device-side form) at `now_ms`.
    pub fn record(&self, topic: &str, payload: &[u8], qos: u8, now_ms: i64) {
        if payload.is_empty() {
            self.kv.delete(BUCKET, topic);
            self.metrics.count("retained.cleared", 1);
            return;
        }
        let stored = Stored {
            payload: base64::engine::general_purpose::STANDARD.encode(payload),
            qos: qos.min(1),
            last_modified: now_ms,
        };
        match serde_json::to_vec(&stored) {
            Ok(v) => {
                self.kv.set(BUCKET, topic, v);
                self.metrics.count("retained.stored", 1);
            }
            Err(e) => tracing::error!(topic, error = %e, "cannot record a retained message"),
        }
    }

    /// The retained message of `topic`, if any.
    pub fn get(&self, topic: &str) -> Option<Stored> {
        let bytes = self.kv.get(BUCKET, topic).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// Up to `max` retained messages in topic order after `after`, and
    /// the last topic returned when more follow.
    pub fn list(&self, after: Option<&str>, max: usize) -> (Vec<(String, Stored)>, Option<String>) {
        let topics = self.kv.keys(BUCKET).unwrap_or_default();
        crate::store::kv::page(topics, after, max, |topic| self.get(topic))
    }

    /// Publish every recorded message into the router again, retained (at
    /// start, before devices connect). Returns how many.
    pub async fn restore(&self, broker: &Broker) -> Result<usize, BrokerError> {
        let (all, _) = self.list(None, usize::MAX);
        if all.is_empty() {
            return Ok(0);
        }
        let mut link = broker.publisher("weir.internal.retained")?;
        let mut restored = 0;
        for (i, (topic, stored)) in all.iter().enumerate() {
            let payload = Bytes::from(stored.bytes());
            let publish = if stored.qos > 0 {
                qos1_publish(topic, payload, true, (i % 65535) as u16 + 1)
            } else {
                Some(rumqttd::protocol::Publish::new(
                    Bytes::from(super::to_router(topic).into_owned()),
                    payload,
                    true,
                ))
            };
            let Some(publish) = publish else {
                continue;
            };
            link.send(Packet::Publish(publish, None))
                .await
                .map_err(|e| BrokerError::Link(e.to_string()))?;
            restored += 1;
        }
        Ok(restored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_listed_cleared_and_kept_across_a_reopen() {
        let dir = std::env::temp_dir().join(format!("weir-retained-{}", std::process::id()));
        let path = dir.join("state.redb");
        let metrics = Arc::new(Metrics::default());
        {
            let kv = Arc::new(KvStore::open(&path).expect("store"));
            let r = Retained::new(kv.clone(), metrics.clone());
            r.record("cfg/b", b"{\"x\":1}", 1, 10);
            r.record("cfg/a", b"on", 2, 11);
            r.record("$aws/things/t/state", b"s", 0, 12);
            r.record("cfg/gone", b"x", 0, 13);
            r.record("cfg/gone", b"", 0, 14);
            assert_eq!(
                r.get("cfg/b").map(|s| s.bytes()),
                Some(b"{\"x\":1}".to_vec())
            );
            assert_eq!(r.get("cfg/a").map(|s| s.qos), Some(1), "QoS 2 is kept as 1");
            assert!(r.get("cfg/gone").is_none());
            kv.flush().expect("flush");
        }
        let kv = Arc::new(KvStore::open(&path).expect("reopen"));
        let r = Retained::new(kv, metrics);
        let (page, next) = r.list(None, 2);
        let topics: Vec<&str> = page.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(topics, ["$aws/things/t/state", "cfg/a"]);
        assert_eq!(next.as_deref(), Some("cfg/a"));
        let (rest, next) = r.list(next.as_deref(), 2);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].0, "cfg/b");
        assert_eq!(rest[0].1.last_modified, 10);
        assert!(next.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
