//! Host-side bindings generated from `wit/` by wasmtime's `bindgen!`.
//!
//! The imports are generated once (world `host`); the three plugin worlds
//! reuse them through `with`, so one set of capability implementations
//! serves processors, aggregators and sinks alike.

/// Imports (capabilities) of every plugin world.
pub mod host {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "weir:plugin/host",
        with: {
            "wasi:keyvalue/store.bucket": crate::plugin::capabilities::keyvalue::BucketHandle,
        },
    });
}

macro_rules! plugin_world {
    ($module:ident, $world:literal) => {
        pub mod $module {
            wasmtime::component::bindgen!({
                path: "../../wit",
                world: $world,
                with: {
                    "wasi:keyvalue": crate::plugin::bindings::host::wasi::keyvalue,
                    "wasi:config": crate::plugin::bindings::host::wasi::config,
                    "wasi:logging": crate::plugin::bindings::host::wasi::logging,
                    "weir:plugin/types": crate::plugin::bindings::host::weir::plugin::types,
                    "weir:plugin/publish": crate::plugin::bindings::host::weir::plugin::publish,
                    "weir:plugin/journal": crate::plugin::bindings::host::weir::plugin::journal,
                    "weir:plugin/timeseries": crate::plugin::bindings::host::weir::plugin::timeseries,
                    "weir:plugin/archive": crate::plugin::bindings::host::weir::plugin::archive,
                    "weir:plugin/notify": crate::plugin::bindings::host::weir::plugin::notify,
                    "weir:plugin/streams": crate::plugin::bindings::host::weir::plugin::streams,
                },
            });
        }
    };
}

plugin_world!(processor, "weir:plugin/processor-plugin");
plugin_world!(aggregator, "weir:plugin/aggregator-plugin");
plugin_world!(sink, "weir:plugin/sink-plugin");

pub use host::weir::plugin::types::{Message, Metric, Outbound};
