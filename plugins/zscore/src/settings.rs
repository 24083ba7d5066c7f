//! The plugin's settings (the `settings` table of its declaration).

use weir_plugin::config::{parse, parse_list};

/// Parsed settings; see the crate docs for each key.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub half_life: f64,
    pub warmup: u64,
    pub threshold: f64,
    /// Metrics to score; empty = every numeric metric not in `ignore`.
    pub metrics: Vec<String>,
    pub ignore: Vec<String>,
    pub exclude_anomalies: bool,
    pub cooldown: u32,
    pub min_stddev: f64,
    pub bucket: String,
    pub alert_topic: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            half_life: 0.0,
            warmup: 20,
            threshold: 3.0,
            metrics: Vec::new(),
            ignore: vec!["ts".into(), "timestamp".into()],
            exclude_anomalies: true,
            cooldown: 3,
            min_stddev: 0.0,
            bucket: "zscore".into(),
            alert_topic: "$weir/alerts".into(),
        }
    }
}

impl Settings {
    /// Read the settings through `get` (the host's config in the plugin, a
    /// map in tests). Invalid values are errors naming the key.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let d = Settings::default();
        let s = Settings {
            half_life: parse("half_life", get("half_life").as_deref(), d.half_life)?,
            warmup: parse("warmup", get("warmup").as_deref(), d.warmup)?,
            threshold: parse("threshold", get("threshold").as_deref(), d.threshold)?,
            metrics: get("metrics").map(|s| parse_list(&s)).unwrap_or(d.metrics),
            ignore: get("ignore").map(|s| parse_list(&s)).unwrap_or(d.ignore),
            exclude_anomalies: parse(
                "exclude_anomalies",
                get("exclude_anomalies").as_deref(),
                d.exclude_anomalies,
            )?,
            cooldown: parse("cooldown", get("cooldown").as_deref(), d.cooldown)?,
            min_stddev: parse("min_stddev", get("min_stddev").as_deref(), d.min_stddev)?,
            bucket: get("bucket")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or(d.bucket),
            alert_topic: get("alert_topic")
                .map(|s| s.trim().trim_end_matches('/').to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or(d.alert_topic),
        };
        if !(s.half_life >= 0.0 && s.half_life.is_finite()) {
            return Err(format!(
                "setting `half_life`: must be 0 (Welford) or a positive number of readings, not {}",
                s.half_life
            ));
        }
        if !(s.threshold > 0.0 && s.threshold.is_finite()) {
            return Err(format!(
                "setting `threshold`: must be a positive number, not {}",
                s.threshold
            ));
        }
        if !(s.min_stddev >= 0.0 && s.min_stddev.is_finite()) {
            return Err(format!(
                "setting `min_stddev`: must be 0 or positive, not {}",
                s.min_stddev
            ));
        }
        Ok(s)
    }

    /// Whether metric `name` is scored.
    pub fn scores(&self, name: &str) -> bool {
        weir_plugin::config::selects(&self.metrics, &self.ignore, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults() {
        let s = Settings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(s, Settings::default());
        assert!(s.scores("temperature"));
        assert!(!s.scores("ts"));
    }

    #[test]
    fn explicit_values() {
        let s = Settings::from_lookup(lookup(&[
            ("half_life", "120"),
            ("warmup", "5"),
            ("threshold", "2.5"),
            ("metrics", "temperature, humidity"),
            ("exclude_anomalies", "false"),
            ("cooldown", "0"),
            ("alert_topic", "x/alerts/"),
        ]))
        .unwrap();
        assert_eq!(s.half_life, 120.0);
        assert_eq!(s.warmup, 5);
        assert_eq!(s.threshold, 2.5);
        assert!(s.scores("humidity") && !s.scores("pressure"));
        assert!(!s.exclude_anomalies);
        assert_eq!(s.cooldown, 0);
        assert_eq!(s.alert_topic, "x/alerts");
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (k, v) in [
            ("threshold", "-1"),
            ("threshold", "abc"),
            ("half_life", "-3"),
            ("warmup", "-1"),
            ("exclude_anomalies", "maybe"),
        ] {
            let err = Settings::from_lookup(lookup(&[(k, v)])).unwrap_err();
            assert!(err.contains(&format!("`{k}`")), "{err}");
        }
    }
}
