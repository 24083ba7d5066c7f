//! `weir:plugin/notify`: notifications into a configured target's outbox,
//! within the plugin's `notify` grant.

use super::PluginState;
use crate::plugin::bindings::host::weir::plugin::notify::{Host, Notification};
use crate::sinks::NotifyItem;

impl Host for PluginState {
    fn send(&mut self, target: String, notifications: Vec<Notification>) -> Result<(), String> {
        if !self.grants.notify.contains(&target) {
            return Err(format!(
                "plugin {} may not notify {target:?} (granted: {:?})",
                self.plugin, self.grants.notify
            ));
        }
        let items = notifications
            .into_iter()
            .map(|n| NotifyItem {
                subject: n.subject,
                body: n.body,
                attributes: n.attributes,
            })
            .collect();
        self.services.sinks.notify(&target, items)
    }
}
