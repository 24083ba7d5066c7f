//! Loading a declared plugin: find its component, compile it (cached),
//! check its world and its imports against its grants, and link exactly the
//! granted capabilities into an `InstancePre`.

use super::bindings::{
    aggregator, batch_aggregator, batch_processor, batch_sink, host, processor, sink,
};
use super::capabilities::PluginState;
use super::instance::CallError;
use super::manifest::{Grants, PluginDecl};
use super::{PluginError, PluginRuntime};
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::{Component, HasSelf, Linker};

/// Which world a component implements, told by its exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Processor,
    Aggregator,
    Sink,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Processor => "processor",
            Kind::Aggregator => "aggregator",
            Kind::Sink => "sink",
        }
    }
}

pub(crate) enum Pre {
    Processor(processor::ProcessorPluginPre<PluginState>),
    Aggregator(aggregator::AggregatorPluginPre<PluginState>),
    Sink(sink::SinkPluginPre<PluginState>),
    BatchProcessor(batch_processor::BatchProcessorPluginPre<PluginState>),
    BatchAggregator(batch_aggregator::BatchAggregatorPluginPre<PluginState>),
    BatchSink(batch_sink::BatchSinkPluginPre<PluginState>),
}

/// A plugin version ready to instantiate.
pub struct LoadedPlugin {
    pub name: Arc<str>,
    pub kind: Kind,
    pub decl: PluginDecl,
    /// SHA-256 of the component bytes.
    pub digest: String,
    pub grants: Arc<Grants>,
    pub settings: Arc<Vec<(String, String)>>,
    pub(crate) pre: Pre,
}

/// What a component asks for and offers, for `weir plugin inspect` and for
/// the grant check.
#[derive(Debug, Clone)]
pub struct Surface {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Interfaces every plugin gets: settings, logging, shared types, and the
/// parts of WASI a Rust `std` guest links against (clocks, random, empty
/// standard streams; no preopens, no sockets, no environment).
const ALWAYS: &[&str] = &[
    "wasi:logging/logging",
    "wasi:config/store",
    "weir:plugin/types",
    "weir:plugin/batches",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// The grant that admits an import, or `None` when no grant can.
pub(crate) fn grant_for(import: &str) -> Option<&'static str> {
    let base = import.split('@').next().unwrap_or(import);
    match base {
        "wasi:keyvalue/store" | "wasi:keyvalue/batch" => Some("keyvalue"),
        "weir:plugin/publish" => Some("publish"),
        "weir:plugin/journal" => Some("journal"),
        "weir:plugin/timeseries" => Some("timeseries"),
        "weir:plugin/archive" => Some("archive"),
        "weir:plugin/notify" => Some("notify"),
        "weir:plugin/streams" => Some("stream"),
        _ => None,
    }
}

pub(crate) fn is_always(import: &str) -> bool {
    let base = import.split('@').next().unwrap_or(import);
    ALWAYS.iter().any(|a| {
        if a.ends_with('/') {
            base.starts_with(a)
        } else {
            base == *a
        }
    })
}

/// Every import of a component must be always available or granted by
/// its declaration: the first that is not, as the operator should read it.
pub fn check_grants(imports: &[String], grants: &Grants) -> Result<(), String> {
    for import in imports {
        if is_always(import) {
            continue;
        }
        let granted = match grant_for(import) {
            Some("keyvalue") => !grants.keyvalue.is_empty(),
            Some("publish") => !grants.publish.is_empty(),
            Some("journal") => !grants.journal.is_empty(),
            Some("timeseries") => grants.timeseries,
            Some("archive") => grants.archive,
            Some("notify") => !grants.notify.is_empty(),
            Some("stream") => !grants.stream.is_empty(),
            _ => {
                return Err(format!(
                    "imports {import}, which this host does not provide"
                ))
            }
        };
        if !granted {
            let grant = grant_for(import).unwrap_or("?");
            return Err(match grant {
                "timeseries" | "archive" => format!("imports {import}, but its declaration does not grant `{grant}` (add grants.{grant} = true in plugins.toml)"),
                _ => format!("imports {import}, but its declaration grants no `{grant}` (add grants.{grant} = [...] in plugins.toml)"),
            });
        }
    }
    Ok(())
}

/// The names a component imports, read from its binary without compiling
/// it (what `weir rules check` needs to check grants quickly).
pub fn component_imports(bytes: &[u8]) -> Result<Vec<String>, String> {
    use wasmparser::{Encoding, Parser, Payload};
    let mut imports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| format!("not a valid component: {e}"))? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != Encoding::Component {
                    return Err(
                        "a core Wasm module, not a component (build for wasm32-wasip2)".into(),
                    );
                }
                depth += 1;
            }
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| format!("not a valid component: {e}"))?;
                    imports.push(import.name.name.to_string());
                }
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(imports)
}

