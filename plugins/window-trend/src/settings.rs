//! The plugin's settings (the `settings` table of its declaration).

use weir_plugin::config::{parse, parse_list};

/// How a trend is recognised over the last K window means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Least-squares slope of the means; the rise is `slope · K`.
    Slope,
    /// K strictly monotone means; the rise is `last − first`.
    Rising,
}

/// Which direction of trend alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
    Both,
}

/// Parsed settings; see the crate docs for each key.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub window_ms: i64,
    pub lateness_ms: i64,
    pub trend_windows: usize,
    pub trend_method: Method,
    pub trend_threshold: f64,
    pub trend_min_delta: f64,
    pub trend_direction: Direction,
    pub trend_cooldown: u32,
    /// Second gate: the rise must exceed this many "drift" stddevs (the
    /// typical change of the mean between adjacent windows); 0 = off.
    pub trend_drift_threshold: f64,
    /// Half-life, in windows, of the drift estimate.
    pub trend_drift_half_life: f64,
    /// Metrics to aggregate; empty = every numeric metric not in `ignore`.
    pub metrics: Vec<String>,
    pub ignore: Vec<String>,
    pub publish_aggregates: bool,
    pub bucket: String,
    pub alert_topic: String,
    pub aggregate_topic: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            window_ms: 60_000,
            lateness_ms: 10_000,
            trend_windows: 5,
            trend_method: Method::Slope,
            trend_threshold: 2.0,
            trend_min_delta: 0.0,
            trend_direction: Direction::Both,
            trend_cooldown: 5,
            trend_drift_threshold: 0.0,
            trend_drift_half_life: 30.0,
            metrics: Vec::new(),
            ignore: vec!["ts".into(), "timestamp".into()],
            publish_aggregates: true,
            bucket: "window-trend".into(),
            alert_topic: "$weir/alerts".into(),
            aggregate_topic: "weir/aggregates".into(),
        }
    }
}

/// A duration setting in ms: `250ms`, `60s`, `5m`, `1h`, `1d`, or a plain
/// number of seconds.
pub fn parse_duration(key: &str, raw: Option<&str>, default: i64) -> Result<i64, String> {
    let Some(s) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(default);
    };
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let factor = match unit.trim() {
        "ms" => 1.0,
        "" | "s" => 1000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        other => {
            return Err(format!(
                "setting `{key}`: unknown unit `{other}` in `{s}` (ms, s, m, h, d)"
            ))
        }
    };
    let n: f64 = num
        .parse()
        .map_err(|e| format!("setting `{key}`: invalid value `{s}`: {e}"))?;
    let ms = n * factor;
    if !(0.0..1e15).contains(&ms) {
        return Err(format!("setting `{key}`: out of range: `{s}`"));
    }
    Ok(ms.round() as i64)
}

fn text(get: &impl Fn(&str) -> Option<String>, key: &str, default: String) -> String {
    get(key)
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or(default)
}

