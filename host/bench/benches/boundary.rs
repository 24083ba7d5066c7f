//! zscore per reading: Wasm component (through the real plugin host, with
//! its key-value capability) vs the same detector compiled natively, doing
//! per batch what the plugin does (one device lookup per reading, a load
//! for a device not held); and startup of ten plugins from a warm compile
//! cache.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::sync::Arc;
use std::time::Instant;
use weir_bench::{instance, runtime};
use weir_runtime::plugin::batch::Flat;
use weir_runtime::plugin::bindings::{Message, Metric};
use weir_runtime::plugin::manifest::PluginDecls;
use weir_runtime::plugin::{loader, Instance, PluginRuntime};

const DEVICES: usize = 1000;
const METRICS: [&str; 3] = ["temperature", "humidity", "pressure"];

/// Reading `i` of a round over `devices` devices.
fn reading(i: usize, devices: usize) -> (String, [f64; 3]) {
    let device = format!("dev-{:05}", i % devices);
    // Each device's readings go round the same eight evenly spaced values
    // about fixed means, whichever of them a round replays: every baseline
    // the same, and |z| ≤ 1.6 after warm-up, so no alerts.
    let n = ((i / devices) % 8) as f64 / 7.0 - 0.5;
    (device, [21.0 + 0.3 * n, 40.0 + n, 1013.0 + n])
}

fn host_message(i: usize, devices: usize) -> Message {
    let (device, values) = reading(i, devices);
    let ts = 1_764_300_000_000 + i as i64;
    Message {
        rule: "telemetry".into(),
        topic: format!("dt/bench/{device}/telemetry"),
        client_id: device.clone(),
        device,
        device_type: "bench".into(),
        received_at: ts,
        device_time: Some(ts - 40),
        metrics: METRICS
            .iter()
            .zip(values)
            .map(|(name, value)| Metric {
                name: name.to_string(),
                value,
            })
            .collect(),
        // The reading as the rule outputs it (~110 bytes, as from a device).
        payload: format!(
            "{{\"ts\":{},\"temperature\":{:.2},\"humidity\":{:.2},\"pressure\":{:.2}}}",
            ts - 40,
            values[0],
            values[1],
            values[2]
        ),
    }
}

fn native_message(i: usize, devices: usize) -> weir_plugin::Message {
    let m = host_message(i, devices);
    weir_plugin::Message {
        rule: m.rule,
        topic: m.topic,
        client_id: m.client_id,
        device: m.device,
        device_type: m.device_type,
        received_at: m.received_at,
        device_time: m.device_time,
        metrics: m
            .metrics
            .into_iter()
            .map(|x| weir_plugin::Metric {
                name: x.name,
                value: x.value,
            })
            .collect(),
        payload: m.payload,
    }
}

/// Rounds of [`best_per_reading`] unless `WEIR_BENCH_ROUNDS` says: the
/// fastest round is the figure least disturbed by other work on the machine.
const ROUNDS: usize = 40;

/// Seconds per reading of the fastest of `rounds` runs of each of `runs`,
/// each processing 64 batches of `batch` readings. The runs alternate, so a
/// slow spell of the machine hits all alike.
fn best_per_reading<const N: usize>(
    batch: usize,
    rounds: usize,
    mut runs: [&mut dyn FnMut(); N],
) -> [f64; N] {
    let mut best = [f64::INFINITY; N];
    for _ in 0..rounds {
        for (run, best) in runs.iter_mut().zip(&mut best) {
            let start = Instant::now();
            run();
            *best = best.min(start.elapsed().as_secs_f64() / (64 * batch) as f64);
        }
    }
    best
}

/// What the plugin does per batch, natively: score each message whose
/// device is held, and load (here: start afresh) one that is not first.
fn observe_all<'m, M: Into<weir_plugin::MessageRef<'m>> + Copy>(
    detector: &mut zscore::detector::Detector,
    messages: impl Iterator<Item = M>,
    events: &mut Vec<zscore::detector::Event>,
) {
    for m in messages {
        if !detector.observe_held(m, events) {
            detector.observe(m, events);
        }
    }
}

