//! The embedded broker: rumqttd's router (sessions, subscriptions, retained
//! messages, fan-out to device subscribers), driven only through its
//! in-process link API. rumqttd's own listeners are not used: the host's
//! [`listener`](crate::listener) owns device sockets so it knows who
//! connected, stamps every message on arrival and applies back-pressure.

use crate::config::BrokerConfig;
use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::Notification;
use std::sync::Arc;

type Connect = dyn Fn(&str, bool) -> Result<(LinkTx, LinkRx, Notification), rumqttd::local::LinkError>
    + Send
    + Sync;

/// Handle to the running router.
#[derive(Clone)]
pub struct Broker {
    // rumqttd does not export the type of its router channel, so the handle
    // keeps the one thing it needs the channel for: building links.
    connect: Arc<Connect>,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker link: {0}")]
    Link(#[from] rumqttd::local::LinkError),
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
            }),
        }
    }

    /// A link for one client (a device connection or the engine).
    pub fn link(&self, client_id: &str, clean_session: bool) -> Result<(LinkTx, LinkRx, Notification), BrokerError> {
        Ok((self.connect)(client_id, clean_session)?)
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
