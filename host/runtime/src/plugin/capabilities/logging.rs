//! `wasi:logging/logging`: plugin log lines join the host's log, tagged with
//! the plugin's name.

use super::PluginState;
use crate::plugin::bindings::host::wasi::logging::logging::{Host, Level};

/// Longest log message kept from a plugin; the rest is cut.
const MAX_MESSAGE: usize = 4096;

impl Host for PluginState {
    fn log(&mut self, level: Level, context: String, mut message: String) {
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(plugin, context, "{message}"),
            Level::Debug => tracing::debug!(plugin, context, "{message}"),
            Level::Info => tracing::info!(plugin, context, "{message}"),
            Level::Warn => tracing::warn!(plugin, context, "{message}"),
            Level::Error | Level::Critical => tracing::error!(plugin, context, "{message}"),
        }
        // What a plugin warns about (shadow skipping a reading that is not
        // a JSON object, say) is counted where an operator looks:
        // `plugin.<name>.log_warnings` / `.log_errors` in `weir status`.
        match level {
            Level::Warn => self
                .services
                .metrics
                .count(&format!("plugin.{plugin}.log_warnings"), 1),
            Level::Error | Level::Critical => self
                .services
                .metrics
                .count(&format!("plugin.{plugin}.log_errors"), 1),
            _ => {}
        }
    }
}
