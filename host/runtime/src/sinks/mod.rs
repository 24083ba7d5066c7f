//! The storage tiers and outlets behind the sink capabilities: the
//! time-series tier, the Parquet archive, notify targets, streams, and the
//! DynamoDB replica of the device shadow.
//!
//! Plugins decide what to write; this module owns where it goes. Every
//! backend sits behind an outbox (`weir-delivery`): a bounded queue that
//! spills to a disk spool under `<data_dir>/spool/<backend>/` when the
//! backend is slow or down, replays it in order when the backend returns,
//! and retries exactly what failed. When a spool reaches its limit, the
//! [`Gate`] closes and listeners stop reading device sockets until it
//! drains: ingestion slows down instead of anything being dropped.
//!
//! One folder-like module per backend: [`timeseries`] (embedded store,
//! Timestream, InfluxDB), [`archive`] (local Parquet files or S3),
//! [`shadow`] (DynamoDB replica), [`notify`] (SNS), [`kinesis`].

pub mod archive;
pub mod background;
pub mod config;
pub mod gate;
pub mod kinesis;
pub mod notify;
pub mod outbox;
pub mod shadow;
pub mod timeseries;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::KvStore;
pub use gate::Gate;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir_delivery::{Delivery, Outbox, OutboxStats};
use weir_storage::archive::ArchiveRow;
use weir_storage::timeseries::{TsRecord, TsStore};

/// Errors starting the sinks.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{backend}: {message}")]
    Start { backend: String, message: String },
}

impl SinkError {
    pub(crate) fn start(backend: &str, message: impl std::fmt::Display) -> SinkError {
        SinkError::Start {
            backend: backend.to_string(),
            message: message.to_string(),
        }
    }
}

/// One notification on its way to a notify target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyItem {
    pub subject: Option<String>,
    pub body: String,
    pub attributes: Vec<(String, String)>,
}

/// One record on its way to a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamItem {
    pub partition_key: String,
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// Every configured backend, as outboxes plugins write into.
#[derive(Default)]
pub struct Sinks {
    timeseries: Option<Outbox<TsRecord>>,
    /// The embedded time-series store, when it is the backend (for queries).
    ts_store: Option<Arc<TsStore>>,
    archive: Option<archive::ArchiveTier>,
    shadow: Option<Outbox<shadow::ShadowDoc>>,
    notify: BTreeMap<String, Outbox<NotifyItem>>,
    streams: BTreeMap<String, Outbox<StreamItem>>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    gate: Arc<Gate>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
}

impl Sinks {
    /// No backends at all (tests and benchmarks of the engine alone).
    pub fn disabled() -> Sinks {
        Sinks::default()
    }

    /// Open or connect every backend the configuration names. Runs inside
    /// the tokio runtime; AWS clients are built only when a tier uses AWS.
    pub async fn start(
        config: &Config,
        kv: &Arc<KvStore>,
        metrics: &Arc<Metrics>,
    ) -> Result<Sinks, SinkError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut sinks = Sinks {
            stop: Some(stop_tx),
            ..Sinks::default()
        };
        let aws = if uses_aws(config) {
            Some(Arc::new(weir_aws::AwsClients::new(&config.aws).await))
        } else {
            None
        };
        let outboxes = outbox::Factory::new(config);

        let (ts, store, ts_task) =
            timeseries::start(config, aws.as_deref(), &outboxes, metrics, stop_rx.clone()).await?;
        sinks.timeseries = Some(ts);
        sinks.ts_store = store;
        sinks
            .tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .extend(ts_task);

        let (tier, archive_tasks) =
            archive::start(config, aws.as_deref(), &outboxes, metrics, stop_rx.clone()).await?;
        sinks.archive = Some(tier);
        sinks
            .tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .extend(archive_tasks);

        sinks.shadow = shadow::start(config, aws.as_deref(), &outboxes, metrics, kv).await?;

