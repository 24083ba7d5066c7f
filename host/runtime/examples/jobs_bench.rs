//! How the Jobs service holds up at fleet size: one job for N things
//! (default 100,000), then every thing starting it and reporting success
//! through the device MQTT API (without the network: the service's own
//! cost), then the store's flush.
//!
//! `cargo run --release -p weir-runtime --example jobs_bench -- [N]`

use std::sync::Arc;
use std::time::Instant;
use weir_runtime::jobs::{JobOp, JobsService};
use weir_runtime::store::KvStore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("weir-jobs-bench-{}", std::process::id()));
    let kv = Arc::new(KvStore::open(&dir.join("state.redb"))?);
    let jobs = JobsService::open(kv.clone(), None);
    let now = weir_runtime::clock::now_ms();
    let things: Vec<String> = (0..n).map(|i| format!("pump-{i:06}")).collect();

    let start = Instant::now();
    let (_, notices) = jobs.apply(
        &JobOp::Create {
            job_id: "fw-21".into(),
            targets: things.clone(),
            thing_group: None,
            document: serde_json::json!({"operation": "firmware-update", "url": "https://fw.example.com/2.1.bin", "sha256": "9f2c…"}),
            description: None,
        },
        now,
    )?;
    let created = start.elapsed();
    println!(
        "create for {n} things: {:.2} s ({} notices)",
        created.as_secs_f64(),
        notices.len()
    );

    let mut latencies = Vec::with_capacity(2 * n);
    let start = Instant::now();
    for thing in &things {
        for (topic, body) in [
            (
                format!("$aws/things/{thing}/jobs/start-next"),
                &br#"{"clientToken":"a"}"#[..],
            ),
            (
                format!("$aws/things/{thing}/jobs/fw-21/update"),
                &br#"{"status":"SUCCEEDED","expectedVersion":2,"clientToken":"b"}"#[..],
            ),
        ] {
            let t = Instant::now();
            let handled = jobs.handle(&topic, body, now).ok_or("not a jobs request")?;
            latencies.push(t.elapsed().as_secs_f64() * 1e6);
            if !handled.reply.0.ends_with("/accepted") {
                return Err(
                    format!("{topic}: {}", String::from_utf8_lossy(&handled.reply.1)).into(),
                );
            }
        }
    }
    let ran = start.elapsed();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "device requests: {:.0}/s; latency p50 {:.1} µs, p99 {:.1} µs, max {:.0} µs",
        latencies.len() as f64 / ran.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    let start = Instant::now();
    let keys = kv.flush()?;
    println!(
        "flush: {keys} keys in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    let (described, _) = jobs.apply(
        &JobOp::Describe {
            job_id: "fw-21".into(),
        },
        now,
    )?;
    println!(
        "job status {}, {} succeeded",
        described["status"], described["jobProcessDetails"]["numberOfSucceededThings"]
    );
    drop(jobs);
    drop(kv);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
