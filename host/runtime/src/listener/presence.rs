//! AWS IoT-style lifecycle events on
//! `$aws/events/presence/{connected,disconnected}/<clientId>`, published to
//! the broker (subscribers) and the engine (rules).

use crate::engine::{EngineHandle, Ingest};
use crate::store::KvStore;
use bytes::Bytes;
use rumqttd::local::LinkTx;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Bucket where the last version number per client id is kept, so it keeps
/// increasing across restarts.
const BUCKET: &str = "$presence";

pub struct Presence {
    kv: Arc<KvStore>,
    versions: Mutex<HashMap<String, u64>>,
    publisher: Mutex<LinkTx>,
    engine: EngineHandle,
}

/// Why a connection ended, in AWS's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    ClientInitiated,
    ConnectionLost,
    ClientError,
    KeepAliveTimeout,
    DuplicateClientId,
    ForbiddenAccess,
    ServerInitiated,
    ServerError,
    /// The certificate was revoked or deactivated while connected.
    AuthError,
}

impl DisconnectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ClientInitiated => "CLIENT_INITIATED_DISCONNECT",
            DisconnectReason::ConnectionLost => "CONNECTION_LOST",
            DisconnectReason::ClientError => "CLIENT_ERROR",
            DisconnectReason::KeepAliveTimeout => "MQTT_KEEP_ALIVE_TIMEOUT",
            DisconnectReason::DuplicateClientId => "DUPLICATE_CLIENTID",
            DisconnectReason::ForbiddenAccess => "FORBIDDEN_ACCESS",
            DisconnectReason::ServerInitiated => "SERVER_INITIATED_DISCONNECT",
            DisconnectReason::ServerError => "SERVER_ERROR",
            DisconnectReason::AuthError => "AUTH_ERROR",
        }
    }
}

impl Presence {
    pub fn new(kv: Arc<KvStore>, publisher: LinkTx, engine: EngineHandle) -> Presence {
        Presence {
            kv,
            versions: Mutex::new(HashMap::new()),
            publisher: Mutex::new(publisher),
            engine,
        }
    }

    fn next_version(&self, client_id: &str) -> u64 {
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        let v = match versions.get(client_id) {
            Some(v) => v + 1,
            None => {
                let stored = self
                    .kv
                    .get(BUCKET, client_id)
                    .ok()
                    .flatten()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                stored + 1
            }
        };
        versions.insert(client_id.to_string(), v);
        self.kv.set(BUCKET, client_id, v.to_string().into_bytes());
        v
    }

    /// `certificate` is the client certificate's id on the mTLS listener
    /// (AWS's `principalIdentifier`), the client id otherwise.
    pub async fn connected(
        &self,
        client_id: &str,
        session: &str,
        peer: &str,
        certificate: Option<&str>,
    ) {
        let version = self.next_version(client_id);
        let doc = json!({
            "clientId": client_id,
            "timestamp": crate::clock::now_ms(),
            "eventType": "connected",
            "sessionIdentifier": session,
            "principalIdentifier": certificate.unwrap_or(client_id),
            "ipAddress": peer,
            "versionNumber": version,
        });
        self.emit(format!("$aws/events/presence/connected/{client_id}"), doc)
            .await;
    }

    pub async fn disconnected(&self, client_id: &str, session: &str, reason: DisconnectReason) {
        let version = self.next_version(client_id);
        let doc = json!({
            "clientId": client_id,
            "timestamp": crate::clock::now_ms(),
            "eventType": "disconnected",
            "sessionIdentifier": session,
            "principalIdentifier": client_id,
            "clientInitiatedDisconnect": reason == DisconnectReason::ClientInitiated,
            "disconnectReason": reason.as_str(),
            "versionNumber": version,
        });
        self.emit(
            format!("$aws/events/presence/disconnected/{client_id}"),
            doc,
        )
        .await;
    }

    /// Publish a host-made message to the broker and the engine.
    pub async fn emit(&self, topic: String, doc: serde_json::Value) {
        let payload = Bytes::from(doc.to_string());
        self.publish_raw(topic.clone(), payload.clone());
        self.engine.send(Ingest::from_host(topic, payload, 0)).await;
    }

    /// Publish to the broker only; `retain` keeps it for later subscribers.
    pub fn publish_raw_with(&self, topic: String, payload: Bytes, retain: bool) {
        let mut publisher = self.publisher.lock().unwrap_or_else(|p| p.into_inner());
        let sent = if retain {
            crate::broker::publish_retained(&mut publisher, &topic, payload)
        } else {
            crate::broker::publish(&mut publisher, &topic, payload)
        };
        if let Err(e) = sent {
            tracing::error!(error = %e, "broker refused a host publish");
        }
    }

    /// Publish to the broker only.
    pub fn publish_raw(&self, topic: String, payload: Bytes) {
        self.publish_raw_with(topic, payload, false)
    }
}
