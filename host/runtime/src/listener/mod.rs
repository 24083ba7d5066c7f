//! The device-facing side, owned by the host: accepts MQTT 3.1.1 and 5
//! connections on a plain TCP listener, an mTLS listener and (when
//! configured) a WebSocket listener, knows each
//! client's identity, applies the topic policy, holds persistent sessions,
//! publishes lifecycle events, stamps every message on arrival, and feeds
//! the engine and the embedded broker's router.

pub mod basic_ingest;
pub mod codec;
pub mod connection;
pub mod packets;
pub mod policy;
pub mod presence;
pub mod session;
pub mod tls;
pub mod websocket;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::engine::EngineHandle;
use crate::identity::IdentityService;
use crate::metrics::Metrics;
use presence::{DisconnectReason, Presence};
use session::Sessions;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// A live connection as the registry knows it.
struct Live {
    session: String,
    /// The client certificate's id (mTLS connections).
    certificate_id: Option<String>,
    /// Tells the connection to close, and why (taken when used).
    kick: Option<oneshot::Sender<DisconnectReason>>,
    /// Resolves (closed) once the connection has left the router.
    gone: oneshot::Receiver<()>,
}

/// What a new connection must do about the one it replaces.
pub struct Replaced {
    kick: Option<oneshot::Sender<DisconnectReason>>,
    gone: oneshot::Receiver<()>,
}

impl Replaced {
    /// Close the older connection and wait (bounded) until it has left the
    /// router (and parked its session), so the router never sees two links
    /// for one client id.
    pub async fn close(self) {
        if let Some(kick) = self.kick {
            let _ = kick.send(DisconnectReason::DuplicateClientId);
        }
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
    pub sessions: Arc<Sessions>,
    /// The fleet CA and registry, when identity is set up (`weir ca init`).
    pub identity: Option<Arc<IdentityService>>,
    /// The Jobs service, answering devices' `$aws/things/<thing>/jobs/…`.
    pub jobs: Arc<crate::jobs::JobsService>,
    /// Where retained publishes are recorded, to survive a restart.
    pub retained: Option<Arc<crate::broker::retained::Retained>>,
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
        identity: Option<Arc<IdentityService>>,
        jobs: Arc<crate::jobs::JobsService>,
    ) -> Shared {
        let sessions = Sessions::new(
            session::SessionLimits {
                max_messages: config.session_max_messages,
            },
            metrics.clone(),
        );
        Shared {
            broker,
            engine,
            metrics,
            presence,
            config,
            sessions,
            identity,
            jobs,
            retained: None,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// Record retained publishes in `retained`.
    pub fn with_retained(mut self, retained: Arc<crate::broker::retained::Retained>) -> Shared {
        self.retained = Some(retained);
        self
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record a new connection; returns the connection it replaces, if any.
    fn register(
        &self,
        client_id: &str,
        session: &str,
        certificate_id: Option<String>,
        kick: oneshot::Sender<DisconnectReason>,
        gone: oneshot::Receiver<()>,
    ) -> Option<Replaced> {
        let entry = Live {
            session: session.to_string(),
            certificate_id,
            kick: Some(kick),
            gone,
        };
        self.live()
            .insert(client_id.to_string(), entry)
            .map(|old| Replaced {
                kick: old.kick,
                gone: old.gone,
            })
    }

    fn unregister(&self, client_id: &str, session: &str) {
        let mut live = self.live();
        if live.get(client_id).is_some_and(|l| l.session == session) {
            live.remove(client_id);
        }
    }

    /// Close every live connection authenticated by `certificate_id` (a
    /// revoked or deactivated certificate); returns how many.
    pub fn kick_certificate(&self, certificate_id: &str) -> usize {
        let mut n = 0;
        for live in self.live().values_mut() {
            if live.certificate_id.as_deref() == Some(certificate_id) {
                if let Some(kick) = live.kick.take() {
                    let _ = kick.send(DisconnectReason::AuthError);
                    n += 1;
                }
            }
        }
        n
    }
}

/// Accept connections until `shutdown` turns true, handing each to `serve`
/// (every TCP listener of the host: MQTT plain, mTLS and WebSocket, and
/// the HTTPS API).
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tasks.spawn(serve(stream, peer));
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

/// The plain MQTT listener.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    let stop = shutdown.clone();
    accept_loop(listener, shutdown, move |stream, peer| {
        connection::handle(
            shared.clone(),
            stream,
            peer,
            connection::Transport::Tcp,
            stop.clone(),
        )
    })
    .await
}
