//! Typed configuration (`weir.toml`), validated before any I/O.
//!
//! Every section rejects unknown keys, so a typo is an error that names the
//! key rather than a setting silently ignored.

pub use crate::sinks::config::{
    ArchiveBackend, DeliveryConfig, NotifyTarget, ShadowBackend, StorageConfig, StreamTarget,
    TimeseriesBackend,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Errors reading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The I/O error is in the message, not a `source`: printed as a chain
    /// it would say the same thing twice.
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration. All fields have embedded defaults, so an empty
/// file (or no file) runs the shipped pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// MQTT (TCP) listener for devices.
    pub listen: SocketAddr,
    /// MQTT over WebSockets (`ws://<addr>/mqtt`, for browsers and
    /// dashboards); off unless set.
    pub ws_listen: Option<SocketAddr>,
    /// Where state, journals, the compile cache and the admin socket live.
    pub data_dir: PathBuf,
    /// Rule files (`*.toml`) and plugin declarations (`plugins.toml`), watched
    /// for changes. Components named by path resolve against this directory.
    pub rules_dir: PathBuf,
    pub engine: EngineConfig,
    pub plugins: PluginLimits,
    pub broker: BrokerConfig,
    /// AWS region, credentials and per-service endpoint overrides, shared
    /// by every AWS backend.
    pub aws: weir_aws::AwsSettings,
    /// Where the shadow, time-series and archive tiers live.
    pub storage: StorageConfig,
    /// Notify targets (`[notify.<target>]`) plugins may be granted.
    pub notify: BTreeMap<String, NotifyTarget>,
    /// Streams (`[stream.<name>]`) plugins may be granted.
    pub stream: BTreeMap<String, StreamTarget>,
    /// The outbox (queue, spool, retry) in front of every backend.
    pub delivery: DeliveryConfig,
    /// Device identity: the mTLS listener, topic policies, provisioning.
    pub identity: crate::identity::IdentityConfig,
    /// The data-plane HTTP API (`iot-data`: shadows and publish over HTTP).
    pub http: crate::http_api::HttpConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            ws_listen: None,
            data_dir: PathBuf::from("weir-data"),
            rules_dir: PathBuf::from("rules"),
            engine: EngineConfig::default(),
            plugins: PluginLimits::default(),
            broker: BrokerConfig::default(),
            aws: weir_aws::AwsSettings::default(),
            storage: StorageConfig::default(),
            notify: BTreeMap::new(),
            stream: BTreeMap::new(),
            delivery: DeliveryConfig::default(),
            identity: crate::identity::IdentityConfig::default(),
            http: crate::http_api::HttpConfig::default(),
        }
    }
}

/// The rules engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Worker threads; each owns its plugin instances. Readings of one topic
    /// always go to the same worker, so per-device state stays in one place.
    /// 0 = one per core.
    pub workers: usize,
    /// Most messages one worker takes off its queue per round (and so the
    /// largest batch a plugin sees).
    pub max_batch: usize,
    /// Capacity of each worker's queue. When full, listeners stop reading
    /// device sockets: back-pressure reaches devices instead of memory growing.
    /// A worker empties its queue in one go, so it may also hold up to this
    /// many messages taken and not yet evaluated.
    pub queue_capacity: usize,
    /// How often plugins checkpoint state and the store flushes to disk (ms).
    pub checkpoint_interval_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 0,
            max_batch: 256,
            queue_capacity: 16_384,
            checkpoint_interval_ms: 1_000,
        }
    }
}

/// Sandbox limits applied to every plugin call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// Wall-clock budget of one call, in ms, plus `per_message_us` for each
    /// message the call carries (a batch of 256 gets 50 ms + 51 ms).
    pub call_timeout_ms: u64,
    pub per_message_us: u64,
    /// Linear memory cap per instance, in MiB.
    pub memory_limit_mib: u64,
    /// Failures (trap, timeout, memory) within `failure_window_s` after which
    /// a plugin is quarantined.
    pub max_failures: u32,
    pub failure_window_s: u64,
    /// Where compiled components are cached (default `<data_dir>/cache`).
    pub cache_dir: Option<PathBuf>,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            call_timeout_ms: 50,
            per_message_us: 200,
            memory_limit_mib: 64,
            max_failures: 5,
            failure_window_s: 60,
            cache_dir: None,
        }
    }
}

