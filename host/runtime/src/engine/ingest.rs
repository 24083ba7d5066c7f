//! What enters the engine: one published message, stamped on arrival.

use bytes::Bytes;
use std::sync::Arc;

/// The client id used for messages the host itself makes.
pub const HOST_CLIENT_ID: &str = "weir";

/// Most times one message may cross the engine (a plugin's output that
/// matches a rule that feeds a plugin …). Stops loops between rules.
pub const MAX_HOPS: u8 = 8;

/// Who published a message (one per connection, shared by its messages;
/// one for everything the host makes): what the rule functions
/// `clientid()`, `principal()` and `sourceip()` return.
#[derive(Debug)]
pub struct Publisher {
    pub client_id: Box<str>,
    /// The client certificate's id (lowercase hex SHA-256 of its DER) for a
    /// device that connected with one (mTLS); AWS's certificate thumbprint.
    pub principal: Option<String>,
    /// The connection's remote IP address (none for the host's messages).
    pub source_ip: Option<String>,
}

impl Publisher {
    /// A device connection's publisher.
    pub fn device(client_id: &str, principal: Option<String>, source_ip: String) -> Arc<Publisher> {
        Arc::new(Publisher {
            client_id: client_id.into(),
            principal,
            source_ip: Some(source_ip),
        })
    }

    /// A publisher with only a client id (simulated devices, tests).
    pub fn named(client_id: &str) -> Arc<Publisher> {
        Arc::new(Publisher {
            client_id: client_id.into(),
            principal: None,
            source_ip: None,
        })
    }

    /// The host itself (lifecycle events, plugin outputs): one shared value,
    /// so the host's messages allocate none for it.
    pub fn host() -> Arc<Publisher> {
        static HOST: std::sync::OnceLock<Arc<Publisher>> = std::sync::OnceLock::new();
        HOST.get_or_init(|| Publisher::named(HOST_CLIENT_ID))
            .clone()
    }
}

#[derive(Debug, Clone)]
pub struct Ingest {
    pub topic: String,
    pub payload: Bytes,
    /// Who published it.
    pub from: Arc<Publisher>,
    /// The MQTT 5 properties it was published with, when it had any that
    /// rules can read (`get_mqtt_property`, `get_user_properties`).
    pub properties: Option<Arc<weir_sql::MqttProperties>>,
    /// Basic Ingest: the rule it was published to (`$aws/rules/<rule>/…`),
    /// which alone evaluates it; `topic` is then the part after the rule.
    pub basic_ingest: Option<Box<str>>,
    /// Server receive time (ms since the epoch), stamped when the packet
    /// was read off the socket.
    pub received_at: i64,
    /// 0 for messages from devices; +1 each time a plugin's output re-enters.
    pub hops: u8,
}

impl Ingest {
    /// A message the host itself publishes (a lifecycle event, a plugin's
    /// or a republish action's output), received now, `hops` deep.
    pub fn from_host(topic: String, payload: Bytes, hops: u8) -> Ingest {
        Ingest {
            topic,
            payload,
            from: Publisher::host(),
            properties: None,
            basic_ingest: None,
            received_at: crate::clock::now_ms(),
            hops,
        }
    }
}
