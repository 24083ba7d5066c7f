//! The plugins that ship with Weir.
//!
//! `build.rs` compiles the `plugins/` workspace to WebAssembly components
//! (`wasm32-wasip2`) and this crate embeds them, so one `cargo build`
//! produces a `weir` binary that needs no plugin files beside it. A plugin
//! declaration refers to one of these as `component = "builtin:<name>"`.

include!(concat!(env!("OUT_DIR"), "/shipped.rs"));

/// The component bytes of a shipped plugin, by name (`zscore`, `shadow`, …).
pub fn get(name: &str) -> Option<&'static [u8]> {
    SHIPPED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

/// Names of every shipped plugin.
pub fn names() -> impl Iterator<Item = &'static str> {
    SHIPPED.iter().map(|(n, _)| *n)
}