/// The embedded broker (rumqttd's router).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    pub max_connections: usize,
    /// Largest accepted MQTT packet, bytes.
    pub max_packet_size: usize,
    /// Router log segment size (bytes) and count: messages kept for device
    /// subscribers. Small by default; the engine does not read from this log.
    pub segment_size: usize,
    pub segment_count: usize,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout_s: u64,
    /// How long a persistent session outlives its connection: MQTT 3.1.1
    /// clean-session-off sessions get this, MQTT 5 session expiry
    /// intervals are capped at it (seconds; AWS IoT's default is 1 hour).
    pub session_expiry_s: u64,
    /// QoS 1 messages one offline session holds; beyond it the oldest is
    /// dropped and counted (`sessions.messages_dropped`).
    pub session_max_messages: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            max_connections: 200_000,
            max_packet_size: 128 * 1024,
            segment_size: 16 * 1024 * 1024,
            segment_count: 4,
            connect_timeout_s: 10,
            session_expiry_s: 3_600,
            session_max_messages: 1_000,
        }
    }
}

impl Config {
    /// Read and validate a config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parse and validate config text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.engine.max_batch == 0 {
            return invalid("engine.max_batch must be at least 1");
        }
        if self.engine.queue_capacity < self.engine.max_batch {
            return invalid("engine.queue_capacity must be at least engine.max_batch");
        }
        if self.engine.checkpoint_interval_ms < 10 {
            return invalid("engine.checkpoint_interval_ms must be at least 10");
        }
        if self.plugins.call_timeout_ms == 0 {
            return invalid("plugins.call_timeout_ms must be at least 1");
        }
        if self.plugins.memory_limit_mib == 0 || self.plugins.memory_limit_mib > 4096 {
            return invalid("plugins.memory_limit_mib must be between 1 and 4096");
        }
        if self.plugins.max_failures == 0 {
            return invalid("plugins.max_failures must be at least 1");
        }
        if self.broker.max_packet_size < 1024 {
            return invalid("broker.max_packet_size must be at least 1024");
        }
        if self.broker.segment_count == 0 || self.broker.segment_size < 64 * 1024 {
            return invalid(
                "broker.segment_size must be at least 65536 and segment_count at least 1",
            );
        }
        if self.broker.session_max_messages == 0 {
            return invalid("broker.session_max_messages must be at least 1");
        }
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir must not be empty");
        }
        self.identity.validate().map_err(ConfigError::Invalid)?;
        self.http.validate().map_err(ConfigError::Invalid)?;
        self.aws
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("aws: {e}")))?;
        crate::sinks::config::validate(&self.storage, &self.notify, &self.stream, &self.delivery)
            .map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// Worker count with `0` resolved to the number of cores.
    pub fn workers(&self) -> usize {
        if self.engine.workers > 0 {
            return self.engine.workers;
        }
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.plugins
            .cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("cache"))
    }

    /// The admin socket of the instance serving `data_dir`.
    pub fn admin_socket(data_dir: &Path) -> PathBuf {
        data_dir.join("weir.sock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_embedded_default() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 1883)));
        assert_eq!(c.rules_dir, PathBuf::from("rules"));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[engine]\nworkerz = 2\n").unwrap_err();
        assert!(err.to_string().contains("workerz"), "{err}");
    }

    #[test]
    fn storage_backends_need_their_settings() {
        let err =
            Config::from_toml("[storage.timeseries]\nbackend = \"timestream\"\n").unwrap_err();
        assert!(
            err.to_string().contains("storage.timeseries.database"),
            "{err}"
        );
        let err = Config::from_toml("[storage.archive]\nbackend = \"s3\"\n").unwrap_err();
        assert!(err.to_string().contains("storage.archive.bucket"), "{err}");
        let err = Config::from_toml("[storage.archive]\nbackend = \"ftp\"\n").unwrap_err();
        assert!(err.to_string().contains("ftp"), "{err}");
        let err =
            Config::from_toml("[notify.ops]\nkind = \"sns\"\ntopic_arn = \"ops\"\n").unwrap_err();
        assert!(err.to_string().contains("notify.ops.topic_arn"), "{err}");
        let err = Config::from_toml("[stream.telemetry]\nkind = \"kinesis\"\nstream = \"x\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("stream"), "{err}");
        let ok = Config::from_toml(
            "[aws]\nregion = \"eu-west-1\"\n[aws.endpoints]\nkinesis = \"http://127.0.0.1:4567\"\n\
             [storage.timeseries]\nbackend = \"influxdb\"\nurl = \"http://127.0.0.1:8086\"\norg = \"o\"\nbucket = \"b\"\n\
             [stream.telemetry]\nkind = \"kinesis\"\nstream_name = \"weir\"\n",
        )
        .unwrap();
        assert_eq!(ok.storage.timeseries.backend, TimeseriesBackend::Influxdb);
        assert_eq!(ok.stream["telemetry"].shard_records_per_sec, 1000);
    }

    #[test]
    fn invalid_values_are_refused() {
        let err = Config::from_toml("[engine]\nmax_batch = 0\n").unwrap_err();
        assert!(err.to_string().contains("max_batch"), "{err}");
    }
}