        // `uses_aws` built the clients whenever a target or stream is configured.
        let need_aws = |backend: String| {
            aws.as_deref()
                .ok_or_else(|| SinkError::start(&backend, "AWS clients missing"))
        };
        for (name, target) in &config.notify {
            let aws = need_aws(format!("notify.{name}"))?;
            sinks.notify.insert(
                name.clone(),
                notify::start(name, target, aws, &outboxes).await?,
            );
        }
        for (name, target) in &config.stream {
            let aws = need_aws(format!("stream.{name}"))?;
            sinks.streams.insert(
                name.clone(),
                kinesis::start(name, target, aws, &outboxes).await?,
            );
        }
        let watched = sinks.saturation_probes();
        let gate_task = gate::watch(sinks.gate.clone(), watched, stop_rx);
        sinks
            .tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .push(gate_task);
        Ok(sinks)
    }

    /// The gate listeners wait on while a spool is full.
    pub fn gate(&self) -> Arc<Gate> {
        self.gate.clone()
    }

    fn saturation_probes(&self) -> Vec<(String, Box<dyn Fn() -> bool + Send + Sync>)> {
        let mut probes: Vec<(String, Box<dyn Fn() -> bool + Send + Sync>)> = Vec::new();
        for (name, stats) in self.outbox_list() {
            probes.push((name, stats.saturation));
        }
        probes
    }

    fn outbox_list(&self) -> Vec<(String, Probe)> {
        let mut out = Vec::new();
        if let Some(o) = &self.timeseries {
            out.push(("timeseries".to_string(), Probe::of(o)));
        }
        if let Some(a) = &self.archive {
            out.push(("archive".to_string(), Probe::of(&a.outbox)));
        }
        if let Some(o) = &self.shadow {
            out.push(("shadow".to_string(), Probe::of(o)));
        }
        for (n, o) in &self.notify {
            out.push((format!("notify.{n}"), Probe::of(o)));
        }
        for (n, o) in &self.streams {
            out.push((format!("stream.{n}"), Probe::of(o)));
        }
        out
    }

    /// Queue readings for the time-series tier.
    pub fn write_timeseries(&self, records: Vec<TsRecord>) -> Result<(), String> {
        let outbox = self
            .timeseries
            .as_ref()
            .ok_or("the time-series tier is not running in this host")?;
        outbox.push(records).map_err(|e| format!("timeseries: {e}"))
    }

    /// Queue rows for the archive.
    pub fn append_archive(&self, rows: Vec<ArchiveRow>) -> Result<(), String> {
        let tier = self
            .archive
            .as_ref()
            .ok_or("the archive is not running in this host")?;
        tier.outbox.push(rows).map_err(|e| format!("archive: {e}"))
    }

    /// Queue notifications for a configured target.
    pub fn notify(&self, target: &str, items: Vec<NotifyItem>) -> Result<(), String> {
        let outbox = self.notify.get(target).ok_or_else(|| {
            format!(
                "notify target {target:?} is not configured (configured: {:?}); add [notify.{target}] to weir.toml",
                self.notify.keys().collect::<Vec<_>>()
            )
        })?;
        outbox
            .push(items)
            .map_err(|e| format!("notify.{target}: {e}"))
    }

    /// Queue entries for a configured stream.
    pub fn put_stream(&self, name: &str, items: Vec<StreamItem>) -> Result<(), String> {
        let outbox = self.streams.get(name).ok_or_else(|| {
            format!(
                "stream {name:?} is not configured (configured: {:?}); add [stream.{name}] to weir.toml",
                self.streams.keys().collect::<Vec<_>>()
            )
        })?;
        outbox
            .push(items)
            .map_err(|e| format!("stream.{name}: {e}"))
    }

    /// Whether every granted notify target and stream is configured here.
    /// A host without sinks (`weir rules check`, engine-only tests) accepts
    /// any name: there is nothing to check against.
    pub fn check_grants(&self, notify: &[String], streams: &[String]) -> Result<(), String> {
        if self.stop.is_none() {
            return Ok(());
        }
        for t in notify {
            if !self.notify.contains_key(t) {
                return Err(format!(
                    "grants notify target {t:?}, which weir.toml does not configure (add [notify.{t}]; configured: {:?})",
                    self.notify.keys().collect::<Vec<_>>()
                ));
            }
        }
        for s in streams {
            if !self.streams.contains_key(s) {
                return Err(format!(
                    "grants stream {s:?}, which weir.toml does not configure (add [stream.{s}]; configured: {:?})",
                    self.streams.keys().collect::<Vec<_>>()
                ));
            }
        }
        Ok(())
    }

    /// The embedded time-series store, when it is the configured backend.
    pub fn ts_store(&self) -> Option<Arc<TsStore>> {
        self.ts_store.clone()
    }

    /// Whether every backend has delivered all it accepted: nothing in
    /// memory, in flight or in the spool.
    pub fn drained(&self) -> bool {
        self.outbox_list()
            .iter()
            .all(|(_, probe)| (probe.stats)().is_drained())
    }

    /// Whether any backend (outbox) is configured.
    pub fn any(&self) -> bool {
        !self.outbox_list().is_empty()
    }

    /// Per-backend delivery figures for `weir status`.
    pub fn status(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (name, probe) in self.outbox_list() {
            out.insert(name, stats_json(&(probe.stats)()));
        }
        if let Some(a) = &self.archive {
            if let Some(v) = out.get_mut("archive") {
                v["files"] = a.status();
            }
        }
        out.insert("gate_closed".into(), json!(self.gate.is_closed()));
        Value::Object(out)
    }

    /// Deliver what can be delivered within `timeout`, spool the rest,
    /// close open archive files. Called once, after the engine stopped.
    pub async fn shutdown(&self, timeout: Duration) {
        if let Some(stop) = &self.stop {
            let _ = stop.send(true);
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
        if let Some(o) = &self.timeseries {
            log_shutdown("timeseries", o.clone().shutdown(timeout).await);
        }
        if let Some(store) = self.ts_store.clone() {
            // Buffered writes since the last sync reach the disk now.
            match background::run(move || store.sync()).await {
                Some(Ok(())) => {}
                Some(Err(e)) => tracing::error!(error = %e, "time series: final sync failed"),
                None => tracing::error!("time series: final sync could not run"),
            }
        }
        if let Some(o) = &self.shadow {
            log_shutdown("shadow", o.clone().shutdown(timeout).await);
        }
        for (n, o) in &self.notify {
            log_shutdown(&format!("notify.{n}"), o.clone().shutdown(timeout).await);
        }
        for (n, o) in &self.streams {
            log_shutdown(&format!("stream.{n}"), o.clone().shutdown(timeout).await);
        }
        if let Some(a) = &self.archive {
            a.shutdown(timeout).await;
        }
    }
}

