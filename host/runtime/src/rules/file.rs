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
//!
//! Values a check can complain about are kept with their byte span in the
//! file (`toml::Spanned`), so every problem points at its own line and column.
//! Unknown keys are found by [`unknown_keys`] (all of them, each at its key)
//! rather than by serde's `deny_unknown_fields`, which stops at the first.

use serde::Deserialize;
use toml::Spanned;

/// Most actions one rule may route to (AWS IoT's limit).
pub const MAX_ACTIONS: usize = 10;

/// The only SQL version Weir accepts.
pub const SQL_VERSION: &str = "2016-03-23";

#[derive(Debug, Clone, Deserialize)]
pub struct RuleFile {
    /// The rule's statement, AWS IoT SQL (2016-03-23).
    pub sql: Spanned<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// SQL version; only AWS IoT's `2016-03-23` is accepted (the default).
    #[serde(default, rename = "sql_version")]
    pub sql_version: Option<Spanned<String>>,
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
pub struct ActionSpec {
    /// Name of a plugin instance declared in `plugins.toml`.
    pub plugin: Option<Spanned<String>>,
    /// AWS's republish action instead of a plugin: the rule's output is
    /// published to this topic (a `${…}` template) and re-enters the engine.
    pub republish: Option<Spanned<String>>,
    /// Device id handed to the plugin (default: the publisher's client id).
    pub device: Option<Spanned<String>>,
    /// Device type handed to the plugin (default: empty).
    pub device_type: Option<Spanned<String>>,
    /// The device's own timestamp (default: the output's `ts` or `timestamp`).
    pub device_time: Option<Spanned<String>>,
}

fn default_true() -> bool {
    true
}

/// The keys a rule file may have.
pub const RULE_KEYS: &[&str] = &[
    "sql",
    "description",
    "enabled",
    "sql_version",
    "actions",
    "error_action",
];

/// The keys an action may have.
pub const ACTION_KEYS: &[&str] = &[
    "plugin",
    "republish",
    "device",
    "device_type",
    "device_time",
];

type Keys = std::collections::BTreeMap<Spanned<String>, toml::Value>;

#[derive(Deserialize)]
struct ActionKeyScan {
    #[serde(default)]
    actions: Vec<Keys>,
    error_action: Option<Keys>,
}

/// Every key of `text` that a rule file does not have: (span of the key,
/// message). `text` must be valid TOML; shape errors are left to the
/// parse into [`RuleFile`].
pub fn unknown_keys(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut out = Vec::new();
    let mut scan = |keys: &Keys, known: &[&str], what: &str| {
        for k in keys.keys() {
            if !known.contains(&k.get_ref().as_str()) {
                out.push((
                    k.span(),
                    format!(
                        "unknown key `{}` in {what}; expected one of: {}",
                        k.get_ref(),
                        known.join(", ")
                    ),
                ));
            }
        }
    };
    if let Ok(top) = toml::from_str::<Keys>(text) {
        scan(&top, RULE_KEYS, "a rule file");
    }
    if let Ok(s) = toml::from_str::<ActionKeyScan>(text) {
        for (i, a) in s.actions.iter().enumerate() {
            scan(a, ACTION_KEYS, &format!("action {}", i + 1));
        }
        if let Some(a) = &s.error_action {
            scan(a, ACTION_KEYS, "error_action");
        }
    }
    out.sort_by_key(|(span, _)| span.start);
    out
}
