//! What the host lends a plugin: each submodule implements one imported
//! interface for [`PluginState`], the data of a plugin's wasmtime `Store`.
//!
//! Grants are enforced twice: an interface that is not granted is not in the
//! plugin's `Linker` at all (so the component is refused at load), and the
//! granted ones check each bucket, topic or journal name per call.

pub mod archive;
pub mod batches;
pub mod config;
pub mod journal;
pub mod keyvalue;
pub mod logging;
pub mod notify;
pub mod publish;
pub mod streams;
pub mod timeseries;

use crate::metrics::Metrics;
use crate::plugin::bindings::{Outbound, PayloadFields};
use crate::plugin::manifest::Grants;
use crate::sinks::Sinks;
use crate::store::{Journals, KvStore};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::StoreLimits;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Host services shared by every plugin instance.
pub struct HostServices {
    pub kv: Arc<KvStore>,
    pub journals: Arc<Journals>,
    pub metrics: Arc<Metrics>,
    /// The storage tiers and outlets (time series, archive, notify, streams).
    pub sinks: Arc<Sinks>,
}

/// The data of one plugin instance's `Store`.
pub struct PluginState {
    pub plugin: Arc<str>,
    pub grants: Arc<Grants>,
    pub settings: Arc<Vec<(String, String)>>,
    pub services: Arc<HostServices>,
    /// Messages the plugin published during the current call; the engine
    /// routes them after the call returns.
    pub outbox: Vec<Outbound>,
    /// The payload fields of the batch of the current call (`None` between
    /// calls), answered by `batches.payload-fields`.
    pub payload_fields: Option<Arc<PayloadFields>>,
    pub limits: StoreLimits,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl PluginState {
    pub fn new(
        plugin: Arc<str>,
        grants: Arc<Grants>,
        settings: Arc<Vec<(String, String)>>,
        services: Arc<HostServices>,
        limits: StoreLimits,
    ) -> PluginState {
        // No preopened directories, no environment, no arguments, no
        // sockets, no name lookups: WASI here is only clocks, random and
        // empty standard streams.
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        PluginState {
            plugin,
            grants,
            settings,
            services,
            outbox: Vec::new(),
            payload_fields: None,
            limits,
            wasi,
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
