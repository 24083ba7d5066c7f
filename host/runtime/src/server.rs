//! Wiring: `run(config, listener, shutdown)` starts the broker, the engine
//! workers, the listener, the admin socket and the flusher, and on shutdown
//! stops them in the order that loses nothing (listener, then workers with a
//! final checkpoint, then the store).

use crate::admin::{self, Answerer};
use crate::broker::Broker;
use crate::config::Config;
use crate::engine::worker::Worker;
use crate::engine::{Current, EngineHandle, Generation};
use crate::identity::IdentityService;
use crate::listener::{self, presence::Presence, Shared};
use crate::metrics::Metrics;
use crate::plugin::capabilities::HostServices;
use crate::plugin::PluginRuntime;
use crate::reload::Reloader;
use crate::rules::RuleProblem;
use crate::sinks::Sinks;
use crate::store::{Journals, KvStore, StoreError};
use serde_json::json;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}", render_problems(.0))]
    Rules(Vec<RuleProblem>),
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
    #[error("{0}")]
    Io(String),
}

fn render_problems(problems: &[RuleProblem]) -> String {
    let mut s = format!("{} problem(s) in the rules directory:\n", problems.len());
    for p in problems {
        s.push_str(&p.report);
        s.push('\n');
    }
    s
}

/// Where the embedded key-value store lives.
pub fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("state.redb")
}

/// Serve until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let running = start(config, listener).await?;
    shutdown.await;
    running.shutdown().await;
    Ok(())
}

/// A started instance. Tests and the benchmark hold one to reach the engine
/// and the broker directly.
pub struct Running {
    pub local_addr: std::net::SocketAddr,
    /// The data-plane HTTP API's address, when it serves.
    pub http_addr: Option<std::net::SocketAddr>,
    pub engine: EngineHandle,
    pub broker: Broker,
    pub metrics: Arc<Metrics>,
    pub kv: Arc<KvStore>,
    stop_tx: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
    presence: Arc<Presence>,
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
    journals: Arc<Journals>,
    socket_path: PathBuf,
    _watcher: Option<notify::RecommendedWatcher>,
    pub reloader: Arc<Reloader>,
    pub sinks: Arc<Sinks>,
    sinks_timeout: Duration,
}

