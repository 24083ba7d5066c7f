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

/// A multi-sensor file as public IoT datasets ship them (one row per
/// reading, a device column with MAC addresses, epoch seconds with a
/// fraction, booleans, quoted text): each device publishes as itself and
/// gets its own shadow with every numeric and boolean field.
#[test]
fn replay_of_a_multi_device_file_reaches_each_devices_shadow() {
    let dir = TempDir::new("replay-devices");
    let t0 = (now_ms() - 10 * 60_000) as f64 / 1000.0;
    let mut text = String::from(
        "\"ts\",\"device\",\"co\",\"humidity\",\"light\",\"motion\",\"temp\",\"note\"\n",
    );
    let devices = [
        "b8:27:eb:bf:9d:51",
        "00:0f:00:70:91:0a",
        "1c:bf:ce:15:ec:4d",
    ];
    for i in 0..30 {
        let device = devices[i % 3];
        let t = t0 + i as f64 * 1.3371;
        let light = if i % 2 == 0 { "true" } else { "false" };
        text.push_str(&format!(
            "{t:.7},{device},0.00{i:02},{}.5,{light},false,{}.25,\"ok, {i}\"\n",
            50 + i,
            20 + i
        ));
    }
    text.push_str(&format!("{t0},,1,1,true,true,1,\n"));
    let csv = dir.0.join("sensors.csv");
    std::fs::write(&csv, text).expect("write csv");
    let weir = Weir::start(&dir.0.join("weir"));
    let watcher = Mqtt::connect(weir.addr, "watcher-devices");
    watcher.subscribe("$aws/events/presence/connected/+");
    let out = Command::new(weir_bin())
        .arg("replay")
        .arg(&csv)
        .args([
            "--device-column",
            "device",
            "--all-columns",
            "--type",
            "env",
        ])
        .args(["--speed", "max", "--host"])
        .arg(weir.addr.to_string())
        .output()
        .expect("run weir replay");
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{summary}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        summary.contains("31 read, 30 published, 30 acknowledged"),
        "{summary}"
    );
    assert!(
        summary.contains("3 devices on dt/env/<device>/telemetry"),
        "{summary}"
    );
    assert!(summary.contains("1 × unusable device id"), "{summary}");
    // The last reading of each device: rows 27, 28, 29.
    for (k, device) in devices.iter().enumerate() {
        let i = 27 + k;
        let start = Instant::now();
        let doc = loop {
            let got = weir.cli(&["shadow", "get", device]);
            let doc: Value = serde_json::from_slice(&got.stdout).unwrap_or_default();
            if doc["version"] == 10 {
                break doc;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "shadow of {device}: {doc}\n{}",
                weir.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let reported = &doc["state"]["reported"];
        assert_eq!(reported["humidity"], 50.5 + i as f64, "{doc}");
        assert_eq!(reported["temp"], 20.25 + i as f64, "{doc}");
        assert_eq!(reported["light"], i % 2 == 0, "{doc}");
        assert_eq!(reported["motion"], false, "{doc}");
        assert!(
            reported.get("note").is_none(),
            "text is not a reading: {doc}"
        );
        assert!(reported.get("device").is_none(), "{doc}");
        assert_eq!(doc["device_type"], "env");
    }
    // Each device connected as itself.
    let mut connected: Vec<String> = watcher
        .collect(Duration::from_millis(500))
        .into_iter()
        .map(|(_, event)| event["clientId"].as_str().unwrap_or_default().to_string())
        .collect();
    connected.sort();
    let mut expected = devices.map(String::from).to_vec();
    expected.sort();
    assert_eq!(connected, expected);
    watcher.disconnect();
    weir.stop();
}
