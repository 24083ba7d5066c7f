//! # weir-plugin: the guest SDK for Weir plugins
//!
//! A Weir plugin is a WebAssembly component built for `wasm32-wasip2` against
//! the WIT package `weir:plugin@0.1.3` (in the repository's `wit/`). This
//! crate wraps the generated bindings so that a plugin is a struct, a trait
//! impl and one macro call:
//!
//! ```
//! use weir_plugin::{export_processor, Message, Outbound, Processor};
//!
//! struct Echo { prefix: String }
//!
//! impl Processor for Echo {
//!     fn new() -> Result<Self, String> {
//!         Ok(Echo { prefix: weir_plugin::config::get("prefix").unwrap_or_else(|| "echo".into()) })
//!     }
//!     fn process(&mut self, batch: Vec<Message>) -> Result<Vec<Outbound>, String> {
//!         Ok(batch.into_iter()
//!             .map(|m| Outbound::new(format!("{}/{}", self.prefix, m.device), m.payload))
//!             .collect())
//!     }
//! }
//!
//! export_processor!(Echo);
//! ```
//!
//! ## Worlds and traits
//!
//! | trait          | macro                   | WIT world           |
//! |----------------|-------------------------|---------------------|
//! | [`Processor`]  | [`export_processor!`]   | `processor-plugin`  |
//! | [`Aggregator`] | [`export_aggregator!`]  | `aggregator-plugin` |
//! | [`Sink`]       | [`export_sink!`]        | `sink-plugin`       |
//!
//! The plugin value is built lazily by `new()` on the first `process`,
//! `write` or `tick` call (so `new()` may read settings and open buckets) and
//! then lives in a static cell for the life of the instance: a Wasm instance
//! is single threaded and the host never re-enters it. If `new()` fails, the
//! call returns its error (the batch goes to the rule's error action) and the
//! next call tries again. `checkpoint` and `flush` before the first batch are
//! no-ops.
//!
//! ## Host capabilities
//!
//! [`config`] (plugin settings, `wasi:config`), [`kv`] (key-value buckets,
//! `wasi:keyvalue`), [`log`] (`wasi:logging`), [`publish()`], [`journal`],
//! and the storage tiers and outlets: [`timeseries`], [`archive`],
//! [`notify`] and [`stream`].
//! Each is linked only when the plugin's declaration grants it; calls to a
//! capability that was not granted return an error (or the component is
//! refused at load, depending on the host's policy).
//!
//! Off `wasm32` (for example in a plugin's native unit tests) the helpers do
//! not reach a host: logging goes to stderr, `config::get` finds nothing and
//! the other capabilities return an error.
//!
//! ## Panics
//!
//! A panic aborts the instance (a trap): the host sends the batch to the
//! error action and replaces the instance. Return `Err` for anything a bad
//! input can cause.

extern crate self as weir_plugin;

pub mod archive;
pub mod batch;
#[doc(hidden)]
pub mod bindings;
pub mod bytes;
pub mod config;
mod device_table;
pub mod devices;
pub mod journal;
pub mod kv;
pub mod log;
pub mod names;
pub mod notify;
pub mod stream;
pub mod timeseries;

pub use batch::{Batch, MessageRef};
/// One message handed to a plugin: the output of one rule for one reading.
/// See `weir:plugin/types.message` for the meaning of each field.
pub use bindings::host::weir::plugin::types::Message;
/// A named numeric field of a rule's output (`env.temp` for nested fields).
pub use bindings::host::weir::plugin::types::Metric;
/// A message a plugin asks the host to publish.
pub use bindings::host::weir::plugin::types::Outbound;

