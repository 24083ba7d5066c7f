//! Record streams the operator configures (`weir:plugin/streams`), such as a
//! Kinesis data stream. Needs the stream in `grants.stream`.

pub use crate::bindings::host::weir::plugin::streams::Entry;

/// Queue entries for the stream `name`, in order per partition key.
pub fn put(name: &str, entries: &[Entry]) -> Result<(), String> {
    if entries.is_empty() {
        return Ok(());
    }
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::host::weir::plugin::streams::put(name, entries)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Err(format!("stream `{name}`: not running in a Weir host"))
    }
}
