//! The device-facing side, owned by the host: accepts MQTT 3.1.1
//! connections, knows each client's identity, publishes lifecycle events,
//! stamps every message on arrival, enforces the publish policy, and feeds
//! the engine and the embedded broker's router.

pub mod connection;
pub mod policy;
pub mod presence;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::engine::EngineHandle;
use crate::metrics::Metrics;
use presence::Presence;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// A live connection as the registry knows it.
struct Live {
    session: String,
    /// Tells the connection to close.
    kick: oneshot::Sender<()>,
    /// Resolves (closed) once the connection has left the router.
    gone: oneshot::Receiver<()>,
}

/// What a new connection must do about the one it replaces.
pub struct Replaced {
    kick: oneshot::Sender<()>,
    gone: oneshot::Receiver<()>,
}

impl Replaced {
    /// Close the older connection and wait (bounded) until it has left the
    /// router, so the router never sees two links for one client id.
    pub async fn close(self) {
        let _ = self.kick.send(());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.gone).await;
    }
}

/// Everything connections share.
pub struct Shared {
    pub broker: Broker,
    pub engine: EngineHandle,
    pub metrics: Arc<Metrics>,
    pub presence: Arc<Presence>,
    pub config: BrokerConfig,
    /// Live connection per client id.
    live: Mutex<HashMap<String, Live>>,
}

impl Shared {
    pub fn new(
        broker: Broker,
        engine: EngineHandle,
        metrics: Arc<Metrics>,
        presence: Arc<Presence>,
        config: BrokerConfig,
    ) -> Shared {
        Shared {
            broker,
            engine,
            metrics,
            presence,
            config,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// Record a new connection; returns the connection it replaces, if any.
    fn register(
        &self,
        client_id: &str,
        session: &str,
        kick: oneshot::Sender<()>,
        gone: oneshot::Receiver<()>,
    ) -> Option<Replaced> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let entry = Live {
            session: session.to_string(),
            kick,
            gone,
        };
        live.insert(client_id.to_string(), entry)
            .map(|old| Replaced {
                kick: old.kick,
                gone: old.gone,
            })
    }

    fn unregister(&self, client_id: &str, session: &str) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.get(client_id).is_some_and(|l| l.session == session) {
            live.remove(client_id);
        }
    }
}

/// Accept connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tasks.spawn(connection::handle(shared.clone(), stream, peer, shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // Connections see the same shutdown signal; wait for their goodbyes.
    while tasks.join_next().await.is_some() {}
}
