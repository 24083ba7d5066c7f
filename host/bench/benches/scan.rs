//! The engine's payload scan per reading, on readings shaped like
//! `weir bench`'s (8 fields, 6 of them numbers, ~150 bytes; a `ts` of 13
//! digits and a temperature printed with every digit an f64 needs).
//! The pipeline's throughput swings too much from minute to minute to show
//! a few percent on the scan; this repeats within a few percent.
//!
//! `cargo bench -p weir-bench --bench scan` prints the best of 40 rounds
//! (each over 1,000 payloads; `WEIR_BENCH_ROUNDS` sets how many) in ns
//! per payload, then criterion's figures.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Instant;
use weir_runtime::engine::scan;

// As in `weir` itself.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAYLOADS: usize = 1000;
const ROUNDS: usize = 40;

/// A deterministic stand-in for a sensor's noise, in [-0.5, 0.5).
fn noise(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (*state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}

fn payloads() -> Vec<String> {
    let mut state = 7;
    (0..PAYLOADS)
        .map(|i| {
            format!(
                "{{\"ts\":{},\"temperature\":{},\"humidity\":{:.1},\"pressure\":{:.1},\"battery\":{:.2},\"rssi\":{},\"fw\":\"1.4.2\",\"status\":\"ok\"}}",
                1_764_300_000_000u64 + i as u64 * 10,
                21.0 + 0.3 * noise(&mut state),
                40.0 + noise(&mut state),
                1013.0 + noise(&mut state),
                3.7 + 0.01 * noise(&mut state),
                -60 - (i % 10) as i64,
            )
        })
        .collect()
}

fn scan_all(payloads: &[String]) -> usize {
    let mut metrics = 0;
    for p in payloads {
        if let Ok(Some(s)) = scan::scan(black_box(p)) {
            metrics += s.metrics.len();
        }
    }
    metrics
}

fn bench(c: &mut Criterion) {
    let payloads = payloads();
    // Every payload takes the quick scanner's path, as devices' do.
    for p in &payloads {
        let s = scan::scan(p).expect("valid JSON").expect("no repeated key");
        assert_eq!(s.metrics.len(), 6, "{p}");
        assert!(s.fields.is_some(), "quick scanner: {p}");
    }
    let rounds = weir_bench::rounds(ROUNDS);
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let start = Instant::now();
        black_box(scan_all(&payloads));
        best = best.min(start.elapsed().as_secs_f64() / PAYLOADS as f64);
    }
    println!(
        "scan: best of {rounds} rounds: {:.1} ns per payload ({} bytes on average)",
        best * 1e9,
        payloads.iter().map(String::len).sum::<usize>() / PAYLOADS
    );
    let mut group = c.benchmark_group("scan");
    group.throughput(Throughput::Elements(PAYLOADS as u64));
    group.bench_function("bench_readings", |b| b.iter(|| scan_all(&payloads)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