/// Start serving on `listener`; returns once everything is up.
pub async fn start(config: Config, listener: TcpListener) -> Result<Running, ServerError> {
    config
        .validate()
        .map_err(|e| ServerError::Io(e.to_string()))?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        ServerError::Io(format!("cannot create {}: {e}", config.data_dir.display()))
    })?;
    let kv = Arc::new(KvStore::open(&state_path(&config.data_dir))?);
    let journals = Arc::new(Journals::new(config.data_dir.clone()));
    let metrics = Arc::new(Metrics::default());
    let sinks = Arc::new(
        Sinks::start(&config, &kv, &metrics)
            .await
            .map_err(|e| ServerError::Io(format!("storage: {e}")))?,
    );
    let services = Arc::new(HostServices {
        kv: kv.clone(),
        journals: journals.clone(),
        metrics: metrics.clone(),
        sinks: sinks.clone(),
    });
    let rt = Arc::new(PluginRuntime::new(
        config.plugins.clone(),
        config.cache_dir(),
        services,
    )?);

    let started = std::time::Instant::now();
    let generation =
        Generation::load(&config.rules_dir, &rt, None, 1).map_err(ServerError::Rules)?;
    tracing::info!(
        rules = generation.rules.rules.len(),
        plugins = generation.plugins.len(),
        rules_dir = %config.rules_dir.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "rules and plugins loaded"
    );
    // Directories to watch: the rules directory and those of components named by path.
    let mut watched: Vec<PathBuf> = vec![config.rules_dir.clone()];
    for decl in generation.rules.plugins.decls.values() {
        if !decl.component.starts_with("builtin:") {
            if let Some(dir) = config.rules_dir.join(&decl.component).parent() {
                if !watched.iter().any(|w| w == dir) {
                    watched.push(dir.to_path_buf());
                }
            }
        }
    }
    let current = Arc::new(Current::new(generation));
    let reloader = Arc::new(Reloader::new(
        config.rules_dir.clone(),
        rt.clone(),
        current.clone(),
        metrics.clone(),
    ));
    let watcher = if config.rules_dir.is_dir() {
        let dirs: Vec<&Path> = watched.iter().map(|p| p.as_path()).collect();
        match crate::reload::watch(reloader.clone(), &dirs) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the rules directory; use `weir reload` after changes");
                None
            }
        }
    } else {
        tracing::info!(rules_dir = %config.rules_dir.display(), "no rules directory: serving the shipped rules (not watched)");
        None
    };

    let broker = Broker::start(&config.broker);

    // Engine workers.
    let stop = Arc::new(AtomicBool::new(false));
    let mut queues = Vec::new();
    let mut workers = Vec::new();
    for id in 0..config.workers() {
        let (tx, rx) = flume::bounded(config.engine.queue_capacity);
        queues.push(tx);
        let worker = Worker {
            id,
            rx,
            current: current.clone(),
            rt: rt.clone(),
            metrics: metrics.clone(),
            publisher: broker.publisher(&format!("weir.internal.engine-{id}"))?,
            max_batch: config.engine.max_batch,
            checkpoint_every: Duration::from_millis(config.engine.checkpoint_interval_ms),
            stop: stop.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("weir-worker-{id}"))
            .spawn(move || worker.run())
            .map_err(|e| ServerError::Io(e.to_string()))?;
        workers.push(handle);
    }
    let engine = EngineHandle::new(queues)
        .with_gate(sinks.gate())
        .with_rules(current.clone());

    let presence = Arc::new(Presence::new(
        kv.clone(),
        broker.publisher("weir.internal.host")?,
        engine.clone(),
    ));
    // Device identity and the mTLS listener, once the fleet CA exists.
    let identity_dir = config.identity.dir(&config.data_dir);
    let identity = if IdentityService::exists(&identity_dir) {
        let service = IdentityService::open(&identity_dir, config.identity.clone())
            .map_err(|e| ServerError::Io(format!("identity: {e}")))?;
        Some(Arc::new(service))
    } else {
        tracing::info!(dir = %identity_dir.display(), "no fleet CA (run `weir ca init` for the mTLS listener)");
        None
    };
    let jobs = Arc::new(crate::jobs::JobsService::open(kv.clone(), identity.clone()));
    // Retained messages recorded before the last stop go back into the
    // router before any device connects.
    let retained = Arc::new(crate::broker::retained::Retained::new(
        kv.clone(),
        metrics.clone(),
    ));
    let restored = retained.restore(&broker).await?;
    if restored > 0 {
        tracing::info!(restored, "retained messages restored");
    }
    let shared = Arc::new(
        Shared::new(
            broker.clone(),
            engine.clone(),
            metrics.clone(),
            presence.clone(),
            config.broker.clone(),
            identity.clone(),
            jobs.clone(),
        )
        .with_retained(retained.clone()),
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let local = listener
        .local_addr()
        .map_err(|e| ServerError::Io(e.to_string()))?;
    tracing::info!(listen = %local, data_dir = %config.data_dir.display(), "weir is serving MQTT");
    let listener_task = tokio::spawn(listener::serve(listener, shared.clone(), stop_rx.clone()));
    let mut ws_local = None;
    let mut ws_task = None;
    if let Some(addr) = config.ws_listen {
        let (ws_listener, bound) = bind(addr, "WebSocket").await?;
        tracing::info!(ws_listen = %bound, "weir is serving MQTT over WebSockets on ws://{bound}/mqtt");
        ws_local = Some(bound);
        ws_task = Some(tokio::spawn(listener::websocket::serve(
            ws_listener,
            shared.clone(),
            stop_rx.clone(),
        )));
    }
    let mut http_local = None;
    let mut https_local = None;
    let mut http_tasks = Vec::new();
    if config.http.listen.is_some() || config.http.tls_listen.is_some() {
        let host = crate::http_api::Host {
            broker: &broker,
            retained: retained.clone(),
            engine: engine.clone(),
            kv: kv.clone(),
            metrics: metrics.clone(),
            identity: identity.clone(),
        };
        let (api, answers_task) = crate::http_api::Api::start(
            &config.http,
            config.broker.max_packet_size,
            host,
            stop_rx.clone(),
        )?;
        http_tasks.push(answers_task);
        if let Some(addr) = config.http.listen {
            let (http_listener, bound) = bind(addr, "HTTP API").await?;
            tracing::info!(http_listen = %bound, signed = !config.http.credentials.is_empty(), "weir is serving the data-plane HTTP API (iot-data) on http://{bound}");
            http_local = Some(bound);
            http_tasks.push(tokio::spawn(crate::http_api::serve(
                http_listener,
                api.clone(),
                stop_rx.clone(),
            )));
        }
        if let Some(addr) = config.http.tls_listen {
            let service = identity.as_ref().ok_or_else(|| {
                ServerError::Io(
                    "http.tls_listen serves devices with their certificates: create the fleet CA first (weir ca init)".into(),
                )
            })?;
            let tls_config = service
                .tls_config()
                .map_err(|e| ServerError::Io(format!("identity: {e}")))?;
            let (https_listener, bound) = bind(addr, "HTTPS API").await?;
            tracing::info!(http_tls_listen = %bound, "weir is serving the HTTP API to devices over mTLS on https://{bound}");
            https_local = Some(bound);
            http_tasks.push(tokio::spawn(crate::http_api::tls::serve(
                https_listener,
                tls_config,
                api,
                stop_rx.clone(),
            )));
        }
    }
    let mut tls_local = None;
    let mut tls_task = None;
    if let Some(service) = &identity {
        let tls_config = service
            .tls_config()
            .map_err(|e| ServerError::Io(format!("identity: {e}")))?;
        let (tls_listener, bound) = bind(config.identity.tls_listen, "mTLS").await?;
        tracing::info!(tls_listen = %bound, "weir is serving MQTT over mTLS");
        tls_local = Some(bound);
        tls_task = Some(tokio::spawn(listener::tls::serve(
            tls_listener,
            tls_config,
            shared.clone(),
            stop_rx.clone(),
        )));
    }

    // Admin socket.
    let socket_path = Config::admin_socket(&config.data_dir);
    let _ = std::fs::remove_file(&socket_path);
    let admin_listener = UnixListener::bind(&socket_path)
        .map_err(|e| ServerError::Io(format!("admin socket {}: {e}", socket_path.display())))?;
    let status_current = current.clone();
    let status_engine = engine.clone();
    let status_sinks = sinks.clone();
    let listen_text = local.to_string();
    let tls_text = tls_local.map(|a| a.to_string());
    let ws_text = ws_local.map(|a| a.to_string());
    let http_text = http_local.map(|a| a.to_string());
    let https_text = https_local.map(|a| a.to_string());
    let status_sessions = shared.sessions.clone();
    let answerer = Arc::new(Answerer {
        kv: kv.clone(),
        metrics: Some(metrics.clone()),
        extra_status: Some(Arc::new(move || {
            let g = status_current.get();
            json!({
                "listen": listen_text,
                "tls_listen": tls_text,
                "ws_listen": ws_text,
                "http_listen": http_text,
                "http_tls_listen": https_text,
                "sessions_parked": status_sessions.parked(),
                "generation": g.number,
                "rules": g.rules.rules.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
                "plugins": g.plugins.iter().map(|(n, p)| json!({"name": n, "kind": p.kind.name(), "digest": &p.digest[..12]})).collect::<Vec<_>>(),
                "queued": status_engine.queued(),
                "sinks": status_sinks.status(),
            })
        })),
        reloader: Some(reloader.clone()),
        engine: Some((current.clone(), config.workers())),
        ts: sinks.ts_store(),
        jobs: Some(crate::admin::JobsAccess {
            service: jobs.clone(),
            publish: {
                let presence = presence.clone();
                let handle = tokio::runtime::Handle::current();
                Arc::new(move |notices: Vec<crate::jobs::Notice>| {
                    let presence = presence.clone();
                    handle.spawn(async move {
                        for n in notices {
                            presence.emit(n.topic, n.doc).await;
                        }
                    });
                })
            },
        }),
        identity: identity.clone().map(|service| {
            let kicker = shared.clone();
            crate::admin::IdentityAccess {
                service,
                kick: Arc::new(move |id: &str| kicker.kick_certificate(id)),
            }
        }),
    });
    let admin_task = tokio::spawn(admin::serve(admin_listener, answerer, stop_rx.clone()));

    // Flusher: store and journals reach disk every checkpoint interval.
    let flush_kv = kv.clone();
    let flush_journals = journals.clone();
    let mut flush_stop = stop_rx.clone();
    let interval = Duration::from_millis(config.engine.checkpoint_interval_ms);
    let flusher = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let (kv, journals) = (flush_kv.clone(), flush_journals.clone());
                    // With the other storage writes, below the engine's
                    // priority (see `sinks::background`).
                    let _ = crate::sinks::background::run(move || flush(&kv, &journals)).await;
                }
                _ = flush_stop.changed() => break,
            }
        }
    });

    // Jobs: executions in progress whose step timer ran out time out.
    let timer_jobs = jobs.clone();
    let timer_presence = presence.clone();
    let mut timer_stop = stop_rx.clone();
    let job_timers = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let jobs = timer_jobs.clone();
                    let notices = tokio::task::spawn_blocking(move || jobs.expire(crate::clock::now_ms())).await.unwrap_or_default();
                    for n in notices {
                        timer_presence.emit(n.topic, n.doc).await;
                    }
                }
                _ = timer_stop.changed() => break,
            }
        }
    });

    Ok(Running {
        local_addr: local,
        http_addr: http_local,
        engine,
        broker,
        metrics,
        kv,
        stop_tx,
        tasks: [
            Some(listener_task),
            ws_task,
            tls_task,
            Some(admin_task),
            Some(flusher),
            Some(job_timers),
        ]
        .into_iter()
        .flatten()
        .chain(http_tasks)
        .collect(),
        shared,
        presence,
        stop,
        workers,
        journals,
        socket_path,
        _watcher: watcher,
        reloader,
        sinks,
        sinks_timeout: Duration::from_millis(config.delivery.shutdown_timeout_ms),
    })
}

