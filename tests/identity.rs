//! Device identity end to end: the fleet CA and registry from the CLI, the
//! mTLS listener driven by real clients (mosquitto, paho-mqtt 3.1.1 and 5,
//! the AWS IoT Device SDK v2 for Python), topic policy, revocation,
//! persistent sessions, fleet provisioning by claim, and bad input
//! (including a bounded fuzz of both listeners).

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::fleet::{certificate_id, py, start_with_identity, weir_ok, Creds};
use support::{TempDir, Weir};

/// Arguments for tls_device.py.
fn device(action: &str, port: u16, creds: &Creds, client_id: &str, extra: &[&str]) -> Value {
    let mut args: Vec<String> = vec![action.into()];
    args.extend(creds.args(port));
    args.extend(["--client-id".into(), client_id.into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    py("tls_device.py", &args)
}

/// CONNACK "not authorized" as paho reports it: 3.1.1's return code 5 is
/// mapped to MQTT 5's reason code 0x87.
const NOT_AUTHORIZED: u64 = 135;

fn counter(weir: &Weir, name: &str) -> u64 {
    weir.counter(name)
}

#[test]
fn mtls_identity_policy_revocation_and_bad_input() {
    let dir = TempDir::new("identity");
    let (weir, tls_port) = start_with_identity(&dir, "");
    let certs = dir.0.join("certs");
    let certs_arg = certs.display().to_string();
    let created = weir.cli(&[
        "things",
        "create",
        "dev-1",
        "--type",
        "thermostat",
        "--attr",
        "site=lab",
        "--out",
        &certs_arg,
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let dev1 = Creds::of(&certs, "dev-1");

    // mosquitto_pub over mTLS, as the thing: reaches the shadow.
    let out = Command::new("mosquitto_pub")
        .args([
            "-h",
            "localhost",
            "-p",
            &tls_port.to_string(),
            "-i",
            "dev-1",
            "-q",
            "1",
        ])
        .arg("--cafile")
        .arg(&dev1.ca)
        .arg("--cert")
        .arg(&dev1.cert)
        .arg("--key")
        .arg(&dev1.key)
        .args([
            "-t",
            "dt/thermostat/dev-1/telemetry",
            "-m",
            r#"{"temperature":22.5,"humidity":41}"#,
        ])
        .output()
        .expect("mosquitto_pub");
    assert!(
        out.status.success(),
        "mosquitto_pub over mTLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = Instant::now();
    loop {
        let shadow = weir.cli(&["shadow", "get", "dev-1"]);
        if shadow.status.success() && String::from_utf8_lossy(&shadow.stdout).contains("22.5") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no shadow for dev-1:\n{}",
            weir.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Policy, MQTT 3.1.1: another device's topic → disconnected.
    let r = device(
        "publish",
        tls_port,
        &dev1,
        "dev-1",
        &["--topic", "dt/thermostat/dev-2/telemetry"],
    );
    assert_eq!(r["connack"], 0, "{r}");
    assert_eq!(
        r["closed_by_server"], true,
        "3.1.1 violation disconnects: {r}"
    );
    // MQTT 5: PUBACK 0x87 (not authorized), the connection stays.
    let r = device(
        "publish",
        tls_port,
        &dev1,
        "dev-1",
        &[
            "--v5",
            "--topic",
            "dt/thermostat/dev-2/telemetry",
            "--count",
            "2",
        ],
    );
    assert_eq!(r["acks"], serde_json::json!([135, 135]), "{r}");
    assert_eq!(r["closed_by_server"], false, "{r}");
    // Its own topic over MQTT 5 is fine.
    let r = device(
        "publish",
        tls_port,
        &dev1,
        "dev-1",
        &["--v5", "--topic", "dt/thermostat/dev-1/telemetry"],
    );
    assert_eq!(r["acks"], serde_json::json!([0]), "{r}");
    // Rules see who published: principal() is the certificate's id,
    // sourceip() the connection's address.
    let watcher = support::Mqtt::connect(weir.addr, "who-watcher");
    watcher.subscribe("echo/#");
    let r = device(
        "publish",
        tls_port,
        &dev1,
        "dev-1",
        &["--v5", "--topic", "dt/thermostat/dev-1/who"],
    );
    assert_eq!(r["acks"], serde_json::json!([0]), "{r}");
    let who = watcher.collect(Duration::from_secs(3));
    watcher.disconnect();
    assert_eq!(who.len(), 1, "{who:?}");
    let dev1_cert_id = {
        let thing: Value =
            serde_json::from_str(&weir_ok(&weir.data_dir, &["things", "get", "dev-1"]))
                .expect("json");
        thing["certificates"][0]["certificateId"].clone()
    };
    assert_eq!(who[0].0, "echo/dev-1", "{who:?}");
    assert_eq!(who[0].1["principal"], dev1_cert_id, "{who:?}");
    assert_eq!(who[0].1["ip"], "127.0.0.1", "{who:?}");
    assert_eq!(who[0].1["client"], "dev-1", "{who:?}");
    // Subscriptions: own command topic granted, everything else refused.
    let r = device(
        "subscribe",
        tls_port,
        &dev1,
        "dev-1",
        &[
            "--v5",
            "--filter",
            "cmd/thermostat/dev-1/#",
            "--filter",
            "dt/#",
            "--filter",
            "$aws/things/dev-1/shadow/update/accepted",
        ],
    );
    assert_eq!(r["suback"], serde_json::json!([1, 135, 1]), "{r}");
    let r = device("subscribe", tls_port, &dev1, "dev-1", &["--filter", "dt/#"]);
    assert_eq!(
        r["suback"],
        serde_json::json!([128]),
        "3.1.1 failure code: {r}"
    );
    assert!(counter(&weir, "policy.publish_refused") >= 3);
    assert!(counter(&weir, "policy.subscribe_refused") >= 2);

    // Client id must be the thing name.
    let r = device("connect", tls_port, &dev1, "dev-2", &[]);
    assert_eq!(r["connack"], NOT_AUTHORIZED, "{r}");
    assert_eq!(counter(&weir, "refused.client_id_mismatch"), 1);

    // A certificate from another CA: refused in the handshake.
    let other = dir.0.join("other");
    weir_ok(&other, &["ca", "init"]);
    let other_certs = dir.0.join("other-certs");
    weir_ok(
        &other,
        &[
            "things",
            "create",
            "dev-1",
            "--out",
            &other_certs.display().to_string(),
        ],
    );
    let mut foreign = Creds::of(&other_certs, "dev-1");
    foreign.ca = dev1.ca.clone();
    let r = device("connect", tls_port, &foreign, "dev-1", &[]);
    assert!(
        r.get("connack").is_none() || r["connack"] != 0,
        "foreign CA accepted: {r}"
    );

    // Expired, and valid-but-unregistered certificates from the fleet CA.
    let ca = weir_identity::FleetCa::load(&weir.data_dir.join("identity")).expect("load CA");
    let now = weir_identity::time::OffsetDateTime::now_utc();
    let day = weir_identity::time::Duration::days(1);
    let expired = ca
        .issue_with_validity("dev-1", now - day * 10, now - day)
        .expect("expired cert");
    let unregistered = ca.issue("dev-9", 30).expect("cert");
    for (name, issued) in [("expired", &expired), ("dev-9", &unregistered)] {
        std::fs::write(certs.join(format!("{name}.cert.pem")), &issued.cert_pem).expect("write");
        std::fs::write(
            certs.join(format!("{name}.key.pem")),
            issued.key_pem.as_deref().expect("key"),
        )
        .expect("write");
    }
    let r = device(
        "connect",
        tls_port,
        &Creds::of(&certs, "expired"),
        "dev-1",
        &[],
    );
    assert!(
        r.get("connack").is_none() || r["connack"] != 0,
        "expired accepted: {r}"
    );
    let r = device(
        "connect",
        tls_port,
        &Creds::of(&certs, "dev-9"),
        "dev-9",
        &[],
    );
    assert_eq!(r["connack"], NOT_AUTHORIZED, "unregistered accepted: {r}");
    assert_eq!(counter(&weir, "refused.unregistered"), 1);
    assert!(counter(&weir, "refused.tls") >= 2, "{}", weir.status());

    // A claim certificate may only provision: telemetry is refused.
    weir_ok(
        &weir.data_dir,
        &["certs", "claim", "--template", "fleet", "--out", &certs_arg],
    );
    let r = device(
        "publish",
        tls_port,
        &Creds::of(&certs, "claim"),
        "claim-1",
        &["--topic", "dt/thermostat/claim-1/telemetry"],
    );
    assert_eq!(
        r["closed_by_server"], true,
        "claim cert published telemetry: {r}"
    );

    // Revocation closes the live connection and refuses it from then on.
    let connects_before = counter(&weir, "connects");
    let holder = {
        let (port, creds) = (tls_port, Creds::of(&certs, "dev-1"));
        std::thread::spawn(move || device("hold", port, &creds, "dev-1", &["--wait", "30"]))
    };
    let start = Instant::now();
    while counter(&weir, "connects") <= connects_before {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "holder did not connect"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let cert_id = certificate_id(&weir.data_dir, "dev-1");
    let revoked: Value = serde_json::from_str(&weir_ok(
        &weir.data_dir,
        &["certs", "revoke", &cert_id[..16]],
    ))
    .expect("json");
    assert_eq!(revoked["status"], "REVOKED", "{revoked}");
    assert_eq!(revoked["connectionsClosed"], 1, "{revoked}");
    let held = holder.join().expect("holder");
    assert_eq!(held["closed_by_server"], true, "{held}");
    let r = device("connect", tls_port, &dev1, "dev-1", &[]);
    assert_eq!(r["connack"], NOT_AUTHORIZED, "revoked accepted: {r}");
    assert_eq!(counter(&weir, "refused.revoked"), 1);

    // Bounded fuzz of both listeners (a fresh thing for the TLS side).
    weir_ok(
        &weir.data_dir,
        &["things", "create", "fuzzer", "--out", &certs_arg],
    );
    let fuzz_creds = Creds::of(&certs, "fuzzer");
    let r = py(
        "fuzz.py",
        &[
            "--port".into(),
            weir.addr.port().to_string(),
            "--tls-port".into(),
            tls_port.to_string(),
            "--ca".into(),
            fuzz_creds.ca.display().to_string(),
            "--cert".into(),
            fuzz_creds.cert.display().to_string(),
            "--key".into(),
            fuzz_creds.key.display().to_string(),
            "--client-id".into(),
            "fuzzer".into(),
            "--seconds".into(),
            "6".into(),
        ],
    );
    assert!(r["cases"].as_u64().unwrap_or(0) >= 14, "{r}");
    assert!(counter(&weir, "protocol_errors") > 0);
    // Still serving everyone else, on both listeners.
    weir_ok(
        &weir.data_dir,
        &[
            "things",
            "create",
            "dev-3",
            "--type",
            "thermostat",
            "--out",
            &certs_arg,
        ],
    );
    let r = device(
        "publish",
        tls_port,
        &Creds::of(&certs, "dev-3"),
        "dev-3",
        &["--topic", "dt/thermostat/dev-3/telemetry"],
    );
    assert_eq!(r["acks"], serde_json::json!([0]), "{r}\n{}", weir.log());
    let out = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &weir.addr.port().to_string(),
            "-i",
            "plain-1",
            "-q",
            "1",
        ])
        .args([
            "-t",
            "dt/thermostat/plain-1/telemetry",
            "-m",
            r#"{"temperature":20}"#,
        ])
        .output()
        .expect("mosquitto_pub");
    assert!(out.status.success());
    weir.stop();
}

#[test]
fn persistent_sessions_keep_subscriptions_and_queue_offline_messages() {
    let dir = TempDir::new("sessions");
    let (weir, tls_port) = start_with_identity(&dir, "[broker]\nsession_max_messages = 4\n");
    let certs = dir.0.join("certs");
    weir_ok(
        &weir.data_dir,
        &[
            "things",
            "create",
            "dev-s",
            "--type",
            "thermostat",
            "--out",
            &certs.display().to_string(),
        ],
    );
    let creds = Creds::of(&certs, "dev-s");
    let backend = |n: usize, from: usize| {
        for i in from..from + n {
            let out = Command::new("mosquitto_pub")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &weir.addr.port().to_string(),
                    "-i",
                    "backend",
                    "-q",
                    "1",
                ])
                .args([
                    "-t",
                    "cmd/thermostat/dev-s/setpoint",
                    "-m",
                    &format!("{{\"seq\":{i}}}"),
                ])
                .output()
                .expect("mosquitto_pub");
            assert!(out.status.success());
        }
    };
    let seqs = |r: &Value| -> Vec<u64> {
        r["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|m| {
                        serde_json::from_str::<Value>(m["payload"].as_str()?).ok()?["seq"].as_u64()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };

    // MQTT 3.1.1, clean session off.
    let r = device(
        "session",
        tls_port,
        &creds,
        "dev-s",
        &["--filter", "cmd/thermostat/dev-s/#"],
    );
    assert_eq!(r["suback"], serde_json::json!([1]), "{r}");
    backend(3, 0);
    let r = device("receive", tls_port, &creds, "dev-s", &["--wait", "2"]);
    assert_eq!(r["session_present"], true, "{r}");
    assert_eq!(seqs(&r), vec![0, 1, 2], "{r}");
    // The limit: 6 published while away, the 4 newest kept, 2 counted.
    backend(6, 10);
    let r = device("receive", tls_port, &creds, "dev-s", &["--wait", "2"]);
    assert_eq!(seqs(&r), vec![12, 13, 14, 15], "{r}");
    assert_eq!(counter(&weir, "sessions.messages_dropped"), 2);
    // Subscriptions survive across reconnects without resubscribing.
    backend(1, 20);
    let r = device("receive", tls_port, &creds, "dev-s", &["--wait", "2"]);
    assert_eq!(seqs(&r), vec![20], "{r}");

    // MQTT 5 session expiry: a 1 s session is gone after 2.5 s.
    let r = device(
        "session",
        tls_port,
        &creds,
        "dev-s",
        &[
            "--v5",
            "--expiry",
            "1",
            "--filter",
            "cmd/thermostat/dev-s/#",
        ],
    );
    assert_eq!(r["suback"], serde_json::json!([1]), "{r}");
    backend(1, 30);
    std::thread::sleep(Duration::from_millis(2500));
    let r = device(
        "receive",
        tls_port,
        &creds,
        "dev-s",
        &["--v5", "--wait", "1"],
    );
    assert_eq!(r["session_present"], false, "{r}");
    assert!(seqs(&r).is_empty(), "{r}");
    assert!(counter(&weir, "sessions.expired") >= 1);
    // …and a 300 s one delivers.
    let r = device(
        "session",
        tls_port,
        &creds,
        "dev-s",
        &[
            "--v5",
            "--expiry",
            "300",
            "--filter",
            "cmd/thermostat/dev-s/#",
        ],
    );
    assert_eq!(r["suback"], serde_json::json!([1]), "{r}");
    backend(2, 40);
    let r = device(
        "receive",
        tls_port,
        &creds,
        "dev-s",
        &["--v5", "--expiry", "300", "--wait", "2"],
    );
    assert_eq!(r["session_present"], true, "{r}");
    assert_eq!(seqs(&r), vec![40, 41], "{r}");
    weir.stop();
}

const TEMPLATE: &str = r#"{
  "Parameters": {
    "SerialNumber": {"Type": "String"},
    "Site": {"Type": "String", "Default": "lab"},
    "AWS::IoT::Certificate::Id": {"Type": "String"}
  },
  "Resources": {
    "thing": {
      "Type": "AWS::IoT::Thing",
      "Properties": {
        "ThingName": {"Fn::Join": ["", ["thermo-", {"Ref": "SerialNumber"}]]},
        "ThingTypeName": "thermostat",
        "AttributePayload": {"serialNumber": {"Ref": "SerialNumber"}, "site": {"Ref": "Site"}},
        "ThingGroups": ["fleet-v1"]
      }
    },
    "certificate": {
      "Type": "AWS::IoT::Certificate",
      "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}
    },
    "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "ThermostatPolicy"}}
  },
  "DeviceConfiguration": {"telemetryInterval": "10s", "site": {"Ref": "Site"}}
}"#;

#[test]
fn fleet_provisioning_by_claim_with_the_aws_device_sdk() {
    let dir = TempDir::new("provisioning");
    let (weir, tls_port) = start_with_identity(&dir, "");
    std::fs::write(dir.0.join("provisioning/fleet.json"), TEMPLATE).expect("template");
    let claim_dir = dir.0.join("claim");
    weir_ok(
        &weir.data_dir,
        &[
            "certs",
            "claim",
            "--template",
            "fleet",
            "--out",
            &claim_dir.display().to_string(),
        ],
    );

    // An operator watches registry events on the plain listener.
    let events = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &weir.addr.port().to_string(),
            "-i",
            "ops",
            "-q",
            "1",
        ])
        .args(["-t", "$aws/events/thing/+/created", "-C", "2", "-W", "120"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    std::thread::sleep(Duration::from_millis(500));

    let base = |serial: &str, out: &Path| -> Vec<String> {
        vec![
            "--port".into(),
            tls_port.to_string(),
            "--ca".into(),
            claim_dir.join("ca.pem").display().to_string(),
            "--claim-cert".into(),
            claim_dir.join("claim.cert.pem").display().to_string(),
            "--claim-key".into(),
            claim_dir.join("claim.key.pem").display().to_string(),
            "--template".into(),
            "fleet".into(),
            "--param".into(),
            format!("SerialNumber={serial}"),
            "--out".into(),
            out.display().to_string(),
        ]
    };
    // CreateKeysAndCertificate + RegisterThing, then telemetry as the thing.
    let r = py("fleet_provision.py", &base("SN1001", &dir.0.join("dev-a")));
    assert_eq!(r["thingName"], "thermo-SN1001", "{r}\n{}", weir.log());
    assert_eq!(r["published"], 5, "{r}");
    assert_eq!(r["deviceConfiguration"]["site"], "lab", "{r}");

    // CreateCertificateFromCsr: the device keeps its key.
    let key = dir.0.join("csr.key.pem");
    let csr = dir.0.join("csr.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .args(["-subj", "/CN=csr-device"])
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut args = base("SN1002", &dir.0.join("dev-b"));
    args.extend([
        "--csr".into(),
        csr.display().to_string(),
        "--key".into(),
        key.display().to_string(),
    ]);
    let r = py("fleet_provision.py", &args);
    assert_eq!(r["thingName"], "thermo-SN1002", "{r}\n{}", weir.log());
    assert_eq!(r["published"], 5, "{r}");

    // The registry has both things, typed and attributed, certificates ACTIVE.
    let thing: Value = serde_json::from_str(&weir_ok(
        &weir.data_dir,
        &["things", "get", "thermo-SN1001"],
    ))
    .expect("json");
    assert_eq!(thing["thing"]["thing_type"], "thermostat", "{thing}");
    assert_eq!(
        thing["thing"]["attributes"]["serialNumber"], "SN1001",
        "{thing}"
    );
    assert_eq!(
        thing["thing"]["groups"],
        serde_json::json!(["fleet-v1"]),
        "{thing}"
    );
    assert_eq!(thing["certificates"][0]["status"], "ACTIVE", "{thing}");
    // Their telemetry went through the pipeline.
    for name in ["thermo-SN1001", "thermo-SN1002"] {
        let start = Instant::now();
        loop {
            let s = weir.cli(&["shadow", "get", name]);
            if s.status.success() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no shadow for {name}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Lifecycle events recorded both provisionings.
    let events = events.wait_with_output().expect("mosquitto_sub");
    let text = String::from_utf8_lossy(&events.stdout);
    let docs: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(docs.len(), 2, "{text}");
    assert_eq!(docs[0]["operation"], "CREATED");
    assert_eq!(docs[0]["thingName"], "thermo-SN1001");
    assert_eq!(docs[0]["provisioning"]["template"], "fleet");
    assert_eq!(counter(&weir, "provisioning.requests"), 4);

    // A template the claim may not use, and a forged ownership token.
    let mut args = base("SN1003", &dir.0.join("dev-c"));
    args[9] = "other".into();
    let r = py("fleet_provision.py", &args);
    assert_eq!(r["error"], "register", "{r}");
    assert!(
        r["detail"].as_str().unwrap_or_default().contains("403"),
        "{r}"
    );
    weir.stop();
}

/// AWS's Device Shadow service through the AWS IoT Device SDK v2's own
/// shadow client (the request-response `IotShadowClientV2` of AWS's
/// current shadow samples), as a thing over mTLS, on the SDK's MQTT 3.1.1
/// connection and on its MQTT 5 client: get, update, delta, version
/// conflict, named shadows and delete, each answered as AWS does.
#[test]
fn device_shadow_service_with_the_aws_device_sdk() {
    let dir = TempDir::new("shadow-sdk");
    let (weir, tls_port) = start_with_identity(&dir, "");
    let certs = dir.0.join("certs");
    let certs_arg = certs.display().to_string();
    for (thing, mqtt5) in [("lamp-7", false), ("lamp-8", true)] {
        let created = weir.cli(&[
            "things", "create", thing, "--type", "lamp", "--out", &certs_arg,
        ]);
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let args = Creds::of(&certs, thing).sdk_args(tls_port, thing, mqtt5);
        let r = py("shadow_device.py", &args);
        let log = weir.log();
        let desired = serde_json::json!({"color": "red", "brightness": 70});
        assert_eq!(r["get_before"]["code"], 404, "{thing}: {r}\n{log}");
        assert_eq!(r["update_desired"]["version"], 1, "{thing}: {r}");
        assert_eq!(r["update_desired"]["desired"], desired, "{thing}: {r}");
        assert_eq!(r["delta"]["version"], 1, "{thing}: {r}");
        assert_eq!(r["delta"]["state"], desired, "{thing}: {r}");
        assert_eq!(r["update_reported"]["version"], 2, "{thing}: {r}");
        assert_eq!(r["get"]["version"], 2, "{thing}: {r}");
        assert_eq!(r["get"]["desired"], desired, "{thing}: {r}");
        assert_eq!(r["get"]["reported"], desired, "{thing}: {r}");
        assert!(
            r["get"]["delta"].is_null(),
            "in sync: no delta; {thing}: {r}"
        );
        assert_eq!(r["stale_version"]["code"], 409, "{thing}: {r}");
        assert_eq!(
            r["stale_version"]["message"], "Version conflict",
            "{thing}: {r}"
        );
        assert_eq!(r["named_update_version"], 1, "{thing}: {r}");
        assert_eq!(r["named_get"]["desired"]["interval"], 30, "{thing}: {r}");
        assert_eq!(r["delete_version"], 2, "{thing}: {r}");
        assert_eq!(r["get_after_delete"]["code"], 404, "{thing}: {r}");
        // The named shadow is kept under `<thing>/<shadow>` (stored at the
        // next checkpoint).
        let key = format!("{thing}/config");
        let start = Instant::now();
        loop {
            let named = weir.cli(&["shadow", "get", &key]);
            let doc: Value = serde_json::from_slice(&named.stdout).unwrap_or_default();
            if doc["state"]["desired"]["interval"] == 30 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no named shadow {key}: {}\n{}",
                String::from_utf8_lossy(&named.stderr),
                weir.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    weir.stop();
}
