//! `weir plugin inspect`: what a component is, what it asks for, and whether
//! this host accepts it — without running it.

use super::loader::{flat_batches, grant_for, is_always, kind_of, Surface};
use serde_json::{json, Value};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The WIT package version this host implements.
pub const HOST_WIT_VERSION: &str = "0.1.3";

/// Describe a component as JSON.
pub fn inspect(bytes: &[u8]) -> Result<Value, String> {
    let engine = Engine::new(&super::runtime::engine_config()).map_err(|e| format!("{e:#}"))?;
    let component =
        Component::new(&engine, bytes).map_err(|e| format!("not a valid component: {e:#}"))?;
    let ty = component.component_type();
    let surface = Surface {
        imports: ty.imports(&engine).map(|(n, _)| n.to_string()).collect(),
        exports: ty.exports(&engine).map(|(n, _)| n.to_string()).collect(),
    };
    let kind = kind_of(&surface);
    let wit_version = surface
        .exports
        .iter()
        .chain(surface.imports.iter())
        .filter(|n| n.starts_with("weir:plugin/"))
        .find_map(|n| n.split_once('@').map(|(_, v)| v.to_string()));
    let mut problems = Vec::new();
    let imports: Vec<Value> = surface
        .imports
        .iter()
        .map(|i| {
            let needs = if is_always(i) {
                "always available".to_string()
            } else if let Some(g) = grant_for(i) {
                format!("needs grants.{g}")
            } else {
                problems.push(format!("imports {i}, which this host does not provide"));
                "not provided by this host".to_string()
            };
            json!({"name": i, "availability": needs})
        })
        .collect();
    if kind.is_none() {
        problems.push("exports none of weir:plugin/processor, aggregator or sink at 0.1.x".into());
    }
    if let Some(v) = &wit_version {
        if !v.starts_with("0.1.") {
            problems.push(format!("built against weir:plugin@{v}; this host implements {HOST_WIT_VERSION} (accepts 0.1.x)"));
        }
    }
    Ok(json!({
        "world": kind.map(|k| {
            let prefix = if flat_batches(&surface) { "batch-" } else { "" };
            format!("{prefix}{}-plugin", k.name())
        }),
        "wit_version": wit_version,
        "host_wit_version": HOST_WIT_VERSION,
        "size_bytes": bytes.len(),
        "sha256": super::loader::digest(bytes),
        "exports": surface.exports,
        "imports": imports,
        "accepted": problems.is_empty(),
        "problems": problems,
    }))
}
