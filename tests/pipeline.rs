//! End-to-end: the real `weir` binary on an ephemeral port, the shipped
//! rules and plugins, and real MQTT clients (rumqttc; mosquitto_pub and
//! mosquitto_sub where installed).

mod support;

use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{have, now_ms, reading, Mqtt, TempDir, Weir};

/// Whether paho-mqtt (Python) is installed; CI must have it. Says SKIPPED
/// when it is not.
fn have_paho() -> bool {
    let have = Command::new("python3")
        .args(["-c", "import paho.mqtt.client"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(std::env::var("CI").is_err(), "CI must install paho-mqtt");
        eprintln!("SKIPPED: paho-mqtt is not installed (pip install paho-mqtt)");
    }
    have
}

/// Temperatures of a quiet device, then what its baseline is.
fn quiet_series(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 20.0 + 0.1 * (((i * 7) % 5) as f64 - 2.0))
        .collect()
}

/// Sample mean and standard deviation (n − 1), as the zscore plugin keeps them.
fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

fn zscore_alerts(msgs: &[(String, Value)]) -> Vec<&Value> {
    msgs.iter()
        .filter(|(_, v)| v["kind"] == "zscore")
        .map(|(_, v)| v)
        .collect()
}

/// Publish a quiet series for `device`, then wait until its shadow shows them all.
fn warm_up(weir: &Weir, device_client: &Mqtt, device: &str, series: &[f64]) {
    let topic = format!("dt/thermostat/{device}/telemetry");
    for (i, t) in series.iter().enumerate() {
        device_client.publish(&topic, reading(now_ms(), *t, 40.0 + (i % 3) as f64 * 0.1));
    }
    wait_shadow_version(weir, device, series.len() as u64);
}

