//! `weir bench --mode fleet`: the CPU the `weir` process spends serving a
//! fleet at its steady rate (the target fleet, 100,000 devices every 10 s,
//! is 10,000 msgs/s), not flat out.
//!
//! The devices are `weir simulate` in a process of its own (this binary,
//! started as a child), so their MQTT clients' CPU is not counted. After
//! the fleet has connected and warmed up, the CPU time of each of this
//! process's threads is read from `/proc/self/task` at the start and end
//! of the window and summed by what the threads do.

use crate::thread_cpu::Usage;
use anyhow::{bail, Context, Result};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// The simulated fleet, stopped when dropped.
struct Simulator(Child);

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serve `devices` simulated devices sending `rate` readings/s in all, and
/// print the CPU the process used over `window`.
pub async fn run(
    running: &weir_runtime::server::Running,
    devices: usize,
    rate: u64,
    window: Duration,
) -> Result<()> {
    if devices == 0 || rate == 0 {
        bail!("--devices and --rate must be at least 1");
    }
    let interval_ms = (devices as u64 * 1000 / rate).max(1);
    let exe = std::env::current_exe().context("this binary's path")?;
    let warm = Duration::from_secs(5);
    let _sim = Simulator(
        Command::new(exe)
            .args(["simulate", "--host", &running.local_addr.to_string()])
            .args(["--devices", &devices.to_string()])
            .args(["--interval", &format!("{interval_ms}ms")])
            .args(["--anomaly-rate", "0"])
            .args([
                "--duration",
                &format!("{}s", (warm + window).as_secs() + 60),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start `weir simulate`")?,
    );
    let metrics = &running.metrics;
    let start = Instant::now();
    while (metrics.connections.load(Relaxed) as usize) < devices {
        if start.elapsed() > Duration::from_secs(120) {
            bail!(
                "only {} of {devices} devices connected",
                metrics.connections.load(Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(warm).await;

    let (before, processed) = (Usage::now()?, metrics.messages_processed.load(Relaxed));
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let used = Usage::now()?.since(&before);
    let elapsed = started.elapsed().as_secs_f64();
    let done = metrics.messages_processed.load(Relaxed) - processed;

    let cores = |role: &str| used.get(role).copied().unwrap_or(0.0) / elapsed;
    let total: f64 = used.values().sum::<f64>() / elapsed;
    let per_second = done as f64 / elapsed;
    println!(
        "fleet: {devices} devices, a reading every {interval_ms} ms each: {per_second:.0} msgs/s over {elapsed:.1} s"
    );
    println!(
        "weir used {total:.3} cores ({:.1} µs of CPU per message)",
        total * 1e6 / per_second.max(1.0)
    );
    for role in used.keys() {
        println!("  {role}: {:.3} cores", cores(role));
    }
    Ok(())
}