pub fn surface(component: &Component, rt: &PluginRuntime) -> Surface {
    let ty = component.component_type();
    Surface {
        imports: ty.imports(&rt.engine).map(|(n, _)| n.to_string()).collect(),
        exports: ty.exports(&rt.engine).map(|(n, _)| n.to_string()).collect(),
    }
}

fn exports_interface(surface: &Surface, iface: &str) -> bool {
    surface
        .exports
        .iter()
        .any(|e| e.split('@').next() == Some(iface) && e.contains("@0.1."))
}

/// The world a component's exports make it (flat `batch-*` worlds or the
/// `list<message>` ones alike).
pub fn kind_of(surface: &Surface) -> Option<Kind> {
    let exports = |iface: &str| exports_interface(surface, iface);
    let processor = exports("weir:plugin/processor") || exports("weir:plugin/batch-processor");
    if exports("weir:plugin/sink") || exports("weir:plugin/batch-sink") {
        Some(Kind::Sink)
    } else if exports("weir:plugin/aggregator") && processor {
        Some(Kind::Aggregator)
    } else if processor {
        Some(Kind::Processor)
    } else {
        None
    }
}

/// Whether the component takes flat batches (a `batch-*` world of 0.1.2+).
pub fn flat_batches(surface: &Surface) -> bool {
    exports_interface(surface, "weir:plugin/batch-processor")
        || exports_interface(surface, "weir:plugin/batch-sink")
}

/// Resolve a declaration's component to bytes.
pub fn component_bytes(
    name: &str,
    decl: &PluginDecl,
    base_dir: &Path,
) -> Result<Vec<u8>, PluginError> {
    if let Some(builtin) = decl.component.strip_prefix("builtin:") {
        return weir_bundled_plugins::get(builtin)
            .map(|b| b.to_vec())
            .ok_or_else(|| {
                PluginError::load(
                    name,
                    format!(
                        "no shipped plugin {builtin:?} (shipped: {})",
                        weir_bundled_plugins::names().collect::<Vec<_>>().join(", ")
                    ),
                )
            });
    }
    let path = base_dir.join(&decl.component);
    std::fs::read(&path)
        .map_err(|e| PluginError::load(name, format!("cannot read {}: {e}", path.display())))
}

/// SHA-256 of component bytes, hex.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Load a declared plugin.
pub fn load(
    rt: &PluginRuntime,
    name: &str,
    decl: &PluginDecl,
    base_dir: &Path,
) -> Result<LoadedPlugin, PluginError> {
    let bytes = component_bytes(name, decl, base_dir)?;
    let (component, digest) = rt.compile(name, &bytes)?;
    let surface = surface(&component, rt);
    let kind = kind_of(&surface).ok_or_else(|| {
        PluginError::load(
            name,
            format!(
                "exports none of weir:plugin/processor, aggregator or sink at version 0.1.x (it exports: {})",
                surface.exports.join(", ")
            ),
        )
    })?;

    // Refuse, at load, any import that is neither always available nor granted.
    let grants = &decl.grants;
    check_grants(&surface.imports, grants).map_err(|e| PluginError::load(name, e))?;

    // Notify targets and streams must exist in this host's configuration.
    rt.services
        .sinks
        .check_grants(&grants.notify, &grants.stream)
        .map_err(|e| PluginError::load(name, e))?;

    let linker = linker(rt, grants).map_err(|e| PluginError::load(name, format!("{e:#}")))?;
    let instance_pre = linker
        .instantiate_pre(&component)
        .map_err(|e| PluginError::load(name, format!("{e:#}")))?;
    let pre = match (kind, flat_batches(&surface)) {
        (Kind::Processor, true) => {
            batch_processor::BatchProcessorPluginPre::new(instance_pre).map(Pre::BatchProcessor)
        }
        (Kind::Aggregator, true) => {
            batch_aggregator::BatchAggregatorPluginPre::new(instance_pre).map(Pre::BatchAggregator)
        }
        (Kind::Sink, true) => batch_sink::BatchSinkPluginPre::new(instance_pre).map(Pre::BatchSink),
        (Kind::Processor, false) => {
            processor::ProcessorPluginPre::new(instance_pre).map(Pre::Processor)
        }
        (Kind::Aggregator, false) => {
            aggregator::AggregatorPluginPre::new(instance_pre).map(Pre::Aggregator)
        }
        (Kind::Sink, false) => sink::SinkPluginPre::new(instance_pre).map(Pre::Sink),
    }
    .map_err(|e| PluginError::load(name, format!("{e:#}")))?;

    let loaded = LoadedPlugin {
        name: Arc::from(name),
        kind,
        decl: decl.clone(),
        digest,
        grants: Arc::new(grants.clone()),
        settings: Arc::new(decl.settings_text()),
        pre,
    };
    first_call(rt, loaded)
}

