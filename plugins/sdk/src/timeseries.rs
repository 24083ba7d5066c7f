//! The time-series tier (`weir:plugin/timeseries`): readings kept for the
//! retention the operator configured, in the embedded store, Timestream or
//! InfluxDB. Needs `grants.timeseries = true`.

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
