//! `weir eval`: detection quality of the shipped pipeline, rerunnable.
//!
//! Both evaluations start a `weir` server in this process (ephemeral port,
//! temporary data directory, a copy of the rules directory with any
//! `--set plugin.key=value` overrides applied), publish over real MQTT
//! connections at full speed, and read the alerts the pipeline publishes on
//! `weir/alerts/#` through an in-process broker link.
//!
//! - `weir eval nab --data <dir>`: each labelled NAB series (keys of
//!   `anomaly_windows.json`) is replayed on its own fresh server; reported
//!   per detector: label windows with at least one alert inside (by the
//!   alert's `device_time`) and alerts outside every window.
//! - `weir eval synthetic --devices N`: a fleet with injected spikes and
//!   slow ramps whose times are known; reported: recall and precision of
//!   spike alerts (zscore) and trend alerts (window-trend).

use crate::replay::{self, rfc3339, Conn, Speed};
use crate::rng::Rng;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Subcommand, Clone, Debug)]
pub enum EvalCommand {
    /// Replay the labelled NAB series through the pipeline; score alerts against the label windows.
    Nab(NabArgs),
    /// A synthetic fleet with injected spikes and slow ramps; precision and recall.
    Synthetic(SyntheticArgs),
}

#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// Rules directory to copy (default: the repository's `rules/`).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Override a plugin setting in the copy: `plugin.key=value` (repeatable).
    #[arg(long = "set", value_name = "PLUGIN.KEY=VALUE")]
    pub set: Vec<String>,
    /// Also print the results as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Clone, Debug)]
pub struct NabArgs {
    /// Directory with the CSV files and anomaly_windows.json.
    #[arg(long)]
    pub data: PathBuf,
    /// window-trend window size: `auto` (12 × the series' median sampling interval) or a duration (`1h`).
    #[arg(long, default_value = "auto")]
    pub window: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Clone, Debug)]
