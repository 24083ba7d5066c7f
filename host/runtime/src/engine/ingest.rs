//! What enters the engine: one published message, stamped on arrival.

use bytes::Bytes;
use std::sync::Arc;

/// The client id used for messages the host itself makes.
pub const HOST_CLIENT_ID: &str = "weir";

/// Most times one message may cross the engine (a plugin's output that
/// matches a rule that feeds a plugin …). Stops loops between rules.
pub const MAX_HOPS: u8 = 8;

/// Who published a message, as the listener saw the connection (one per
/// connection, shared by its messages): what the rule functions
/// `principal()` and `sourceip()` return.
#[derive(Debug)]
pub struct Publisher {
    /// The client certificate's id (lowercase hex SHA-256 of its DER) for a
    /// device that connected with one (mTLS); AWS's certificate thumbprint.
    pub principal: Option<String>,
    /// The connection's remote IP address.
    pub source_ip: String,
}

#[derive(Debug, Clone)]
pub struct Ingest {
    pub topic: String,
    pub payload: Bytes,
    pub client_id: Arc<str>,
    /// The device connection it came from; `None` for messages the host
    /// makes (lifecycle events, plugin outputs).
    pub publisher: Option<Arc<Publisher>>,
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
