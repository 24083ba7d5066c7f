//! `wasi:config/store`: the plugin's declared settings, read-only.

use super::PluginState;
use crate::plugin::bindings::host::wasi::config::store::{Error, Host};

impl Host for PluginState {
    fn get(&mut self, key: String) -> Result<Option<String>, Error> {
        Ok(self
            .settings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone()))
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, Error> {
        Ok(self.settings.as_ref().clone())
    }
}
