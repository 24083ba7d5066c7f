//! Hot reload under load: while devices publish steadily, the sink plugin's
//! component is replaced and the rule is edited, ten times in all. Every
//! reading must reach the sink exactly once, each change must take effect,
//! and a broken change must leave the last good version serving.

mod support;

use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Mqtt, TempDir, Weir};

const PLUGINS: &str = r#"
[sink]
component = "sink.wasm"
settings = { topic_prefix = "sink", journal = "readings" }
grants = { publish = ["sink/+"], journal = ["readings"] }
"#;

fn rule(variant: usize) -> String {
    // Each variant matches every reading; only the text differs.
    format!(
        "description = \"variant {variant}\"\nsql = \"SELECT * FROM 'load/+' WHERE seq > -{}\"\n\n[[actions]]\nplugin = \"sink\"\ndevice = \"${{topic(2)}}\"\n",
        variant + 1
    )
}

/// The shipped `alerts` component with a custom section that makes its
/// bytes (and so its digest) differ per version.
fn component(base: &[u8], version: usize) -> Vec<u8> {
    let name = b"weir-test-version";
    let payload = version.to_string().into_bytes();
    let body_len = 1 + name.len() + payload.len();
    let mut out = base.to_vec();
    out.push(0); // custom section id
    leb128(body_len, &mut out);
    leb128(name.len(), &mut out);
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

fn leb128(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn generation(weir: &Weir) -> u64 {
    weir.status()["generation"].as_u64().unwrap_or(0)
}

#[test]
fn replacing_plugins_and_rules_under_load_loses_nothing() {
    let dir = TempDir::new("reload");
    let rules = dir.0.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let base = dir.0.join("alerts.wasm");
    let out = std::process::Command::new(support::weir_bin())
        .args(["plugin", "extract", "alerts", "--out"])
        .arg(&base)
        .status()
        .unwrap();
    assert!(out.success());
    let base = std::fs::read(&base).unwrap();
    std::fs::write(rules.join("sink.wasm"), component(&base, 0)).unwrap();
    std::fs::write(rules.join("plugins.toml"), PLUGINS).unwrap();
    std::fs::write(rules.join("load.toml"), rule(0)).unwrap();
    // The test is about reloads, not deadlines: give calls room on a loaded CI machine.
    let weir = Weir::start_with_rules(&dir.0, &rules, "[plugins]\ncall_timeout_ms = 2000\n");

    // Steady load: 4 devices, 2,500 msgs/s each, QoS 1, for as long as the changes take.
    let stop = Arc::new(AtomicBool::new(false));
    let mut publishers = Vec::new();
    for d in 0..4 {
        let (addr, stop) = (weir.addr, stop.clone());
        publishers.push(std::thread::spawn(move || {
            let client = Mqtt::connect(addr, &format!("load-{d}"));
            let start = Instant::now();
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = start + Duration::from_secs_f64(seq as f64 / 2500.0);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                client.publish(
                    &format!("load/dev{d}"),
                    format!("{{\"seq\":{seq},\"device\":\"dev{d}\"}}"),
                );
                seq += 1;
            }
            std::thread::sleep(Duration::from_millis(300));
            client.disconnect();
            seq
        }));
    }
    std::thread::sleep(Duration::from_millis(500));

    // Ten changes: component swaps and rule edits, alternating.
    let mut swap_ms = Vec::new();
    for change in 1..=10 {
        let before = generation(&weir);
        let written = Instant::now();
        if change % 2 == 1 {
            write_atomically(&rules.join("sink.wasm"), &component(&base, change));
        } else {
            write_atomically(&rules.join("load.toml"), rule(change).as_bytes());
        }
        while generation(&weir) <= before {
            assert!(
                written.elapsed() < Duration::from_secs(30),
                "change {change} never took effect; log:\n{}",
                weir.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        swap_ms.push(written.elapsed().as_millis() as u64);
        std::thread::sleep(Duration::from_millis(300));
    }

    // A broken rule leaves the last good generation serving, and says why.
    let good = generation(&weir);
    write_atomically(&rules.join("load.toml"), b"sql = \"SELECT * FROM\"\n");
    let start = Instant::now();
    while weir.counter("reload_failures") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "broken rule not reported"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = weir.status();
    assert_eq!(status["generation"].as_u64(), Some(good), "{status}");
    assert!(
        status["status"]["reload"]
            .as_str()
            .unwrap_or("")
            .contains("still serving"),
        "{status}"
    );
    std::thread::sleep(Duration::from_millis(300));

    stop.store(true, Ordering::Relaxed);
    let sent: Vec<u64> = publishers.into_iter().map(|p| p.join().unwrap()).collect();
    let total: u64 = sent.iter().sum();

    // Every reading in the sink's journal exactly once.
    let journal = weir.data_dir.join("readings.jsonl");
    let start = Instant::now();
    let mut seen: HashMap<(String, u64), u32> = HashMap::new();
    loop {
        seen.clear();
        for line in std::fs::read_to_string(&journal)
            .unwrap_or_default()
            .lines()
        {
            let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            if let (Some(d), Some(s)) = (v["device"].as_str(), v["seq"].as_u64()) {
                *seen.entry((d.to_string(), s)).or_default() += 1;
            }
        }
        if seen.len() as u64 >= total || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "{} readings delivered more than once",
        duplicates.len()
    );
    let mut missing = Vec::new();
    for (d, n) in sent.iter().enumerate() {
        for s in 0..*n {
            if !seen.contains_key(&(format!("dev{d}"), s)) {
                missing.push(format!("dev{d}/{s}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {total} readings never reached the sink (sent per device {sent:?}): {:?}; status {}",
        missing.len(),
        &missing[..missing.len().min(20)],
        weir.status()
    );
    let elapsed: u64 = swap_ms.iter().sum();
    eprintln!(
        "reload under load: {total} readings, 10 changes, swap after write (ms): {swap_ms:?}, mean {} ms",
        elapsed / swap_ms.len() as u64
    );
    weir.stop();
}
