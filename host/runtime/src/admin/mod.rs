//! The admin socket: how `weir status`, `weir shadow get` and `weir state`
//! reach the instance serving a data directory (`<data-dir>/weir.sock`,
//! one JSON request per line, one JSON response per line).
//!
//! When no instance is running, the same queries are answered from the
//! data directory directly ([`query_offline`]).

use crate::metrics::Metrics;
use crate::store::KvStore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

const NO_TS: &str = "no embedded time-series store here (storage.timeseries.backend is not \"embedded\", or nothing was written yet)";

/// Bucket the shadow plugin keeps device shadows in.
pub const SHADOW_BUCKET: &str = "shadow";

/// A stored shadow document, unless it is the mark a deleted shadow leaves
/// (`"deleted": true`, kept so a shadow made again continues the version
/// numbering, as AWS's does).
pub fn live_shadow(bytes: Vec<u8>) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Mark {
        #[serde(default)]
        deleted: bool,
    }
    match serde_json::from_slice::<Mark>(&bytes) {
        Ok(Mark { deleted: true }) => None,
        _ => Some(bytes),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Status,
    Shadow {
        device: String,
    },
    State {
        bucket: String,
        key: String,
    },
    StateKeys {
        bucket: String,
    },
    StateDelete {
        bucket: String,
        key: String,
    },
    Reload,
    /// Readings of one series from the embedded time-series store.
    TsQuery {
        query: weir_storage::timeseries::TsQuery,
    },
    /// The series (device, metric) the embedded store holds.
    TsSeries {
        device: Option<String>,
    },
    /// A registry operation (`weir things …`, `weir certs …`).
    Identity {
        op: crate::identity::Op,
    },
    /// A Jobs operation (`weir jobs …`).
    Jobs {
        op: crate::jobs::JobOp,
    },
}

/// The Jobs service, and how its notices reach devices and rules (a
/// running instance publishes them; offline there is no one to tell).
pub struct JobsAccess {
    pub service: Arc<crate::jobs::JobsService>,
    pub publish: Arc<dyn Fn(Vec<crate::jobs::Notice>) + Send + Sync>,
}

/// The registry, and how to close the connections of a certificate.
pub struct IdentityAccess {
    pub service: Arc<crate::identity::IdentityService>,
    pub kick: Arc<dyn Fn(&str) -> usize + Send + Sync>,
}

/// What an instance (or the offline store) can answer.
pub struct Answerer {
    pub kv: Arc<KvStore>,
    pub metrics: Option<Arc<Metrics>>,
    pub extra_status: Option<Arc<dyn Fn() -> Value + Send + Sync>>,
    pub reloader: Option<Arc<crate::reload::Reloader>>,
    /// The running engine (current generation, worker count), for resets.
    pub engine: Option<(Arc<crate::engine::Current>, usize)>,
    /// The embedded time-series store, when it is the configured backend.
    pub ts: Option<Arc<weir_storage::timeseries::TsStore>>,
    /// The fleet registry, when identity is set up.
    pub identity: Option<IdentityAccess>,
    pub jobs: Option<JobsAccess>,
}

impl Answerer {
    pub fn answer(&self, request: &Request) -> Result<Value, String> {
        let text = |bytes: Vec<u8>| -> Value {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => v,
                Err(_) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
            }
        };
        match request {
            Request::Status => {
                let mut status = match &self.metrics {
                    Some(m) => m.snapshot(),
                    None => json!({"running": false}),
                };
                if let (Some(extra), Some(obj)) = (&self.extra_status, status.as_object_mut()) {
                    if let Some(e) = extra().as_object() {
                        obj.extend(e.clone());
                    }
                }
                Ok(status)
            }
            Request::Shadow { device } => match self
                .kv
                .get(SHADOW_BUCKET, device)
                .map_err(|e| e.to_string())?
                .and_then(live_shadow)
            {
                Some(bytes) => Ok(text(bytes)),
                None => Err(format!("no shadow for device {device:?}")),
            },
            Request::State { bucket, key } => {
                match self.kv.get(bucket, key).map_err(|e| e.to_string())? {
                    Some(bytes) => Ok(text(bytes)),
                    None => Err(format!("no state under {bucket}/{key}")),
                }
            }
            Request::StateKeys { bucket } => {
                Ok(json!(self.kv.keys(bucket).map_err(|e| e.to_string())?))
            }
            Request::TsQuery { query } => {
                let ts = self.ts.as_ref().ok_or(NO_TS)?;
                let rows = ts.query(query).map_err(|e| e.to_string())?;
                serde_json::to_value(rows).map_err(|e| e.to_string())
            }
            Request::TsSeries { device } => {
                let ts = self.ts.as_ref().ok_or(NO_TS)?;
                let series = ts.series(device.as_deref()).map_err(|e| e.to_string())?;
                Ok(json!(series
                    .into_iter()
                    .map(|(device, metric)| json!({"device": device, "metric": metric}))
                    .collect::<Vec<_>>()))
            }
            Request::Identity { op } => {
                let access = self
                    .identity
                    .as_ref()
                    .ok_or("no fleet CA in this data directory: run `weir ca init` first")?;
                let mut result = access.service.apply(op)?;
                // A certificate that may no longer connect is disconnected now.
                if let crate::identity::Op::SetStatus { status, .. } = op {
                    if *status != weir_identity::registry::CertStatus::Active {
                        let id = result["certificateId"].as_str().unwrap_or_default();
                        let closed = (access.kick)(id);
                        if let Some(obj) = result.as_object_mut() {
                            obj.insert("connectionsClosed".into(), json!(closed));
                        }
                    }
                }
                Ok(result)
            }
            Request::Jobs { op } => {
                let access = self.jobs.as_ref().ok_or("no jobs service here")?;
                let (answer, notices) = access.service.apply(op, crate::clock::now_ms())?;
                if !notices.is_empty() {
                    (access.publish)(notices);
                }
                Ok(answer)
            }
            Request::Reload => match &self.reloader {
                Some(r) => serde_json::to_value(r.reload()).map_err(|e| e.to_string()),
                None => Err("reload needs a running instance".into()),
            },
            Request::StateDelete { bucket, key } => {
                if let Some((current, workers)) = &self.engine {
                    // Running: first have every worker save and drop the
                    // instances holding this bucket (bounded wait).
                    let before = current.release_acks();
                    current.request_release(bucket);
                    let start = std::time::Instant::now();
                    while current.release_acks() < before + *workers as u64 {
                        if start.elapsed() > std::time::Duration::from_secs(5) {
                            return Err(
                                "engine workers did not release the bucket in 5 s; nothing deleted"
                                    .into(),
                            );
                        }
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                }
                self.kv.delete(bucket, key);
                self.kv.flush().map_err(|e| e.to_string())?;
                Ok(json!({"deleted": format!("{bucket}/{key}")}))
            }
        }
    }
}

