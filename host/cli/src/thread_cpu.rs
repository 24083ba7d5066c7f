//! The CPU time this process's threads have used, read from
//! `/proc/self/task/*/stat` and summed by what the threads do (their
//! names say: connection tasks, the broker's router, engine workers,
//! storage tiers). The benches print it per reading.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;

/// CPU seconds used so far, by thread role.
pub struct Usage(BTreeMap<&'static str, f64>);

impl Usage {
    /// This process's threads' CPU time so far.
    pub fn now() -> Result<Usage> {
        Ok(Usage(by_role(&thread_cpu()?)))
    }

    /// CPU seconds each role used since `before` (threads that ended in
    /// between are not counted).
    pub fn since(&self, before: &Usage) -> BTreeMap<&'static str, f64> {
        self.0
            .iter()
            .map(|(role, cpu)| (*role, cpu - before.0.get(role).copied().unwrap_or(0.0)))
            .collect()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

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
