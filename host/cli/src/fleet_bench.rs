//! `weir bench --mode fleet`: the CPU the `weir` process spends serving a
//! fleet at its steady rate (the target fleet, 100,000 devices every 10 s,
//! is 10,000 msgs/s), not flat out.
//!
//! The devices are `weir simulate` in a process of its own (this binary,
//! started as a child), so their MQTT clients' CPU is not counted. After
//! the fleet has connected and warmed up, the CPU time of each of this
//! process's threads is read from `/proc/self/task` at the start and end
//! of the window and summed by what the threads do.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// CPU seconds used so far by each of this process's threads, by name.
fn thread_cpu() -> Result<Vec<(String, f64)>> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        bail!("cannot read the clock tick rate");
    }
    let mut threads = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").context("/proc/self/task (Linux only)")? {
        let dir = entry?.path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue; // the thread ended
        };
        // `pid (comm) state …`: comm may hold spaces, so split after it.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after comm.
        let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        let (utime, stime): (f64, f64) = (utime.parse()?, stime.parse()?);
        threads.push((comm, (utime + stime) / ticks as f64));
    }
    Ok(threads)
}

/// What a thread does, from its name.
fn role(comm: &str) -> &'static str {
    if comm.starts_with("tokio-rt") {
        "connections (async tasks)"
    } else if comm.starts_with("router") {
        "broker router"
    } else if comm.starts_with("weir-worker") {
        "engine workers"
    } else if comm.starts_with("weir-storage") {
        "storage tiers"
    } else {
        "other"
    }
}

fn by_role(threads: &[(String, f64)]) -> BTreeMap<&'static str, f64> {
    let mut roles = BTreeMap::new();
    for (comm, cpu) in threads {
        *roles.entry(role(comm)).or_insert(0.0) += cpu;
    }
    roles
}

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

    let (before, processed) = (thread_cpu()?, metrics.messages_processed.load(Relaxed));
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let (after, elapsed) = (thread_cpu()?, started.elapsed().as_secs_f64());
    let done = metrics.messages_processed.load(Relaxed) - processed;

    let (was, now) = (by_role(&before), by_role(&after));
    let cores = |role: &str| {
        (now.get(role).copied().unwrap_or(0.0) - was.get(role).copied().unwrap_or(0.0)) / elapsed
    };
    let total: f64 = now.keys().map(|r| cores(r)).sum();
    let per_second = done as f64 / elapsed;
    println!(
        "fleet: {devices} devices, a reading every {interval_ms} ms each: {per_second:.0} msgs/s over {elapsed:.1} s"
    );
    println!(
        "weir used {total:.3} cores ({:.1} µs of CPU per message)",
        total * 1e6 / per_second.max(1.0)
    );
    for role in now.keys() {
        println!("  {role}: {:.3} cores", cores(role));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_read_and_grouped_by_what_they_do() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::Builder::new()
            .name("weir-worker-7".into())
            .spawn(move || {
                // Busy until the kernel has counted some of its CPU time.
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(5) {
                    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
                    let after = &stat[stat.rfind(')').unwrap() + 1..];
                    let f: Vec<&str> = after.split_whitespace().collect();
                    if f[11] != "0" || f[12] != "0" {
                        break;
                    }
                }
                let _ = rx.recv();
            })
            .unwrap();
        let start = Instant::now();
        let threads = loop {
            let threads = thread_cpu().unwrap();
            let busy = threads
                .iter()
                .any(|(comm, cpu)| comm == "weir-worker-7" && *cpu > 0.0);
            if busy || start.elapsed() > Duration::from_secs(10) {
                break threads;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        tx.send(()).unwrap();
        worker.join().unwrap();
        let (_, cpu) = threads
            .iter()
            .find(|(comm, _)| comm == "weir-worker-7")
            .expect("the named thread");
        assert!(*cpu > 0.0, "{threads:?}");
        let roles = by_role(&threads);
        assert!(roles["engine workers"] >= *cpu);
        assert_eq!(role("tokio-rt-worker"), "connections (async tasks)");
        assert_eq!(role("router-0"), "broker router");
        assert_eq!(role("weir-storage-1"), "storage tiers");
        assert_eq!(role("weir-epoch"), "other");
    }
}
