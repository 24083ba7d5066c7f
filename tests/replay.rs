//! End-to-end: `weir replay` publishes a CSV series into a real `weir`
//! over MQTT; the shipped pipeline turns it into closed windows on
//! `weir/aggregates/…` (window-trend) and a trend alert.

mod support;

use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{now_ms, weir_bin, Mqtt, TempDir, Weir};

const STEP_MS: i64 = 10_000;

/// A ramp: 20 + 0.5 per reading, with a fixed ±0.1 wiggle, one reading
/// every 10 s for 20 minutes, starting on a minute boundary half an hour
/// ago (so the device times are sane). Plus three unreadable rows.
fn write_csv(dir: &TempDir) -> (std::path::PathBuf, i64) {
    let t0 = (now_ms() - 30 * 60_000) / 60_000 * 60_000;
    let mut text = String::from("timestamp,value\n");
    for i in 0..120i64 {
        let v = 20.0 + 0.5 * i as f64 + if i % 2 == 0 { 0.1 } else { -0.1 };
        text.push_str(&format!("{},{v}\n", t0 + i * STEP_MS));
    }
    text.push_str("not-a-time,1\n");
    text.push_str(&format!("{},oops\n", t0 + 120 * STEP_MS));
    text.push_str(&format!("{}\n", t0 + 121 * STEP_MS));
    let path = dir.0.join("ramp.csv");
    std::fs::write(&path, text).expect("write csv");
    (path, t0)
}

fn replay(weir: &Weir, csv: &std::path::Path, speed: &str) -> (String, Duration) {
    let started = Instant::now();
    let out = Command::new(weir_bin())
        .arg("replay")
        .arg(csv)
        .args([
            "--device", "dev-r", "--type", "probe", "--speed", speed, "--host",
        ])
        .arg(weir.addr.to_string())
        .output()
        .expect("run weir replay");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "replay failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout, started.elapsed())
}

#[test]
fn replay_publishes_the_series_and_the_pipeline_aggregates_it() {
    let dir = TempDir::new("replay");
    let (csv, t0) = write_csv(&dir);
    let weir = Weir::start(&dir.0.join("weir"));
    let watcher = Mqtt::connect(weir.addr, "watcher");
    watcher.subscribe("dt/probe/dev-r/telemetry");
    watcher.subscribe("weir/aggregates/#");
    watcher.subscribe("weir/alerts/#");

    let (summary, _) = replay(&weir, &csv, "max");
    assert!(
        summary.contains("123 read, 120 published, 120 acknowledged"),
        "{summary}"
    );
    assert!(summary.contains("skipped:   3"), "{summary}");
    assert!(summary.contains("1 × unreadable timestamp"), "{summary}");
    assert!(
        summary.contains("1 × value is not a finite number"),
        "{summary}"
    );
    assert!(summary.contains("1 × missing value column"), "{summary}");
    assert!(summary.contains("msgs/s"), "{summary}");

    let got = watcher.collect(Duration::from_secs(4));
    let readings: Vec<&Value> = got
        .iter()
        .filter(|(t, _)| t == "dt/probe/dev-r/telemetry")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(readings.len(), 120, "readings on the device topic");
    assert_eq!(readings[0]["ts"], t0);
    assert_eq!(readings[0]["value"], 20.1);

    // Windows of 60 s hold readings 6m..6m+5. Window m = 1 (readings 6..11):
    // values 23.1, 23.4, 24.1, 24.4, 25.1, 25.4 → mean 24.25, min 23.1,
    // max 25.4, first 23.1, last 25.4.
    let aggregates: Vec<&Value> = got
        .iter()
        .filter(|(t, _)| t == "weir/aggregates/probe/dev-r")
        .map(|(_, v)| v)
        .collect();
    assert!(
        aggregates.len() >= 18,
        "closed windows: {}\nlog:\n{}",
        aggregates.len(),
        weir.log()
    );
    let w1 = aggregates
        .iter()
        .find(|a| a["window_start"] == t0 + 60_000)
        .expect("window 1");
    assert_eq!(w1["window_end"], t0 + 120_000);
    assert_eq!(w1["device"], "dev-r");
    assert_eq!(w1["device_type"], "probe");
    assert_eq!(w1["late"], 0);
    let v = &w1["metrics"]["value"];
    assert_eq!(v["count"], 6);
    assert!((v["mean"].as_f64().unwrap() - 24.25).abs() < 1e-9, "{v}");
    assert_eq!(
        (v["min"].as_f64(), v["max"].as_f64()),
        (Some(23.1), Some(25.4))
    );
    assert_eq!(
        (v["first"].as_f64(), v["last"].as_f64()),
        (Some(23.1), Some(25.4))
    );
    assert!(w1["metrics"].get("ts").is_none());

    // A steady ramp of 3 per window against a within-window spread of ~1:
    // one trend alert (cooldown), for the value metric.
    let trends: Vec<&Value> = got
        .iter()
        .filter(|(t, v)| t == "weir/alerts/dev-r" && v["kind"] == "trend")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(trends.len(), 1, "{trends:?}");
    let a = trends[0];
    assert_eq!(a["metric"], "value");
    assert_eq!(a["device_type"], "probe");
    assert_eq!(a["windows"], 5);
    assert!((a["slope"].as_f64().unwrap() - 3.0).abs() < 1e-6, "{a}");
    weir.stop();
}

