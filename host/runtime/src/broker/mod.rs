//! The embedded broker: rumqttd's router (sessions, subscriptions, retained
//! messages, fan-out to device subscribers), driven only through its
//! in-process link API. rumqttd's own listeners are not used: the host's
//! [`listener`](crate::listener) owns device sockets so it knows who
//! connected, stamps every message on arrival and applies back-pressure.

pub mod retained;

use crate::config::BrokerConfig;
use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::Notification;
use std::sync::Arc;

type Connect =
    dyn Fn(&str, bool) -> Result<(LinkTx, LinkRx, Notification), BrokerError> + Send + Sync;

/// Handle to the running router.
#[derive(Clone)]
pub struct Broker {
    // rumqttd does not export the type of its router channel, so the handle
    // keeps the one thing it needs the channel for: building links.
    connect: Arc<Connect>,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// rumqttd's link error, as text (the error itself is 800 bytes).
    #[error("broker link: {0}")]
    Link(String),
}

impl Broker {
    /// Start the router thread.
    pub fn start(config: &BrokerConfig) -> Broker {
        let router = rumqttd::RouterConfig {
            max_connections: config.max_connections,
            max_outgoing_packet_count: 200,
            max_segment_size: config.segment_size,
            max_segment_count: config.segment_count,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        };
        let router_tx = rumqttd::Router::new(0, router).spawn();
        Broker {
            connect: Arc::new(move |client_id: &str, clean: bool| {
                LinkBuilder::new(client_id, router_tx.clone())
                    .clean_session(clean)
                    .build()
                    .map_err(|e| BrokerError::Link(e.to_string()))
            }),
        }
    }

    /// A link for one client (a device connection or the engine).
    pub fn link(
        &self,
        client_id: &str,
        clean_session: bool,
    ) -> Result<(LinkTx, LinkRx, Notification), BrokerError> {
        (self.connect)(client_id, clean_session)
    }

    /// A publish-only link for host components (engine workers): its
    /// notifications are drained on a small thread, answering `Unschedule`
    /// so the router never stalls on it.
    pub fn publisher(&self, name: &str) -> Result<LinkTx, BrokerError> {
        let (tx, mut rx, _) = self.link(name, true)?;
        std::thread::Builder::new()
            .name(format!("{name}-drain"))
            .spawn(move || loop {
                match rx.recv() {
                    Ok(Some(Notification::Unschedule)) => {
                        if rx.ready().is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            })
            .ok();
        Ok(tx)
    }
}

/// rumqttd's router refuses subscriptions that start with `$` (other than
/// `$share/`), and AWS IoT's reserved topics (`$aws/…`) all do. Inside the
/// router such topics are kept as `%24…`; the host translates at the edge,
/// so devices only ever see `$`.
pub const ROUTER_DOLLAR: &str = "%24";

/// A device-side topic or filter as the router stores it.
pub fn to_router(topic: &str) -> std::borrow::Cow<'_, str> {
    match topic.strip_prefix('$') {
        Some(rest) if !topic.starts_with("$share/") => {
            std::borrow::Cow::Owned(format!("{ROUTER_DOLLAR}{rest}"))
        }
        _ => std::borrow::Cow::Borrowed(topic),
    }
}

/// A router-side topic as devices see it.
pub fn from_router(topic: &bytes::Bytes) -> bytes::Bytes {
    match topic.strip_prefix(ROUTER_DOLLAR.as_bytes()) {
        Some(rest) => {
            let mut t = Vec::with_capacity(rest.len() + 1);
            t.push(b'$');
            t.extend_from_slice(rest);
            bytes::Bytes::from(t)
        }
        None => topic.clone(),
    }
}

/// A client id the router accepts (it refuses `+ $ # /`), reversible.
pub fn router_client_id(client_id: &str) -> String {
    let mut out = String::with_capacity(client_id.len());
    for c in client_id.chars() {
        match c {
            '%' => out.push_str("%25"),
            '+' => out.push_str("%2B"),
            '$' => out.push_str("%24"),
            '#' => out.push_str("%23"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// Publish a host-made message (QoS 0) under its router name.
pub fn publish(link: &mut LinkTx, topic: &str, payload: bytes::Bytes) -> Result<(), BrokerError> {
    link.publish(to_router(topic).into_owned(), payload)
        .map(|_| ())
        .map_err(|e| BrokerError::Link(e.to_string()))
}

/// As [`publish`], kept by the router for later subscribers. (rumqttd's
/// `LinkTx::send` is async in name only: it queues and never waits, so it
/// runs here in place.)
pub fn publish_retained(
    link: &mut LinkTx,
    topic: &str,
    payload: bytes::Bytes,
) -> Result<(), BrokerError> {
    use futures_util::FutureExt;
    let publish = rumqttd::protocol::Publish::new(
        bytes::Bytes::from(to_router(topic).into_owned()),
        payload,
        true,
    );
    match link
        .send(rumqttd::protocol::Packet::Publish(publish, None))
        .now_or_never()
    {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(BrokerError::Link(e.to_string())),
        None => Err(BrokerError::Link("the router's queue is busy".into())),
    }
}

/// A PUBLISH the host makes at QoS 1 (rumqttd builds only QoS 0 ones for
/// local links): encoded as MQTT 3.1.1 and read back with rumqttd's codec,
/// the same path a device's QoS 1 publish takes. `topic` is device-side.
pub fn qos1_publish(
    topic: &str,
    payload: bytes::Bytes,
    retain: bool,
    pkid: u16,
) -> Option<rumqttd::protocol::Publish> {
    use rumqttd::protocol::{v4::V4, Packet, Protocol};
    let topic = to_router(topic);
    let topic_len = u16::try_from(topic.len()).ok()?;
    let remaining = 2 + topic.len() + 2 + payload.len();
    let mut raw = bytes::BytesMut::with_capacity(remaining + 5);
    raw.extend_from_slice(&[0x32 | u8::from(retain)]);
    let mut n = remaining;
    loop {
        let byte = (n % 128) as u8;
        n /= 128;
        raw.extend_from_slice(&[if n > 0 { byte | 0x80 } else { byte }]);
        if n == 0 {
            break;
        }
    }
    raw.extend_from_slice(&topic_len.to_be_bytes());
    raw.extend_from_slice(topic.as_bytes());
    raw.extend_from_slice(&pkid.max(1).to_be_bytes());
    raw.extend_from_slice(&payload);
    let mut codec = V4;
    match codec.read_mut(&mut raw, usize::MAX) {
        Ok(Packet::Publish(p, _)) => Some(p),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_topics_round_trip() {
        assert_eq!(
            to_router("$aws/events/presence/connected/x"),
            "%24aws/events/presence/connected/x"
        );
        assert_eq!(to_router("$share/g/a/b"), "$share/g/a/b");
        assert_eq!(to_router("dt/a/b"), "dt/a/b");
        let back = from_router(&bytes::Bytes::from_static(b"%24aws/things/x/shadow/update"));
        assert_eq!(&back[..], b"$aws/things/x/shadow/update");
        assert_eq!(router_client_id("a/b$c"), "a%2Fb%24c");
    }

    #[test]
    fn host_qos1_publishes_read_back_whole() {
        let payload = bytes::Bytes::from(vec![b'x'; 300]);
        let p = qos1_publish("$aws/things/lamp/cmd", payload.clone(), true, 7).expect("publish");
        assert_eq!(&p.topic[..], b"%24aws/things/lamp/cmd");
        assert_eq!(p.payload, payload);
        assert!(p.retain);
        assert_eq!(crate::listener::packets::meta(&p).qos, 1);
    }
}