impl Settings {
    /// Read the settings through `get` (the host's config in the plugin, a
    /// map in tests). Invalid values are errors naming the key.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let d = Settings::default();
        let trend_windows = parse(
            "trend_windows",
            get("trend_windows").as_deref(),
            d.trend_windows,
        )?;
        let trend_method = match get("trend_method").as_deref().map(str::trim) {
            None | Some("") | Some("slope") => Method::Slope,
            Some("rising") => Method::Rising,
            Some(other) => {
                return Err(format!(
                    "setting `trend_method`: `{other}` is neither `slope` nor `rising`"
                ))
            }
        };
        let trend_direction = match get("trend_direction").as_deref().map(str::trim) {
            None | Some("") | Some("both") => Direction::Both,
            Some("up") => Direction::Up,
            Some("down") => Direction::Down,
            Some(other) => {
                return Err(format!(
                    "setting `trend_direction`: `{other}` is not `up`, `down` or `both`"
                ))
            }
        };
        let s = Settings {
            window_ms: parse_duration("window_size", get("window_size").as_deref(), d.window_ms)?,
            lateness_ms: parse_duration(
                "allowed_lateness",
                get("allowed_lateness").as_deref(),
                d.lateness_ms,
            )?,
            trend_windows,
            trend_method,
            trend_threshold: parse(
                "trend_threshold",
                get("trend_threshold").as_deref(),
                d.trend_threshold,
            )?,
            trend_min_delta: parse(
                "trend_min_delta",
                get("trend_min_delta").as_deref(),
                d.trend_min_delta,
            )?,
            trend_direction,
            trend_cooldown: parse(
                "trend_cooldown",
                get("trend_cooldown").as_deref(),
                trend_windows as u32,
            )?,
            trend_drift_threshold: parse(
                "trend_drift_threshold",
                get("trend_drift_threshold").as_deref(),
                d.trend_drift_threshold,
            )?,
            trend_drift_half_life: parse(
                "trend_drift_half_life",
                get("trend_drift_half_life").as_deref(),
                d.trend_drift_half_life,
            )?,
            metrics: get("metrics").map(|s| parse_list(&s)).unwrap_or(d.metrics),
            ignore: get("ignore").map(|s| parse_list(&s)).unwrap_or(d.ignore),
            publish_aggregates: parse(
                "publish_aggregates",
                get("publish_aggregates").as_deref(),
                d.publish_aggregates,
            )?,
            bucket: text(&get, "bucket", d.bucket),
            alert_topic: text(&get, "alert_topic", d.alert_topic),
            aggregate_topic: text(&get, "aggregate_topic", d.aggregate_topic),
        };
        if s.window_ms < 1 {
            return Err("setting `window_size`: must be at least 1ms".into());
        }
        if !(s.trend_drift_half_life >= 1.0 && s.trend_drift_half_life.is_finite()) {
            return Err(format!(
                "setting `trend_drift_half_life`: must be at least 1 window, not {}",
                s.trend_drift_half_life
            ));
        }
        if s.trend_windows < 2 {
            return Err(format!(
                "setting `trend_windows`: must be at least 2, not {}",
                s.trend_windows
            ));
        }
        for (key, v) in [
            ("trend_threshold", s.trend_threshold),
            ("trend_min_delta", s.trend_min_delta),
            ("trend_drift_threshold", s.trend_drift_threshold),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("setting `{key}`: must be 0 or positive, not {v}"));
            }
        }
        Ok(s)
    }

    /// Whether metric `name` is aggregated.
    pub fn aggregates(&self, name: &str) -> bool {
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
        assert!(s.aggregates("temperature") && !s.aggregates("ts"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("w", Some("250ms"), 0), Ok(250));
        assert_eq!(parse_duration("w", Some("60s"), 0), Ok(60_000));
        assert_eq!(parse_duration("w", Some("90"), 0), Ok(90_000));
        assert_eq!(parse_duration("w", Some("1.5m"), 0), Ok(90_000));
        assert_eq!(parse_duration("w", Some("1h"), 0), Ok(3_600_000));
        assert_eq!(parse_duration("w", None, 7), Ok(7));
        assert!(parse_duration("w", Some("5 parsecs"), 0).is_err());
        assert!(parse_duration("w", Some("-5s"), 0).is_err());
    }

    #[test]
    fn explicit_values() {
        let s = Settings::from_lookup(lookup(&[
            ("window_size", "1h"),
            ("allowed_lateness", "30s"),
            ("trend_windows", "4"),
            ("trend_method", "rising"),
            ("trend_direction", "up"),
            ("trend_min_delta", "0.5"),
            ("metrics", "temperature"),
            ("alert_topic", "x/alerts/"),
        ]))
        .unwrap();
        assert_eq!(s.window_ms, 3_600_000);
        assert_eq!(s.lateness_ms, 30_000);
        assert_eq!(s.trend_windows, 4);
        assert_eq!(s.trend_cooldown, 4, "cooldown defaults to K");
        assert_eq!(s.trend_method, Method::Rising);
        assert_eq!(s.trend_direction, Direction::Up);
        assert_eq!(s.trend_min_delta, 0.5);
        assert!(s.aggregates("temperature") && !s.aggregates("humidity"));
        assert_eq!(s.alert_topic, "x/alerts");
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (k, v) in [
            ("window_size", "0s"),
            ("window_size", "soon"),
            ("trend_windows", "1"),
            ("trend_method", "vibes"),
            ("trend_direction", "sideways"),
            ("trend_threshold", "-1"),
            ("publish_aggregates", "maybe"),
        ] {
            let err = Settings::from_lookup(lookup(&[(k, v)])).unwrap_err();
            assert!(err.contains(&format!("`{k}`")), "{k}={v}: {err}");
        }
    }
}