/// Type-erased views of one outbox.
struct Probe {
    saturation: Box<dyn Fn() -> bool + Send + Sync>,
    stats: Box<dyn Fn() -> OutboxStats + Send + Sync>,
}

impl Probe {
    fn of<T: Send + 'static>(o: &Outbox<T>) -> Probe {
        let (a, b) = (o.clone(), o.clone());
        Probe {
            saturation: Box::new(move || a.is_saturated()),
            stats: Box::new(move || b.stats()),
        }
    }
}

fn stats_json(s: &OutboxStats) -> Value {
    json!({
        "queued": s.queued,
        "spooled_items": s.spooled_items,
        "spooled_bytes": s.spooled_bytes,
        "delivered": s.delivered,
        "batches": s.batches,
        "retries": s.retries,
        "failures": s.failures,
        "rejected": s.rejected,
        "last_error": s.last_error,
    })
}

pub(crate) fn log_shutdown(name: &str, s: OutboxStats) {
    if !s.is_drained() {
        tracing::warn!(
            backend = name,
            spooled = s.spooled_items,
            "backend not drained at shutdown; the spool is replayed on the next start"
        );
    } else {
        tracing::info!(backend = name, delivered = s.delivered, "backend drained");
    }
}

/// Run `job` on the storage threads ([`background`]) every `period` until `stop` changes;
/// `report` logs its outcome (a failure is retried at the next period).
pub(crate) fn every<R, J, F>(
    period: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    job: J,
    report: F,
) -> tokio::task::JoinHandle<()>
where
    R: Send + 'static,
    J: Fn() -> R + Send + Sync + 'static,
    F: Fn(R) + Send + 'static,
{
    let job = Arc::new(job);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => break,
            }
            let job = job.clone();
            match background::run(move || job()).await {
                Some(r) => report(r),
                None => tracing::error!("periodic storage task panicked or could not be started"),
            }
        }
    })
}

/// Run the write `f` over `batch` on the storage threads ([`background`],
/// below the engine's priority) and hand the batch
/// back, whatever happens, so a failed write can be retried. A write error,
/// a panic in `f` and a failed task all come back as one `Err` text.
pub(crate) async fn blocking<T, R, E>(
    batch: Vec<T>,
    f: impl FnOnce(&[T]) -> Result<R, E> + Send + 'static,
) -> (Result<R, String>, Vec<T>)
where
    T: Send + Sync + 'static,
    R: Send + 'static,
    E: std::fmt::Display,
{
    let shared = Arc::new(batch);
    let inner = shared.clone();
    let outcome = background::run(move || f(&inner).map_err(|e| e.to_string()))
        .await
        .unwrap_or_else(|| Err("the write panicked or could not be started".to_string()));
    // The closure (and its clone of the batch) is gone once the task ends.
    let batch = Arc::try_unwrap(shared).unwrap_or_else(|_| Vec::new());
    (outcome, batch)
}

/// Split a batch by the indices a backend reported: `rejected` (with a
/// reason) are permanent, `retry` are tried again, the rest were delivered.
pub(crate) fn split_by_index<T>(
    batch: Vec<T>,
    rejected: &[(usize, String)],
    retry: &[(usize, String)],
    backend: &str,
) -> Delivery<T> {
    if rejected.is_empty() && retry.is_empty() {
        return Delivery::Done;
    }
    let reason = rejected
        .first()
        .map(|(_, r)| format!("{backend}: {r}"))
        .or_else(|| retry.first().map(|(_, r)| format!("{backend}: {r}")))
        .unwrap_or_default();
    let mut keep_retry = Vec::new();
    let mut keep_reject = Vec::new();
    for (i, item) in batch.into_iter().enumerate() {
        if retry.iter().any(|(j, _)| *j == i) {
            keep_retry.push(item);
        } else if rejected.iter().any(|(j, _)| *j == i) {
            keep_reject.push(item);
        }
    }
    Delivery::Partial {
        retry: keep_retry,
        reject: keep_reject,
        reason,
    }
}

fn uses_aws(config: &Config) -> bool {
    use crate::config::{ArchiveBackend, ShadowBackend, TimeseriesBackend};
    config.storage.shadow.backend == ShadowBackend::Dynamodb
        || config.storage.timeseries.backend == TimeseriesBackend::Timestream
        || config.storage.archive.backend == ArchiveBackend::S3
        || !config.notify.is_empty()
        || !config.stream.is_empty()
}
