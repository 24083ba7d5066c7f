//! Hot reload: watch the rules directory (and the plugins directory), build
//! a new [`Generation`] off the hot path, and publish it atomically.
//!
//! A change that does not check or compile leaves the last good generation
//! serving and is reported in the log, the counters and `weir status`.

use crate::engine::{Current, Generation};
use crate::metrics::Metrics;
use crate::plugin::PluginRuntime;
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Quiet time after the last file event before a reload starts, so an
/// editor's write-rename-chmod sequence becomes one reload.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Builds and publishes generations.
pub struct Reloader {
    pub rules_dir: PathBuf,
    pub rt: Arc<PluginRuntime>,
    pub current: Arc<Current>,
    pub metrics: Arc<Metrics>,
    next: AtomicU64,
    /// One reload at a time (watcher and admin requests may race).
    lock: Mutex<()>,
}

/// The outcome of one reload, for the admin socket.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    pub ok: bool,
    pub generation: u64,
    pub elapsed_ms: u64,
    pub problems: Vec<String>,
}

impl Reloader {
    pub fn new(
        rules_dir: PathBuf,
        rt: Arc<PluginRuntime>,
        current: Arc<Current>,
        metrics: Arc<Metrics>,
    ) -> Reloader {
        let next = AtomicU64::new(current.version() + 1);
        Reloader {
            rules_dir,
            rt,
            current,
            metrics,
            next,
            lock: Mutex::new(()),
        }
    }

    /// Load the rules directory again and, if it checks, make it current.
    pub fn reload(&self) -> ReloadReport {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        let previous = self.current.get();
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        match Generation::load(&self.rules_dir, &self.rt, Some(&previous), number) {
            Ok(generation) => {
                let (rules, plugins) = (generation.rules.rules.len(), generation.plugins.len());
                self.current.publish(generation);
                let elapsed_ms = started.elapsed().as_millis() as u64;
                self.metrics.count("reloads", 1);
                self.metrics.note(
                    "reload",
                    Some(format!(
                        "generation {number} active ({rules} rules, {plugins} plugins)"
                    )),
                );
                tracing::info!(
                    generation = number,
                    rules,
                    plugins,
                    elapsed_ms,
                    "rules reloaded"
                );
                ReloadReport {
                    ok: true,
                    generation: number,
                    elapsed_ms,
                    problems: Vec::new(),
                }
            }
            Err(problems) => {
                self.metrics.count("reload_failures", 1);
                let serving = self.current.version();
                self.metrics.note(
                    "reload",
                    Some(format!(
                        "last reload refused ({} problem(s)); still serving generation {serving}: {}",
                        problems.len(),
                        problems.first().map(|p| p.report.lines().next().unwrap_or("")).unwrap_or("")
                    )),
                );
                for p in &problems {
                    tracing::error!(
                        "reload refused, keeping generation {serving}:\n{}",
                        p.report
                    );
                }
                ReloadReport {
                    ok: false,
                    generation: serving,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    problems: problems.into_iter().map(|p| p.report).collect(),
                }
            }
        }
    }
}

/// Watch `dirs` and reload on every settled change. The watcher lives as
/// long as the returned handle.
pub fn watch(
    reloader: Arc<Reloader>,
    dirs: &[&Path],
) -> Result<notify::RecommendedWatcher, notify::Error> {
    let (tx, rx) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if !matches!(event.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(());
            }
        }
    })?;
    for dir in dirs {
        if dir.is_dir() {
            watcher.watch(dir, RecursiveMode::Recursive)?;
        }
    }
    std::thread::Builder::new()
        .name("weir-reload".into())
        .spawn(move || {
            // Ends when the watcher (and so `tx`) is dropped.
            while rx.recv().is_ok() {
                while rx.recv_timeout(DEBOUNCE).is_ok() {}
                reloader.reload();
            }
        })
        .map_err(|e| notify::Error::generic(&e.to_string()))?;
    Ok(watcher)
}