impl Running {
    /// Stop in the order that loses nothing: connections (their disconnect
    /// events still reach the engine), then the workers with a final
    /// checkpoint, then the store.
    pub async fn shutdown(self) {
        tracing::info!("shutting down: closing connections, checkpointing plugins, flushing state");
        let _ = self.stop_tx.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        drop(self.shared);
        drop(self.presence);
        drop(self.engine);
        self.stop.store(true, Ordering::Relaxed);
        let workers = self.workers;
        let _ = tokio::task::spawn_blocking(move || {
            for w in workers {
                let _ = w.join();
            }
        })
        .await;
        flush(&self.kv, &self.journals);
        // Last: the backends, which the final checkpoint and flush fed.
        self.sinks.shutdown(self.sinks_timeout).await;
        let _ = std::fs::remove_file(&self.socket_path);
        tracing::info!("stopped");
    }
}

/// Bind a listener of kind `what` on `addr`, and the address it got.
async fn bind(
    addr: std::net::SocketAddr,
    what: &str,
) -> Result<(TcpListener, std::net::SocketAddr), ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::Io(format!("cannot listen ({what}) on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| ServerError::Io(e.to_string()))?;
    Ok((listener, bound))
}

fn flush(kv: &KvStore, journals: &Journals) {
    if let Err(e) = kv.flush() {
        tracing::error!(error = %e, "state flush failed; will retry");
    }
    if let Err(e) = journals.flush() {
        tracing::error!(error = %e, "journal flush failed");
    }
}
