//! Plugin declarations (`plugins.toml` in the rules directory): which
//! component each plugin instance runs, its settings and its grants.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}")]
    Toml(String),
    #[error("plugin {name:?}: {message}")]
    Invalid { name: String, message: String },
}

/// One declared plugin instance.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginDecl {
    /// `builtin:<name>` or a path to a `.wasm` component, relative to the
    /// rules directory.
    pub component: String,
    /// Settings the plugin reads through `wasi:config/store`. Values may be
    /// strings, numbers or booleans; the plugin sees them as text.
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub grants: Grants,
}

/// What the host lends a plugin. Anything not listed is refused.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Key-value buckets it may open (`wasi:keyvalue`).
    #[serde(default)]
    pub keyvalue: Vec<String>,
    /// MQTT topic filters it may publish to (`weir:plugin/publish` and
    /// messages returned from `process`).
    #[serde(default)]
    pub publish: Vec<String>,
    /// Journals it may append to (`weir:plugin/journal`).
    #[serde(default)]
    pub journal: Vec<String>,
    /// May it write to the time-series tier (`weir:plugin/timeseries`).
    #[serde(default)]
    pub timeseries: bool,
    /// May it append to the archive (`weir:plugin/archive`).
    #[serde(default)]
    pub archive: bool,
    /// Notify targets (`[notify.<target>]`) it may send to (`weir:plugin/notify`).
    #[serde(default)]
    pub notify: Vec<String>,
    /// Streams (`[stream.<name>]`) it may put to (`weir:plugin/streams`).
    #[serde(default)]
    pub stream: Vec<String>,
}

impl PluginDecl {
    /// Settings as the text values `wasi:config` hands out.
    pub fn settings_text(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect()
    }
}

/// Every declared plugin, by instance name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginDecls {
    pub decls: BTreeMap<String, PluginDecl>,
}

impl PluginDecls {
    pub fn parse(text: &str) -> Result<PluginDecls, ManifestError> {
        let decls: BTreeMap<String, PluginDecl> = toml::from_str(text)
            .map_err(|e| ManifestError::Toml(e.to_string().trim_end().to_string()))?;
        for (name, decl) in &decls {
            let invalid = |message: String| ManifestError::Invalid {
                name: name.clone(),
                message,
            };
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid("names may use letters, digits, - and _".into()));
            }
            if decl.component.trim().is_empty() {
                return Err(invalid("component is empty".into()));
            }
            for (key, value) in &decl.settings {
                if matches!(value, toml::Value::Table(_) | toml::Value::Array(_)) {
                    return Err(invalid(format!(
                        "setting {key:?} must be a string, number or boolean"
                    )));
                }
            }
            for filter in &decl.grants.publish {
                weir_sql::validate_topic_filter(filter)
                    .map_err(|e| invalid(format!("publish grant {filter:?}: {e}")))?;
            }
            for j in &decl.grants.journal {
                if !crate::store::Journals::valid_name(j) {
                    return Err(invalid(format!(
                        "journal grant {j:?}: names use a-z, 0-9, - and _"
                    )));
                }
            }
        }
        Ok(PluginDecls { decls })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.decls.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.decls.keys().map(|s| s.as_str())
    }

    pub fn get(&self, name: &str) -> Option<&PluginDecl> {
        self.decls.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let d = PluginDecls::parse(
            "[z]\ncomponent = \"builtin:zscore\"\nsettings = { threshold = 3.5, name = \"x\" }\ngrants = { keyvalue = [\"z\"], publish = [\"$weir/alerts/+\"] }\n",
        )
        .unwrap();
        let z = d.get("z").unwrap();
        assert_eq!(
            z.settings_text(),
            vec![
                ("name".into(), "x".into()),
                ("threshold".into(), "3.5".into())
            ]
        );
        let err = PluginDecls::parse("[z]\ncomponent = \"a\"\ngrant = {}\n").unwrap_err();
        assert!(err.to_string().contains("grant"), "{err}");
    }

    #[test]
    fn grant_filters() {
        assert!(weir_sql::topic_matches(
            "weir/alerts/+",
            "weir/alerts/dev-1"
        ));
        assert!(!weir_sql::topic_matches(
            "weir/alerts/+",
            "weir/alerts/dev-1/x"
        ));
        assert!(weir_sql::topic_matches("weir/#", "weir/alerts/dev-1/x"));
        assert!(!weir_sql::topic_matches(
            "weir/alerts/+",
            "weir/other/dev-1"
        ));
    }
}
