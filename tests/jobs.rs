//! AWS IoT Jobs end to end: jobs made with `weir jobs` (live and offline),
//! devices running them through the Jobs MQTT API (AWS's own Device SDK
//! over mTLS, and a plain MQTT client), the notify streams, cancelation,
//! and the job events reaching rules.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::fleet::{py, start_with_identity, weir_ok, Creds};
use support::{weir_bin, Mqtt, TempDir, Weir};

#[test]
fn jobs_with_the_aws_device_sdk() {
    let dir = TempDir::new("jobs-sdk");
    let (weir, tls_port) = start_with_identity(&dir, "");
    let certs = dir.0.join("certs");
    let certs_arg = certs.display().to_string();
    let data = weir.data_dir.clone();
    let doc1 = json!({"operation": "firmware-update", "version": "2.1", "url": "https://fw.example.com/2.1.bin"});
    let doc2 = json!({"operation": "reboot"});
    for (thing, mqtt5) in [("pump-3", false), ("pump-4", true)] {
        weir_ok(
            &data,
            &[
                "things", "create", thing, "--type", "pump", "--out", &certs_arg,
            ],
        );
        let (first, second) = (format!("{thing}-fw"), format!("{thing}-reboot"));
        weir_ok(
            &data,
            &[
                "jobs",
                "create",
                &first,
                "--targets",
                thing,
                "--document-json",
                &doc1.to_string(),
                "--description",
                "firmware 2.1",
            ],
        );
        // What the device runs, as the operator would, while it listens.
        let create_second: Vec<String> = vec![
            weir_bin().display().to_string(),
            "jobs".into(),
            "create".into(),
            second.clone(),
            "--targets".into(),
            thing.into(),
            "--document-json".into(),
            doc2.to_string(),
            "--data-dir".into(),
            data.display().to_string(),
        ];
        let mut args = Creds::of(&certs, thing).sdk_args(tls_port, thing, mqtt5);
        args.extend([
            "--first".into(),
            first.clone(),
            "--second".into(),
            second.clone(),
            "--create-cmd".into(),
            serde_json::to_string(&create_second).expect("argv"),
        ]);
        let r = py("jobs_device.py", &args);
        let ctx = || format!("{thing}: {r}\n{}", weir.log());
        assert_eq!(
            r["pending_before"],
            json!({"queued": [first], "in_progress": []}),
            "{}",
            ctx()
        );
        let started = &r["started"];
        assert_eq!(started["job_id"], first.as_str(), "{}", ctx());
        assert_eq!(started["status"], "IN_PROGRESS", "{}", ctx());
        assert_eq!(started["version"], 2, "{}", ctx());
        assert_eq!(started["document"], doc1, "{}", ctx());
        assert_eq!(
            started["status_details"],
            json!({"step": "downloading"}),
            "{}",
            ctx()
        );
        assert_eq!(started["started"], true, "{}", ctx());
        assert_eq!(r["stale"]["code"], "VersionMismatch", "{}", ctx());
        assert_eq!(r["stale"]["state"]["version"], 2, "{}", ctx());
        assert_eq!(r["succeeded"]["status"], "SUCCEEDED", "{}", ctx());
        assert_eq!(r["succeeded"]["version"], 3, "{}", ctx());
        assert_eq!(
            r["succeeded"]["status_details"],
            json!({"step": "done"}),
            "{}",
            ctx()
        );
        assert!(r["next_after_done"].is_null(), "nothing next: {}", ctx());
        assert_eq!(r["changed_after_done"], json!({}), "{}", ctx());
        assert_eq!(r["notified_next"]["job_id"], second.as_str(), "{}", ctx());
        assert_eq!(r["notified_next"]["status"], "QUEUED", "{}", ctx());
        assert_eq!(r["notified_next"]["document"], doc2, "{}", ctx());
        assert_eq!(r["notified"], json!({"QUEUED": [second]}), "{}", ctx());
        assert_eq!(
            r["described"],
            json!({"status": "QUEUED", "document": doc2}),
            "{}",
            ctx()
        );
        assert_eq!(r["failed"]["status"], "FAILED", "{}", ctx());
        assert_eq!(
            r["failed"]["status_details"],
            json!({"reason": "checksum mismatch"}),
            "{}",
            ctx()
        );
        assert_eq!(r["failed"]["document"], doc2, "{}", ctx());
        assert_eq!(
            r["after_terminal"]["code"],
            "InvalidStateTransition",
            "{}",
            ctx()
        );
        assert_eq!(
            r["after_terminal"]["state"]["status"],
            "FAILED",
            "{}",
            ctx()
        );
        assert_eq!(r["missing"]["code"], "ResourceNotFound", "{}", ctx());
        assert_eq!(
            r["pending_after"],
            json!({"queued": [], "in_progress": []}),
            "{}",
            ctx()
        );

        // The operator sees both jobs done.
        let described: Value =
            serde_json::from_str(&weir_ok(&data, &["jobs", "describe", &first])).expect("json");
        assert_eq!(described["status"], "COMPLETED", "{described}");
        assert_eq!(described["description"], "firmware 2.1", "{described}");
        assert_eq!(
            described["jobProcessDetails"]["numberOfSucceededThings"], 1,
            "{described}"
        );
        let described: Value =
            serde_json::from_str(&weir_ok(&data, &["jobs", "describe", &second])).expect("json");
        assert_eq!(described["status"], "COMPLETED", "{described}");
        assert_eq!(
            described["jobProcessDetails"]["numberOfFailedThings"], 1,
            "{described}"
        );
        let execs: Value =
            serde_json::from_str(&weir_ok(&data, &["jobs", "executions", "--thing", thing]))
                .expect("json");
        assert_eq!(execs[0]["status"], "SUCCEEDED", "{execs}");
        assert_eq!(execs[1]["status"], "FAILED", "{execs}");
        assert_eq!(
            execs[1]["statusDetails"]["reason"], "checksum mismatch",
            "{execs}"
        );
    }
    // With a registry, targets must be things in it.
    let unknown = weir.cli(&[
        "jobs",
        "create",
        "j-x",
        "--targets",
        "no-such-thing",
        "--document-json",
        "{}",
    ]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("no thing \"no-such-thing\" in the registry"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    assert!(weir.counter("jobs.requests") >= 2 * 10, "{}", weir.status());
    assert!(weir.counter("jobs.rejected") >= 2 * 3, "{}", weir.status());
    weir.stop();
}

/// Wait for the first message on `topic` (others are kept for later calls).
fn expect(device: &Mqtt, seen: &mut Vec<(String, Value)>, topic: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(i) = seen.iter().position(|(t, _)| t == topic) {
            return seen.remove(i).1;
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("nothing on {topic}; got {seen:?}"));
        seen.extend(device.collect(left.min(Duration::from_millis(200))));
    }
}

#[test]
fn jobs_over_plain_mqtt_reach_devices_and_rules() {
    let dir = TempDir::new("jobs-mqtt");
    let data = dir.0.join("data");
    // Made before any instance runs: stored, and found when the device asks.
    weir_ok(
        &data,
        &[
            "jobs",
            "create",
            "j-1",
            "--targets",
            "valve-1,valve-2",
            "--document-json",
            r#"{"operation":"calibrate"}"#,
        ],
    );
    let listed: Value = serde_json::from_str(&weir_ok(&data, &["jobs", "list"])).expect("json");
    assert_eq!(listed[0]["jobId"], "j-1", "{listed}");
    assert_eq!(listed[0]["targets"], 2, "{listed}");

    let rules = support::echo_rules(&dir.0, true);
    std::fs::write(
        rules.join("job-events.toml"),
        "sql = \"SELECT jobId, status, thingName FROM '$aws/events/jobExecution/+/+'\"\n[[actions]]\nplugin = \"echo\"\ndevice = \"${topic(4)}-${topic(5)}\"\n",
    )
    .expect("rule");
    std::fs::write(
        rules.join("job-done.toml"),
        "sql = \"SELECT jobId, status, jobProcessDetails FROM '$aws/events/job/+/+'\"\n[[actions]]\nplugin = \"echo\"\ndevice = \"job-${topic(4)}-${topic(5)}\"\n",
    )
    .expect("rule");
    let weir = Weir::start_with_rules(&dir.0, &rules, "");
    let watcher = Mqtt::connect(weir.addr, "watcher");
    watcher.subscribe("echo/#");
    let device = Mqtt::connect(weir.addr, "valve-1");
    device.subscribe("$aws/things/valve-1/jobs/#");
    let mut seen = Vec::new();

    device.publish(
        "$aws/things/valve-1/jobs/start-next",
        r#"{"clientToken":"s1"}"#,
    );
    let started = expect(
        &device,
        &mut seen,
        "$aws/things/valve-1/jobs/start-next/accepted",
    );
    assert_eq!(started["clientToken"], "s1", "{started}");
    assert_eq!(started["execution"]["jobId"], "j-1", "{started}");
    assert_eq!(started["execution"]["status"], "IN_PROGRESS", "{started}");
    assert_eq!(
        started["execution"]["jobDocument"]["operation"], "calibrate",
        "{started}"
    );
    let now_s = support::now_ms() / 1000;
    let ts = started["timestamp"].as_i64().expect("timestamp");
    assert!((now_s - ts).abs() < 60, "epoch seconds, as AWS's: {ts}");

    // A job made live reaches the device at once: its pending list grew
    // (notify), its next job is still the one in progress (no notify-next).
    weir_ok(
        &weir.data_dir,
        &[
            "jobs",
            "create",
            "j-2",
            "--targets",
            "valve-1",
            "--document",
            &{
                let p = dir.0.join("j2.json");
                std::fs::write(&p, r#"{"operation":"set-interval","seconds":30}"#).expect("doc");
                p.display().to_string()
            },
        ],
    );
    let notify = expect(&device, &mut seen, "$aws/things/valve-1/jobs/notify");
    assert_eq!(notify["jobs"]["QUEUED"][0]["jobId"], "j-2", "{notify}");
    assert_eq!(notify["jobs"]["IN_PROGRESS"][0]["jobId"], "j-1", "{notify}");

    device.publish("$aws/things/valve-1/jobs/j-1/update", "{not json");
    let bad = expect(
        &device,
        &mut seen,
        "$aws/things/valve-1/jobs/j-1/update/rejected",
    );
    assert_eq!(bad["code"], "InvalidJson", "{bad}");

    device.publish(
        "$aws/things/valve-1/jobs/j-1/update",
        r#"{"status":"SUCCEEDED","statusDetails":{"offset":"0.3"},"expectedVersion":2}"#,
    );
    expect(
        &device,
        &mut seen,
        "$aws/things/valve-1/jobs/j-1/update/accepted",
    );
    let next = expect(&device, &mut seen, "$aws/things/valve-1/jobs/notify-next");
    assert_eq!(next["execution"]["jobId"], "j-2", "{next}");
    assert_eq!(next["execution"]["jobDocument"]["seconds"], 30, "{next}");

    // The rules see the execution event.
    let mut echoed = Vec::new();
    let event = expect(&watcher, &mut echoed, "echo/j-1-succeeded");
    assert_eq!(event["status"], "SUCCEEDED", "{event}");
    assert_eq!(event["thingName"], "valve-1", "{event}");

    // valve-2 never ran j-1: canceling it completes nothing but tells
    // valve-1 its queued j-2 is gone when j-2 is canceled.
    let canceled: Value =
        serde_json::from_str(&weir_ok(&weir.data_dir, &["jobs", "cancel", "j-2"])).expect("json");
    assert_eq!(canceled["executionsCanceled"], 1, "{canceled}");
    let next = expect(&device, &mut seen, "$aws/things/valve-1/jobs/notify-next");
    assert!(next.get("execution").is_none(), "nothing next: {next}");
    let event = expect(&watcher, &mut echoed, "echo/j-2-canceled");
    assert_eq!(event["status"], "CANCELED", "{event}");
    let event = expect(&watcher, &mut echoed, "echo/job-j-2-canceled");
    assert_eq!(
        event["jobProcessDetails"]["numberOfCanceledThings"], 1,
        "{event}"
    );

    device.publish(
        "$aws/things/valve-2/jobs/j-1/update",
        r#"{"status":"REJECTED"}"#,
    );
    expect(
        &device,
        &mut seen,
        "$aws/things/valve-2/jobs/j-1/update/accepted",
    );
    let event = expect(&watcher, &mut echoed, "echo/job-j-1-completed");
    assert_eq!(event["status"], "COMPLETED", "{event}");
    assert_eq!(
        event["jobProcessDetails"]["numberOfSucceededThings"], 1,
        "{event}"
    );
    assert_eq!(
        event["jobProcessDetails"]["numberOfRejectedThings"], 1,
        "{event}"
    );

    // Jobs state survives a restart.
    device.disconnect();
    watcher.disconnect();
    weir.stop();
    let execs: Value =
        serde_json::from_str(&weir_ok(&data, &["jobs", "executions", "j-1"])).expect("json");
    assert_eq!(execs[0]["status"], "SUCCEEDED", "{execs}");
    assert_eq!(execs[0]["statusDetails"]["offset"], "0.3", "{execs}");
    assert_eq!(execs[1]["status"], "REJECTED", "{execs}");
    let bad = std::process::Command::new(weir_bin())
        .args([
            "jobs",
            "create",
            "j-3",
            "--targets",
            "valve-1",
            "--document-json",
            "[1]",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .expect("weir");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must be a JSON object"));
}
