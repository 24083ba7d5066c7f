//! Counters an outbox exposes for status pages and metrics.

use std::time::Duration;

use serde::Serialize;

/// A snapshot of one outbox.
///
/// Attempt accounting: every call to [`Deliver::deliver`](crate::Deliver::deliver)
/// counts one in `batches`; a call that resends items a previous call
/// returned for retry also counts in `retries`; a call that returned
/// anything to retry counts in `failures`. While a backend is down,
/// `consecutive_failures` climbs, `last_error` says why and
/// `spooled_bytes` grows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutboxStats {
    /// The outbox's name.
    pub name: String,
    /// Items waiting in memory (not counting `in_flight`).
    pub queued: usize,
    /// Items in the batch being delivered or retried, and in the next
    /// batch, taken (and decoded) while it is.
    pub in_flight: usize,
    /// Bytes in the spool not yet acknowledged (includes spooled items
    /// that are `in_flight`). Saturation compares this with the limit.
    pub spooled_bytes: u64,
    /// Items in the spool not yet acknowledged (includes spooled items that
    /// are `in_flight`).
    pub spooled_items: u64,
    /// Items the backend accepted.
    pub delivered: u64,
    /// Calls to the backend.
    pub batches: u64,
    /// Calls that resent items an earlier call returned for retry.
    pub retries: u64,
    /// Items written to `rejected.jsonl` (refused by the backend or
    /// unreadable from the spool).
    pub rejected: u64,
    /// Calls that returned items for retry.
    pub failures: u64,
    /// Failed calls since the last call that left nothing to retry.
    pub consecutive_failures: u64,
    /// The most recent failure or rejection reason (kept after recovery).
    pub last_error: Option<String>,
    /// Age of the oldest item not yet acknowledged.
    pub backlog_oldest_age: Option<Duration>,
    /// Spool bytes discarded as corrupt (torn tail after a crash, bad CRC).
    pub spool_corrupt_bytes: u64,
    /// Items `push` could not take because the spool could not be written.
    pub refused: u64,
    /// Whether `spooled_bytes >= spool_limit_bytes`.
    pub saturated: bool,
}

impl OutboxStats {
    /// Everything accepted has been delivered (or rejected): nothing in
    /// memory, in flight or in the spool.
    pub fn is_drained(&self) -> bool {
        self.queued == 0 && self.in_flight == 0 && self.spooled_items == 0
    }
}

/// The counters kept under the outbox lock.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub delivered: u64,
    pub batches: u64,
    pub retries: u64,
    pub rejected: u64,
    pub failures: u64,
    pub consecutive_failures: u64,
    pub refused: u64,
    pub last_error: Option<String>,
}
