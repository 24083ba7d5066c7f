//! The archive tier (`weir:plugin/archive`): rows in Parquet files
//! partitioned by device type and date, on disk or in S3. Needs
//! `grants.archive = true`.

pub use crate::bindings::host::weir::plugin::archive::Row;

/// Hand rows to the host. `Ok` means queued durably and in order.
pub fn append(rows: &[Row]) -> Result<(), String> {
    if rows.is_empty() {
        return Ok(());
    }
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::host::weir::plugin::archive::append(rows)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Err("archive: not running in a Weir host".into())
    }
}