fn shadow(weir: &Weir, device: &str) -> Option<Value> {
    let out = weir.cli(&["shadow", "get", device]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn wait_shadow_version(weir: &Weir, device: &str, version: u64) -> Value {
    let start = Instant::now();
    loop {
        if let Some(s) = shadow(weir, device) {
            if s["version"].as_u64().unwrap_or(0) >= version {
                return s;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "shadow of {device} never reached version {version}; log:\n{}",
            weir.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_anomaly_raises_exactly_one_alert_with_the_right_z() {
    let dir = TempDir::new("anomaly");
    let weir = Weir::start(&dir.0);
    let watcher = Mqtt::connect(weir.addr, "watcher");
    watcher.subscribe("weir/alerts/#");
    let device = Mqtt::connect(weir.addr, "dev-1");

    let series = quiet_series(25);
    warm_up(&weir, &device, "dev-1", &series);
    device.publish(
        "dt/thermostat/dev-1/telemetry",
        reading(now_ms(), 30.0, 40.1),
    );
    // Back to normal afterwards: no further zscore alert (a recovery notice is fine).
    for t in quiet_series(5) {
        device.publish("dt/thermostat/dev-1/telemetry", reading(now_ms(), t, 40.1));
    }
    let got = watcher.collect(Duration::from_secs(3));
    let alerts = zscore_alerts(&got);
    assert_eq!(
        alerts.len(),
        1,
        "expected one zscore alert, got {got:?}\nlog:\n{}",
        weir.log()
    );
    let alert = alerts[0];
    let (mean, sd) = mean_sd(&series);
    let z = (30.0 - mean) / sd;
    assert_eq!(alert["device"], "dev-1");
    assert_eq!(alert["device_type"], "thermostat");
    assert_eq!(alert["metric"], "temperature");
    assert_eq!(alert["value"], 30.0);
    assert!(
        (alert["mean"].as_f64().unwrap() - mean).abs() < 1e-9,
        "{alert}"
    );
    assert!(
        (alert["stddev"].as_f64().unwrap() - sd).abs() < 1e-9,
        "{alert}"
    );
    assert!(
        (alert["z"].as_f64().unwrap() - z).abs() < 1e-6,
        "z {} vs {z}",
        alert["z"]
    );
    assert!(
        alert["received_at"].as_i64().is_some() && alert["device_time"].as_i64().is_some(),
        "{alert}"
    );
    let topic = &got.iter().find(|(_, v)| v["kind"] == "zscore").unwrap().0;
    assert_eq!(topic, "weir/alerts/dev-1");

    // The alert journal holds the same alert.
    let journal = std::fs::read_to_string(weir.data_dir.join("alerts.jsonl")).unwrap_or_default();
    let start = Instant::now();
    let mut journal = journal;
    while !journal.contains("\"zscore\"") && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        journal = std::fs::read_to_string(weir.data_dir.join("alerts.jsonl")).unwrap_or_default();
    }
    let lines: Vec<Value> = journal
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(
        lines.iter().filter(|v| v["kind"] == "zscore").count(),
        1,
        "{journal}"
    );
    device.disconnect();
    watcher.disconnect();
    weir.stop();
}

#[test]
fn the_shadow_holds_the_last_reading() {
    let dir = TempDir::new("shadow");
    let weir = Weir::start(&dir.0);
    let device = Mqtt::connect(weir.addr, "dev-7");
    for i in 0..5 {
        device.publish(
            "dt/thermostat/dev-7/telemetry",
            reading(now_ms(), 20.0 + i as f64, 41.0 + i as f64),
        );
    }
    let s = wait_shadow_version(&weir, "dev-7", 5);
    assert_eq!(s["state"]["reported"]["temperature"], 24.0, "{s}");
    assert_eq!(s["state"]["reported"]["humidity"], 45.0, "{s}");
    assert_eq!(s["version"], 5, "{s}");
    device.disconnect();
    weir.stop();
}

#[test]
fn lifecycle_events_carry_increasing_version_numbers() {
    let dir = TempDir::new("presence");
    let weir = Weir::start(&dir.0);
    let watcher = Mqtt::connect(weir.addr, "presence-watcher");
    watcher.subscribe("$aws/events/presence/#");
    for _ in 0..2 {
        let d = Mqtt::connect(weir.addr, "flaky-1");
        std::thread::sleep(Duration::from_millis(100));
        d.disconnect();
        std::thread::sleep(Duration::from_millis(200));
    }
    let events: Vec<Value> = watcher
        .collect(Duration::from_secs(2))
        .into_iter()
        .filter(|(t, _)| t.ends_with("/flaky-1"))
        .map(|(_, v)| v)
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["eventType"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["connected", "disconnected", "connected", "disconnected"],
        "{events:?}"
    );
    let versions: Vec<u64> = events
        .iter()
        .filter_map(|e| e["versionNumber"].as_u64())
        .collect();
    assert!(versions.windows(2).all(|w| w[1] > w[0]), "{versions:?}");
    for e in &events {
        assert_eq!(e["clientId"], "flaky-1");
        assert!(
            e["timestamp"].as_i64().is_some() && e["sessionIdentifier"].as_str().is_some(),
            "{e}"
        );
    }
    assert_eq!(events[1]["disconnectReason"], "CLIENT_INITIATED_DISCONNECT");
    assert_eq!(events[1]["clientInitiatedDisconnect"], true);
    assert_eq!(
        events[0]["sessionIdentifier"],
        events[1]["sessionIdentifier"]
    );
    watcher.disconnect();
    weir.stop();
}

#[test]
fn a_restart_keeps_baselines_and_shadows() {
    let dir = TempDir::new("restart");
    let series = quiet_series(25);
    {
        let weir = Weir::start(&dir.0);
        let device = Mqtt::connect(weir.addr, "dev-r");
        warm_up(&weir, &device, "dev-r", &series);
        device.disconnect();
        weir.stop();
    }
    let weir = Weir::start(&dir.0);
    // The shadow survived the restart.
    let s = shadow(&weir, "dev-r").expect("shadow after restart");
    assert_eq!(s["version"], 25, "{s}");
    // The baseline survived too: a spike right away is an anomaly, no new warm-up.
    let watcher = Mqtt::connect(weir.addr, "watcher-r");
    watcher.subscribe("weir/alerts/#");
    let device = Mqtt::connect(weir.addr, "dev-r");
    device.publish(
        "dt/thermostat/dev-r/telemetry",
        reading(now_ms(), 30.0, 40.1),
    );
    let got = watcher.collect(Duration::from_secs(3));
    let alerts = zscore_alerts(&got);
    assert_eq!(alerts.len(), 1, "{got:?}\nlog:\n{}", weir.log());
    let (mean, sd) = mean_sd(&series);
    assert!(
        (alerts[0]["z"].as_f64().unwrap() - (30.0 - mean) / sd).abs() < 1e-6,
        "{}",
        alerts[0]
    );
    let state = weir.cli(&["state", "get", "zscore", "dev-r"]);
    assert!(
        state.status.success(),
        "{}",
        String::from_utf8_lossy(&state.stderr)
    );
    device.disconnect();
    watcher.disconnect();
    weir.stop();
}

#[test]
fn a_malformed_payload_is_counted_and_does_not_disturb_the_next_reading() {
    let dir = TempDir::new("malformed");
    let weir = Weir::start(&dir.0);
    let device = Mqtt::connect(weir.addr, "dev-m");
    device.publish("dt/thermostat/dev-m/telemetry", "{not json");
    device.publish(
        "dt/thermostat/dev-m/telemetry",
        reading(now_ms(), 22.5, 40.0),
    );
    let s = wait_shadow_version(&weir, "dev-m", 1);
    assert_eq!(s["state"]["reported"]["temperature"], 22.5);
    assert_eq!(weir.counter("messages_malformed"), 1);
    // No error action in the shipped rule: the failure lands in the dead-letter journal.
    weir.wait_counter("dead_letters", 1);
    let start = Instant::now();
    let mut dead = String::new();
    while !dead.contains("dev-m") && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        dead = std::fs::read_to_string(weir.data_dir.join("dead-letter.jsonl")).unwrap_or_default();
    }
    let doc: Value =
        serde_json::from_str(dead.lines().next().expect("one dead letter")).expect("json line");
    assert_eq!(doc["ruleName"], "telemetry");
    assert_eq!(doc["topic"], "dt/thermostat/dev-m/telemetry");
    assert!(
        doc["failures"][0]["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("not valid JSON"),
        "{doc}"
    );
    device.disconnect();
    weir.stop();
}

/// The README's tour, with mosquitto's own clients.
#[test]
fn mosquitto_clients_publish_and_subscribe() {
    if !have("mosquitto_pub") || !have("mosquitto_sub") {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install mosquitto-clients"
        );
        eprintln!(
            "SKIPPED: mosquitto-clients are not installed (apt-get install mosquitto-clients)"
        );
        return;
    }
    let dir = TempDir::new("mosquitto");
    // Four workers, so a device whose readings were spread over them
    // (as by client id, for one-shot clients) would split its state.
    let weir = Weir::start_with_rules(
        &dir.0,
        &support::repo_root().join("rules"),
        "[engine]\nworkers = 4\n",
    );
    let port = weir.addr.port().to_string();
    // As the issue's user does it: `-i <device>` (a device publishing as
    // itself), and no `-i` at all (a made-up client id per run).
    for (device, client_id) in [("mosq-dev", Some("mosq-dev")), ("anon-dev", None)] {
        let sub = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                &format!("weir/alerts/{device}"),
                "-v",
                "-C",
                "1",
                "-W",
                "20",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("mosquitto_sub");
        std::thread::sleep(Duration::from_millis(300));
        let topic = format!("dt/thermostat/{device}/telemetry");
        let publish = |payload: &str| {
            let mut cmd = Command::new("mosquitto_pub");
            cmd.args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-q",
                "1",
                "-t",
                &topic,
                "-m",
                payload,
            ]);
            if let Some(id) = client_id {
                cmd.args(["-i", id]);
            }
            assert!(cmd.status().expect("mosquitto_pub").success());
        };
        for (i, t) in quiet_series(25).iter().enumerate() {
            publish(&reading(1_764_300_000_000 + i as i64 * 10_000, *t, 40.1));
        }
        wait_shadow_version(&weir, device, 25);
        publish(&reading(1_764_300_250_000, 35.0, 40.1));
        let out = sub.wait_with_output().expect("mosquitto_sub output");
        let line = String::from_utf8_lossy(&out.stdout);
        assert!(
            line.starts_with(&format!("weir/alerts/{device} ")),
            "{device}: {line}\n{}",
            weir.log()
        );
        let alert: Value = serde_json::from_str(line.split_once(' ').map(|x| x.1).unwrap_or(""))
            .expect("alert json");
        assert_eq!(alert["metric"], "temperature");
        assert_eq!(alert["device_time"], 1_764_300_250_000i64);
        let last = wait_shadow_version(&weir, device, 26);
        assert_eq!(last["state"]["reported"]["temperature"], 35.0, "{last}");
    }
    // QoS 0 and 1, as AWS IoT: a QoS 2 subscription is granted QoS 1.
    let out = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-q",
            "2",
            "-t",
            "qos/two",
            "-d",
            "-W",
            "1",
        ])
        .output()
        .expect("mosquitto_sub");
    let debug = String::from_utf8_lossy(&out.stdout);
    assert!(debug.contains("Subscribed (mid: 1): 1"), "{debug}");
    weir.stop();
}

