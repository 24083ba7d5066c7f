//! `echo`: a processor that republishes each message's payload on
//! `<prefix>/<device>` (setting `prefix`, default `echo`). Handy for host
//! tests: what goes in comes out, one outbound message per input message.
//!
//! Grants: `publish` to `echo/#` (or `<prefix>/#`).
//!
//! Unlike the other plugins, `echo` exports the `processor-plugin` world of
//! 0.1.0/0.1.1 (batches as `list<message>`), as every plugin built with the
//! SDK before 0.1.2 does, so the host's tests cover that world too. It uses
//! its own bindings for the export and the SDK for everything else.

use weir_plugin::{config, Message, Outbound, Processor};

pub struct Echo {
    prefix: String,
}

impl Echo {
    /// The echo of one batch (pure, so it is testable off-host).
    pub fn echo(&self, batch: Vec<Message>) -> Vec<Outbound> {
        batch
            .into_iter()
            .map(|m| Outbound::new(format!("{}/{}", self.prefix, m.device), m.payload))
            .collect()
    }
}

impl Processor for Echo {
    fn new() -> Result<Self, String> {
        let prefix = config::get("prefix").unwrap_or_else(|| "echo".to_string());
        Ok(Echo {
            prefix: prefix.trim_end_matches('/').to_string(),
        })
    }

    fn process(&mut self, batch: Vec<Message>) -> Result<Vec<Outbound>, String> {
        Ok(self.echo(batch))
    }
}

/// The `processor-plugin` world, generated here rather than by the SDK
/// (whose export macros target the `batch-*` worlds).
#[cfg(target_arch = "wasm32")]
mod legacy {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "weir:plugin/processor-plugin@0.1.3",
        with: {
            "weir:plugin/types@0.1.3": weir_plugin::bindings::host::weir::plugin::types,
            "weir:plugin/publish@0.1.3": weir_plugin::bindings::host::weir::plugin::publish,
            "weir:plugin/journal@0.1.3": weir_plugin::bindings::host::weir::plugin::journal,
            "weir:plugin/timeseries@0.1.3": weir_plugin::bindings::host::weir::plugin::timeseries,
            "weir:plugin/archive@0.1.3": weir_plugin::bindings::host::weir::plugin::archive,
            "weir:plugin/notify@0.1.3": weir_plugin::bindings::host::weir::plugin::notify,
            "weir:plugin/streams@0.1.3": weir_plugin::bindings::host::weir::plugin::streams,
            "weir:plugin/batches@0.1.3": weir_plugin::bindings::host::weir::plugin::batches,
            "wasi:logging/logging@0.1.0-draft": weir_plugin::bindings::host::wasi::logging::logging,
            "wasi:config/store@0.2.0-rc.1": weir_plugin::bindings::host::wasi::config::store,
            "wasi:keyvalue/store@0.2.0-draft": weir_plugin::bindings::host::wasi::keyvalue::store,
            "wasi:keyvalue/batch@0.2.0-draft": weir_plugin::bindings::host::wasi::keyvalue::batch,
        },
    });

    use super::Echo;
    use std::cell::RefCell;
    use weir_plugin::{Message, Outbound, Processor};

    struct Export;

    thread_local! {
        static ECHO: RefCell<Option<Echo>> = const { RefCell::new(None) };
    }

    impl exports::weir::plugin::processor::Guest for Export {
        fn process(batch: Vec<Message>) -> Result<Vec<Outbound>, String> {
            ECHO.with(|cell| {
                let mut cell = cell.borrow_mut();
                if cell.is_none() {
                    *cell = Some(Echo::new()?);
                }
                match cell.as_mut() {
                    Some(echo) => echo.process(batch),
                    None => Ok(Vec::new()),
                }
            })
        }

        fn checkpoint() -> Result<(), String> {
            Ok(())
        }
    }

    export!(Export);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_payload_per_device() {
        let echo = Echo::new().unwrap();
        let batch = vec![
            Message {
                device: "d1".into(),
                payload: r#"{"a":1}"#.into(),
                ..Default::default()
            },
            Message {
                device: "d2".into(),
                payload: "x".into(),
                ..Default::default()
            },
        ];
        assert_eq!(
            echo.echo(batch),
            vec![
                Outbound::new("echo/d1", r#"{"a":1}"#),
                Outbound::new("echo/d2", "x")
            ]
        );
    }
}
