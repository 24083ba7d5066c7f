//! The generated bindings, one module per world.
//!
//! `weir-plugin-sys` generates the `batch-aggregator-plugin` world, and with it
//! every import and the shared `weir:plugin/types` and `batches` (see that
//! crate for why it is separate). The `batch-processor-plugin` and
//! `batch-sink-plugin` worlds are generated here and reuse those imports and types through `with`, so a
//! `Message` is one Rust type whichever world a plugin targets. Plugin
//! authors never name anything in here: the SDK's helpers and export macros
//! do.
//!
//! The export macros are public (`pub_export_macro`) and carry each world's
//! full type information, so only the world a plugin actually exports ends up
//! in its component.

/// Every import and the shared types.
pub use weir_plugin_sys::aggregator as host;

/// The `batch-aggregator-plugin` world.
pub use weir_plugin_sys::aggregator;

/// A flat-batch world generated here, with its imports and types taken
/// from `weir-plugin-sys` (`with`).
macro_rules! world {
    ($(#[$doc:meta])* $module:ident, $world:literal, $bindings:literal, $export:literal) => {
        $(#[$doc])*
        pub mod $module {
            wit_bindgen::generate!({
                path: "../../wit",
                world: $world,
                with: {
                    "weir:plugin/types@0.1.3": weir_plugin_sys::aggregator::weir::plugin::types,
                    "weir:plugin/publish@0.1.3": weir_plugin_sys::aggregator::weir::plugin::publish,
                    "weir:plugin/journal@0.1.3": weir_plugin_sys::aggregator::weir::plugin::journal,
                    "weir:plugin/timeseries@0.1.3": weir_plugin_sys::aggregator::weir::plugin::timeseries,
                    "weir:plugin/archive@0.1.3": weir_plugin_sys::aggregator::weir::plugin::archive,
                    "weir:plugin/notify@0.1.3": weir_plugin_sys::aggregator::weir::plugin::notify,
                    "weir:plugin/streams@0.1.3": weir_plugin_sys::aggregator::weir::plugin::streams,
                    "weir:plugin/batches@0.1.3": weir_plugin_sys::aggregator::weir::plugin::batches,
                    "wasi:logging/logging@0.1.0-draft": weir_plugin_sys::aggregator::wasi::logging::logging,
                    "wasi:config/store@0.2.0-rc.1": weir_plugin_sys::aggregator::wasi::config::store,
                    "wasi:keyvalue/store@0.2.0-draft": weir_plugin_sys::aggregator::wasi::keyvalue::store,
                    "wasi:keyvalue/batch@0.2.0-draft": weir_plugin_sys::aggregator::wasi::keyvalue::batch,
                },
                pub_export_macro: true,
                default_bindings_module: $bindings,
                export_macro_name: $export,
            });
        }
    };
}

world!(
    /// The `batch-processor-plugin` world.
    processor,
    "weir:plugin/batch-processor-plugin@0.1.3",
    "::weir_plugin::__private::processor",
    "export_processor_world"
);

world!(
    /// The `batch-sink-plugin` world.
    sink,
    "weir:plugin/batch-sink-plugin@0.1.3",
    "::weir_plugin::__private::sink",
    "export_sink_world"
);