/// Instantiate `loaded` once and make the call that sets it up: a plugin
/// reads its settings and opens its buckets when first called (the SDK's
/// `new`), so one whose settings it refuses would fail every batch. It is
/// refused here instead, at startup or by a reload (which then keeps the
/// last good version), with the plugin's own message. The call hands it
/// an empty batch (`process`, or `write` for a sink). A trap is not
/// refused here: what a plugin does when it traps (its batch to the error
/// action, the instance replaced, quarantine after repeated failures) is
/// the runtime's to handle, batch by batch.
///
/// The call runs on a thread of its own, as the engine's workers call
/// plugins: loading may happen inside the async runtime, where WASI's
/// blocking calls (a guest writing to stderr as it panics) must not run.
fn first_call(rt: &PluginRuntime, loaded: LoadedPlugin) -> Result<LoadedPlugin, PluginError> {
    let loaded = Arc::new(loaded);
    let name = loaded.name.clone();
    let probe = || {
        let mut instance = crate::plugin::Instance::new(rt, loaded.clone())?;
        Ok::<_, PluginError>(instance.process(&crate::plugin::batch::Flat::from_messages(&[])))
    };
    let called = std::thread::scope(|s| s.spawn(probe).join())
        .map_err(|_| PluginError::load(&name, "its first call panicked the host"))??;
    match called {
        Ok(_) => {}
        Err(CallError::Plugin(e)) => {
            return Err(PluginError::load(
                &name,
                format!("it refused its first call (an empty batch): {e}"),
            ))
        }
        Err(e @ CallError::Trap(_)) => tracing::warn!(
            plugin = %name,
            error = %e,
            "the plugin's first call (an empty batch) trapped; loading it anyway"
        ),
    }
    Arc::into_inner(loaded)
        .ok_or_else(|| PluginError::load(&name, "the instance of its first call is still held"))
}