pub struct SyntheticArgs {
    /// Devices in the fleet (half of them get a slow ramp).
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Hours of telemetry per device.
    #[arg(long, default_value_t = 2.0)]
    pub hours: f64,
    /// Seconds between readings.
    #[arg(long, default_value_t = 10)]
    pub interval: u64,
    /// Seed of the fleet.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// MQTT connections to publish over (each carries a fixed set of devices).
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(command: EvalCommand) -> Result<()> {
    match command {
        EvalCommand::Nab(args) => {
            let report = nab(&args).await?;
            if args.common.json {
                println!("{report}");
            }
        }
        EvalCommand::Synthetic(args) => {
            let report = synthetic(&args).await?;
            if args.common.json {
                println!("{report}");
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- pipeline

/// A `weir` server in this process with an alert collector.
pub struct Pipeline {
    running: weir_runtime::server::Running,
    dir: PathBuf,
    alerts: Arc<Mutex<Vec<Value>>>,
    /// The plugin declarations in effect (after overrides).
    pub plugins: toml::Table,
}

fn repo_rules() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    if repo.is_dir() {
        repo
    } else {
        PathBuf::from("rules")
    }
}

/// `plugin.key=value` → (plugin, key, TOML value).
fn parse_override(s: &str) -> Result<(String, String, toml::Value)> {
    let (path, value) = s
        .split_once('=')
        .with_context(|| format!("--set {s:?}: expected plugin.key=value"))?;
    let (plugin, key) = path
        .trim()
        .split_once('.')
        .with_context(|| format!("--set {s:?}: expected plugin.key=value"))?;
    let value = value.trim();
    let v = if let Ok(i) = value.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(f) = value.parse::<f64>() {
        toml::Value::Float(f)
    } else if let Ok(b) = value.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(value.to_string())
    };
    Ok((plugin.to_string(), key.to_string(), v))
}

/// Plugin call budget of the evaluation server (the default is 50 ms).
pub const CALL_TIMEOUT_MS: u64 = 2_000;

impl Pipeline {
    /// Copy `rules` to a temporary directory, apply `overrides` to its
    /// `plugins.toml`, and start a server on 127.0.0.1:0.
    pub async fn start(rules: &Path, overrides: &[String]) -> Result<Pipeline> {
        static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "weir-eval-{}-{}",
            std::process::id(),
            RUN.fetch_add(1, Relaxed)
        ));
        let rules_copy = dir.join("rules");
        std::fs::create_dir_all(&rules_copy)?;
        for entry in
            std::fs::read_dir(rules).with_context(|| format!("cannot read {}", rules.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                if let Some(name) = path.file_name() {
                    std::fs::copy(&path, rules_copy.join(name))?;
                }
            }
        }
        let manifest = rules_copy.join("plugins.toml");
        let mut plugins: toml::Table = toml::from_str(&std::fs::read_to_string(&manifest)?)?;
        for o in overrides {
            let (plugin, key, value) = parse_override(o)?;
            let Some(decl) = plugins.get_mut(&plugin).and_then(|d| d.as_table_mut()) else {
                bail!("--set {o:?}: no plugin {plugin:?} in plugins.toml");
            };
            let settings = decl
                .entry("settings")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(t) = settings.as_table_mut() {
                t.insert(key, value);
            }
        }
        std::fs::write(&manifest, toml::to_string(&plugins)?)?;

        let mut config = weir_runtime::Config {
            data_dir: dir.join("data"),
            rules_dir: rules_copy,
            listen: "127.0.0.1:0".parse()?,
            ..weir_runtime::Config::default()
        };
        // Quality, not latency, is measured here: a generous call budget
        // keeps a busy machine from quarantining plugins mid-run.
        config.plugins.call_timeout_ms = CALL_TIMEOUT_MS;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let running = weir_runtime::server::start(config, listener).await?;

        let alerts = Arc::new(Mutex::new(Vec::new()));
        let (mut tx, mut rx, _) = running.broker.link("weir.internal.eval-alerts", true)?;
        tx.subscribe("weir/alerts/#")?;
        let sink = alerts.clone();
        std::thread::spawn(move || {
            let _keep = tx;
            loop {
                match rx.recv() {
                    Ok(Some(rumqttd::Notification::Forward(f))) => {
                        if let (Ok(v), Ok(mut a)) = (
                            serde_json::from_slice::<Value>(&f.publish.payload),
                            sink.lock(),
                        ) {
                            a.push(v);
                        }
                    }
                    Ok(Some(rumqttd::Notification::Unschedule)) => {
                        if rx.ready().is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        Ok(Pipeline {
            running,
            dir,
            alerts,
            plugins,
        })
    }

    pub fn addr(&self) -> String {
        self.running.local_addr.to_string()
    }

    /// Wait until the engine has processed `n` readings and the alert
    /// stream has been quiet for a moment.
    pub async fn settle(&self, n: u64, limit: Duration) {
        let start = Instant::now();
        while self.running.metrics.messages_processed.load(Relaxed) < n && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut last = usize::MAX;
        loop {
            let now = self.alerts.lock().map(|a| a.len()).unwrap_or(0);
            if now == last || start.elapsed() > limit {
                break;
            }
            last = now;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub fn alerts(&self) -> Vec<Value> {
        self.alerts.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// The settings of `plugin` in effect, as TOML text.
    pub fn settings(&self, plugin: &str) -> String {
        self.plugins
            .get(plugin)
            .and_then(|d| d.get("settings"))
            .map(|s| s.to_string())
            .unwrap_or_else(|| "{} (plugin defaults)".into())
    }

    pub fn settings_json(&self, plugin: &str) -> Value {
        self.plugins
            .get(plugin)
            .and_then(|d| d.get("settings"))
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null)
    }

    pub async fn stop(self) {
        self.running.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An alert's kind and device time.
fn kind_time(alert: &Value) -> Option<(&str, i64)> {
    Some((alert["kind"].as_str()?, alert["device_time"].as_i64()?))
}

// --------------------------------------------------------------------- NAB

/// Label windows from `anomaly_windows.json`: file name → [(start, end)].
/// Keys may carry NAB's `realKnownCause/` prefix.
pub fn label_windows(json_text: &str) -> Result<BTreeMap<String, Vec<(i64, i64)>>> {
    let doc: BTreeMap<String, Vec<Vec<String>>> =
        serde_json::from_str(json_text).context("anomaly_windows.json")?;
    let mut out = BTreeMap::new();
    for (key, windows) in doc {
        let file = key.rsplit('/').next().unwrap_or(&key).to_string();
        let mut parsed = Vec::new();
        for w in windows {
            let (Some(a), Some(b)) = (w.first(), w.get(1)) else {
                bail!("{key}: a window needs [start, end]")
            };
            let (Some(a), Some(b)) = (replay::parse_timestamp(a), replay::parse_timestamp(b))
            else {
                bail!("{key}: unreadable window {w:?}");
            };
            parsed.push((a, b));
        }
        out.insert(file, parsed);
    }
    Ok(out)
}

/// Scores of one detector on one labelled series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowScore {
    pub alerts: usize,
    /// Per label window: the first alert inside, if any.
    pub first_in_window: Vec<Option<i64>>,
    pub outside: usize,
}

impl WindowScore {
    pub fn hit(&self) -> usize {
        self.first_in_window.iter().filter(|f| f.is_some()).count()
    }
}

/// Score alert times against label windows (inclusive bounds).
pub fn score_windows(times: &[i64], windows: &[(i64, i64)]) -> WindowScore {
    let mut s = WindowScore {
        alerts: times.len(),
        first_in_window: vec![None; windows.len()],
        outside: 0,
    };
    for &t in times {
        let mut inside = false;
        for (i, &(a, b)) in windows.iter().enumerate() {
            if (a..=b).contains(&t) {
                inside = true;
                let first = &mut s.first_in_window[i];
                *first = Some(first.map_or(t, |f: i64| f.min(t)));
            }
        }
        if !inside {
            s.outside += 1;
        }
    }
    s
}

fn median_interval(rows: &[replay::Row]) -> i64 {
    let mut d: Vec<i64> = rows
        .windows(2)
        .map(|p| p[1].ts - p[0].ts)
        .filter(|d| *d > 0)
        .collect();
    d.sort_unstable();
    d.get(d.len() / 2).copied().unwrap_or(60_000)
}

async fn nab(args: &NabArgs) -> Result<Value> {
    let labels = label_windows(&std::fs::read_to_string(
        args.data.join("anomaly_windows.json"),
    )?)?;
    let rules = args.common.rules.clone().unwrap_or_else(repo_rules);
    let mut results = Vec::new();
    for (file, windows) in &labels {
        let path = args.data.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let device = file.trim_end_matches(".csv").to_string();
        let layout = replay::Layout {
            device: device.clone(),
            ..replay::Layout::default()
        };
        let series = replay::parse_csv(&text, &layout)?;
        let window_ms = if args.window == "auto" {
            12 * median_interval(&series.rows)
        } else {
            parse_ms(&args.window)?
        };
        let mut overrides = vec![format!("window-trend.window_size={window_ms}ms")];
        overrides.extend(args.common.set.iter().cloned());
        let pipeline = Pipeline::start(&rules, &overrides).await?;
        let target = replay::Target {
            client_id: format!("nab-{device}"),
            topic: format!("dt/nab/{device}/telemetry"),
        };
        let sent = replay::send(&series, &pipeline.addr(), &[target], Speed::Max).await?;
        pipeline
            .settle(sent.published, Duration::from_secs(300))
            .await;
        let alerts = pipeline.alerts();
        let times = |kind: &str| -> Vec<i64> {
            alerts
                .iter()
                .filter(|a| a["device"] == device.as_str())
                .filter_map(kind_time)
                .filter(|(k, _)| kind == "any" && (*k == "zscore" || *k == "trend") || *k == kind)
                .map(|(_, t)| t)
                .collect()
        };
        println!(
            "\n{file}: {} readings {} … {}, {} label windows; replayed in {:.1} s",
            series.rows.len(),
            series.rows.first().map_or("-".into(), |r| rfc3339(r.ts)),
            series.rows.last().map_or("-".into(), |r| rfc3339(r.ts)),
            windows.len(),
            sent.elapsed.as_secs_f64()
        );
        println!("  zscore:       {}", pipeline.settings("zscore"));
        println!("  window-trend: {}", pipeline.settings("window-trend"));
        println!(
            "  {:<8} {:>7} {:>12} {:>15}   first alert after window start",
            "detector", "alerts", "windows hit", "alerts outside"
        );
        let mut per = serde_json::Map::new();
        for kind in ["zscore", "trend", "any"] {
            let s = score_windows(&times(kind), windows);
            let leads: Vec<String> = s
                .first_in_window
                .iter()
                .zip(windows)
                .map(|(f, (a, _))| {
                    f.map_or("-".into(), |t| {
                        format!("{:.1}h", (t - a) as f64 / 3_600_000.0)
                    })
                })
                .collect();
            println!(
                "  {kind:<8} {:>7} {:>12} {:>15}   {}",
                s.alerts,
                format!("{}/{}", s.hit(), windows.len()),
                s.outside,
                leads.join(", ")
            );
            per.insert(
                kind.into(),
                json!({"alerts": s.alerts, "windows_hit": s.hit(), "windows": windows.len(), "outside": s.outside,
                       "first_alert_in_window": s.first_in_window}),
            );
        }
        results.push(json!({
            "series": file, "readings": series.rows.len(), "skipped": series.skipped,
            "window_ms": window_ms, "detectors": per,
            "settings": {"zscore": pipeline.settings_json("zscore"), "window-trend": pipeline.settings_json("window-trend")},
        }));
        pipeline.stop().await;
    }
    Ok(json!({ "nab": results }))
}

fn parse_ms(s: &str) -> Result<i64> {
    let s = s.trim();
    let (num, factor) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 6e4)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3.6e6)
    } else {
        (s, 1e3)
    };
    let v: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("invalid duration {s:?}"))?;
    Ok((v * factor) as i64)
}

// --------------------------------------------------------------- synthetic

/// A slow ramp: from `start` (step), over `len` steps, by `rise` (then held).
#[derive(Debug, Clone, Copy)]
pub struct Ramp {
    pub start: u64,
    pub len: u64,
    pub rise: f64,
}

/// One synthetic device and its ground truth.
pub struct Plan {
    pub id: String,
    pub level: f64,
    pub sigma: f64,
    /// (step, size in sigmas, signed).
    pub spikes: Vec<(u64, f64)>,
    pub ramp: Option<Ramp>,
    rng: Rng,
}

/// Readings before any injected event (zscore warm-up is 20 readings;
/// trend needs K windows).
const QUIET_STEPS: u64 = 90;
/// Steps between a spike and any other event.
const SPIKE_GAP: u64 = 30;
/// Length of a ramp in steps, and the quiet tail after it.
const RAMP_STEPS: u64 = 90;
const TAIL_STEPS: u64 = 60;

impl Plan {
    /// Device `i` of a fleet of `steps` readings each: level in [15, 30),
    /// noise sigma in [0.2, 1.0); every other device ramps by ±6–10 σ over
    /// 90 readings in its second half; two spikes of ±6–10 σ before any
    /// ramp, at least 30 readings apart.
    pub fn new(i: usize, steps: u64, seed: u64) -> Plan {
        let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        let level = 15.0 + 15.0 * rng.uniform();
        let sigma = 0.2 + 0.8 * rng.uniform();
        let sign = |rng: &mut Rng| if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
        let ramp = (i.is_multiple_of(2) && steps > 2 * (RAMP_STEPS + TAIL_STEPS + QUIET_STEPS))
            .then(|| {
                let lo = steps / 2;
                let hi = steps - RAMP_STEPS - TAIL_STEPS;
                Ramp {
                    start: lo + (rng.uniform() * (hi - lo) as f64) as u64,
                    len: RAMP_STEPS,
                    rise: sign(&mut rng) * (6.0 + 4.0 * rng.uniform()) * sigma,
                }
            });
        let last = ramp.map_or(steps.saturating_sub(SPIKE_GAP), |r| {
            r.start.saturating_sub(SPIKE_GAP)
        });
        let mut spikes = Vec::new();
        if last > QUIET_STEPS + 2 * SPIKE_GAP {
            let span = (last - QUIET_STEPS - SPIKE_GAP) as f64;
            let a = QUIET_STEPS + (rng.uniform() * span) as u64;
            let mut b = QUIET_STEPS + (rng.uniform() * span) as u64;
            if b.abs_diff(a) < SPIKE_GAP {
                b = a + SPIKE_GAP;
            }
            for step in [a.min(b), a.max(b)] {
                spikes.push((step, sign(&mut rng) * (6.0 + 4.0 * rng.uniform())));
            }
        }
        Plan {
            id: format!("syn-{i:05}"),
            level,
            sigma,
            spikes,
            ramp,
            rng,
        }
    }

    /// The reading at `step` (call with steps in order).
    pub fn value(&mut self, step: u64) -> f64 {
        let ramp = self.ramp.map_or(0.0, |r| {
            if step < r.start {
                0.0
            } else {
                r.rise * ((step - r.start) as f64 / r.len as f64).min(1.0)
            }
        });
        let base = self.level + ramp;
        let noise = self.sigma * self.rng.normal();
        match self.spikes.iter().find(|(s, _)| *s == step) {
            Some((_, size)) => base + size * self.sigma,
            None => base + noise,
        }
    }
}

/// Precision and recall figures of one detector.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pr {
    pub events: usize,
    pub detected: usize,
    pub alerts: usize,
    pub true_alerts: usize,
}

impl Pr {
    pub fn recall(&self) -> f64 {
        if self.events == 0 {
            1.0
        } else {
            self.detected as f64 / self.events as f64
        }
    }
    pub fn precision(&self) -> f64 {
        if self.alerts == 0 {
            1.0
        } else {
            self.true_alerts as f64 / self.alerts as f64
        }
    }
}

/// The synthetic evaluation's result.
#[derive(Debug, Clone, Default)]
pub struct SyntheticScore {
    pub spikes: Pr,
    /// zscore alerts during a ramp or its held level (real changes, not
    /// spikes): left out of the spike precision.
    pub zscore_on_ramps: usize,
    pub trends: Pr,
    /// Minutes from ramp start to its first trend alert (median).
    pub trend_delay_min: Option<f64>,
    pub readings: u64,
    pub elapsed_s: f64,
}

/// Score alerts against the plans. `t0` is the event time of step 0;
/// `window_ms`·(K + 2) is how long after a ramp's end a trend alert still
/// counts as detecting it.
pub fn score_synthetic(
    plans: &[Plan],
    alerts: &[Value],
    t0: i64,
    interval_ms: i64,
    trend_slack_ms: i64,
) -> SyntheticScore {
    let at = |step: u64| t0 + step as i64 * interval_ms;
    let by_id: HashMap<&str, &Plan> = plans.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut s = SyntheticScore::default();
    s.spikes.events = plans.iter().map(|p| p.spikes.len()).sum();
    s.trends.events = plans.iter().filter(|p| p.ramp.is_some()).count();
    let mut spike_hit: HashMap<(&str, u64), bool> = HashMap::new();
    let mut ramp_first: HashMap<&str, i64> = HashMap::new();
    for a in alerts {
        let Some((kind, t)) = kind_time(a) else {
            continue;
        };
        let Some(plan) = a["device"].as_str().and_then(|d| by_id.get(d)) else {
            continue;
        };
        let ramp_span = plan.ramp.map(|r| (at(r.start), at(r.start + r.len)));
        match kind {
            "zscore" => {
                if ramp_span.is_some_and(|(a0, _)| t >= a0) {
                    s.zscore_on_ramps += 1;
                    continue;
                }
                s.spikes.alerts += 1;
                if let Some((step, _)) = plan.spikes.iter().find(|(step, _)| at(*step) == t) {
                    s.spikes.true_alerts += 1;
                    spike_hit.insert((plan.id.as_str(), *step), true);
                }
            }
            "trend" => {
                s.trends.alerts += 1;
                if let Some((a0, a1)) = ramp_span {
                    if t >= a0 && t <= a1 + trend_slack_ms {
                        s.trends.true_alerts += 1;
                        let first = ramp_first.entry(plan.id.as_str()).or_insert(t);
                        *first = (*first).min(t);
                    }
                }
            }
            _ => {}
        }
    }
    s.spikes.detected = spike_hit.len();
    s.trends.detected = ramp_first.len();
    let mut delays: Vec<f64> = ramp_first
        .iter()
        .filter_map(|(id, t)| {
            let r = by_id.get(id)?.ramp?;
            Some((t - at(r.start)) as f64 / 60_000.0)
        })
        .collect();
    delays.sort_by(|a, b| a.total_cmp(b));
    s.trend_delay_min = delays.get(delays.len() / 2).copied();
    s
}

/// Run the synthetic evaluation and print it.
pub async fn synthetic(args: &SyntheticArgs) -> Result<Value> {
    let score = run_synthetic(args).await?;
    Ok(score)
}

async fn run_synthetic(args: &SyntheticArgs) -> Result<Value> {
    if args.devices == 0 || args.interval == 0 {
        bail!("--devices and --interval must be positive");
    }
    let rules = args.common.rules.clone().unwrap_or_else(repo_rules);
    let pipeline = Pipeline::start(&rules, &args.common.set).await?;
    let interval_ms = args.interval as i64 * 1000;
    let steps = (args.hours * 3600.0 / args.interval as f64) as u64;
    // Event time: a day ago, minute-aligned (device times must be sane).
    let t0 = (weir_runtime::clock::now_ms() - 86_400_000) / 60_000 * 60_000;
    let connections = args.connections.clamp(1, args.devices);
    let mut groups: Vec<Vec<Plan>> = (0..connections).map(|_| Vec::new()).collect();
    for i in 0..args.devices {
        groups[i % connections].push(Plan::new(i, steps, args.seed));
    }
    println!(
        "synthetic fleet: {} devices × {steps} readings every {}s ({} h), seed {}, over {connections} MQTT connections",
        args.devices, args.interval, args.hours, args.seed
    );
    println!("  zscore:       {}", pipeline.settings("zscore"));
    println!("  window-trend: {}", pipeline.settings("window-trend"));
    println!("  plugin call budget: {CALL_TIMEOUT_MS} ms");
    let started = Instant::now();
    let addr = pipeline.addr();
    let mut tasks = Vec::new();
    for (c, mut plans) in groups.into_iter().enumerate() {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let conn = Conn::connect(&addr, &format!("eval-synthetic-{c}")).await?;
            let topics: Vec<String> = plans
                .iter()
                .map(|p| format!("dt/synthetic/{}/telemetry", p.id))
                .collect();
            let mut sent = 0u64;
            for step in 0..steps {
                let ts = t0 + step as i64 * interval_ms;
                for (plan, topic) in plans.iter_mut().zip(&topics) {
                    let v = plan.value(step);
                    conn.publish(topic, format!("{{\"ts\":{ts},\"temperature\":{v:.4}}}"))
                        .await?;
                    sent += 1;
                }
            }
            let acked = conn.finish(sent).await;
            if acked < sent {
                bail!(
                    "connection {c}: {} of {sent} messages not acknowledged",
                    sent - acked
                );
            }
            Ok::<(u64, Vec<Plan>), anyhow::Error>((sent, plans))
        }));
    }
    let mut plans = Vec::new();
    let mut total = 0;
    for t in tasks {
        let (sent, p) = t.await??;
        total += sent;
        plans.extend(p);
    }
    pipeline.settle(total, Duration::from_secs(900)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let alerts = pipeline.alerts();
    let wt = pipeline.settings_json("window-trend");
    let window_ms = wt["window_size"]
        .as_str()
        .and_then(|s| parse_ms(s).ok())
        .unwrap_or(60_000);
    let k = wt["trend_windows"].as_i64().unwrap_or(5);
    let mut score = score_synthetic(&plans, &alerts, t0, interval_ms, window_ms * (k + 2));
    score.readings = total;
    score.elapsed_s = elapsed;
    print_synthetic(&score);
    let failures = pipeline.running.metrics.plugin_failures.load(Relaxed);
    if failures > 0 {
        println!("  WARNING: {failures} plugin call failures during the run (see the log); figures are not reliable");
    }
    let report = json!({
        "call_timeout_ms": CALL_TIMEOUT_MS, "plugin_failures": pipeline.running.metrics.plugin_failures.load(Relaxed),
        "devices": args.devices, "readings": total, "interval_s": args.interval, "hours": args.hours, "seed": args.seed,
        "elapsed_s": elapsed,
        "spikes": pr_json(&score.spikes), "zscore_alerts_on_ramps": score.zscore_on_ramps,
        "trends": pr_json(&score.trends), "trend_delay_min_median": score.trend_delay_min,
        "settings": {"zscore": pipeline.settings_json("zscore"), "window-trend": wt},
    });
    pipeline.stop().await;
    Ok(report)
}

fn pr_json(p: &Pr) -> Value {
    json!({"events": p.events, "detected": p.detected, "recall": p.recall(),
           "alerts": p.alerts, "true_alerts": p.true_alerts, "precision": p.precision()})
}

fn print_synthetic(s: &SyntheticScore) {
    println!(
        "  {} readings through the pipeline in {:.1} s ({:.0} msgs/s)",
        s.readings,
        s.elapsed_s,
        s.readings as f64 / s.elapsed_s.max(1e-9)
    );
    let line = |name: &str, p: &Pr| {
        println!(
            "  {name:<22} recall {:>6.3} ({}/{})   precision {:>6.3} ({}/{} alerts)",
            p.recall(),
            p.detected,
            p.events,
            p.precision(),
            p.true_alerts,
            p.alerts
        )
    };
    line("spikes (zscore)", &s.spikes);
    println!(
        "  {:<22} {} (on ramps or their held level; not counted above)",
        "zscore alerts on ramps", s.zscore_on_ramps
    );
    line("ramps (window-trend)", &s.trends);
    if let Some(d) = s.trend_delay_min {
        println!(
            "  {:<22} {d:.1} min from ramp start (median)",
            "trend alert delay"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_window_scores() {
        let labels = label_windows(r#"{"realKnownCause/a.csv": [["2013-12-10 06:25:00.000000", "2013-12-12 05:35:00.000000"]], "b.csv": []}"#).unwrap();
        assert_eq!(
            labels["a.csv"],
            vec![(1_386_656_700_000, 1_386_826_500_000)]
        );
        assert!(labels["b.csv"].is_empty());
        let windows = [(10, 20), (30, 40)];
        let s = score_windows(&[5, 12, 15, 20, 25, 41], &windows);
        assert_eq!(s.alerts, 6);
        assert_eq!(s.first_in_window, vec![Some(12), None]);
        assert_eq!((s.hit(), s.outside), (1, 3));
    }

    #[test]
    fn overrides() {
        assert_eq!(
            parse_override("zscore.threshold=3.5").unwrap().2,
            toml::Value::Float(3.5)
        );
        assert_eq!(
            parse_override("w.window_size=1h").unwrap().2,
            toml::Value::String("1h".into())
        );
        assert_eq!(parse_override("w.k=5").unwrap().2, toml::Value::Integer(5));
        assert!(parse_override("nodot=1").is_err());
        assert_eq!(parse_ms("1h").unwrap(), 3_600_000);
        assert_eq!(parse_ms("250ms").unwrap(), 250);
        assert_eq!(parse_ms("60").unwrap(), 60_000);
    }

    #[test]
    fn plans_keep_events_apart() {
        for i in 0..200 {
            let p = Plan::new(i, 720, 1);
            assert_eq!(p.ramp.is_some(), i % 2 == 0);
            assert_eq!(p.spikes.len(), 2);
            let (a, b) = (p.spikes[0].0, p.spikes[1].0);
            assert!(a >= QUIET_STEPS && b >= a + SPIKE_GAP, "{a} {b}");
            if let Some(r) = p.ramp {
                assert!(
                    b + SPIKE_GAP <= r.start,
                    "spike {b} too close to ramp {}",
                    r.start
                );
                assert!(r.start + r.len + TAIL_STEPS <= 720);
                assert!(r.rise.abs() >= 6.0 * p.sigma);
            }
        }
    }

    #[test]
    fn synthetic_scoring_by_hand() {
        let mut a = Plan::new(0, 720, 1);
        a.spikes = vec![(100, 8.0), (200, -8.0)];
        a.ramp = Some(Ramp {
            start: 400,
            len: 90,
            rise: 5.0,
        });
        let mut b = Plan::new(1, 720, 1);
        b.spikes = vec![(150, 7.0), (300, 7.0)];
        b.ramp = None;
        let t = |step: i64| step * 10_000;
        let alerts = vec![
            json!({"kind": "zscore", "device": a.id, "device_time": t(100)}), // spike hit
            json!({"kind": "zscore", "device": a.id, "device_time": t(101)}), // false
            json!({"kind": "zscore", "device": a.id, "device_time": t(450)}), // on the ramp
            json!({"kind": "recovered", "device": a.id, "device_time": t(110)}),
            json!({"kind": "zscore", "device": b.id, "device_time": t(300)}), // spike hit
            json!({"kind": "trend", "device": a.id, "device_time": t(430)}),  // ramp hit, 5 min in
            json!({"kind": "trend", "device": a.id, "device_time": t(460)}),  // same ramp
            json!({"kind": "trend", "device": b.id, "device_time": t(500)}),  // false
        ];
        let s = score_synthetic(&[a, b], &alerts, 0, 10_000, 420_000);
        assert_eq!(
            s.spikes,
            Pr {
                events: 4,
                detected: 2,
                alerts: 3,
                true_alerts: 2
            }
        );
        assert_eq!(s.zscore_on_ramps, 1);
        assert_eq!(
            s.trends,
            Pr {
                events: 1,
                detected: 1,
                alerts: 3,
                true_alerts: 2
            }
        );
        assert_eq!(s.trend_delay_min, Some(5.0));
        assert!((s.spikes.recall() - 0.5).abs() < 1e-12);
        assert!((s.trends.precision() - 2.0 / 3.0).abs() < 1e-12);
    }
}
