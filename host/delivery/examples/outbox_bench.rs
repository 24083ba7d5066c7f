//! Throughput of an outbox with a no-op backend, through memory only and
//! through the disk spool, for two items: a small reading (one metric) and
//! an archive row (a device's whole message: six full-precision metrics and
//! its ~150-byte JSON payload).
//!
//! ```sh
//! cargo run --release -p weir-delivery --example outbox_bench [items]
//! ```

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir_delivery::{spawn, Deliver, Delivery, OutboxConfig, RetryPolicy};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reading {
    device: String,
    metric: String,
    ts: u64,
    value: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    device: String,
    device_type: String,
    topic: String,
    received_at_ms: i64,
    device_time_ms: Option<i64>,
    metrics: Vec<(String, f64)>,
    payload: String,
}

struct Noop<T>(std::marker::PhantomData<T>);

impl<T: Serialize + serde::de::DeserializeOwned + Send + 'static> Deliver for Noop<T> {
    type Item = T;
    async fn deliver(&mut self, _batch: Vec<T>) -> Delivery<T> {
        Delivery::Done
    }
}

fn readings(n: usize) -> Vec<Reading> {
    (0..n)
        .map(|i| Reading {
            device: format!("dev-{}", i % 1000),
            metric: "temperature".to_owned(),
            ts: 1_764_300_000_000 + i as u64,
            value: 21.0 + (i % 17) as f64 / 10.0,
        })
        .collect()
}

fn rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| {
            let x = i as f64;
            let metrics: Vec<(String, f64)> = [
                ("ts", 1_764_300_000_000.0 + x),
                ("temperature", 21.0 + (x * 0.7).sin() / 3.0),
                ("humidity", 40.0 + (x * 0.3).cos()),
                ("pressure", 1013.0 + (x * 0.1).sin()),
                ("battery", 3.7 + (x * 0.05).cos() / 100.0),
                ("rssi", -60.0 - (i % 10) as f64),
            ]
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v))
            .collect();
            let payload = format!(
                "{{{},\"fw\":\"1.4.2\",\"status\":\"ok\"}}",
                metrics
                    .iter()
                    .map(|(n, v)| format!("\"{n}\":{v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            Row {
                device: format!("dev-{:05}", i % 1000),
                device_type: "thermostat".to_owned(),
                topic: format!("dt/thermostat/dev-{:05}/telemetry", i % 1000),
                received_at_ms: 1_764_300_000_040 + i as i64,
                device_time_ms: Some(1_764_300_000_000 + i as i64),
                metrics,
                payload,
            }
        })
        .collect()
}

fn run<T: Serialize + serde::de::DeserializeOwned + Clone + Send + 'static>(
    label: &str,
    rt: &tokio::runtime::Runtime,
    memory_capacity: usize,
    data: &[T],
) {
    let items = data.len();
    let dir =
        std::env::temp_dir().join(format!("weir-outbox-bench-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = OutboxConfig {
        name: label.to_owned(),
        dir: dir.clone(),
        memory_capacity,
        spool_limit_bytes: u64::MAX,
        max_batch: 500,
        linger: Duration::from_millis(5),
        retry: RetryPolicy::default(),
    };
    let outbox = rt
        .block_on(async { spawn(config, Noop(std::marker::PhantomData)) })
        .expect("spawn");
    let start = Instant::now();
    let mut chunks = data.chunks(100);
    // Push from this (non-runtime) thread, 100 items a call, like an engine batch.
    for chunk in chunks.by_ref() {
        outbox.push(chunk.to_vec()).expect("push");
    }
    let pushed = start.elapsed();
    let ok = rt.block_on(outbox.flush(Duration::from_secs(600)));
    let total = start.elapsed();
    let stats = outbox.stats();
    assert!(ok && stats.delivered == items as u64, "{stats:?}");
    println!(
        "{label:>12}: {items} items, push {:>10.0} items/s ({:.2} µs/item), end to end {:>10.0} items/s; batches {}",
        items as f64 / pushed.as_secs_f64(),
        pushed.as_secs_f64() * 1e6 / items as f64,
        items as f64 / total.as_secs_f64(),
        stats.batches,
    );
    rt.block_on(outbox.shutdown(Duration::from_secs(10)));
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let items: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let small = readings(items);
    run("memory", &rt, usize::MAX, &small);
    run("spool", &rt, 0, &small);
    let rows = rows(items);
    run("rows memory", &rt, usize::MAX, &rows);
    run("rows spool", &rt, 0, &rows);
}
