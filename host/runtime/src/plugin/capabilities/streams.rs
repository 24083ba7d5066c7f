//! `weir:plugin/streams`: entries into a configured stream's outbox, within
//! the plugin's `stream` grant.

use super::PluginState;
use crate::plugin::bindings::host::weir::plugin::streams::{Entry, Host};
use crate::sinks::StreamItem;

impl Host for PluginState {
    fn put(&mut self, name: String, entries: Vec<Entry>) -> Result<(), String> {
        if !self.grants.stream.contains(&name) {
            return Err(format!(
                "plugin {} may not put to stream {name:?} (granted: {:?})",
                self.plugin, self.grants.stream
            ));
        }
        let items = entries
            .into_iter()
            .map(|e| StreamItem {
                partition_key: e.partition_key,
                data: e.data,
            })
            .collect();
        self.services.sinks.put_stream(&name, items)
    }
}
