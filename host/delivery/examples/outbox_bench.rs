//! Throughput of an outbox with a no-op backend, through memory only and
//! through the disk spool.
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

struct Noop;

impl Deliver for Noop {
    type Item = Reading;
    async fn deliver(&mut self, _batch: Vec<Reading>) -> Delivery<Reading> {
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

fn run(label: &str, rt: &tokio::runtime::Runtime, memory_capacity: usize, items: usize) {
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
    let data = readings(items);
    let outbox = rt.block_on(async { spawn(config, Noop) }).expect("spawn");
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
        "{label:>8}: {items} items, push {:>10.0} items/s ({:.2} µs/item), end to end {:>10.0} items/s; batches {}",
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
    run("memory", &rt, usize::MAX, items);
    run("spool", &rt, 0, items);
}
