//! Typed configuration of the storage tiers and outlets (`[storage.*]`,
//! `[notify.<target>]`, `[stream.<name>]`, `[delivery]` in `weir.toml`).
//!
//! Each tier names a backend and the settings that backend needs; a setting
//! that does not belong to the chosen backend, or a missing one, is an error
//! at load, before any I/O.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[storage]`: where each tier lives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub shadow: ShadowStorage,
    pub timeseries: TimeseriesStorage,
    pub archive: ArchiveStorage,
}

/// Backend of the device-shadow tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShadowBackend {
    /// Only the embedded store (always kept: it answers `weir shadow get`
    /// and `get_thing_shadow()`).
    #[default]
    Embedded,
    /// The embedded store, replicated to a DynamoDB table.
    Dynamodb,
}

/// `[storage.shadow]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShadowStorage {
    pub backend: ShadowBackend,
    /// DynamoDB table (one item per device, key `device_id`).
    pub table: Option<String>,
    /// Create the table on start when it does not exist.
    pub create_table: bool,
}

impl Default for ShadowStorage {
    fn default() -> Self {
        ShadowStorage {
            backend: ShadowBackend::Embedded,
            table: None,
            create_table: false,
        }
    }
}

/// Backend of the time-series tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeseriesBackend {
    #[default]
    Embedded,
    /// Amazon Timestream for LiveAnalytics.
    Timestream,
    /// InfluxDB v2 line protocol over HTTP (Timestream for InfluxDB).
    Influxdb,
}

/// `[storage.timeseries]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeseriesStorage {
    pub backend: TimeseriesBackend,
    /// Embedded store: readings older than this are dropped (whole days).
    pub retention_days: u32,
    /// Timestream database and table.
    pub database: Option<String>,
    pub table: Option<String>,
    /// Timestream: create the database and table on start when missing.
    pub create_table: bool,
    /// InfluxDB: base URL, organisation, bucket, and the token (or the name
    /// of an environment variable holding it).
    pub url: Option<String>,
    pub org: Option<String>,
    pub bucket: Option<String>,
    pub token: Option<String>,
    pub token_env: Option<String>,
}

impl Default for TimeseriesStorage {
    fn default() -> Self {
        TimeseriesStorage {
            backend: TimeseriesBackend::Embedded,
            retention_days: 90,
            database: None,
            table: None,
            create_table: false,
            url: None,
            org: None,
            bucket: None,
            token: None,
            token_env: None,
        }
    }
}

/// Where archive files go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveBackend {
    #[default]
    Local,
    S3,
}

/// `[storage.archive]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveStorage {
    pub backend: ArchiveBackend,
    /// Local root of the partitioned files (default `<data_dir>/archive`).
    pub dir: Option<PathBuf>,
    /// S3 bucket and key prefix.
    pub bucket: Option<String>,
    pub prefix: String,
    /// Create the bucket on start when missing.
    pub create_bucket: bool,
    /// A file is closed when it reaches this size (MiB) or age (seconds).
    pub roll_mib: u64,
    pub roll_secs: u64,
    /// Files larger than this go to S3 as multipart uploads (MiB).
    pub multipart_threshold_mib: u64,
}

impl Default for ArchiveStorage {
    fn default() -> Self {
        ArchiveStorage {
            backend: ArchiveBackend::Local,
            dir: None,
            bucket: None,
            prefix: String::new(),
            create_bucket: false,
            roll_mib: 64,
            roll_secs: 300,
            multipart_threshold_mib: 16,
        }
    }
}

/// Kinds of notify target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    /// Amazon SNS (PublishBatch).
    Sns,
}

/// `[notify.<target>]`: a target plugins may be granted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    pub kind: NotifyKind,
    pub topic_arn: String,
    /// Create the topic on start (by the name in the ARN) when missing.
    #[serde(default)]
    pub create_topic: bool,
}

/// Kinds of stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// Amazon Kinesis Data Streams (PutRecords).
    Kinesis,
}

/// `[stream.<name>]`: a stream plugins may be granted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamTarget {
    pub kind: StreamKind,
    pub stream_name: String,
    /// Per-shard budget (Kinesis allows 1,000 records/s and 1 MiB/s).
    #[serde(default = "default_shard_records")]
    pub shard_records_per_sec: u32,
    #[serde(default = "default_shard_bytes")]
    pub shard_bytes_per_sec: u64,
    /// Create the stream with this many shards on start when missing (0 = don't).
    #[serde(default)]
    pub create_shards: u32,
}

fn default_shard_records() -> u32 {
    1_000
}