#[test]
fn rules_read_the_shadow_with_get_thing_shadow() {
    let dir = TempDir::new("thing-shadow");
    let rules = support::echo_rules(&dir.0, true);
    std::fs::write(
        rules.join("ask.toml"),
        "sql = \"SELECT get_thing_shadow(topic(2), 'arn:aws:iam::123456789012:role/weir').state.reported.temperature AS last FROM 'ask/+'\"\n[[actions]]\nplugin = \"echo\"\ndevice = \"${topic(2)}\"\n",
    )
    .unwrap();
    // A named shadow, set through the shadow service, read by name.
    std::fs::write(
        rules.join("ask-named.toml"),
        "sql = \"SELECT get_thing_shadow(topic(2), 'cfg', 'arn:aws:iam::123456789012:role/weir').state.desired.mode AS mode FROM 'ask-named/+'\"\n[[actions]]\nplugin = \"echo\"\ndevice = \"named-${topic(2)}\"\n",
    )
    .unwrap();
    let weir = Weir::start_with_rules(&dir.0, &rules, "");
    let device = Mqtt::connect(weir.addr, "dev-q");
    device.publish(
        "dt/thermostat/dev-q/telemetry",
        reading(now_ms(), 23.25, 40.0),
    );
    device.publish(
        "$aws/things/dev-q/shadow/name/cfg/update",
        r#"{"state":{"desired":{"mode":"eco"}}}"#,
    );
    wait_shadow_version(&weir, "dev-q", 1);
    wait_shadow_version(&weir, "dev-q/cfg", 1);
    let watcher = Mqtt::connect(weir.addr, "watcher-q");
    watcher.subscribe("echo/#");
    device.publish("ask/dev-q", "{}");
    device.publish("ask-named/dev-q", "{}");
    let got = watcher.collect(Duration::from_secs(3));
    assert_eq!(got.len(), 2, "{got:?}");
    let answer = |topic: &str| {
        got.iter()
            .find(|(t, _)| t == topic)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("nothing on {topic}: {got:?}"))
    };
    assert_eq!(answer("echo/dev-q")["last"], 23.25, "{got:?}");
    assert_eq!(answer("echo/named-dev-q")["mode"], "eco", "{got:?}");
    device.disconnect();
    watcher.disconnect();
    weir.stop();
}