fn boundary(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("weir-bench-boundary-{}", std::process::id()));
    let rt = runtime(&dir);
    // WEIR_BENCH_ZSCORE names another build of the plugin (for A/B runs).
    let mut instance = instance(
        &rt,
        &dir,
        "zscore",
        r#"{ keyvalue = ["zscore"], publish = ["$weir/alerts/+"] }"#,
    );
    let mut native = zscore::detector::Detector::new(zscore::settings::Settings::default());
    let rounds = weir_bench::rounds(ROUNDS);

    // Warm both up on every device.
    let warm: Vec<Message> = (0..DEVICES * 30)
        .map(|i| host_message(i, DEVICES))
        .collect();
    for chunk in warm.chunks(256) {
        instance
            .process(&Flat::from_messages(chunk))
            .expect("warm-up");
    }
    let mut events = Vec::new();
    let mut flat_native = zscore::detector::Detector::new(zscore::settings::Settings::default());
    let mut flat_events = Vec::new();
    for i in 0..DEVICES * 30 {
        native.observe(&native_message(i, DEVICES), &mut events);
        flat_native.observe(&native_message(i, DEVICES), &mut flat_events);
    }

    let mut group = c.benchmark_group("zscore_per_batch");
    for batch in [1usize, 16, 256] {
        // The 64 batches give each device at least 8 different readings, so
        // replaying them (criterion runs each side for as long as it likes)
        // keeps every baseline what the warm-up made it: no alerts, and
        // the same work per reading on both sides however often each ran.
        let devices = (64 * batch / 8).min(DEVICES);
        // Batches as the engine builds them (flat, repeated names shared).
        let host_batches: Vec<Flat> = (0..64)
            .map(|b| {
                let messages: Vec<Message> = (0..batch)
                    .map(|i| host_message(b * batch + i, devices))
                    .collect();
                Flat::from_messages(&messages)
            })
            .collect();
        let native_batches: Vec<Vec<weir_plugin::Message>> = (0..64)
            .map(|b| {
                (0..batch)
                    .map(|i| native_message(b * batch + i, devices))
                    .collect()
            })
            .collect();
        // The same batches in the guest SDK's flat layout, read through the
        // same views as in the plugin: the plugin's own code, natively.
        let flat_batches: Vec<weir_plugin::Batch> = native_batches
            .iter()
            .map(|b| weir_plugin::Batch::from_messages(b))
            .collect();
        // The timed batches score readings, they raise no alerts (which
        // would make the figures about encoding alerts instead).
        for (host, native_batch) in host_batches.iter().zip(&native_batches) {
            let alerts = instance.process(host).expect("process");
            events.clear();
            observe_all(&mut native, native_batch.iter(), &mut events);
            assert!(
                alerts.is_empty() && events.is_empty(),
                "the bench's readings raised alerts: {alerts:?} {events:?}"
            );
        }
        let [wasm_best, native_best, flat_best] = best_per_reading(
            batch,
            rounds,
            [
                &mut || {
                    for b in &host_batches {
                        instance.process(b).expect("process");
                    }
                },
                &mut || {
                    for batch in &native_batches {
                        events.clear();
                        observe_all(&mut native, batch.iter(), &mut events);
                        std::hint::black_box(events.len());
                    }
                },
                &mut || {
                    // As the plugin's `process_batch`: each view borrowed
                    // where it is built.
                    for batch in &flat_batches {
                        flat_events.clear();
                        let _ = batch.try_for_each(|_, m| {
                            if !flat_native.observe_held(*m, &mut flat_events) {
                                flat_native.observe(*m, &mut flat_events);
                            }
                            Ok::<(), ()>(())
                        });
                        std::hint::black_box(flat_events.len());
                    }
                },
            ],
        );
        println!(
            "batch {batch}: best of {rounds} rounds per reading: wasm {:.3} µs, native {:.3} µs (ratio {:.2}x), native on flat batches {:.3} µs (ratio {:.2}x)",
            wasm_best * 1e6,
            native_best * 1e6,
            wasm_best / native_best,
            flat_best * 1e6,
            wasm_best / flat_best,
        );
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("wasm", batch), &batch, |b, _| {
            let mut k = 0;
            b.iter(|| {
                k = (k + 1) % host_batches.len();
                instance.process(&host_batches[k]).expect("process")
            })
        });
        group.bench_with_input(BenchmarkId::new("native", batch), &batch, |b, _| {
            let mut k = 0;
            b.iter(|| {
                k = (k + 1) % native_batches.len();
                events.clear();
                observe_all(&mut native, native_batches[k].iter(), &mut events);
                events.len()
            })
        });
    }
    group.finish();

    // Startup: ten plugin instances declared, loaded from a warm compile cache.
    let mut text = String::new();
    for i in 0..10 {
        let name = ["zscore", "shadow", "alerts", "echo", "ticker"][i % 5];
        let grants = match name {
            "zscore" => "grants = { keyvalue = [\"zscore\"], publish = [\"$weir/alerts/+\"] }",
            "shadow" => {
                "grants = { keyvalue = [\"shadow\"], publish = [\"$aws/things/+/shadow/#\"] }"
            }
            "alerts" => "grants = { publish = [\"weir/alerts/+\"], journal = [\"alerts\"] }",
            "echo" => "grants = { publish = [\"echo/+\"] }",
            _ => "grants = { publish = [\"ticker/+\"] }",
        };
        text.push_str(&format!(
            "[p{i}]\ncomponent = \"builtin:{name}\"\n{grants}\n"
        ));
    }
    let decls = PluginDecls::parse(&text).expect("ten decls");
    let load_all = |rt: &PluginRuntime| {
        let start = Instant::now();
        for (name, decl) in &decls.decls {
            let p = Arc::new(loader::load(rt, name, decl, &dir).expect("load"));
            Instance::new(rt, p).expect("instantiate");
        }
        start.elapsed()
    };
    let cold = load_all(&rt);
    let warm_rt = runtime(&dir.join("second"));
    let _ = std::fs::remove_dir_all(dir.join("second/cache"));
    std::fs::create_dir_all(dir.join("second")).ok();
    let _ = std::fs::create_dir_all(dir.join("second/cache"));
    for entry in std::fs::read_dir(dir.join("cache"))
        .expect("cache dir")
        .flatten()
    {
        let _ = std::fs::copy(
            entry.path(),
            dir.join("second/cache").join(entry.file_name()),
        );
    }
    let warm = load_all(&warm_rt);
    println!(
        "startup, 10 plugins loaded and instantiated: first (compiling, partly cached) {:.0} ms; from a warm compile cache {:.0} ms",
        cold.as_secs_f64() * 1000.0,
        warm.as_secs_f64() * 1000.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = boundary
}
criterion_main!(benches);
