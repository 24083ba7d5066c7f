//! Plugins that loop, panic, eat memory or reach for what they were not
//! granted: each costs only its own batch, which goes to the rule's error
//! action; the instance is replaced, the failure counted, a plugin that
//! keeps failing is quarantined, and every other rule keeps flowing.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::{Mqtt, TempDir, Weir};

const PLUGINS: &str = r#"
[looper]
component = "builtin:bad-loop"

[panicker]
component = "builtin:bad-panic"

[hog]
component = "builtin:bad-memory"

[echo]
component = "builtin:echo"
grants = { publish = ["echo/+"] }

[errors]
component = "builtin:alerts"
settings = { topic_prefix = "errors", journal = "errors" }
grants = { publish = ["errors/+"], journal = ["errors"] }
"#;

fn rule(filter: &str, plugin: &str) -> String {
    format!(
        "sql = \"SELECT * FROM '{filter}'\"\n\n[[actions]]\nplugin = \"{plugin}\"\ndevice = \"${{topic(2)}}\"\n\n[error_action]\nplugin = \"errors\"\ndevice = \"${{topic(2)}}\"\n"
    )
}

fn rules_dir(dir: &TempDir) -> std::path::PathBuf {
    let rules = dir.0.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("plugins.toml"), PLUGINS).unwrap();
    std::fs::write(rules.join("loop.toml"), rule("loop/+", "looper")).unwrap();
    std::fs::write(rules.join("panic.toml"), rule("panic/+", "panicker")).unwrap();
    std::fs::write(rules.join("memory.toml"), rule("memory/+", "hog")).unwrap();
    std::fs::write(rules.join("ok.toml"), rule("ok/+", "echo")).unwrap();
    rules
}

/// Publish one message and return the error document (or echo) it causes.
fn one(weir: &Weir, client: &Mqtt, watcher: &Mqtt, topic: &str) -> Vec<(String, Value)> {
    client.publish(topic, r#"{"v":1}"#);
    let got = watcher.collect(Duration::from_secs(3));
    assert!(
        !got.is_empty(),
        "nothing came back for {topic}; log:\n{}",
        weir.log()
    );
    got
}

fn error_message(doc: &Value) -> String {
    doc["failures"][0]["errorMessage"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn misbehaving_plugins_cost_only_their_own_batch() {
    let dir = TempDir::new("sandbox");
    let rules = rules_dir(&dir);
    let weir = Weir::start_with_rules(&dir.0, &rules, "[engine]\nworkers = 1\n[plugins]\ncall_timeout_ms = 50\nmax_failures = 3\nmemory_limit_mib = 32\n");
    let watcher = Mqtt::connect(weir.addr, "watcher");
    watcher.subscribe("errors/#");
    watcher.subscribe("echo/#");
    let client = Mqtt::connect(weir.addr, "dev");

    // Healthy first.
    let got = one(&weir, &client, &watcher, "ok/d1");
    assert_eq!(got[0].0, "echo/d1");

    // An infinite loop is interrupted at its deadline.
    let got = one(&weir, &client, &watcher, "loop/d1");
    assert_eq!(got[0].0, "errors/d1", "{got:?}");
    assert_eq!(got[0].1["ruleName"], "loop");
    assert_eq!(got[0].1["failures"][0]["failedAction"], "looper");
    assert!(error_message(&got[0].1).contains("time limit"), "{got:?}");

    // A panic traps.
    let got = one(&weir, &client, &watcher, "panic/d2");
    assert_eq!(got[0].0, "errors/d2");
    assert!(
        error_message(&got[0].1).contains("panicker failed"),
        "{got:?}"
    );

    // A memory bomb hits the cap.
    let got = one(&weir, &client, &watcher, "memory/d3");
    assert_eq!(got[0].0, "errors/d3");
    assert!(error_message(&got[0].1).contains("hog failed"), "{got:?}");

    // Other rules kept flowing throughout.
    let got = one(&weir, &client, &watcher, "ok/d4");
    assert_eq!(got[0].0, "echo/d4");

    // Three failures within the window quarantine the looper; the next
    // message is refused without calling it.
    one(&weir, &client, &watcher, "loop/d1");
    one(&weir, &client, &watcher, "loop/d1");
    let got = one(&weir, &client, &watcher, "loop/d1");
    assert!(error_message(&got[0].1).contains("quarantined"), "{got:?}");
    let status = weir.status();
    assert!(
        status["status"]["plugin.looper"]
            .as_str()
            .unwrap_or("")
            .starts_with("quarantined"),
        "{status}"
    );
    assert_eq!(status["counters"]["plugin.looper.failures"], 3, "{status}");
    assert_eq!(
        status["counters"]["plugin.panicker.failures"], 1,
        "{status}"
    );
    assert_eq!(status["counters"]["plugin.hog.failures"], 1, "{status}");

    // And still the healthy rule flows.
    let got = one(&weir, &client, &watcher, "ok/d5");
    assert_eq!(got[0].0, "echo/d5");
    let journal = std::fs::read_to_string(weir.data_dir.join("errors.jsonl")).unwrap_or_default();
    client.disconnect();
    watcher.disconnect();
    weir.stop();
    let journal_after = std::fs::read_to_string(dir.0.join("data/errors.jsonl")).unwrap_or(journal);
    assert_eq!(journal_after.lines().count(), 6, "{journal_after}");
}

#[test]
fn an_ungranted_import_is_refused_at_load_naming_the_import() {
    let dir = TempDir::new("ungranted");
    let rules = dir.0.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("plugins.toml"),
        "[bad]\ncomponent = \"builtin:bad-import\"\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("r.toml"),
        "sql = \"SELECT * FROM 'x/+'\"\n[[actions]]\nplugin = \"bad\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(support::weir_bin())
        .args(["run", "--listen", "127.0.0.1:0", "--rules"])
        .arg(&rules)
        .arg("--data-dir")
        .arg(dir.0.join("data"))
        .output()
        .expect("run weir");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plugin bad: imports"), "{stderr}");
    assert!(stderr.contains("grants"), "{stderr}");

    // `weir plugin inspect` says the same before anything runs.
    let out = std::process::Command::new(support::weir_bin())
        .args(["plugin", "inspect", "builtin:bad-import"])
        .output()
        .expect("inspect");
    let report: Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    assert_eq!(report["world"], "batch-processor-plugin");
    assert_eq!(report["wit_version"], "0.1.3");
    let imports = report["imports"].as_array().unwrap();
    assert!(
        imports.iter().any(|i| i["name"]
            .as_str()
            .unwrap_or("")
            .starts_with("weir:plugin/publish")
            && i["availability"] == "needs grants.publish"),
        "{report}"
    );
}
