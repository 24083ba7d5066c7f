//! `weir:plugin/timeseries`: readings into the time-series tier's outbox,
//! for plugins granted `timeseries = true`.

use super::PluginState;
use crate::plugin::bindings::host::weir::plugin::timeseries::{Host, Reading};
use weir_storage::timeseries::TsRecord;

impl Host for PluginState {
    fn write(&mut self, readings: Vec<Reading>) -> Result<(), String> {
        if !self.grants.timeseries {
            return Err(format!("plugin {} has no `timeseries` grant", self.plugin));
        }
        let records = readings
            .into_iter()
            .map(|r| TsRecord {
                device: r.device,
                device_type: r.device_type,
                time_ms: r.time,
                measures: r.measures.into_iter().map(|m| (m.name, m.value)).collect(),
            })
            .collect();
        self.services.sinks.write_timeseries(records)
    }
}
