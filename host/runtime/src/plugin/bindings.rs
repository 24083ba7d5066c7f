//! Host-side bindings generated from `wit/` by wasmtime's `bindgen!`.
//!
//! The imports are generated once (world `host`); the three plugin worlds
//! reuse them through `with`, so one set of capability implementations
//! serves processors, aggregators and sinks alike. Each kind has two
//! worlds: the `list<message>` one of 0.1.0/0.1.1 and the flat `batch-*`
//! one of 0.1.2 (see `plugin::batch`).

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
                    "weir:plugin/batches": crate::plugin::bindings::host::weir::plugin::batches,
                },
            });
        }
    };
}

plugin_world!(processor, "weir:plugin/processor-plugin");
plugin_world!(aggregator, "weir:plugin/aggregator-plugin");
plugin_world!(sink, "weir:plugin/sink-plugin");
plugin_world!(batch_processor, "weir:plugin/batch-processor-plugin");
plugin_world!(batch_aggregator, "weir:plugin/batch-aggregator-plugin");
plugin_world!(batch_sink, "weir:plugin/batch-sink-plugin");

pub use host::weir::plugin::batches::{Batch, Fields as PayloadFields};
pub use host::weir::plugin::types::{Message, Metric, Outbound};
