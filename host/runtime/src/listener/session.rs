//! Persistent sessions, held by the host.
//!
//! When a device with a persistent session (MQTT 3.1.1 clean session off,
//! or an MQTT 5 session expiry) goes away, its router link is *parked*: it
//! stays subscribed, and a small task takes every QoS 1 message the router
//! forwards, acknowledges it to the router and queues it for the device.
//! When the device comes back it takes the link and the queue over and
//! gets the queued messages first. The host owns this (not rumqttd's
//! graveyard) so the limits are explicit: at most `max_messages` queued per
//! session (the oldest is dropped, counted and logged) and a lifetime after
//! which the session ends (counted and logged). QoS 0 messages for an
//! offline device are not queued (as in AWS IoT), and counted.

use crate::metrics::Metrics;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Packet, PubAck, PubAckReason, Publish, PublishProperties};
use rumqttd::Notification;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// A QoS 1 message waiting for its device (topic as the device sees it).
#[derive(Debug, Clone)]
pub struct Queued {
    pub publish: Publish,
    pub properties: Option<PublishProperties>,
    /// Already written to the device once (resent with the dup flag).
    pub sent: bool,
}

/// Everything a persistent session carries between connections.
pub struct Session {
    pub link_tx: LinkTx,
    pub link_rx: LinkRx,
    pub queue: VecDeque<Queued>,
    /// How long the session outlives its connection.
    pub expiry: Duration,
    /// Filters the device subscribed to, as it wrote them.
    pub subscriptions: Vec<String>,
}

/// Limits from `[broker]`.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_messages: usize,
}

struct Parked {
    id: u64,
    reclaim: oneshot::Sender<oneshot::Sender<Session>>,
}

/// The parked sessions, by client id.
pub struct Sessions {
    parked: Mutex<HashMap<String, Parked>>,
    limits: SessionLimits,
    metrics: Arc<Metrics>,
    next_id: AtomicU64,
}

impl Sessions {
    pub fn new(limits: SessionLimits, metrics: Arc<Metrics>) -> Arc<Sessions> {
        Arc::new(Sessions {
            parked: Mutex::new(HashMap::new()),
            limits,
            metrics,
            next_id: AtomicU64::new(1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sessions waiting for their device.
    pub fn parked(&self) -> usize {
        self.lock().len()
    }

    /// Hold `session` until its device returns or it expires.
    pub fn park(self: &Arc<Self>, client_id: &str, session: Session) {
        let id = self.next_id.fetch_add(1, Relaxed);
        let (reclaim_tx, reclaim_rx) = oneshot::channel();
        let previous = self.lock().insert(
            client_id.to_string(),
            Parked {
                id,
                reclaim: reclaim_tx,
            },
        );
        // Dropping a previous holder's reclaim sender ends that session.
        drop(previous);
        self.metrics.count("sessions.parked", 1);
        tokio::spawn(hold(
            self.clone(),
            client_id.to_string(),
            id,
            session,
            reclaim_rx,
        ));
    }

    /// Take the parked session of `client_id` over, if there is one.
    pub async fn take(&self, client_id: &str) -> Option<Session> {
        let parked = self.lock().remove(client_id)?;
        let (tx, rx) = oneshot::channel();
        parked.reclaim.send(tx).ok()?;
        let session = tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .ok()?
            .ok()?;
        self.metrics.count("sessions.resumed", 1);
        Some(session)
    }

    /// End the parked session of `client_id` (a clean start), if any.
    pub fn discard(&self, client_id: &str) {
        if self.lock().remove(client_id).is_some() {
            self.metrics.count("sessions.discarded", 1);
            tracing::debug!(client_id, "parked session discarded by a clean start");
        }
    }

    fn forget(&self, client_id: &str, id: u64) {
        let mut parked = self.lock();
        if parked.get(client_id).is_some_and(|p| p.id == id) {
            parked.remove(client_id);
        }
    }
}

async fn hold(
    sessions: Arc<Sessions>,
    client_id: String,
    id: u64,
    mut session: Session,
    mut reclaim: oneshot::Receiver<oneshot::Sender<Session>>,
) {
    let expiry = tokio::time::sleep(session.expiry);
    tokio::pin!(expiry);
    let mut warned = false;
    loop {
        tokio::select! {
            asked = &mut reclaim => {
                if let Ok(reply) = asked {
                    if let Err(unclaimed) = reply.send(session) {
                        close(unclaimed).await;
                    }
                    return;
                }
                // Discarded (clean start) or replaced.
                break;
            }
            _ = &mut expiry => {
                sessions.metrics.count("sessions.expired", 1);
                tracing::info!(
                    client_id,
                    queued = session.queue.len(),
                    expiry_s = session.expiry.as_secs(),
                    "persistent session expired; its queued messages are dropped"
                );
                if !session.queue.is_empty() {
                    sessions.metrics.count("sessions.messages_expired", session.queue.len() as u64);
                }
                sessions.forget(&client_id, id);
                break;
            }
            notification = session.link_rx.next() => match notification {
                Ok(Some(Notification::Forward(forward))) => {
                    let meta = super::packets::meta(&forward.publish);
                    if meta.qos == 0 {
                        sessions.metrics.count("sessions.qos0_not_queued", 1);
                        continue;
                    }
                    // Acknowledge to the router: the host now owns delivery.
                    let ack = Packet::PubAck(PubAck { pkid: meta.pkid, reason: PubAckReason::Success }, None);
                    if session.link_tx.send(ack).await.is_err() {
                        break;
                    }
                    if session.queue.len() >= sessions.limits.max_messages {
                        session.queue.pop_front();
                        sessions.metrics.count("sessions.messages_dropped", 1);
                        if !warned {
                            warned = true;
                            tracing::warn!(
                                client_id,
                                limit = sessions.limits.max_messages,
                                "persistent session queue full; dropping its oldest messages (counted in sessions.messages_dropped)"
                            );
                        }
                    }
                    let mut publish = forward.publish;
                    publish.topic = crate::broker::from_router(&publish.topic);
                    session.queue.push_back(Queued { publish, properties: forward.properties, sent: false });
                    sessions.metrics.count("sessions.messages_queued", 1);
                }
                Ok(Some(Notification::Unschedule)) => {
                    if session.link_rx.wake().await.is_err() {
                        break;
                    }
                }
                Ok(Some(Notification::Disconnect(..))) | Err(_) => break,
                Ok(_) => {}
            },
        }
    }
    close(session).await;
}

/// Leave the router for good.
async fn close(mut session: Session) {
    let goodbye = Packet::Disconnect(
        rumqttd::protocol::Disconnect {
            reason_code: rumqttd::protocol::DisconnectReasonCode::NormalDisconnection,
        },
        None,
    );
    let _ = session.link_tx.send(goodbye).await;
}