#[test]
fn replay_paces_by_the_series_timestamps() {
    let dir = TempDir::new("replay-pace");
    let (csv, _) = write_csv(&dir);
    let weir = Weir::start(&dir.0.join("weir"));
    // 119 steps of 10 s = 1190 s of series time; at 1000x at least 1.19 s.
    let (summary, elapsed) = replay(&weir, &csv, "1000x");
    assert!(summary.contains("120 acknowledged"), "{summary}");
    assert!(elapsed >= Duration::from_millis(1190), "{elapsed:?}");
    weir.stop();
}

/// Rows `range` of the ramp series (see `write_csv`), starting at `t0`.
fn write_part(
    dir: &TempDir,
    name: &str,
    t0: i64,
    range: std::ops::Range<i64>,
) -> std::path::PathBuf {
    let mut text = String::from("timestamp,value\n");
    for i in range {
        let v = 20.0 + 0.5 * i as f64 + if i % 2 == 0 { 0.1 } else { -0.1 };
        text.push_str(&format!("{},{v}\n", t0 + i * STEP_MS));
    }
    let path = dir.0.join(name);
    std::fs::write(&path, text).expect("write csv");
    path
}

#[test]
fn an_open_window_survives_a_restart() {
    let dir = TempDir::new("replay-restart");
    let t0 = (now_ms() - 30 * 60_000) / 60_000 * 60_000;
    let data = dir.0.join("weir");
    // Readings 0..=7: the one at 70 s closes window 0 (60 s + 10 s of
    // lateness); window 1 [60 s, 120 s) holds readings 6 and 7 and stays
    // open (its end + lateness is 60 s of event time away, and the wall
    // clock moves the event clock only by the seconds the restart takes).
    let weir = Weir::start(&data);
    replay(&weir, &write_part(&dir, "a.csv", t0, 0..8), "max");
    weir.stop(); // checkpoints the open window
    let weir = Weir::start(&data);
    let watcher = Mqtt::connect(weir.addr, "watcher");
    watcher.subscribe("weir/aggregates/#");
    replay(&weir, &write_part(&dir, "b.csv", t0, 8..20), "max");
    let got = watcher.collect(Duration::from_secs(3));
    let w1 = got
        .iter()
        .map(|(_, v)| v)
        .find(|a| a["window_start"] == t0 + 60_000)
        .unwrap_or_else(|| panic!("window 1 closed after the restart: {got:?}\n{}", weir.log()));
    // Readings 6..=11 (two before the restart): 23.1 … 25.4, mean 24.25.
    let v = &w1["metrics"]["value"];
    assert_eq!(v["count"], 6, "{w1}");
    assert_eq!(v["first"].as_f64(), Some(23.1));
    assert!((v["mean"].as_f64().unwrap() - 24.25).abs() < 1e-9, "{v}");
    assert!(
        got.iter().all(|(_, a)| a["window_start"] != t0),
        "window 0 was already published before the restart"
    );
    weir.stop();
}