fn default_shard_bytes() -> u64 {
    1024 * 1024
}

/// `[delivery]`: the outbox in front of every backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Items held in memory per backend before spilling to the disk spool.
    pub memory_capacity: usize,
    /// Spool size per backend at which ingestion is slowed (MiB).
    pub spool_limit_mib: u64,
    /// How long to wait to fill a batch (ms).
    pub linger_ms: u64,
    /// Backoff between retries: from `retry_initial_ms` doubling up to `retry_max_ms`, with full jitter.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// How long shutdown waits for backends before spooling what is left (ms).
    pub shutdown_timeout_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            memory_capacity: 50_000,
            spool_limit_mib: 1024,
            linger_ms: 20,
            retry_initial_ms: 100,
            retry_max_ms: 30_000,
            shutdown_timeout_ms: 5_000,
        }
    }
}

/// Checks that need no I/O; `Err` names the setting.
pub fn validate(
    storage: &StorageConfig,
    notify: &BTreeMap<String, NotifyTarget>,
    stream: &BTreeMap<String, StreamTarget>,
    delivery: &DeliveryConfig,
) -> Result<(), String> {
    let need = |v: &Option<String>, what: &str| -> Result<(), String> {
        match v.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => Ok(()),
            _ => Err(format!("{what} is required")),
        }
    };
    let shadow = &storage.shadow;
    if shadow.backend == ShadowBackend::Dynamodb {
        need(
            &shadow.table,
            "storage.shadow.table (backend = \"dynamodb\")",
        )?;
    } else if shadow.table.is_some() {
        return Err("storage.shadow.table is only used with backend = \"dynamodb\"".into());
    }

    let ts = &storage.timeseries;
    if ts.retention_days == 0 {
        return Err("storage.timeseries.retention_days must be at least 1".into());
    }
    match ts.backend {
        TimeseriesBackend::Embedded => {}
        TimeseriesBackend::Timestream => {
            need(
                &ts.database,
                "storage.timeseries.database (backend = \"timestream\")",
            )?;
            need(
                &ts.table,
                "storage.timeseries.table (backend = \"timestream\")",
            )?;
        }
        TimeseriesBackend::Influxdb => {
            need(&ts.url, "storage.timeseries.url (backend = \"influxdb\")")?;
            need(&ts.org, "storage.timeseries.org (backend = \"influxdb\")")?;
            need(
                &ts.bucket,
                "storage.timeseries.bucket (backend = \"influxdb\")",
            )?;
            if ts.token.is_some() && ts.token_env.is_some() {
                return Err("storage.timeseries: give token or token_env, not both".into());
            }
            if let Some(url) = &ts.url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "storage.timeseries.url must start with http:// or https:// (got {url:?})"
                    ));
                }
            }
        }
    }

    let archive = &storage.archive;
    if archive.backend == ArchiveBackend::S3 {
        need(&archive.bucket, "storage.archive.bucket (backend = \"s3\")")?;
    }
    if archive.roll_mib == 0 || archive.roll_secs == 0 {
        return Err("storage.archive.roll_mib and roll_secs must be at least 1".into());
    }
    if archive.multipart_threshold_mib < 5 {
        return Err(
            "storage.archive.multipart_threshold_mib must be at least 5 (S3's smallest part)"
                .into(),
        );
    }

    for (name, t) in notify {
        valid_name("notify", name)?;
        if !t.topic_arn.starts_with("arn:") {
            return Err(format!(
                "notify.{name}.topic_arn must be an ARN (arn:aws:sns:…), got {:?}",
                t.topic_arn
            ));
        }
    }
    for (name, s) in stream {
        valid_name("stream", name)?;
        if s.stream_name.trim().is_empty() {
            return Err(format!("stream.{name}.stream_name must not be empty"));
        }
        if s.shard_records_per_sec == 0 || s.shard_bytes_per_sec < 1024 {
            return Err(format!(
                "stream.{name}: shard_records_per_sec must be at least 1 and shard_bytes_per_sec at least 1024"
            ));
        }
    }

    if delivery.memory_capacity == 0 {
        return Err("delivery.memory_capacity must be at least 1".into());
    }
    if delivery.spool_limit_mib == 0 {
        return Err("delivery.spool_limit_mib must be at least 1".into());
    }
    if delivery.retry_initial_ms == 0 || delivery.retry_max_ms < delivery.retry_initial_ms {
        return Err("delivery.retry_initial_ms must be at least 1 and at most retry_max_ms".into());
    }
    Ok(())
}

fn valid_name(section: &str, name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "[{section}.{name}]: names may only use letters, digits, '-' and '_'"
        ))
    }
}