/// A rule's SET variables reach its WHERE, its output and its actions'
/// templates, evaluated once per message (one `newuuid()` for all three).
#[test]
fn set_variables_reach_where_output_and_templates() {
    let dir = TempDir::new("set-variables");
    let rules = support::echo_rules(&dir.0, false);
    std::fs::write(
        rules.join("celsius.toml"),
        r#"sql = """
SET @c = (temperature - 32) * 5.0 / 9, @id = newuuid(), @dev = concat(lower(topic(2)), '-', @id)
SELECT round(@c) AS celsius, @id AS id, sourceip() AS ip, principal() AS principal
FROM 'f/+' WHERE @c > 30"""
[[actions]]
plugin = "echo"
device = "${@dev}"
"#,
    )
    .unwrap();
    let weir = Weir::start_with_rules(&dir.0, &rules, "");
    let watcher = Mqtt::connect(weir.addr, "watcher-set");
    watcher.subscribe("echo/#");
    let device = Mqtt::connect(weir.addr, "dev-set");
    device.publish("f/Oven-1", r#"{"temperature": 80}"#);
    device.publish("f/Oven-1", r#"{"temperature": 212}"#);
    let got = watcher.collect(Duration::from_secs(3));
    // 80 °F is 26.7 °C: the WHERE on @c holds only for the second reading.
    assert_eq!(got.len(), 1, "{got:?}");
    let (topic, payload) = &got[0];
    assert_eq!(payload["celsius"], 100, "{got:?}");
    // A plain-TCP device: sourceip() is its address, principal() Undefined.
    assert_eq!(payload["ip"], "127.0.0.1", "{got:?}");
    assert!(payload.get("principal").is_none(), "{got:?}");
    let id = payload["id"].as_str().expect("id");
    assert_eq!(id.len(), 36, "{got:?}");
    assert_eq!(topic, &format!("echo/oven-1-{id}"), "{got:?}");
    device.disconnect();
    watcher.disconnect();
    weir.stop();
}

/// AWS's republish tutorial: hot readings are republished to
/// `device/data/temp` for subscribers, and the republished message goes
/// through the rules again (here into a second rule's republish).
#[test]
fn republish_actions_publish_and_feed_the_rules() {
    let dir = TempDir::new("republish");
    let rules = dir.0.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("plugins.toml"), "").unwrap();
    std::fs::write(
        rules.join("hot.toml"),
        "sql = \"SELECT topic(2) AS device_id, temperature FROM 'device/+/data' WHERE temperature > 30\"\n[[actions]]\nrepublish = \"device/data/temp\"\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("relay.toml"),
        "sql = \"SELECT device_id FROM 'device/data/temp'\"\n[[actions]]\nrepublish = \"relay/${device_id}\"\n",
    )
    .unwrap();
    let weir = Weir::start_with_rules(&dir.0, &rules, "");
    let watcher = Mqtt::connect(weir.addr, "watcher-rp");
    watcher.subscribe("device/data/temp");
    watcher.subscribe("relay/#");
    let device = Mqtt::connect(weir.addr, "dev-rp");
    device.publish("device/22/data", r#"{"temperature": 28, "humidity": 80}"#);
    device.publish("device/22/data", r#"{"temperature": 35, "humidity": 80}"#);
    let mut got = watcher.collect(Duration::from_secs(3));
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "device/data/temp");
    assert_eq!(
        got[0].1,
        serde_json::json!({"device_id": "22", "temperature": 35})
    );
    assert_eq!(got[1].0, "relay/22");
    assert_eq!(got[1].1, serde_json::json!({"device_id": "22"}));
    device.disconnect();
    watcher.disconnect();
    weir.stop();
}

/// AWS's binary payloads: `SELECT * FROM 'topic/subtopic'` (and with a
/// WHERE that reads no field) forwards a payload that is not JSON as the
/// bytes it came as; a rule that also routes to a plugin sends that action
/// to its error action, once, and still republishes.
#[test]
fn select_star_forwards_binary_payloads_as_they_came() {
    let dir = TempDir::new("binary");
    let rules = dir.0.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("plugins.toml"),
        "[echo]\ncomponent = \"builtin:echo\"\ngrants = { publish = [\"echo/+\"] }\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("raw.toml"),
        "sql = \"SELECT * FROM 'topic/subtopic'\"\n[[actions]]\nrepublish = \"out/raw\"\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("sampled.toml"),
        "sql = \"SELECT * FROM 'topic/subtopic' WHERE timestamp() % 1 = 0\"\n[[actions]]\nrepublish = \"out/sampled\"\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("mixed.toml"),
        "sql = \"SELECT * FROM 'topic/subtopic'\"\n[[actions]]\nplugin = \"echo\"\ndevice = \"${clientid()}\"\n[[actions]]\nrepublish = \"out/mixed\"\n[error_action]\nrepublish = \"out/errors\"\n",
    )
    .unwrap();
    let weir = Weir::start_with_rules(&dir.0, &rules, "");
    let watcher = Mqtt::connect(weir.addr, "watcher-bin");
    watcher.subscribe("out/#");
    let device = Mqtt::connect(weir.addr, "dev-bin");
    let bytes: Vec<u8> = vec![0x00, 0x01, 0x02, 0xff, b'{'];
    device.publish("topic/subtopic", bytes.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got: Vec<(String, Vec<u8>)> = Vec::new();
    while got.len() < 4 {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match watcher.incoming.recv_timeout(left) {
            Ok(m) => got.push(m),
            Err(_) => break,
        }
    }
    got.sort();
    let topics: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        topics,
        ["out/errors", "out/mixed", "out/raw", "out/sampled"],
        "{got:?}"
    );
    for (topic, payload) in &got[1..] {
        assert_eq!(payload, &bytes, "{topic}");
    }
    // The plugin action failed, once, with AWS's error document.
    let doc: Value = serde_json::from_slice(&got[0].1).expect("error document");
    assert_eq!(doc["ruleName"], "mixed", "{doc}");
    assert_eq!(doc["failures"].as_array().map(Vec::len), Some(1), "{doc}");
    let message = doc["failures"][0]["errorMessage"].as_str().unwrap_or("");
    assert!(message.contains("not valid JSON"), "{doc}");
    assert!(message.contains("encode(*, 'base64')"), "{doc}");
    assert_eq!(weir.counter("messages_malformed"), 1);
    device.disconnect();
    watcher.disconnect();
    weir.stop();
}

/// AWS Basic Ingest: a publish to `$aws/rules/<rule>/<topic>` goes to that
/// rule alone, whatever its FROM says, with `<topic>` as its topic; nothing
/// reaches subscribers, and an unknown rule's message is dead-lettered.
#[test]
fn basic_ingest_invokes_the_named_rule_only() {
    let dir = TempDir::new("basic-ingest");
    let rules = support::echo_rules(&dir.0, false);
    std::fs::write(
        rules.join("BuildingManager.toml"),
        "sql = \"SELECT topic() AS t, topic(3) AS floor, light FROM 'unrelated/topic'\"\n[[actions]]\nplugin = \"echo\"\ndevice = \"${topic(4)}\"\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("other.toml"),
        "sql = \"SELECT 'other' AS r FROM 'Buildings/#'\"\n[[actions]]\nplugin = \"echo\"\ndevice = \"other\"\n",
    )
    .unwrap();
    let weir = Weir::start_with_rules(&dir.0, &rules, "");
    let watcher = Mqtt::connect(weir.addr, "watcher-bi");
    watcher.subscribe("echo/#");
    let spy = Mqtt::connect(weir.addr, "spy-bi");
    spy.subscribe("$aws/rules/#");
    spy.subscribe("Buildings/#");
    let device = Mqtt::connect(weir.addr, "dev-bi");
    device.publish(
        "$aws/rules/BuildingManager/Buildings/Building5/Floor2/Room201/Lights",
        r#"{"light": 80}"#,
    );
    device.publish("$aws/rules/NoSuchRule/x", r#"{"light": 1}"#);
    let got = watcher.collect(Duration::from_secs(3));
    // Only the named rule ran, though its FROM does not match (and the
    // `other` rule's does).
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "echo/Room201", "{got:?}");
    assert_eq!(got[0].1["t"], "Buildings/Building5/Floor2/Room201/Lights");
    assert_eq!(got[0].1["floor"], "Floor2");
    assert_eq!(got[0].1["light"], 80);
    assert!(spy.collect(Duration::from_millis(500)).is_empty());
    assert_eq!(weir.counter("dead_letters"), 1);
    // As on AWS, Basic Ingest topics cannot be subscribed to.
    assert_eq!(weir.counter("basic_ingest.subscribe_refused"), 1);
    device.disconnect();
    watcher.disconnect();
    spy.disconnect();
    weir.stop();
}

/// An MQTT 5 device's publish properties reach the rules
/// (`get_mqtt_property`, `get_user_properties`), sent by paho-mqtt.
#[test]
fn mqtt5_properties_reach_the_rules() {
    if !have_paho() {
        return;
    }
    let dir = TempDir::new("mqtt5-properties");
    let rules = support::echo_rules(&dir.0, false);
    std::fs::write(
        rules.join("props.toml"),
        r#"sql = """
SELECT get_mqtt_property('content_type') AS ct, get_mqtt_property('format_indicator') AS fi,
       get_mqtt_property('response_topic') AS rt, get_mqtt_property('correlation_data') AS cd,
       get_user_properties('site') AS site, get_or_default(get_user_properties('none'), []) AS none
FROM 'p5/+'"""
[[actions]]
plugin = "echo"
device = "${topic(2)}"
"#,
    )
    .unwrap();
    let weir = Weir::start_with_rules(&dir.0, &rules, "");
    let watcher = Mqtt::connect(weir.addr, "watcher-p5");
    watcher.subscribe("echo/#");
    let out = Command::new("python3")
        .arg(support::repo_root().join("tests/clients/mqtt5_properties.py"))
        .arg(weir.addr.port().to_string())
        .arg("p5-dev")
        .arg("p5/p5-dev")
        .output()
        .expect("run the paho client");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let got = watcher.collect(Duration::from_secs(3));
    assert_eq!(got.len(), 1, "{got:?}");
    let (topic, p) = &got[0];
    assert_eq!(topic, "echo/p5-dev");
    assert_eq!(p["ct"], "application/json", "{p}");
    assert_eq!(p["fi"], "UTF8_DATA", "{p}");
    assert_eq!(p["rt"], "reply/p5-dev", "{p}");
    assert_eq!(p["cd"], "AQL/", "{p}");
    assert_eq!(p["site"], serde_json::json!(["lab", "roof"]), "{p}");
    assert_eq!(p["none"], serde_json::json!([]), "{p}");
    watcher.disconnect();
    weir.stop();
}

/// `weir state reset` on a running instance really starts the baseline afresh.
#[test]
fn a_state_reset_restarts_the_baseline() {
    let dir = TempDir::new("reset");
    let weir = Weir::start(&dir.0);
    let watcher = Mqtt::connect(weir.addr, "watcher-z");
    watcher.subscribe("weir/alerts/#");
    let device = Mqtt::connect(weir.addr, "dev-z");
    warm_up(&weir, &device, "dev-z", &quiet_series(25));
    let out = weir.cli(&["state", "reset", "zscore", "dev-z"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A fresh baseline is in warm-up: the spike is its first reading, not an anomaly.
    device.publish(
        "dt/thermostat/dev-z/telemetry",
        reading(now_ms(), 30.0, 40.1),
    );
    let got = watcher.collect(Duration::from_secs(3));
    assert!(zscore_alerts(&got).is_empty(), "{got:?}");
    let start = Instant::now();
    loop {
        let out = weir.cli(&["state", "get", "zscore", "dev-z"]);
        if out.status.success() {
            let state: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(state["metrics"]["temperature"]["n"], 1, "{state}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no state after the reset"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    device.disconnect();
    watcher.disconnect();
    weir.stop();
}

/// paho-mqtt (Python), the client most device code is written with: QoS 1
/// publishes, a `$aws/…` subscription, and the alert.
#[test]
fn paho_mqtt_devices_and_consoles_work() {
    if !have_paho() {
        return;
    }
    let dir = TempDir::new("paho");
    let weir = Weir::start(&dir.0);
    paho_device_and_console(&weir, weir.addr.port(), "paho-dev", "tcp");
    weir.stop();
}

/// MQTT over WebSockets (`ws_listen`), with paho's WebSocket transport as
/// a browser dashboard uses it: the same alert, lifecycle events and shadow
/// as over TCP.
#[test]
fn paho_mqtt_over_websockets() {
    if !have_paho() {
        return;
    }
    let dir = TempDir::new("paho-ws");
    let weir = Weir::start_with_rules(
        &dir.0,
        &support::repo_root().join("rules"),
        "ws_listen = \"127.0.0.1:0\"\n",
    );
    let ws: std::net::SocketAddr = weir.status()["ws_listen"]
        .as_str()
        .expect("ws_listen in status")
        .parse()
        .expect("ws address");
    paho_device_and_console(&weir, ws.port(), "paho-ws", "websockets");
    // A client that speaks MQTT without the WebSocket handshake is refused
    // and counted; the listener goes on serving.
    {
        use std::io::{Read, Write};
        let mut raw = std::net::TcpStream::connect(ws).expect("connect");
        raw.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        raw.write_all(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x1e\x00\x00")
            .expect("write");
        let mut rest = Vec::new();
        let _ = raw.read_to_end(&mut rest);
    }
    weir.wait_counter("refused.websocket", 1);
    paho_device_and_console(&weir, ws.port(), "paho-ws-2", "websockets");
    weir.stop();
}

/// Run tests/clients/paho_device.py against `port`: a quiet series and a
/// spike raise the zscore alert; the console sees it, the device's
/// lifecycle event and every reading (at its subscription's QoS 1: the
/// host acknowledges a device's QoS 1 publishes itself and the broker
/// still delivers them at QoS 1); the shadow holds the spike.
fn paho_device_and_console(weir: &Weir, port: u16, device: &str, transport: &str) {
    let script = support::repo_root().join("tests/clients/paho_device.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(port.to_string())
        .arg(device)
        .arg(transport)
        .output()
        .expect("run the paho client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "paho client ({transport}) failed: {}\n{stdout}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        weir.log()
    );
    let got: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let alert = got
        .iter()
        .find(|m| m["payload"]["kind"] == "zscore")
        .expect("an alert");
    assert_eq!(alert["topic"], format!("weir/alerts/{device}"));
    assert_eq!(alert["payload"]["value"], 35.0);
    let connected = got
        .iter()
        .find(|m| m["topic"] == format!("$aws/events/presence/connected/{device}"))
        .expect("a connected event over a $aws subscription");
    assert_eq!(connected["payload"]["clientId"], device);
    let telemetry = format!("dt/thermostat/{device}/telemetry");
    let readings: Vec<&Value> = got.iter().filter(|m| m["topic"] == telemetry).collect();
    assert_eq!(readings.len(), 26, "{stdout}");
    assert!(readings.iter().all(|m| m["qos"] == 1), "{stdout}");
    assert_eq!(readings[25]["payload"]["temperature"], 35.0);
    let s = wait_shadow_version(weir, device, 26);
    assert_eq!(s["state"]["reported"]["temperature"], 35.0);
}

/// A client that sends SUBSCRIBE right behind CONNECT, in one write, and
/// then only listens (as paho and most device SDKs do) gets its SUBACK and
/// its messages at once: packets that arrive with CONNECT are not left
/// waiting for the next bytes from the client.
#[test]
fn subscribe_sent_with_connect_takes_effect_at_once() {
    use std::io::{Read, Write};
    let dir = TempDir::new("connect-subscribe");
    let weir = Weir::start(&dir.0);
    let mut raw = std::net::TcpStream::connect(weir.addr).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut bytes = vec![0x10, 19, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 7];
    bytes.extend_from_slice(b"raw-sub");
    bytes.extend_from_slice(&[0x82, 10, 0, 1, 0, 5]);
    bytes.extend_from_slice(b"raw/t");
    bytes.push(0);
    raw.write_all(&bytes)
        .expect("CONNECT + SUBSCRIBE in one write");

    let mut got = Vec::new();
    let read_until = |raw: &mut std::net::TcpStream, got: &mut Vec<u8>, want: &[u8]| {
        let mut chunk = [0u8; 512];
        while !got.windows(want.len()).any(|w| w == want) {
            let n = raw.read(&mut chunk).expect("bytes before the read timeout");
            assert!(n > 0, "connection closed; got {got:?}");
            got.extend_from_slice(&chunk[..n]);
        }
    };
    // CONNACK then SUBACK (packet id 1, granted QoS 0), without another byte sent.
    read_until(&mut raw, &mut got, &[0x90, 3, 0, 1, 0]);
    assert_eq!(&got[..4], &[0x20, 2, 0, 0]);

    let publisher = Mqtt::connect(weir.addr, "raw-pub");
    publisher.publish("raw/t", "hello");
    read_until(&mut raw, &mut got, b"raw/thello");
}

/// MQTT keep-alive: a client that goes silent is disconnected after 1.5
/// times its keep-alive interval (with an AWS lifecycle event saying so);
/// one that keeps sending, if only PINGREQs, stays connected however long.
#[test]
fn keep_alive_ends_silent_connections_only() {
    use std::io::{Read, Write};
    let dir = TempDir::new("keep-alive");
    let weir = Weir::start(&dir.0);
    let console = Mqtt::connect(weir.addr, "ka-console");
    console.subscribe("$aws/events/presence/disconnected/+");
    // CONNECT, MQTT 3.1.1, clean session, keep-alive 1 s.
    let connect = |client_id: &str| {
        let mut raw = std::net::TcpStream::connect(weir.addr).expect("connect");
        raw.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut bytes = vec![0x10, 12 + client_id.len() as u8, 0, 4];
        bytes.extend_from_slice(b"MQTT");
        bytes.extend_from_slice(&[4, 0x02, 0, 1, 0, client_id.len() as u8]);
        bytes.extend_from_slice(client_id.as_bytes());
        raw.write_all(&bytes).expect("write CONNECT");
        let mut connack = [0u8; 4];
        raw.read_exact(&mut connack).expect("CONNACK");
        assert_eq!(connack, [0x20, 2, 0, 0]);
        raw
    };
    let quiet_connected_at = now_ms();
    let mut quiet = connect("ka-quiet");
    let mut busy = connect("ka-busy");

    // The busy client pings every 400 ms for 4 s (well past 1.5 s) and
    // gets every PINGRESP.
    let ping = |raw: &mut std::net::TcpStream| {
        raw.write_all(&[0xc0, 0]).expect("PINGREQ");
        let mut pong = [0u8; 2];
        raw.read_exact(&mut pong).expect("PINGRESP");
        assert_eq!(pong, [0xd0, 0]);
    };
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(400));
        ping(&mut busy);
    }

    // The quiet one was closed (its disconnect event, below, is stamped
    // no earlier than 1.5 s after it connected).
    let mut rest = Vec::new();
    let _ = quiet.read_to_end(&mut rest);
    // (Collected for less than the busy client's keep-alive since its
    // last PINGREQ, which it then sends again and is answered.)
    let events = console.collect(Duration::from_millis(500));
    ping(&mut busy);
    let quiet_gone: Vec<&Value> = events
        .iter()
        .filter(|(t, _)| t == "$aws/events/presence/disconnected/ka-quiet")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(quiet_gone.len(), 1, "{events:?}");
    assert_eq!(quiet_gone[0]["disconnectReason"], "MQTT_KEEP_ALIVE_TIMEOUT");
    let gone_at = quiet_gone[0]["timestamp"].as_i64().expect("a timestamp");
    assert!(gone_at >= quiet_connected_at + 1500, "{events:?}");
    assert!(
        !events.iter().any(|(t, _)| t.ends_with("/ka-busy")),
        "{events:?}"
    );
    weir.stop();
}

/// AWS's Device Shadow service on the shipped rules: requests published
/// with mosquitto_pub (an empty get, as AWS's docs send it) and answers on
/// AWS's topics; desired state set by an app beside the reported state
/// that telemetry merges, with its delta; a broken update rejected.
#[test]
fn the_device_shadow_service_answers_on_aws_topics() {
    if !have("mosquitto_pub") {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install mosquitto-clients"
        );
        eprintln!("SKIPPED: mosquitto-clients are not installed");
        return;
    }
    let dir = TempDir::new("shadow-service");
    let weir = Weir::start(&dir.0);
    let port = weir.addr.port().to_string();
    let app = Mqtt::connect(weir.addr, "app-shadow");
    app.subscribe("$aws/things/lamp-1/shadow/#");
    let answers = |n: usize| -> Vec<(String, Value)> {
        let mut got = Vec::new();
        let start = Instant::now();
        while got.len() < n && start.elapsed() < Duration::from_secs(20) {
            got.extend(app.collect(Duration::from_millis(200)));
        }
        got.retain(|(topic, _)| topic.split('/').count() > 5); // answers, not requests
        got
    };
    let answer = |got: &[(String, Value)], topic: &str| -> Value {
        got.iter()
            .find(|(t, _)| t == topic)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no answer on {topic}: {got:?}\n{}", weir.log()))
    };

    let get = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-n"])
        .args(["-t", "$aws/things/lamp-1/shadow/get"])
        .output()
        .expect("mosquitto_pub");
    assert!(get.status.success());
    // The request itself (subscribed with `#`) and the answer.
    let got = answers(2);
    let rejected = answer(&got, "$aws/things/lamp-1/shadow/get/rejected");
    assert_eq!(rejected["code"], 404, "{rejected}");
    assert_eq!(rejected["message"], "No shadow exists with name: 'lamp-1'");

    // Telemetry from the lamp, publishing as itself, makes the shadow; an
    // app then sets desired state.
    let lamp = Mqtt::connect(weir.addr, "lamp-1");
    lamp.publish("dt/lamp/lamp-1/telemetry", r#"{"on":false,"level":10}"#);
    wait_shadow_version(&weir, "lamp-1", 1);
    app.publish(
        "$aws/things/lamp-1/shadow/update",
        r#"{"state":{"desired":{"on":true,"level":10}},"clientToken":"app-1"}"#,
    );
    let got = answers(4);
    let accepted = answer(&got, "$aws/things/lamp-1/shadow/update/accepted");
    assert_eq!(accepted["version"], 2, "{accepted}");
    assert_eq!(accepted["clientToken"], "app-1");
    assert_eq!(accepted["state"]["desired"]["on"], true);
    let documents = answer(&got, "$aws/things/lamp-1/shadow/update/documents");
    assert_eq!(
        documents["previous"]["state"]["reported"],
        serde_json::json!({"on": false, "level": 10})
    );
    assert_eq!(documents["current"]["version"], 2);
    // Only what the device has not reached yet.
    let delta = answer(&got, "$aws/things/lamp-1/shadow/update/delta");
    assert_eq!(delta["state"], serde_json::json!({"on": true}), "{delta}");

    // A broken update is answered, not lost in the error action.
    app.publish("$aws/things/lamp-1/shadow/update", "{\"state\":");
    let got = answers(2);
    let rejected = answer(&got, "$aws/things/lamp-1/shadow/update/rejected");
    assert_eq!(rejected["code"], 400);
    assert_eq!(rejected["message"], "Invalid JSON");

    // `weir shadow get` holds both sections of the one document.
    let stored = wait_shadow_version(&weir, "lamp-1", 2);
    assert_eq!(stored["state"]["desired"]["on"], true, "{stored}");
    assert_eq!(stored["state"]["reported"]["on"], false, "{stored}");
    assert_eq!(weir.counter("messages_malformed"), 0);
    app.disconnect();
    weir.stop();
}

/// The example rule directories a user runs as they are (`weir run --rules
/// examples/…`) load: every rule and plugin declaration is accepted, so a
/// plugin that gains an import cannot leave an example behind.
#[test]
fn example_rule_directories_load() {
    for (example, plugins) in [("seed-pipeline", 3), ("aws-rules", 2)] {
        let dir = TempDir::new(&format!("example-{example}"));
        let rules = support::repo_root().join("examples").join(example);
        let weir = Weir::start_with_rules(&dir.0, &rules, "");
        let status = weir.status();
        let loaded = status["plugins"].as_array().map_or(0, Vec::len);
        assert_eq!(loaded, plugins, "{example}: {status}\n{}", weir.log());
        assert!(
            status["rules"].as_array().is_some_and(|r| !r.is_empty()),
            "{example}: {status}"
        );
        weir.stop();
    }
}
