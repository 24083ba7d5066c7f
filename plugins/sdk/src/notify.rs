//! Notifications to operator-configured targets (`weir:plugin/notify`),
//! such as an SNS topic. Needs the target in `grants.notify`.

pub use crate::bindings::host::weir::plugin::notify::Notification;

/// Queue notifications for `target`, in order.
pub fn send(target: &str, notifications: &[Notification]) -> Result<(), String> {
    if notifications.is_empty() {
        return Ok(());
    }
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::host::weir::plugin::notify::send(target, notifications)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Err(format!("notify `{target}`: not running in a Weir host"))
    }
}
