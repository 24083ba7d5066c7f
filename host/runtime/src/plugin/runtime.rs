//! One wasmtime `Engine` for the process, its epoch ticker, and the on-disk
//! cache of compiled components.

use super::capabilities::HostServices;
use super::PluginError;
use crate::config::PluginLimits;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// How often the epoch advances; call deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// How long a call may run: a base budget plus a per-message allowance, so a
/// full batch is not judged by the clock of a single reading.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub base_us: u64,
    pub per_message_us: u64,
}

impl Budget {
    /// Epoch ticks a call carrying `messages` messages may run.
    pub fn ticks(&self, messages: usize) -> u64 {
        let tick_us = EPOCH_TICK.as_micros() as u64;
        (self.base_us + self.per_message_us * messages as u64).div_ceil(tick_us) + 1
    }
}

/// The Wasm features every engine of this host compiles with, so a component
/// `weir plugin inspect` accepts is one `weir run` loads.
pub fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config
}

pub struct PluginRuntime {
    pub engine: Engine,
    pub limits: PluginLimits,
    pub services: Arc<HostServices>,
    cache_dir: PathBuf,
    engine_hash: String,
    stop: Arc<AtomicBool>,
}

impl PluginRuntime {
    pub fn new(
        limits: PluginLimits,
        cache_dir: PathBuf,
        services: Arc<HostServices>,
    ) -> Result<PluginRuntime, PluginError> {
        let mut config = engine_config();
        config.epoch_interruption(true);
        if std::env::var_os("WEIR_PERF_MAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| PluginError::load("<engine>", e))?;

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = format!("{:016x}", hasher.finish());

        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.clone();
        let ticker_stop = stop.clone();
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| PluginError::load("<engine>", e))?;

        Ok(PluginRuntime {
            engine,
            limits,
            services,
            cache_dir,
            engine_hash,
            stop,
        })
    }

    /// The time budget of plugin calls.
    pub fn budget(&self) -> Budget {
        Budget {
            base_us: self.limits.call_timeout_ms * 1000,
            per_message_us: self.limits.per_message_us,
        }
    }

    /// Compile a component, or load it from the compile cache (keyed by the
    /// component's SHA-256 and the engine's compatibility hash).
    pub fn compile(&self, plugin: &str, bytes: &[u8]) -> Result<(Component, String), PluginError> {
        let digest = hex::encode(Sha256::digest(bytes));
        let cached = self
            .cache_dir
            .join(format!("{}-{}.cwasm", &digest[..32], self.engine_hash));
        if cached.exists() {
            // SAFETY: the cache directory is the host's own; files in it were
            // written by `Component::serialize` of an engine with the same
            // compatibility hash (part of the file name).
            match unsafe { Component::deserialize_file(&self.engine, &cached) } {
                Ok(c) => return Ok((c, digest)),
                Err(e) => {
                    tracing::warn!(plugin, error = %e, "compile cache entry unusable; recompiling")
                }
            }
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| PluginError::load(plugin, format!("not a valid component: {e:#}")))?;
        if let Ok(serialized) = component.serialize() {
            let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
            let written = std::fs::create_dir_all(&self.cache_dir)
                .and_then(|_| std::fs::write(&tmp, serialized))
                .and_then(|_| std::fs::rename(&tmp, &cached));
            if let Err(e) = written {
                tracing::warn!(plugin, error = %e, "could not write the compile cache");
            }
        }
        Ok((component, digest))
    }
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
