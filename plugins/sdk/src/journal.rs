//! Append-only journals owned by the host (`weir:plugin/journal`), such as
//! `alerts`, which the embedded host keeps as `<data-dir>/alerts.jsonl`.

/// Append `lines` to the journal `name`, in order; the host adds the line
/// breaks, so a line must not contain one. Fails when the journal is not
/// granted to the plugin.
pub fn append(name: &str, lines: &[String]) -> Result<(), String> {
    if lines.is_empty() {
        return Ok(());
    }
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::host::weir::plugin::journal::append(name, lines)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Err(format!("journal `{name}`: not running in a Weir host"))
    }
}
