//! A running plugin instance: its `Store`, under limits, and the calls the
//! engine makes. A trap (including a deadline or memory limit) poisons the
//! instance; the caller drops it and instantiates a fresh one.

use super::batch::Flat;
use super::bindings::{
    aggregator, batch_aggregator, batch_processor, batch_sink, processor, sink, Outbound,
    PayloadFields,
};
use super::capabilities::PluginState;
use super::loader::{LoadedPlugin, Pre};
use super::{PluginError, PluginRuntime};
use std::sync::Arc;
use wasmtime::{Store, StoreLimitsBuilder};

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The instance trapped (panic, timeout, memory limit…): it must be replaced.
    #[error("trapped: {0}")]
    Trap(String),
    /// The plugin returned an error for this batch; the instance is fine.
    #[error("plugin error: {0}")]
    Plugin(String),
}

/// The instance's exports, by world: the flat `batch-*` worlds (0.1.2)
/// and the `list<message>` worlds of 0.1.0/0.1.1.
enum Bound {
    Processor(processor::ProcessorPlugin),
    Aggregator(aggregator::AggregatorPlugin),
    Sink(sink::SinkPlugin),
    BatchProcessor(batch_processor::BatchProcessorPlugin),
    BatchAggregator(batch_aggregator::BatchAggregatorPlugin),
    BatchSink(batch_sink::BatchSinkPlugin),
}

pub struct Instance {
    pub plugin: Arc<LoadedPlugin>,
    store: Store<PluginState>,
    bound: Bound,
    budget: super::runtime::Budget,
}

fn trap(e: wasmtime::Error) -> CallError {
    let text = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => {
            "call exceeded its time limit (plugins.call_timeout_ms)".to_string()
        }
        _ => format!("{e:#}"),
    };
    CallError::Trap(text)
}

