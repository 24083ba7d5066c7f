//! The archive tier: rows into Parquet files partitioned by
//! `device_type=<t>/date=<YYYY-MM-DD>/`, kept on local disk (default) or
//! uploaded to S3.
//!
//! Rows reach the writer through the tier's outbox; the writer logs them
//! durably until their file rolls (by size or age). For S3, finished files
//! wait in `<data_dir>/archive-outgoing/` until uploaded (multipart above
//! the threshold), so an S3 outage holds files on disk and loses none.

use super::outbox::Factory;
use super::SinkError;
use crate::config::{ArchiveBackend, Config};
use crate::metrics::Metrics;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use weir_delivery::{Deliver, Delivery, Outbox};
use weir_storage::archive::{ArchiveOutput, ArchiveRow, ArchiveWriter, ClosedFile, RollPolicy};

/// Local root of the archive (also what `weir archive ddl` scans).
pub fn local_root(config: &Config) -> PathBuf {
    config
        .storage
        .archive
        .dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("archive"))
}

fn outgoing_dir(config: &Config) -> PathBuf {
    config.data_dir.join("archive-outgoing")
}

type Writer = Arc<Mutex<ArchiveWriter>>;

fn lock(w: &Writer) -> std::sync::MutexGuard<'_, ArchiveWriter> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running tier.
pub struct ArchiveTier {
    pub outbox: Outbox<ArchiveRow>,
    writer: Writer,
    uploads: Option<Arc<Uploads>>,
}

/// Files waiting for S3.
struct Uploads {
    dir: PathBuf,
    uploader: weir_aws::s3_upload::S3Uploader,
    wake: tokio::sync::Notify,
    metrics: Arc<Metrics>,
}

impl ArchiveTier {
    pub fn status(&self) -> Value {
        let s = lock(&self.writer).stats();
        let mut v = json!({
            "open_partitions": s.open_partitions,
            "buffered_rows": s.buffered_rows,
            "files_written": s.files_written,
            "rows_written": s.rows_written,
            "bytes_written": s.bytes_written,
        });
        if let Some(u) = &self.uploads {
            v["awaiting_upload"] = json!(pending_files(&u.dir).len());
        }
        v
    }

    /// Drain the outbox, close every open file, and upload what can be
    /// uploaded within `timeout` (the rest stays in the outgoing directory).
    pub async fn shutdown(&self, timeout: Duration) {
        super::log_shutdown("archive", self.outbox.clone().shutdown(timeout).await);
        let writer = self.writer.clone();
        match tokio::task::spawn_blocking(move || lock(&writer).close_all()).await {
            Ok(Ok(files)) => log_closed(&files),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "archive: closing files failed; their rows are recovered on the next start")
            }
            Err(e) => tracing::error!(error = %e, "archive: close task failed"),
        }
        if let Some(u) = &self.uploads {
            let _ = tokio::time::timeout(timeout, u.upload_pending()).await;
        }
    }
}

fn log_closed(files: &[ClosedFile]) {
    for f in files {
        tracing::debug!(key = %f.key, rows = f.rows, bytes = f.bytes, "archive file closed");
    }
}