/// Serve the admin socket until shutdown.
pub async fn serve(
    listener: UnixListener,
    answerer: Arc<Answerer>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let answerer = answerer.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let response = match serde_json::from_str::<Request>(&line) {
                            Ok(req) => match answerer.answer(&req) {
                                Ok(v) => json!({"ok": true, "result": v}),
                                Err(e) => json!({"ok": false, "error": e}),
                            },
                            Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
                        };
                        let mut text = response.to_string();
                        text.push('\n');
                        if write.write_all(text.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// Errors of the admin client.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no running weir at {0}")]
    NotRunning(String),
    #[error("{0}")]
    Failed(String),
}

/// Ask the instance serving `data_dir`.
pub async fn query(data_dir: &Path, request: &Request) -> Result<Value, AdminError> {
    let path = crate::config::Config::admin_socket(data_dir);
    let stream = UnixStream::connect(&path)
        .await
        .map_err(|_| AdminError::NotRunning(path.display().to_string()))?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request).map_err(|e| AdminError::Failed(e.to_string()))?;
    line.push('\n');
    write
        .write_all(line.as_bytes())
        .await
        .map_err(|e| AdminError::Failed(e.to_string()))?;
    let mut lines = BufReader::new(read).lines();
    let reply = lines
        .next_line()
        .await
        .map_err(|e| AdminError::Failed(e.to_string()))?
        .ok_or_else(|| AdminError::Failed("the instance closed the admin socket".into()))?;
    let reply: Value =
        serde_json::from_str(&reply).map_err(|e| AdminError::Failed(e.to_string()))?;
    if reply["ok"] == json!(true) {
        Ok(reply["result"].clone())
    } else {
        Err(AdminError::Failed(
            reply["error"].as_str().unwrap_or("failed").to_string(),
        ))
    }
}

/// Answer from the data directory when no instance is running.
pub fn query_offline(data_dir: &Path, request: &Request) -> Result<Value, AdminError> {
    // Reading must not create: a mistyped --data-dir would otherwise come
    // back as an empty store ("no shadow for device …").
    let state = crate::server::state_path(data_dir);
    let reads = matches!(
        request,
        Request::Shadow { .. }
            | Request::State { .. }
            | Request::StateKeys { .. }
            | Request::TsQuery { .. }
            | Request::TsSeries { .. }
    );
    if reads && !state.exists() {
        return Err(AdminError::Failed(format!(
            "no running weir and no data in {} (is --data-dir right?)",
            data_dir.display()
        )));
    }
    let kv = KvStore::open(&state).map_err(|e| AdminError::Failed(e.to_string()))?;
    let ts_path = crate::sinks::timeseries::store_path(data_dir);
    let ts = match request {
        Request::TsQuery { .. } | Request::TsSeries { .. } if ts_path.exists() => Some(Arc::new(
            // Retention is only enforced by a running instance; reading
            // does not need the configured value.
            weir_storage::timeseries::TsStore::open(
                &ts_path,
                std::time::Duration::from_secs(90 * 86_400),
            )
            .map_err(|e| AdminError::Failed(format!("{}: {e}", ts_path.display())))?,
        )),
        _ => None,
    };
    let identity_dir = data_dir.join("identity");
    let identity = match request {
        Request::Identity { .. } | Request::Jobs { .. }
            if crate::identity::IdentityService::exists(&identity_dir) =>
        {
            let service = crate::identity::IdentityService::open(
                &identity_dir,
                crate::identity::IdentityConfig::default(),
            )
            .map_err(|e| AdminError::Failed(e.to_string()))?;
            Some(IdentityAccess {
                service: Arc::new(service),
                kick: Arc::new(|_: &str| 0),
            })
        }
        _ => None,
    };
    let kv = Arc::new(kv);
    let jobs = match request {
        Request::Jobs { .. } => Some(JobsAccess {
            service: Arc::new(crate::jobs::JobsService::open(
                kv.clone(),
                identity.as_ref().map(|i| i.service.clone()),
            )),
            // Devices learn of a job made offline when they ask
            // (GetPendingJobExecutions, StartNextPendingJobExecution).
            publish: Arc::new(|_| {}),
        }),
        _ => None,
    };
    let answerer = Answerer {
        kv,
        metrics: None,
        extra_status: None,
        reloader: None,
        engine: None,
        ts,
        identity,
        jobs,
    };
    let answer = answerer.answer(request);
    if let Request::Jobs { .. } = request {
        answerer
            .kv
            .flush()
            .map_err(|e| AdminError::Failed(e.to_string()))?;
    }
    answer.map_err(AdminError::Failed)
}