impl Instance {
    pub fn new(rt: &PluginRuntime, plugin: Arc<LoadedPlugin>) -> Result<Instance, PluginError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size((rt.limits.memory_limit_mib as usize) << 20)
            .instances(32)
            .tables(64)
            .memories(8)
            .trap_on_grow_failure(true)
            .build();
        let state = PluginState::new(
            plugin.name.clone(),
            plugin.grants.clone(),
            plugin.settings.clone(),
            rt.services.clone(),
            limits,
        );
        let mut store = Store::new(&rt.engine, state);
        store.limiter(|s| &mut s.limits);
        let budget = rt.budget();
        store.set_epoch_deadline(budget.ticks(0));
        let fail =
            |e: wasmtime::Error| PluginError::load(&plugin.name, format!("instantiate: {e:#}"));
        let bound = match &plugin.pre {
            Pre::Processor(pre) => Bound::Processor(pre.instantiate(&mut store).map_err(fail)?),
            Pre::Aggregator(pre) => Bound::Aggregator(pre.instantiate(&mut store).map_err(fail)?),
            Pre::Sink(pre) => Bound::Sink(pre.instantiate(&mut store).map_err(fail)?),
            Pre::BatchProcessor(pre) => {
                Bound::BatchProcessor(pre.instantiate(&mut store).map_err(fail)?)
            }
            Pre::BatchAggregator(pre) => {
                Bound::BatchAggregator(pre.instantiate(&mut store).map_err(fail)?)
            }
            Pre::BatchSink(pre) => Bound::BatchSink(pre.instantiate(&mut store).map_err(fail)?),
        };
        Ok(Instance {
            plugin,
            store,
            bound,
            budget,
        })
    }

    /// Run one call under a fresh deadline, with `fields` answering
    /// `batches.payload-fields` for its length; collect what the plugin
    /// published through the import alongside what it returned.
    fn call<R>(
        &mut self,
        messages: usize,
        fields: Option<Arc<PayloadFields>>,
        f: impl FnOnce(&Bound, &mut Store<PluginState>) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<(R, Vec<Outbound>), CallError> {
        self.store.set_epoch_deadline(self.budget.ticks(messages));
        let state = self.store.data_mut();
        state.outbox.clear();
        state.payload_fields = fields;
        let result = f(&self.bound, &mut self.store);
        let state = self.store.data_mut();
        state.payload_fields = None;
        let published = std::mem::take(&mut state.outbox);
        match result {
            Ok(Ok(r)) => Ok((r, published)),
            Ok(Err(message)) => Err(CallError::Plugin(message)),
            Err(e) => Err(trap(e)),
        }
    }

    /// Hand a batch to the plugin: `process` for processors and
    /// aggregators, `write` for sinks. Returns the messages to publish.
    /// Plugins of the 0.1.0/0.1.1 worlds get the batch as `list<message>`.
    /// During the call of a flat-batch world, `batches.payload-fields`
    /// answers with the batch's payload fields (their spans are of the flat
    /// batch's text, which a `list<message>` plugin does not get).
    pub fn process(&mut self, flat: &Flat) -> Result<Vec<Outbound>, CallError> {
        let batch = &flat.batch;
        let flat_world = matches!(
            self.bound,
            Bound::BatchProcessor(_) | Bound::BatchAggregator(_) | Bound::BatchSink(_)
        );
        let fields = flat_world.then(|| flat.fields.clone());
        let (mut returned, published) =
            self.call(batch.len(), fields, |bound, store| match bound {
                Bound::BatchProcessor(p) => {
                    p.weir_plugin_batch_processor().call_process(store, batch)
                }
                Bound::BatchAggregator(p) => {
                    p.weir_plugin_batch_processor().call_process(store, batch)
                }
                Bound::BatchSink(p) => p
                    .weir_plugin_batch_sink()
                    .call_write(store, batch)
                    .map(|r| r.map(|()| Vec::new())),
                Bound::Processor(p) => p
                    .weir_plugin_processor()
                    .call_process(store, &batch.to_messages()),
                Bound::Aggregator(p) => p
                    .weir_plugin_processor()
                    .call_process(store, &batch.to_messages()),
                Bound::Sink(p) => p
                    .weir_plugin_sink()
                    .call_write(store, &batch.to_messages())
                    .map(|r| r.map(|()| Vec::new())),
            })?;
        self.check_returned(&returned)?;
        returned.extend(published);
        Ok(returned)
    }

    /// Returned messages obey the same publish grant as the import.
    fn check_returned(&self, returned: &[Outbound]) -> Result<(), CallError> {
        for m in returned {
            self.store
                .data()
                .may_publish(&m.topic)
                .map_err(CallError::Plugin)?;
        }
        Ok(())
    }

    /// `checkpoint` for processors and aggregators, `flush` for sinks.
    pub fn checkpoint(&mut self) -> Result<Vec<Outbound>, CallError> {
        let ((), published) = self.call(0, None, |bound, store| match bound {
            Bound::Processor(p) => p.weir_plugin_processor().call_checkpoint(store),
            Bound::Aggregator(p) => p.weir_plugin_processor().call_checkpoint(store),
            Bound::Sink(p) => p.weir_plugin_sink().call_flush(store),
            Bound::BatchProcessor(p) => p.weir_plugin_batch_processor().call_checkpoint(store),
            Bound::BatchAggregator(p) => p.weir_plugin_batch_processor().call_checkpoint(store),
            Bound::BatchSink(p) => p.weir_plugin_batch_sink().call_flush(store),
        })?;
        Ok(published)
    }

    /// Timer tick for aggregators (a no-op for other kinds).
    pub fn tick(&mut self, now_ms: i64) -> Result<Vec<Outbound>, CallError> {
        if !matches!(self.bound, Bound::Aggregator(_) | Bound::BatchAggregator(_)) {
            return Ok(Vec::new());
        }
        let (mut returned, published) = self.call(0, None, |bound, store| match bound {
            Bound::Aggregator(p) => p.weir_plugin_aggregator().call_tick(store, now_ms),
            Bound::BatchAggregator(p) => p.weir_plugin_aggregator().call_tick(store, now_ms),
            _ => Ok(Ok(Vec::new())),
        })?;
        self.check_returned(&returned)?;
        returned.extend(published);
        Ok(returned)
    }
}
