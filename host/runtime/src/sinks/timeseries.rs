//! The time-series tier: the embedded store (default, with retention
//! enforced hourly), Amazon Timestream for LiveAnalytics, or InfluxDB line
//! protocol. Each is a [`Deliver`] behind the tier's outbox.

use super::outbox::Factory;
use super::SinkError;
use crate::config::{Config, TimeseriesBackend};
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use weir_delivery::{Deliver, Delivery, Outbox};
use weir_storage::timeseries::{TsRecord, TsStore};

/// The embedded store's file.
pub fn store_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("timeseries.redb")
}

type Started = (
    Outbox<TsRecord>,
    Option<Arc<TsStore>>,
    Vec<tokio::task::JoinHandle<()>>,
);

pub async fn start(
    config: &Config,
    aws: Option<&weir_aws::AwsClients>,
    outboxes: &Factory,
    metrics: &Arc<Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Started, SinkError> {
    let ts = &config.storage.timeseries;
    match ts.backend {
        TimeseriesBackend::Embedded => {
            let retention = Duration::from_secs(u64::from(ts.retention_days) * 86_400);
            let path = store_path(&config.data_dir);
            let store =
                Arc::new(TsStore::open(&path, retention).map_err(|e| {
                    SinkError::start("timeseries", format!("{}: {e}", path.display()))
                })?);
            let unsynced = Arc::new(AtomicBool::new(false));
            let outbox = outboxes.spawn(
                "timeseries",
                Embedded {
                    store: store.clone(),
                    metrics: metrics.clone(),
                    unsynced: unsynced.clone(),
                },
                4096,
            )?;
            let tasks = vec![
                retention_task(store.clone(), stop.clone()),
                sync_task(store.clone(), unsynced, stop),
            ];
            Ok((outbox, Some(store), tasks))
        }
        TimeseriesBackend::Timestream => {
            let aws = aws.ok_or_else(|| SinkError::start("timeseries", "AWS clients missing"))?;
            let (database, table) = (
                ts.database.clone().unwrap_or_default(),
                ts.table.clone().unwrap_or_default(),
            );
            // Endpoint discovery follows `aws.timestream_endpoint_discovery`
            // (default: on unless `aws.endpoints.timestream` is set).
            let writer =
                weir_aws::timestream::TimestreamWriter::from_clients(aws, &database, &table);
            if ts.create_table {
                writer
                    .ensure_database_and_table()
                    .await
                    .map_err(|e| SinkError::start("timeseries", e))?;
            }
            let outbox = outboxes.spawn("timeseries", Timestream { writer }, 500)?;
            Ok((outbox, None, Vec::new()))
        }
        TimeseriesBackend::Influxdb => {
            let token = match (&ts.token, &ts.token_env) {
                (Some(t), _) => Some(t.clone()),
                (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
                    SinkError::start(
                        "timeseries",
                        format!("environment variable {var} (token_env) is not set"),
                    )
                })?),
                (None, None) => None,
            };
            let writer = weir_aws::influx::InfluxWriter::new(
                ts.url.as_deref().unwrap_or_default(),
                ts.org.as_deref().unwrap_or_default(),
                ts.bucket.as_deref().unwrap_or_default(),
                token,
                Duration::from_millis(config.aws.timeout_ms),
            );
            let outbox = outboxes.spawn("timeseries", Influx { writer }, 5000)?;
            Ok((outbox, None, Vec::new()))
        }
    }
}

/// Drop whole days past the retention, at start and then hourly.
fn retention_task(
    store: Arc<TsStore>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    super::every(
        Duration::from_secs(3600),
        stop,
        move || store.enforce_retention(weir_storage::timeseries::now_ms()),
        |outcome| match outcome {
            Ok(r) if !r.days_dropped.is_empty() => tracing::info!(
                days = ?r.days_dropped,
                points = r.points_dropped,
                "time series: dropped days past the retention"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "time series: retention failed; retried next hour")
            }
        },
    )
}

/// How often the embedded store's writes are made durable (an fsync of its
/// write-ahead log). A batch is in the log and in memory (visible to
/// queries at once) when its write returns, and on disk with the next
/// sync, at most this long later (and at shutdown). That is the same bound
/// the key-value state has (its checkpoint interval), and the outbox in
/// front holds its queue in memory too. An fsync per batch cost tens of
/// milliseconds of publish → alert latency on a small machine.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Make the embedded store's buffered writes durable every
/// [`SYNC_INTERVAL`], when there are any.
fn sync_task(
    store: Arc<TsStore>,
    unsynced: Arc<AtomicBool>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    super::every(
        SYNC_INTERVAL,
        stop,
        move || {
            if !unsynced.swap(false, Ordering::AcqRel) {
                return Ok(());
            }
            store
                .sync()
                .inspect_err(|_| unsynced.store(true, Ordering::Release))
        },
        |outcome| {
            if let Err(e) = outcome {
                tracing::error!(error = %e, "time series: sync failed; retried next interval");
            }
        },
    )
}

/// The embedded store as a backend.
struct Embedded {
    store: Arc<TsStore>,
    metrics: Arc<Metrics>,
    /// Set by each buffered write, cleared by the sync task.
    unsynced: Arc<AtomicBool>,
}

impl Deliver for Embedded {
    type Item = TsRecord;

    /// The write runs to the end on a storage thread even if the outbox
    /// stops waiting for it (`sinks::background`).
    fn completes_when_abandoned(&self) -> bool {
        true
    }

    async fn deliver(&mut self, batch: Vec<TsRecord>) -> Delivery<TsRecord> {
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let (outcome, batch) = super::blocking(batch, move |b| store.write_buffered(b)).await;
        match outcome {
            Ok(report) => {
                self.unsynced.store(true, Ordering::Release);
                metrics.count("timeseries.points", report.points as u64);
                if report.expired > 0 {
                    metrics.count("timeseries.expired", report.expired as u64);
                }
                if report.invalid > 0 {
                    metrics.count("timeseries.invalid", report.invalid as u64);
                }
                Delivery::Done
            }
            Err(e) => Delivery::Retry {
                items: batch,
                reason: format!("embedded time-series store: {e}"),
            },
        }
    }
}

struct Timestream {
    writer: weir_aws::timestream::TimestreamWriter,
}

fn to_aws(r: &TsRecord) -> weir_aws::timestream::TsRecord {
    weir_aws::timestream::TsRecord {
        device: r.device.clone(),
        device_type: r.device_type.clone(),
        time_ms: r.time_ms,
        measures: r.measures.clone(),
    }
}

impl Deliver for Timestream {
    type Item = TsRecord;

    async fn deliver(&mut self, batch: Vec<TsRecord>) -> Delivery<TsRecord> {
        let records: Vec<_> = batch.iter().map(to_aws).collect();
        let report = self.writer.write(&records).await;
        super::split_by_index(batch, &report.rejected, &report.retryable, "timestream")
    }
}

struct Influx {
    writer: weir_aws::influx::InfluxWriter,
}

impl Deliver for Influx {
    type Item = TsRecord;

    async fn deliver(&mut self, batch: Vec<TsRecord>) -> Delivery<TsRecord> {
        let records: Vec<_> = batch.iter().map(to_aws).collect();
        match self.writer.write(&records).await {
            Ok(()) => Delivery::Done,
            Err(weir_aws::AwsError::Retryable(reason)) => Delivery::Retry {
                items: batch,
                reason: format!("influxdb: {reason}"),
            },
            Err(weir_aws::AwsError::Permanent(reason)) => Delivery::Reject {
                items: batch,
                reason: format!("influxdb: {reason}"),
            },
        }
    }
}
