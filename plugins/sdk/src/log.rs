//! Logging through the host (`wasi:logging/logging`). The context of every
//! line is the plugin's crate name; the host adds the plugin instance name.
//! Off wasm32 the lines go to stderr.

use std::sync::OnceLock;

static CONTEXT: OnceLock<&'static str> = OnceLock::new();

/// Set the context string sent with every line (the export macros set it to
/// the plugin's crate name). Only the first call has an effect.
pub fn set_context(context: &'static str) {
    let _ = CONTEXT.set(context);
}

fn context() -> &'static str {
    CONTEXT.get().copied().unwrap_or("")
}

/// Log levels, from the most to the least verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Log `message` at `level`.
pub fn log(level: Level, message: impl AsRef<str>) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::host::wasi::logging::logging as l;
        let level = match level {
            Level::Trace => l::Level::Trace,
            Level::Debug => l::Level::Debug,
            Level::Info => l::Level::Info,
            Level::Warn => l::Level::Warn,
            Level::Error => l::Level::Error,
        };
        l::log(level, context(), message.as_ref());
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        eprintln!("[{level:?} {}] {}", context(), message.as_ref());
    }
}

/// Log at trace level.
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message)
}

/// Log at debug level.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message)
}

/// Log at info level.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message)
}

/// Log at warn level.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message)
}

/// Log at error level.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message)
}