/// A linker with the always-available interfaces plus the granted ones.
fn linker(rt: &PluginRuntime, grants: &Grants) -> wasmtime::Result<Linker<PluginState>> {
    let mut linker: Linker<PluginState> = Linker::new(&rt.engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    type Me = HasSelf<PluginState>;
    host::wasi::logging::logging::add_to_linker::<PluginState, Me>(&mut linker, |s| s)?;
    host::wasi::config::store::add_to_linker::<PluginState, Me>(&mut linker, |s| s)?;
    host::weir::plugin::types::add_to_linker::<PluginState, Me>(&mut linker, |s| s)?;
    host::weir::plugin::batches::add_to_linker::<PluginState, Me>(&mut linker, |s| s)?;
    if !grants.keyvalue.is_empty() {
        host::wasi::keyvalue::store::add_to_linker::<PluginState, Me>(&mut linker, |s| s)?;
        host::wasi::keyvalue::batch::add_to_linker::<PluginState, Me>(&mut linker, |s| s)?;
    }
    if !grants.publish.is_empty() {
        host::weir::plugin::publish::add_to_linker::<PluginState, Me>(&mut linker, |s| s)?;
    }
    if !grants.journal.is_empty() {
        host::weir::plugin::journal::add_to_linker::<PluginState, Me>(&mut linker, |s| s)?;
    }
    if grants.timeseries {
        host::weir::plugin::timeseries::add_to_linker::<PluginState, Me>(&mut linker, |s| s)?;
    }
    if grants.archive {
        host::weir::plugin::archive::add_to_linker::<PluginState, Me>(&mut linker, |s| s)?;
    }
    if !grants.notify.is_empty() {
        host::weir::plugin::notify::add_to_linker::<PluginState, Me>(&mut linker, |s| s)?;
    }
    if !grants.stream.is_empty() {
        host::weir::plugin::streams::add_to_linker::<PluginState, Me>(&mut linker, |s| s)?;
    }
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::capabilities::HostServices;
    use crate::plugin::manifest::PluginDecls;

    #[test]
    fn imports_are_read_without_compiling_and_checked_against_grants() {
        let bytes = weir_bundled_plugins::get("shadow").expect("shipped shadow");
        let imports = component_imports(bytes).expect("a component");
        assert!(
            imports
                .iter()
                .any(|i| i.starts_with("weir:plugin/publish@0.1.")),
            "{imports:?}"
        );
        assert!(
            imports
                .iter()
                .any(|i| i.starts_with("wasi:keyvalue/store@")),
            "{imports:?}"
        );
        let mut grants = Grants {
            keyvalue: vec!["shadow".into()],
            ..Grants::default()
        };
        let refused = check_grants(&imports, &grants).expect_err("publish not granted");
        assert!(refused.contains("grants no `publish`"), "{refused}");
        grants.publish = vec!["$aws/things/+/shadow/#".into()];
        assert_eq!(check_grants(&imports, &grants), Ok(()));
        let unknown = check_grants(&["acme:secret/vault@1.0.0".to_string()], &grants);
        assert!(unknown.expect_err("unknown").contains("does not provide"));
        let core = component_imports(b"\0asm\x01\0\0\0").expect_err("core module");
        assert!(core.contains("not a component"), "{core}");
        assert!(component_imports(b"nope").is_err());
    }

    /// Rewrite every `weir:plugin/…@0.1.3` name in a component to another
    /// 0.1 patch (same length, so the binary stays valid).
    fn as_patch(bytes: &[u8], patch: u8) -> Vec<u8> {
        let mut out = bytes.to_vec();
        let needle = b"@0.1.3";
        let mut i = 0;
        while i + needle.len() <= out.len() {
            if &out[i..i + needle.len()] == needle {
                let start = i.saturating_sub(40);
                if out[start..i].windows(12).any(|w| w == b"weir:plugin/") {
                    out[i + 5] = b'0' + patch;
                }
            }
            i += 1;
        }
        out
    }

    /// A plugin built against another 0.1 patch of the WIT package loads and
    /// runs on this host: wasmtime matches 0.1.x imports and exports by semver.
    /// `echo` exports the `list<message>` processor world, `ticker` the flat
    /// `batch-aggregator` world.
    #[test]
    fn a_plugin_from_a_later_0_1_patch_loads_and_runs() {
        runs_as_patch("echo", 7);
        runs_as_patch("ticker", 7);
    }

    /// Plugins built against 0.1.0 (before the storage interfaces of 0.1.1
    /// and the flat batches of 0.1.2) keep loading, and get `list<message>`;
    /// flat-batch plugins of 0.1.2 (before `payload-fields`) keep theirs.
    #[test]
    fn a_plugin_from_an_earlier_0_1_patch_loads_and_runs() {
        runs_as_patch("echo", 0);
        runs_as_patch("ticker", 2);
    }

    /// A plugin runtime with its store and cache under `dir`.
    fn runtime(dir: &Path) -> PluginRuntime {
        let services = Arc::new(HostServices {
            kv: Arc::new(crate::store::KvStore::open(&dir.join("state.redb")).unwrap()),
            journals: Arc::new(crate::store::Journals::new(dir.to_path_buf())),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            sinks: Arc::new(crate::sinks::Sinks::disabled()),
        });
        PluginRuntime::new(Default::default(), dir.join("cache"), services).unwrap()
    }

    /// A plugin that refuses its settings (a value that does not parse, a
    /// key it does not read) is refused at load, with its own message,
    /// instead of failing every batch, or silently keeping a default, once
    /// it runs; with good settings the same plugin loads.
    #[test]
    fn a_plugin_that_refuses_its_settings_is_refused_at_load() {
        if weir_bundled_plugins::get("zscore").is_none() {
            eprintln!("SKIPPED: built without plugins (WEIR_SKIP_PLUGIN_BUILD)");
            return;
        }
        let dir = std::env::temp_dir().join(format!("weir-settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = runtime(&dir);
        let decl = |settings: &str| {
            let text = format!(
                "[zscore]\ncomponent = \"builtin:zscore\"\nsettings = {{ {settings} }}\ngrants = {{ keyvalue = [\"zscore\"], publish = [\"$weir/alerts/+\"] }}\n"
            );
            PluginDecls::parse(&text)
                .unwrap()
                .get("zscore")
                .unwrap()
                .clone()
        };
        let refused = load(&rt, "zscore", &decl("threshold = \"abc\""), &dir)
            .err()
            .expect("a threshold that is not a number is refused")
            .to_string();
        assert!(refused.contains("zscore"), "{refused}");
        assert!(refused.contains("threshold"), "{refused}");
        assert!(refused.contains("first call"), "{refused}");
        // A setting the plugin never reads is a typo, not a default.
        let typo = load(&rt, "zscore", &decl("thresold = 2"), &dir)
            .err()
            .expect("a misspelt setting is refused")
            .to_string();
        assert!(typo.contains("unknown setting `thresold`"), "{typo}");
        assert!(typo.contains("`threshold`"), "{typo}");
        load(&rt, "zscore", &decl("threshold = 3.5"), &dir).expect("good settings load");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The shipped shadow merges the fields the engine read (here, on
    /// purpose, fewer than the payload holds) rather than parsing the
    /// payload again; a message whose fields were not read it parses.
    #[test]
    fn shadow_merges_the_payload_fields_the_host_read() {
        use crate::plugin::batch::{BatchBuilder, FieldSpan, Parts};
        if weir_bundled_plugins::get("shadow").is_none() {
            eprintln!("SKIPPED: built without plugins (WEIR_SKIP_PLUGIN_BUILD)");
            return;
        }
        let dir = std::env::temp_dir().join(format!("weir-fields-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = runtime(&dir);
        let decls = PluginDecls::parse(
            "[shadow]\ncomponent = \"builtin:shadow\"\ngrants = { keyvalue = [\"shadow\"], publish = [\"$aws/things/+/shadow/#\"] }\n",
        )
        .unwrap();
        let loaded = load(&rt, "shadow", decls.get("shadow").unwrap(), &dir).unwrap();
        let mut instance = crate::plugin::Instance::new(&rt, Arc::new(loaded)).unwrap();
        let payload = r#"{"a":1,"b":2}"#;
        // `b` alone, as if the engine's scan had read just that field.
        let only_b = [FieldSpan {
            name: (8, 1),
            value: (11, 1),
        }];
        let mut batch = BatchBuilder::new();
        for (device, fields) in [("d1", Some(&only_b[..])), ("d2", None)] {
            batch.push(&Parts {
                rule: "telemetry",
                topic: "dt/t/d/telemetry",
                client_id: device,
                device,
                device_type: "t",
                received_at: 1000,
                device_time: None,
                metrics: &[],
                payload,
                fields,
            });
        }
        instance.process(&batch.finish()).unwrap();
        instance.checkpoint().unwrap();
        let reported = |device: &str| {
            let stored = rt.services.kv.get("shadow", device).unwrap().unwrap();
            serde_json::from_slice::<serde_json::Value>(&stored).unwrap()["state"]["reported"]
                .clone()
        };
        assert_eq!(reported("d1"), serde_json::json!({"b": 2}));
        assert_eq!(reported("d2"), serde_json::json!({"a": 1, "b": 2}));
        std::fs::remove_dir_all(dir).ok();
    }

    fn runs_as_patch(name: &str, patch: u8) {
        let dir = std::env::temp_dir().join(format!("weir-semver-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let Some(original) = weir_bundled_plugins::get(name) else {
            eprintln!("SKIPPED: built without plugins (WEIR_SKIP_PLUGIN_BUILD)");
            return;
        };
        let patched = as_patch(original, patch);
        assert_ne!(patched, original, "no weir:plugin names were rewritten");
        std::fs::write(dir.join("p.wasm"), &patched).unwrap();
        let rt = runtime(&dir);
        let decls = PluginDecls::parse(&format!(
            "[p]\ncomponent = \"p.wasm\"\ngrants = {{ publish = [\"{name}/+\"] }}\n"
        ))
        .unwrap();
        let loaded = load(&rt, "p", decls.get("p").unwrap(), &dir)
            .expect("a plugin of another 0.1 patch loads on this host");
        let compiled = surface(&rt.compile("p", &patched).unwrap().0, &rt);
        let suffix = format!("@0.1.{patch}");
        assert!(
            compiled.exports.iter().any(|e| e.ends_with(&suffix)),
            "{:?}",
            compiled.exports
        );
        let flat = name != "echo";
        assert_eq!(flat_batches(&compiled), flat);
        let mut instance = crate::plugin::Instance::new(&rt, Arc::new(loaded)).unwrap();
        let batch =
            crate::plugin::batch::Flat::from_messages(&[crate::plugin::bindings::Message {
                rule: "r".into(),
                topic: "t".into(),
                client_id: "c".into(),
                device: "d1".into(),
                device_type: String::new(),
                received_at: 0,
                device_time: None,
                metrics: Vec::new(),
                payload: "{\"v\":1}".into(),
            }]);
        let mut out = instance.process(&batch).unwrap();
        if flat {
            out = instance.tick(1000).unwrap();
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic, format!("{name}/d1"));
        std::fs::remove_dir_all(dir).ok();
    }
}
