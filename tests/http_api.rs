//! The data-plane HTTP API (AWS `iot-data`) end to end: boto3's own
//! `iot-data` client, signing with Signature Version 4, against a running
//! instance with the shipped rules, and paho-mqtt devices seeing what the
//! HTTP calls cause; then plain HTTP requests (curl's way of writing a
//! topic) against an unsigned loopback instance without the shadow service.

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::fleet::{certificate_id, py, start_with_identity, weir_ok, Creds};
use support::{echo_rules, Mqtt, TempDir, Weir};

const KEY: &str = "AKIDWEIRTEST";
const SECRET: &str = "weir-test-secret/+x";

fn http_port(weir: &Weir) -> u16 {
    let listen = weir.status()["http_listen"]
        .as_str()
        .expect("http_listen in status")
        .to_string();
    listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

fn seen<'a>(mqtt: &'a [Value], topic: &str) -> Vec<&'a Value> {
    mqtt.iter().filter(|m| m["topic"] == topic).collect()
}

#[test]
fn boto3_iot_data_shadows_and_publish() {
    let dir = TempDir::new("http-boto3");
    let config = format!(
        "[engine]\nworkers = 4\n[http]\nlisten = \"127.0.0.1:0\"\n[[http.credentials]]\naccess_key_id = \"{KEY}\"\nsecret_access_key = \"{SECRET}\"\n"
    );
    // The shipped rules, and one echoing the MQTT 5 properties it reads.
    let rules = echo_rules(&dir.0, true);
    std::fs::write(
        rules.join("props.toml"),
        r#"sql = """
SELECT get_mqtt_property('content_type') AS ct, get_mqtt_property('format_indicator') AS fi,
       get_mqtt_property('response_topic') AS rt, get_mqtt_property('correlation_data') AS cd,
       get_user_properties('site') AS site, clientid() AS client
FROM 'props/+'"""
[[actions]]
plugin = "echo"
device = "${topic(2)}"
"#,
    )
    .expect("props rule");
    let weir = Weir::start_with_rules(&dir.0, &rules, &config);
    let port = http_port(&weir);
    let r = py(
        "iot_data.py",
        &[
            "--endpoint".into(),
            format!("http://127.0.0.1:{port}"),
            "--mqtt-port".into(),
            weir.addr.port().to_string(),
            "--key".into(),
            KEY.into(),
            "--secret".into(),
            SECRET.into(),
        ],
    );

    // UpdateThingShadow answers as update/accepted, without the API's token.
    assert_eq!(r["update"]["state"]["desired"]["color"], "red", "{r}");
    assert_eq!(r["update"]["version"], 1);
    assert!(r["update"].get("clientToken").is_none(), "{r}");
    // GetThingShadow: the document with its delta.
    assert_eq!(r["get"]["state"]["desired"]["power"]["on"], true);
    assert_eq!(r["get"]["state"]["delta"]["color"], "red");
    assert_eq!(r["get"]["version"], 1);
    assert!(r["get"]["metadata"]["desired"]["color"]["timestamp"].is_i64());
    // The caller's own token is echoed.
    assert_eq!(r["update_with_token"]["clientToken"], "backend-1");
    assert_eq!(r["update_with_token"]["version"], 2);
    // AWS's exceptions, as boto3 raises them.
    let err = |k: &str| (r[k]["code"].clone(), r[k]["status"].clone());
    assert_eq!(err("conflict"), ("ConflictException".into(), 409.into()));
    assert_eq!(r["conflict"]["message"], "Version conflict");
    assert_eq!(
        err("invalid_json"),
        ("InvalidRequestException".into(), 400.into())
    );
    assert_eq!(
        err("missing_state"),
        ("InvalidRequestException".into(), 400.into())
    );
    assert_eq!(
        r["missing_state"]["message"],
        "Missing required node: state"
    );
    assert_eq!(
        err("no_shadow"),
        ("ResourceNotFoundException".into(), 404.into())
    );
    assert_eq!(
        r["no_shadow"]["message"],
        "No shadow exists with name: 'ghost'"
    );
    assert_eq!(r["bad_thing"]["status"], 400);
    // Named shadows: made, read, listed (and paged), deleted.
    assert_eq!(r["named_update"]["state"]["reported"]["interval"], 10);
    assert_eq!(r["named_get"]["version"], 1);
    assert_eq!(r["named_list"], serde_json::json!(["config", "schedule"]));
    assert_eq!(r["named_page"]["results"], serde_json::json!(["config"]));
    assert_eq!(r["named_page"]["nextToken"], "config");
    assert_eq!(r["named_delete"]["version"], 1);
    assert_eq!(r["named_after_delete"]["status"], 404);
    // Telemetry published over HTTP and shadow updates for the same devices
    // meet in one document on 4 workers (routing by the rule's device).
    let children = r["children"].as_array().expect("children");
    assert_eq!(children.len(), 8);
    for (i, c) in children.iter().enumerate() {
        assert_eq!(
            c["state"]["reported"]["temperature"],
            20.0 + i as f64,
            "{c}"
        );
        assert_eq!(c["state"]["desired"]["setpoint"], 18, "{c}");
        assert_eq!(c["version"], 2, "{c}");
    }
    // GetRetainedMessage and ListRetainedMessages through boto3.
    assert_eq!(r["retained_get"]["topic"], "cfg/lamp", "{r}");
    assert_eq!(r["retained_get"]["payload"]["interval"], 30);
    assert_eq!(r["retained_get"]["qos"], 1);
    assert_eq!(r["retained_get"]["recent"], true);
    assert_eq!(r["retained_list"], serde_json::json!(["cfg/lamp"]));
    assert_eq!(r["retained_missing"]["status"], 404);
    // Publish: wildcards and the service's answer topics refused.
    assert_eq!(
        err("publish_wildcard"),
        ("InvalidRequestException".into(), 400.into())
    );
    assert_eq!(
        err("publish_answer_topic"),
        ("ForbiddenException".into(), 403.into())
    );
    // A wrong secret and an unsigned request are refused.
    assert_eq!(err("bad_secret"), ("ForbiddenException".into(), 403.into()));
    assert!(
        r["bad_secret"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("signature"),
        "{r}"
    );
    assert_eq!(r["unsigned"]["status"], 403);
    assert_eq!(r["unsigned"]["type"], "ForbiddenException");

    // What devices saw: the delta of the HTTP update, the QoS 1 command
    // live and after the offline session came back, the retained message.
    let mqtt = r["mqtt"].as_array().expect("mqtt");
    let delta = seen(mqtt, "$aws/things/lamp/shadow/update/delta");
    assert!(
        delta
            .iter()
            .any(|m| m["payload"]["state"]["color"] == "red"),
        "{mqtt:?}"
    );
    assert!(!seen(mqtt, "$aws/things/lamp/shadow/update/documents").is_empty());
    assert_eq!(seen(mqtt, "cmd/lamp")[0]["payload"]["do"], "blink");
    let offline = seen(mqtt, "cmd/lamp-offline");
    assert_eq!(offline.len(), 1, "{mqtt:?}");
    assert_eq!(offline[0]["payload"]["do"], "wake");
    assert_eq!(offline[0]["qos"], 1);
    let props = seen(mqtt, "echo/lamp");
    assert_eq!(props.len(), 1, "{mqtt:?}");
    let p = &props[0]["payload"];
    assert_eq!(p["ct"], "application/json", "{p}");
    assert_eq!(p["fi"], "UTF8_DATA", "{p}");
    assert_eq!(p["rt"], "reply/lamp", "{p}");
    assert_eq!(p["cd"], "AQL/", "{p}");
    assert_eq!(p["site"], serde_json::json!(["lab", "roof"]), "{p}");
    assert_eq!(p["client"], "weir-http", "{p}");
    let retained = seen(mqtt, "cfg/lamp");
    assert!(retained.iter().any(|m| m["retain"] == true), "{mqtt:?}");

    // The telemetry published over HTTP went through the shipped rules.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let shadow = weir.cli(&["shadow", "get", "http-dev"]);
        let text = String::from_utf8_lossy(&shadow.stdout);
        if text.contains("22.5") {
            break;
        }
        assert!(Instant::now() < deadline, "no shadow for http-dev: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The classic shadow holds what the backend set.
    let lamp: Value =
        serde_json::from_str(&weir_ok(&weir.data_dir, &["shadow", "get", "lamp"])).expect("json");
    assert_eq!(lamp["state"]["desired"]["color"], "red", "{lamp}");
    assert_eq!(lamp["state"]["reported"]["color"], "blue", "{lamp}");
    assert!(weir.counter("http.unauthorized") >= 2);
    assert!(weir.counter("http.publish") >= 4);
    weir.stop();
}

/// One HTTP/1.1 request; the status, headers and body.
fn request(port: u16, method: &str, target: &str, body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn plain_http_on_loopback_and_a_missing_shadow_service() {
    let dir = TempDir::new("http-plain");
    // Echo rules only: no shadow service to answer shadow requests.
    let rules = echo_rules(&dir.0, false);
    let weir = Weir::start_with_rules(
        &dir.0,
        &rules,
        "[http]\nlisten = \"127.0.0.1:0\"\nanswer_timeout_ms = 300\n",
    );
    let port = http_port(&weir);
    let mqtt = Mqtt::connect(weir.addr, "watcher");
    mqtt.subscribe("#");
    std::thread::sleep(Duration::from_millis(300));

    // The topic written as a path, as with curl; unsigned is fine on loopback.
    let (status, _, _) = request(
        port,
        "POST",
        "/topics/dt/thermostat/dev-9/telemetry?qos=1",
        r#"{"temperature":19.5}"#,
    );
    assert_eq!(status, 200);
    // A doubled slash before the operation names the same topic.
    let (status, _, _) = request(port, "POST", "//topics/dt/thermostat/dev-8/telemetry", "{}");
    assert_eq!(status, 200);
    let got = mqtt.collect(Duration::from_secs(3));
    assert!(
        got.iter()
            .any(|(t, v)| t == "dt/thermostat/dev-9/telemetry" && v["temperature"] == 19.5),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|(t, _)| t == "dt/thermostat/dev-8/telemetry"),
        "{got:?}"
    );

    // No shadow service: a clear 503 instead of a hang.
    let (status, head, body) = request(port, "GET", "/things/lamp/shadow", "");
    assert_eq!(status, 503, "{head}{body}");
    assert!(
        head.contains("x-amzn-errortype: serviceunavailableexception"),
        "{head}"
    );
    assert!(body.contains("shadow-service.toml"), "{body}");
    assert_eq!(weir.counter("http.shadow_timeouts"), 1);

    // Unknown operations and wrong methods.
    let (status, head, _) = request(port, "GET", "/nothing/here", "");
    assert_eq!(status, 404);
    assert!(head.contains("resourcenotfoundexception"), "{head}");
    let (status, _, _) = request(port, "GET", "/topics/a/b", "");
    assert_eq!(status, 405);
    let (status, _, body) = request(port, "POST", "/topics/a/b?qos=2", "x");
    assert_eq!(status, 400, "{body}");
    weir.stop();
}

#[test]
fn devices_over_https_with_their_certificates() {
    let dir = TempDir::new("http-mtls");
    let (weir, _mqtt_tls) = start_with_identity(&dir, "[http]\ntls_listen = \"127.0.0.1:0\"\n");
    let port: u16 = weir.status()["http_tls_listen"]
        .as_str()
        .and_then(|a| a.rsplit(':').next()?.parse().ok())
        .expect("http_tls_listen in status");
    let certs = dir.0.join("certs");
    let certs_arg = certs.display().to_string();
    weir_ok(
        &weir.data_dir,
        &[
            "things", "create", "meter-1", "--type", "meter", "--out", &certs_arg,
        ],
    );
    let creds = Creds::of(&certs, "meter-1");
    let call = |requests: Value| -> Vec<Value> {
        let mut args = creds.args(port);
        args.extend(["--requests".into(), requests.to_string()]);
        py("https_device.py", &args)
            .as_array()
            .expect("results")
            .clone()
    };
    let mqtt = Mqtt::connect(weir.addr, "watcher");
    mqtt.subscribe("echo/#");
    std::thread::sleep(Duration::from_millis(300));
    let r = call(serde_json::json!([
        [
            "POST",
            "/topics/dt/meter/meter-1/who?qos=1",
            "{\"kwh\": 12.5}"
        ],
        [
            "POST",
            "/things/meter-1/shadow",
            "{\"state\":{\"reported\":{\"fw\":\"1.2\"}}}"
        ],
        ["GET", "/things/meter-1/shadow", ""],
        // Another thing's shadow and topics: not in meter-1's policy.
        ["GET", "/things/meter-2/shadow", ""],
        ["POST", "/topics/dt/meter/meter-2/telemetry", "{}"],
    ]));
    assert_eq!(r[0]["status"], 200, "{r:?}");
    assert_eq!(r[1]["status"], 200, "{r:?}");
    assert_eq!(r[1]["body"]["state"]["reported"]["fw"], "1.2");
    assert_eq!(r[2]["body"]["state"]["reported"]["fw"], "1.2");
    assert_eq!(
        (r[3]["status"].clone(), r[3]["type"].clone()),
        (403.into(), "ForbiddenException".into()),
        "{r:?}"
    );
    assert_eq!(r[4]["status"], 403, "{r:?}");
    // The message is the device's: its thing as clientid(), its
    // certificate as principal().
    let cert_id = certificate_id(&weir.data_dir, "meter-1");
    let got = mqtt.collect(Duration::from_secs(3));
    let who = got
        .iter()
        .find(|(t, _)| t.starts_with("echo/"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no echo: {got:?}"));
    assert_eq!(who["client"], "meter-1", "{who}");
    assert_eq!(who["principal"], cert_id.as_str(), "{who}");
    assert_eq!(who["ip"], "127.0.0.1", "{who}");

    // A revoked certificate still completes the handshake (it chains to
    // the CA) but every request is refused.
    weir_ok(&weir.data_dir, &["certs", "revoke", &cert_id[..16]]);
    let r = call(serde_json::json!([["GET", "/things/meter-1/shadow", ""]]));
    assert_eq!(r[0]["status"], 403, "{r:?}");
    assert!(
        r[0]["body"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("REVOKED"),
        "{r:?}"
    );
    assert!(weir.counter("http.unauthorized") >= 1);
    weir.stop();
}

/// mosquitto_sub for `filter` until `count` messages or 5 s; `topic payload` lines.
fn mosquitto_sub(port: u16, filter: &str, count: usize) -> String {
    let out = std::process::Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            filter,
            "-v",
        ])
        .args(["-C", &count.to_string(), "-W", "5"])
        .output()
        .expect("mosquitto_sub");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn retained_messages_survive_a_restart_and_are_listed() {
    if !support::have("mosquitto_pub") {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install mosquitto-clients"
        );
        eprintln!("SKIPPED: mosquitto-clients are not installed");
        return;
    }
    let dir = TempDir::new("http-retained");
    let rules = echo_rules(&dir.0, false);
    let config = "[http]\nlisten = \"127.0.0.1:0\"\n";
    let weir = Weir::start_with_rules(&dir.0, &rules, config);
    let port = weir.addr.port().to_string();
    let publish = |args: &[&str]| {
        let ok = std::process::Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-r"])
            .args(args)
            .status()
            .expect("mosquitto_pub")
            .success();
        assert!(ok, "mosquitto_pub {args:?}");
    };
    publish(&["-t", "cfg/dev-1", "-m", r#"{"interval":30}"#]);
    publish(&["-t", "cfg/dev-2", "-m", "old"]);
    // An empty retained message clears the topic, as MQTT says.
    publish(&["-t", "cfg/dev-2", "-n"]);
    // A device that drops off with a retained last will.
    let will = format!(
        "import paho.mqtt.client as m, time\n\
         c = m.Client(m.CallbackAPIVersion.VERSION2, client_id='dev-9')\n\
         c.will_set('status/dev-9', 'offline', qos=1, retain=True)\n\
         c.connect('127.0.0.1', {port}, keepalive=30)\n\
         c.loop(1.0)\n\
         c.socket().close()\n"
    );
    let ok = std::process::Command::new("python3")
        .args(["-c", &will])
        .status()
        .expect("python3")
        .success();
    assert!(ok, "paho will client");
    let http = http_port(&weir);
    let (status, _, _) = request(http, "POST", "/topics/cfg/dev-3?qos=1&retain=true", "on");
    assert_eq!(status, 200);

    // GetRetainedMessage and ListRetainedMessages.
    let (status, _, body) = request(http, "GET", "/retainedMessage/cfg%2Fdev-1", "");
    assert_eq!(status, 200, "{body}");
    let got: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(got["topic"], "cfg/dev-1");
    assert_eq!(got["qos"], 1);
    assert_eq!(got["payload"], "eyJpbnRlcnZhbCI6MzB9"); // base64 of {"interval":30}
    let (status, _, _) = request(http, "GET", "/retainedMessage/cfg%2Fdev-2", "");
    assert_eq!(status, 404);
    // The will is published when the server sees the connection drop.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (list, topics) = loop {
        let (_, _, body) = request(http, "GET", "/retainedMessage?maxResults=10", "");
        let list: Value = serde_json::from_str(&body).expect("json");
        let topics: Vec<String> = list["retainedTopics"]
            .as_array()
            .expect("topics")
            .iter()
            .filter_map(|t| t["topic"].as_str().map(str::to_string))
            .collect();
        if topics.len() >= 3 || Instant::now() > deadline {
            break (list, topics);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(topics, ["cfg/dev-1", "cfg/dev-3", "status/dev-9"], "{list}");
    assert_eq!(list["retainedTopics"][1]["payloadSize"], 2);

    // After a restart a new subscriber still gets both, and not the cleared one.
    weir.stop();
    let weir = Weir::start_with_rules(&dir.0, &rules, config);
    let lines = mosquitto_sub(weir.addr.port(), "cfg/#", 3);
    assert!(lines.contains(r#"cfg/dev-1 {"interval":30}"#), "{lines}");
    assert!(lines.contains("cfg/dev-3 on"), "{lines}");
    assert!(!lines.contains("dev-2"), "{lines}");
    let lines = mosquitto_sub(weir.addr.port(), "status/#", 1);
    assert_eq!(lines.trim(), "status/dev-9 offline");
    weir.stop();
}
