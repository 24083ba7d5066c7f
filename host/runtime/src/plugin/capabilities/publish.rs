//! `weir:plugin/publish`: publish into the broker and the rules engine,
//! within the plugin's `publish` grant.

use super::PluginState;
use crate::plugin::bindings::host::weir::plugin::publish::Host;
use crate::plugin::bindings::Outbound;
use std::sync::atomic::Ordering::Relaxed;

impl PluginState {
    /// Check a topic against the publish grant.
    pub fn may_publish(&self, topic: &str) -> Result<(), String> {
        if topic.is_empty() || topic.contains(['+', '#', '\0']) {
            return Err(format!("invalid topic {topic:?}"));
        }
        if self
            .grants
            .publish
            .iter()
            .any(|f| weir_sql::topic_matches(f, topic))
        {
            Ok(())
        } else {
            self.services.metrics.publish_refused.fetch_add(1, Relaxed);
            Err(format!(
                "plugin {} may not publish to {topic:?} (granted: {:?})",
                self.plugin, self.grants.publish
            ))
        }
    }
}

impl crate::plugin::bindings::host::weir::plugin::types::Host for PluginState {}

impl Host for PluginState {
    fn publish(&mut self, message: Outbound) -> Result<(), String> {
        self.may_publish(&message.topic)?;
        self.outbox.push(message);
        Ok(())
    }
}
