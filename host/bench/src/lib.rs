//! Benchmarks of the engine's per-reading work, plugins through the real
//! plugin host among it, run with `cargo bench -p weir-bench`:
//!
//! - `benches/boundary.rs`: the cost per reading of running zscore as a
//!   WebAssembly component at batch sizes 1, 16 and 256 against the same
//!   logic compiled natively, and the startup time of ten plugins from the
//!   compile cache.
//! - `benches/seed_plugins.rs`: zscore and shadow (issue #2's seed
//!   pipeline) per reading on their own, on readings shaped like the
//!   pipeline bench's.
//! - `benches/scan.rs`: the engine's scan of a reading's JSON payload.
//!
//! This library holds what they share: a plugin runtime and its
//! instances, and the number of rounds.

use std::path::Path;
use std::sync::Arc;
use weir_runtime::plugin::capabilities::HostServices;
use weir_runtime::plugin::manifest::PluginDecls;
use weir_runtime::plugin::{loader, Instance, PluginRuntime};

/// Rounds of a best-of-rounds figure: `default`, unless
/// `WEIR_BENCH_ROUNDS` says otherwise (more to profile under `perf`, or to
/// outlast this machine's slow spells in A/B runs).
pub fn rounds(default: usize) -> usize {
    std::env::var("WEIR_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

/// A plugin runtime with its store, journals and compile cache under
/// `dir`, and a call deadline no bench run comes near.
pub fn runtime(dir: &Path) -> Arc<PluginRuntime> {
    let services = Arc::new(HostServices {
        kv: Arc::new(weir_runtime::store::KvStore::open(&dir.join("state.redb")).expect("store")),
        journals: Arc::new(weir_runtime::store::Journals::new(dir.to_path_buf())),
        metrics: Arc::new(weir_runtime::metrics::Metrics::default()),
        sinks: Arc::new(weir_runtime::sinks::Sinks::disabled()),
    });
    let limits = weir_runtime::config::PluginLimits {
        call_timeout_ms: 10_000,
        ..Default::default()
    };
    Arc::new(PluginRuntime::new(limits, dir.join("cache"), services).expect("runtime"))
}

/// An instance of the shipped plugin `name` with `grants` (a TOML inline
/// table), or of the build that `WEIR_BENCH_<NAME>` names (a `.wasm`
/// path, for A/B runs of a change to the plugin).
pub fn instance(rt: &PluginRuntime, dir: &Path, name: &str, grants: &str) -> Instance {
    let component = std::env::var(format!("WEIR_BENCH_{}", name.to_uppercase()))
        .unwrap_or_else(|_| format!("builtin:{name}"));
    let decls = PluginDecls::parse(&format!(
        "[{name}]\ncomponent = {component:?}\ngrants = {grants}\n"
    ))
    .expect("decls");
    let decl = decls.get(name).expect("declared");
    let loaded = Arc::new(loader::load(rt, name, decl, dir).expect("load"));
    Instance::new(rt, loaded).expect("instance")
}
