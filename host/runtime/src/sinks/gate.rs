//! Back-pressure from the backends to the devices: the gate closes while
//! any backend's spool is at its limit, and listeners wait on it before
//! reading the next packet, so ingestion slows down instead of anything
//! being dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Open (traffic flows) or closed (a spool is full).
#[derive(Default)]
pub struct Gate {
    closed: AtomicBool,
    opened: Notify,
}

impl Gate {
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Wait until the gate is open.
    pub async fn wait_open(&self) {
        while self.is_closed() {
            let opened = self.opened.notified();
            if !self.is_closed() {
                break;
            }
            opened.await;
        }
    }

    pub fn set_closed(&self, closed: bool) {
        let was = self.closed.swap(closed, Ordering::AcqRel);
        if was && !closed {
            self.opened.notify_waiters();
        }
    }
}

/// Poll each backend's saturation every 20 ms and drive the gate.
pub fn watch(
    gate: Arc<Gate>,
    probes: Vec<(String, Box<dyn Fn() -> bool + Send + Sync>)>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => break,
            }
            let full: Vec<&str> = probes
                .iter()
                .filter(|(_, p)| p())
                .map(|(n, _)| n.as_str())
                .collect();
            let closed = !full.is_empty();
            if closed != gate.is_closed() {
                if closed {
                    tracing::warn!(backends = ?full, "spool limit reached: pausing device input until the backlog drains");
                } else {
                    tracing::info!("backlog below the spool limit: device input resumed");
                }
                gate.set_closed(closed);
            }
        }
        gate.set_closed(false);
    })
}
