//! The seed pipeline's plugins alone: what zscore and shadow cost per
//! reading through the real plugin host, on readings shaped like the ones
//! `weir bench` sends (eight fields, six of them numbers, ~150 bytes) from
//! 1,000 devices, in batches of 256 built as the engine builds them (its
//! own payload scan gives each message's metrics and fields).
//!
//! Prints the best of 40 rounds per plugin, the rounds interleaved so a
//! slow spell of the machine hits both alike. `WEIR_BENCH_ZSCORE` and
//! `WEIR_BENCH_SHADOW` name other builds of a plugin, for A/B runs of a
//! change to one: the engine bench's throughput moves too little with one
//! plugin to show it through this machine's noise. `WEIR_BENCH_ROUNDS`
//! sets the number of rounds (more, to profile the plugins under `perf`).
//!
//! `cargo bench -p weir-bench --bench seed_plugins`

use std::time::Instant;
use weir_bench::{instance, runtime};
use weir_runtime::engine::scan;
use weir_runtime::plugin::batch::{BatchBuilder, Flat, Parts};

const DEVICES: usize = 1000;
const BATCH: usize = 256;
/// Distinct batches per round: every device about 16 times.
const BATCHES: usize = 64;
/// Rounds unless `WEIR_BENCH_ROUNDS` says otherwise.
const ROUNDS: usize = 40;

/// Reading `i`: device `i % DEVICES`, values wandering evenly around fixed
/// means (never 3.5 deviations off: no alerts once warm).
fn payload(i: usize) -> (String, String) {
    let device = format!("dev-{:05}", i % DEVICES);
    let n = ((i * 7919) % 101) as f64 / 100.0 - 0.5;
    let payload = format!(
        "{{\"ts\":{},\"temperature\":{},\"humidity\":{},\"pressure\":{},\"battery\":{},\"rssi\":{},\"fw\":\"1.4.2\",\"status\":\"ok\"}}",
        1_764_300_000_000u64 + i as u64,
        21.0 + 0.3 * n,
        40.0 + n,
        1013.0 + 2.0 * n,
        3.7 + 0.01 * n,
        -60.0 + 5.0 * n,
    );
    (device, payload)
}

/// Readings `from..from + BATCH` as one flat batch, scanned as the engine
/// scans a pass-through rule's payload.
fn batch(from: usize) -> Flat {
    let readings: Vec<(String, String, String)> = (from..from + BATCH)
        .map(|i| {
            let (device, payload) = payload(i);
            (format!("dt/bench/{device}/telemetry"), device, payload)
        })
        .collect();
    let mut builder = BatchBuilder::new();
    for (topic, device, payload) in &readings {
        let scan = scan::scan(payload)
            .expect("valid JSON")
            .expect("no repeated key");
        builder.push(&Parts {
            rule: "telemetry",
            topic,
            client_id: device,
            device,
            device_type: "bench",
            received_at: 1_764_300_000_040,
            device_time: scan.device_time().and_then(serde_json::Value::as_i64),
            metrics: &scan.metrics,
            payload,
            fields: scan.fields.as_deref(),
        });
    }
    builder.finish()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that names neither plugin
    // (as `cargo bench -- other`) skips this bench.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !"zscore shadow seed_plugins".contains(f.as_str())) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("weir-bench-seed-{}", std::process::id()));
    let rt = runtime(&dir);
    let mut plugins = [
        (
            "zscore",
            instance(
                &rt,
                &dir,
                "zscore",
                r#"{ keyvalue = ["zscore"], publish = ["$weir/alerts/+"] }"#,
            ),
        ),
        (
            "shadow",
            instance(
                &rt,
                &dir,
                "shadow",
                r#"{ keyvalue = ["shadow"], publish = ["$aws/things/+/shadow/#"] }"#,
            ),
        ),
    ];
    let batches: Vec<Flat> = (0..BATCHES).map(|b| batch(b * BATCH)).collect();
    // Warm-up: every device's baseline and shadow made and held.
    for (_, instance) in &mut plugins {
        for b in (0..30 * DEVICES / BATCH).map(|b| b * BATCH + BATCHES * BATCH) {
            instance.process(&batch(b)).expect("warm-up");
        }
    }
    // The timed batches only score and store readings: no alerts (which
    // would time encoding them) and nothing else sent.
    for (name, instance) in &mut plugins {
        for b in &batches {
            let out = instance.process(b).expect("process");
            assert!(out.is_empty(), "{name} sent messages: {out:?}");
        }
    }
    let rounds = weir_bench::rounds(ROUNDS);
    let mut best = [f64::INFINITY; 2];
    for _ in 0..rounds {
        for ((_, instance), best) in plugins.iter_mut().zip(&mut best) {
            let start = Instant::now();
            for b in &batches {
                instance.process(b).expect("process");
            }
            *best = best.min(start.elapsed().as_secs_f64() / (BATCHES * BATCH) as f64);
        }
    }
    for ((name, _), best) in plugins.iter().zip(best) {
        println!(
            "{name}: best of {rounds} rounds, batch {BATCH}: {:.3} µs per reading",
            best * 1e6
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
