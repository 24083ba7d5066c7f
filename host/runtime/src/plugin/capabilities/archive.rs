//! `weir:plugin/archive`: rows into the archive tier's outbox, for plugins
//! granted `archive = true`.

use super::PluginState;
use crate::plugin::bindings::host::weir::plugin::archive::{Host, Row};
use weir_storage::archive::ArchiveRow;

impl Host for PluginState {
    fn append(&mut self, rows: Vec<Row>) -> Result<(), String> {
        if !self.grants.archive {
            return Err(format!("plugin {} has no `archive` grant", self.plugin));
        }
        let rows = rows
            .into_iter()
            .map(|r| ArchiveRow {
                device: r.device,
                device_type: r.device_type,
                topic: r.topic,
                received_at_ms: r.received_at,
                device_time_ms: r.device_time,
                metrics: r.metrics.into_iter().map(|m| (m.name, m.value)).collect(),
                payload: r.payload,
            })
            .collect();
        self.services.sinks.append_archive(rows)
    }
}
