//! The time-series tier (`weir:plugin/timeseries`): readings kept for the
//! retention the operator configured, in the embedded store, Timestream or
//! InfluxDB. Needs `grants.timeseries = true`.
//!
//! ```
//! use weir_plugin::{export_sink, timeseries::{self, Reading}, Message, Sink};
//!
//! struct Temperatures;
//!
//! impl Sink for Temperatures {
//!     fn new() -> Result<Self, String> { Ok(Temperatures) }
//!     fn write(&mut self, batch: Vec<Message>) -> Result<(), String> {
//!         let readings: Vec<Reading> = batch.iter()
//!             .map(|m| Reading::new(m.device.clone(), m.device_type.clone(),
//!                                   m.device_time.unwrap_or(m.received_at),
//!                                   m.metrics.iter().filter(|x| x.name == "temperature").cloned().collect()))
//!             .filter(|r| !r.measures.is_empty())
//!             .collect();
//!         timeseries::write(&readings)   // Ok = queued durably; the host retries and spools
//!     }
//! }
//!
//! export_sink!(Temperatures);
//! ```

pub use crate::bindings::host::weir::plugin::timeseries::Reading;

/// Hand readings to the host. `Ok` means queued durably and in order.
pub fn write(readings: &[Reading]) -> Result<(), String> {
    if readings.is_empty() {
        return Ok(());
    }
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::host::weir::plugin::timeseries::write(readings)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Err("timeseries: not running in a Weir host".into())
    }
}
