//! The rule file format: one TOML file per rule in the rules directory.
//!
//! ```toml
//! description = "Every reading to anomaly detection and the shadow"
//! enabled = true
//! sql = "SELECT * FROM 'dt/+/+/telemetry'"
//!
//! [[actions]]
//! plugin = "zscore"
//! device = "${topic(3)}"
//! device_type = "${topic(2)}"
//!
//! [error_action]
//! plugin = "alerts"
//! ```

use serde::Deserialize;

/// Most actions one rule may route to (AWS IoT's limit).
pub const MAX_ACTIONS: usize = 10;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The rule's statement, AWS IoT SQL (2016-03-23).
    pub sql: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// SQL version; only AWS IoT's `2016-03-23` is accepted.
    #[serde(default = "default_sql_version", rename = "sql_version")]
    pub sql_version: String,
    #[serde(default)]
    pub actions: Vec<ActionSpec>,
    /// Where messages go when evaluation or an action fails. Without one,
    /// failures go to the `dead-letter` journal.
    pub error_action: Option<ActionSpec>,
}

/// One action: a declared plugin instance plus per-message parameters.
/// Parameters are `${expr}` substitution templates evaluated against the
/// incoming message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// Name of a plugin instance declared in `plugins.toml`.
    pub plugin: String,
    /// Device id handed to the plugin (default: the publisher's client id).
    pub device: Option<String>,
    /// Device type handed to the plugin (default: empty).
    pub device_type: Option<String>,
    /// The device's own timestamp (default: the output's `ts` or `timestamp`).
    pub device_time: Option<String>,
}

fn default_true() -> bool {
    true
}

fn default_sql_version() -> String {
    "2016-03-23".into()
}
