//! The plugin host: wasmtime's component model with one `Engine`, components
//! compiled once (and cached on disk), an `InstancePre` per plugin version,
//! a `Linker` holding only the granted capabilities, and every call under an
//! epoch deadline and a memory cap.

pub mod batch;
pub mod bindings;
pub mod capabilities;
pub mod inspect;
pub mod instance;
pub mod loader;
pub mod manifest;
pub mod runtime;

pub use batch::BatchBuilder;
pub use instance::{CallError, Instance};
pub use loader::{Kind, LoadedPlugin};
pub use runtime::PluginRuntime;

/// Errors loading a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {plugin}: {message}")]
    Load { plugin: String, message: String },
}

impl PluginError {
    pub fn load(plugin: &str, message: impl std::fmt::Display) -> PluginError {
        PluginError::Load {
            plugin: plugin.to_string(),
            message: message.to_string(),
        }
    }
}
