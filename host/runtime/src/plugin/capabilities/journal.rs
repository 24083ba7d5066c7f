//! `weir:plugin/journal`: append lines to host-owned journals within the
//! plugin's `journal` grant.

use super::PluginState;
use crate::plugin::bindings::host::weir::plugin::journal::Host;

impl Host for PluginState {
    fn append(&mut self, journal: String, lines: Vec<String>) -> Result<(), String> {
        if !self.grants.journal.contains(&journal) {
            return Err(format!(
                "plugin {} may not append to journal {journal:?} (granted: {:?})",
                self.plugin, self.grants.journal
            ));
        }
        self.services
            .journals
            .append(&journal, &lines)
            .map_err(|e| format!("journal {journal}: {e}"))
    }
}