/// A processor: a batch of messages in, messages out (`processor-plugin`).
pub trait Processor: Sized + 'static {
    /// Build the plugin, typically from its settings ([`config`]). Called
    /// once, before the first batch: the host makes that call when it
    /// loads the plugin, so an `Err` here refuses the plugin (at startup,
    /// or a reload, which keeps the last good version). Read every setting
    /// the plugin takes here: a declared setting `new` does not read is
    /// taken for a typo, and refused with the keys it does read.
    fn new() -> Result<Self, String>;

    /// Process a batch. Returned messages are published by the host under
    /// the plugin's `publish` grant. `Err` sends the whole batch to the
    /// rule's error action.
    fn process(&mut self, batch: Vec<Message>) -> Result<Vec<Outbound>, String>;

    /// Process a batch as the host hands it over, without copying it into
    /// owned messages first. This is what the host calls; the default copies
    /// the batch and calls [`Processor::process`]. Override it, reading
    /// [`MessageRef`]s from [`Batch::iter`], when the copy matters (about
    /// ten small allocations per message).
    fn process_batch(&mut self, batch: &Batch) -> Result<Vec<Outbound>, String> {
        self.process(batch.to_messages())
    }

    /// Save in-memory state to the key-value store. Called every few seconds,
    /// before the instance is replaced and at shutdown.
    fn checkpoint(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// An aggregator: a processor that also receives timer ticks
/// (`aggregator-plugin`), so windows close when a device falls silent.
pub trait Aggregator: Processor {
    /// Called about once a second with the host clock, ms since the epoch.
    fn tick(&mut self, now: i64) -> Result<Vec<Outbound>, String>;
}

/// A sink: writes batches somewhere through host capabilities (`sink-plugin`).
pub trait Sink: Sized + 'static {
    /// Build the plugin, typically from its settings. Called once, before the
    /// first batch, when the host loads the plugin; as [`Processor::new`],
    /// it must read every setting the plugin takes.
    fn new() -> Result<Self, String>;

    /// Write a batch. `Err` sends the whole batch to the rule's error action.
    fn write(&mut self, batch: Vec<Message>) -> Result<(), String>;

    /// Write a batch as the host hands it over (see
    /// [`Processor::process_batch`]); the default copies it and calls
    /// [`Sink::write`].
    fn write_batch(&mut self, batch: &Batch) -> Result<(), String> {
        self.write(batch.to_messages())
    }

    /// Make everything written so far durable. Called every second and at
    /// shutdown.
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// Publish one message into Weir (the embedded broker and the rules engine).
/// Fails, publishing nothing, when the topic is outside the plugin's
/// `publish` grant.
pub fn publish(topic: impl Into<String>, payload: impl Into<String>) -> Result<(), String> {
    let message = Outbound {
        topic: topic.into(),
        payload: payload.into(),
    };
    #[cfg(target_arch = "wasm32")]
    {
        bindings::host::weir::plugin::publish::publish(&message)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Err(format!(
            "publish to `{}`: not running in a Weir host",
            message.topic
        ))
    }
}

/// Export a [`Processor`] as the component's `weir:plugin/batch-processor`.
///
/// Use once per crate, at the crate root: `export_processor!(MyPlugin);`.
#[macro_export]
macro_rules! export_processor {
    ($t:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static __WEIR_STATE: $crate::__private::Slot<$t> = $crate::__private::Slot::new();
            struct __WeirExport;
            impl $crate::__private::processor::exports::weir::plugin::batch_processor::Guest
                for __WeirExport
            {
                fn process(
                    batch: $crate::__private::RawBatch,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::Outbound>, ::std::string::String>
                {
                    $crate::__private::process(
                        &__WEIR_STATE,
                        env!("CARGO_PKG_NAME"),
                        $crate::Batch::from_raw(batch),
                    )
                }
                fn checkpoint() -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::checkpoint(&__WEIR_STATE)
                }
            }
            $crate::__private::processor::export_processor_world!(
                __WeirExport with_types_in $crate::__private::processor
            );
        };
    };
}

/// Export an [`Aggregator`] as the component's `weir:plugin/batch-processor`
/// and `weir:plugin/aggregator`.
#[macro_export]
macro_rules! export_aggregator {
    ($t:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static __WEIR_STATE: $crate::__private::Slot<$t> = $crate::__private::Slot::new();
            struct __WeirExport;
            impl $crate::__private::aggregator::exports::weir::plugin::batch_processor::Guest
                for __WeirExport
            {
                fn process(
                    batch: $crate::__private::RawBatch,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::Outbound>, ::std::string::String>
                {
                    $crate::__private::process(
                        &__WEIR_STATE,
                        env!("CARGO_PKG_NAME"),
                        $crate::Batch::from_raw(batch),
                    )
                }
                fn checkpoint() -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::checkpoint(&__WEIR_STATE)
                }
            }
            impl $crate::__private::aggregator::exports::weir::plugin::aggregator::Guest
                for __WeirExport
            {
                fn tick(
                    now: i64,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::Outbound>, ::std::string::String>
                {
                    $crate::__private::tick(&__WEIR_STATE, env!("CARGO_PKG_NAME"), now)
                }
            }
            $crate::__private::aggregator::export_aggregator_world!(
                __WeirExport with_types_in $crate::__private::aggregator
            );
        };
    };
}

/// Export a [`Sink`] as the component's `weir:plugin/batch-sink`.
#[macro_export]
macro_rules! export_sink {
    ($t:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static __WEIR_STATE: $crate::__private::Slot<$t> = $crate::__private::Slot::new();
            struct __WeirExport;
            impl $crate::__private::sink::exports::weir::plugin::batch_sink::Guest for __WeirExport {
                fn write(
                    batch: $crate::__private::RawBatch,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::write(
                        &__WEIR_STATE,
                        env!("CARGO_PKG_NAME"),
                        $crate::Batch::from_raw(batch),
                    )
                }
                fn flush() -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::flush(&__WEIR_STATE)
                }
            }
            $crate::__private::sink::export_sink_world!(
                __WeirExport with_types_in $crate::__private::sink
            );
        };
    };
}

