//! A reduced synthetic-fleet evaluation (`weir eval synthetic`): spike and
//! ramp detection by the shipped pipeline must stay above modest floors,
//! computed from the known ground truth (no timing thresholds).

mod support;

use serde_json::Value;
use std::process::Command;
use support::weir_bin;

#[test]
fn synthetic_fleet_recall_and_precision() {
    let out = Command::new(weir_bin())
        .args([
            "eval",
            "synthetic",
            "--devices",
            "50",
            "--hours",
            "2",
            "--connections",
            "4",
            "--json",
        ])
        .env("WEIR_LOG", "warn")
        .output()
        .expect("run weir eval");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("a JSON report line");
    let spikes = &report["spikes"];
    let trends = &report["trends"];
    assert_eq!(spikes["events"], 100, "{report}");
    assert_eq!(trends["events"], 25, "{report}");
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    assert!(f(spikes, "recall") >= 0.9, "spike recall: {report}");
    assert!(f(spikes, "precision") >= 0.7, "spike precision: {report}");
    assert!(f(trends, "recall") >= 0.8, "trend recall: {report}");
    assert!(f(trends, "precision") >= 0.75, "trend precision: {report}");
    assert_eq!(report["plugin_failures"], 0, "{report}");
}