pub async fn start(
    config: &Config,
    aws: Option<&weir_aws::AwsClients>,
    outboxes: &Factory,
    metrics: &Arc<Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(ArchiveTier, Vec<tokio::task::JoinHandle<()>>), SinkError> {
    let a = &config.storage.archive;
    let policy = RollPolicy {
        max_bytes: a.roll_mib * 1024 * 1024,
        max_age: Duration::from_secs(a.roll_secs),
    };
    let staging = config.data_dir.join("archive-staging");
    let (output, uploads) = match a.backend {
        ArchiveBackend::Local => (ArchiveOutput::Directory(local_root(config)), None),
        ArchiveBackend::S3 => {
            let aws = aws.ok_or_else(|| SinkError::start("archive", "AWS clients missing"))?;
            let uploader = weir_aws::s3_upload::S3Uploader::new(
                aws.s3(),
                a.bucket.clone().unwrap_or_default(),
                a.prefix.clone(),
                a.multipart_threshold_mib * 1024 * 1024,
                8 * 1024 * 1024,
            );
            if a.create_bucket {
                uploader
                    .ensure_bucket()
                    .await
                    .map_err(|e| SinkError::start("archive", e))?;
            }
            let dir = outgoing_dir(config);
            let uploads = Arc::new(Uploads {
                dir: dir.clone(),
                uploader,
                wake: tokio::sync::Notify::new(),
                metrics: metrics.clone(),
            });
            (ArchiveOutput::Outgoing(dir), Some(uploads))
        }
    };
    let writer = ArchiveWriter::open(&staging, output, policy)
        .map_err(|e| SinkError::start("archive", e))?;
    let writer: Writer = Arc::new(Mutex::new(writer));
    let outbox = outboxes.spawn(
        "archive",
        Appender {
            writer: writer.clone(),
        },
        4096,
    )?;
    let mut tasks = vec![roller(writer.clone(), uploads.clone(), stop.clone())];
    if let Some(u) = &uploads {
        tasks.push(u.clone().run(stop));
    }
    Ok((
        ArchiveTier {
            outbox,
            writer,
            uploads,
        },
        tasks,
    ))
}

/// Close files whose age passed `roll_secs`, checking every second.
fn roller(
    writer: Writer,
    uploads: Option<Arc<Uploads>>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    super::every(
        Duration::from_secs(1),
        stop,
        move || lock(&writer).roll_due(SystemTime::now()),
        move |outcome| match outcome {
            Ok(files) if !files.is_empty() => {
                log_closed(&files);
                if let Some(u) = &uploads {
                    u.wake.notify_one();
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "archive: rolling files failed; retried in a second")
            }
        },
    )
}

/// The writer as a backend.
struct Appender {
    writer: Writer,
}

impl Deliver for Appender {
    type Item = ArchiveRow;

    /// The write runs to the end on a storage thread even if the outbox
    /// stops waiting for it (`sinks::background`).
    fn completes_when_abandoned(&self) -> bool {
        true
    }

    async fn deliver(&mut self, batch: Vec<ArchiveRow>) -> Delivery<ArchiveRow> {
        let writer = self.writer.clone();
        let (result, batch) = super::blocking(batch, move |b| lock(&writer).append(b)).await;
        match result {
            // Files that reached their size are finished inside `append`
            // and reported by the roller's next `roll_due`.
            Ok(()) => Delivery::Done,
            Err(e) => Delivery::Retry {
                items: batch,
                reason: format!("archive writer: {e}"),
            },
        }
    }
}

/// Finished files under `dir`, as (path, key relative to `dir`), oldest key first.
fn pending_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                if let Ok(rel) = p.strip_prefix(dir) {
                    let key = rel.to_string_lossy().replace('\\', "/");
                    out.push((p.clone(), key));
                }
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

impl Uploads {
    /// Upload every waiting file once; true when none is left.
    async fn upload_pending(&self) -> bool {
        let mut all_done = true;
        for (path, key) in pending_files(&self.dir) {
            match self.uploader.upload_file(&path, &key).await {
                Ok(()) => {
                    self.metrics.count("archive.s3_uploads", 1);
                    if let Err(e) = std::fs::remove_file(&path) {
                        tracing::warn!(file = %path.display(), error = %e, "archive: uploaded but cannot remove the local copy");
                    }
                }
                Err(e) => {
                    self.metrics.count("archive.s3_upload_failures", 1);
                    self.metrics
                        .note("archive.s3", Some(format!("upload of {key} failed: {e}")));
                    tracing::warn!(key = %key, error = %e, "archive: S3 upload failed; the file stays queued on disk");
                    all_done = false;
                    break;
                }
            }
        }
        if all_done {
            self.metrics.note("archive.s3", None);
        }
        all_done
    }

    fn run(
        self: Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                let done = self.upload_pending().await;
                let wait = if done {
                    backoff = Duration::from_millis(200);
                    Duration::from_secs(5)
                } else {
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    backoff
                };
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => break,
                }
            }
        })
    }
}