/// Support for the export macros; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::aggregator;
    pub use crate::bindings::host::weir::plugin::batches::Batch as RawBatch;
    pub use crate::bindings::processor;
    pub use crate::bindings::sink;
    pub use weir_plugin_sys::wit_bindgen;

    use crate::{Aggregator, Batch, Outbound, Processor, Sink};
    use std::cell::RefCell;

    /// The plugin value of a component instance.
    pub struct Slot<T>(RefCell<Option<T>>);

    // SAFETY: a component instance is single threaded (wasm32-wasip2 has no
    // threads) and the host never calls into an instance re-entrantly; the
    // export macros, the only users of `Slot` in a `static`, are compiled
    // only for wasm32.
    #[cfg(target_arch = "wasm32")]
    unsafe impl<T> Sync for Slot<T> {}

    impl<T> Slot<T> {
        pub const fn new() -> Self {
            Slot(RefCell::new(None))
        }

        /// Run `f` on the plugin value, building it with `init` first when
        /// `init` is given and it does not exist yet. Without `init`, a
        /// missing value means there is nothing to do.
        fn with<R: Default>(
            &self,
            init: Option<&dyn Fn() -> Result<T, String>>,
            f: impl FnOnce(&mut T) -> Result<R, String>,
        ) -> Result<R, String> {
            let mut cell = self
                .0
                .try_borrow_mut()
                .map_err(|_| "plugin re-entered while busy".to_string())?;
            if cell.is_none() {
                match init {
                    Some(init) => {
                        crate::config::start_reading();
                        let value = init().map_err(|e| format!("plugin setup: {e}"))?;
                        crate::config::check_all_read(&crate::config::get_all()?)
                            .map_err(|e| format!("plugin setup: {e}"))?;
                        *cell = Some(value);
                    }
                    None => return Ok(R::default()),
                }
            }
            match cell.as_mut() {
                Some(value) => f(value),
                None => Ok(R::default()),
            }
        }
    }

    impl<T> Default for Slot<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    fn init<T>(
        name: &'static str,
        new: fn() -> Result<T, String>,
    ) -> impl Fn() -> Result<T, String> {
        move || {
            crate::log::set_context(name);
            new()
        }
    }

    pub fn process<T: Processor>(
        slot: &Slot<T>,
        name: &'static str,
        batch: Batch,
    ) -> Result<Vec<Outbound>, String> {
        slot.with(Some(&init(name, T::new)), |p| p.process_batch(&batch))
    }

    pub fn checkpoint<T: Processor>(slot: &Slot<T>) -> Result<(), String> {
        slot.with(None, |p| p.checkpoint())
    }

    pub fn tick<T: Aggregator>(
        slot: &Slot<T>,
        name: &'static str,
        now: i64,
    ) -> Result<Vec<Outbound>, String> {
        slot.with(Some(&init(name, T::new)), |p| p.tick(now))
    }

    pub fn write<T: Sink>(slot: &Slot<T>, name: &'static str, batch: Batch) -> Result<(), String> {
        slot.with(Some(&init(name, T::new)), |s| s.write_batch(&batch))
    }

    pub fn flush<T: Sink>(slot: &Slot<T>) -> Result<(), String> {
        slot.with(None, |s| s.flush())
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::Message;

        struct Counter(u32);
        impl Processor for Counter {
            fn new() -> Result<Self, String> {
                Ok(Counter(0))
            }
            fn process(&mut self, batch: Vec<Message>) -> Result<Vec<Outbound>, String> {
                self.0 += batch.len() as u32;
                Ok(vec![Outbound::new("n", self.0.to_string())])
            }
            fn checkpoint(&mut self) -> Result<(), String> {
                Err(format!("saw {}", self.0))
            }
        }

        struct Broken;
        impl Processor for Broken {
            fn new() -> Result<Self, String> {
                Err("bad setting".into())
            }
            fn process(&mut self, _: Vec<Message>) -> Result<Vec<Outbound>, String> {
                unreachable!()
            }
        }

        #[test]
        fn state_is_built_once_and_kept() {
            let slot = Slot::<Counter>::new();
            // checkpoint before any batch: nothing built, nothing to save
            assert_eq!(checkpoint(&slot), Ok(()));
            let two = Batch::from_messages(&[Message::default(), Message::default()]);
            let out = process(&slot, "t", two).unwrap();
            assert_eq!(out, vec![Outbound::new("n", "2")]);
            let out = process(&slot, "t", Batch::from_messages(&[Message::default()])).unwrap();
            assert_eq!(out, vec![Outbound::new("n", "3")]);
            assert_eq!(checkpoint(&slot), Err("saw 3".into()));
        }

        #[test]
        fn failed_setup_is_an_error_not_a_trap() {
            let slot = Slot::<Broken>::new();
            assert_eq!(
                process(&slot, "t", Batch::from_messages(&[])),
                Err("plugin setup: bad setting".into())
            );
            assert_eq!(checkpoint(&slot), Ok(()));
        }
    }
}
