//! Outboxes: Weir's promise that sinks never drop data.
//!
//! Every sink (DynamoDB, Timestream, S3, SNS, Kinesis, the embedded stores)
//! sits behind an [`Outbox`]: a bounded in-memory queue that spills to a
//! disk spool when the backend is slow or down, replays the spool in order
//! when it returns, retries failed items with exponential backoff and full
//! jitter, and reports back-pressure once the spool reaches its limit.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use weir_delivery::{spawn, Deliver, Delivery, OutboxConfig};
//! struct Print;
//! impl Deliver for Print {
//!     type Item = String;
//!     async fn deliver(&mut self, batch: Vec<String>) -> Delivery<String> {
//!         println!("{batch:?}");
//!         Delivery::Done
//!     }
//! }
//! # async fn demo() -> Result<(), weir_delivery::OutboxError> {
//! let outbox = spawn(OutboxConfig::new("print", "/var/lib/weir/outbox/print"), Print)?;
//! outbox.push(vec!["a".into(), "b".into()])?;     // sync, from any thread
//! if outbox.is_saturated() { outbox.wait_unsaturated().await }
//! outbox.shutdown(Duration::from_secs(5)).await;   // what is left is replayed next start
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! - **Order.** Items reach the backend in push order (pushes from
//!   different threads are ordered by when they take the outbox lock).
//!   Items a backend returns for retry are resent, in their order, before
//!   anything newer.
//! - **Nothing dropped silently.** An item is delivered, written to
//!   `<dir>/rejected.jsonl` with a reason (backend rejection, or a spooled
//!   record that no longer deserializes), or still queued. `push` only fails
//!   if the spool cannot be written, and then says how many items it took.
//!   Damage to the spool (a torn record after a crash) is truncated, logged
//!   and counted in [`OutboxStats::spool_corrupt_bytes`].
//! - **At least once across restarts.** The spool cursor is committed after
//!   each acknowledged batch, so a restart replays exactly what was not
//!   acknowledged, except for a crash (not a clean [`Outbox::shutdown`])
//!   between the backend accepting a batch and the cursor write, or while a
//!   batch from the spool was partly delivered and being retried: those
//!   items are delivered again. A clean shutdown puts the unfinished batch's
//!   remaining items and the memory queue in front of the spool, so nothing
//!   is delivered twice. Memory contents are lost on a crash (not on a
//!   clean shutdown or when the runtime drops the task).
//! - **Durability** is to the OS: spool writes are flushed (`write(2)`) per
//!   push call, not `fsync`ed. A process crash loses nothing pushed; a power
//!   failure may lose the last writes.
//!
//! # Back-pressure
//!
//! Pushes are never refused for being too many: memory holds
//! `memory_capacity` items, the spool takes the rest. When unacknowledged
//! spooled bytes reach `spool_limit_bytes`, [`Outbox::is_saturated`] turns
//! true and the caller is expected to stop taking input (the engine stops
//! reading device sockets) until [`Outbox::wait_unsaturated`] returns.

mod codec;
mod config;
mod error;
mod outbox;
mod record;
mod rejected;
mod retry;
mod spool;
mod stats;
mod task;

use std::future::Future;

pub use config::{OutboxConfig, RetryPolicy};
pub use error::OutboxError;
pub use outbox::{spawn, Outbox};
pub use stats::OutboxStats;

/// A backend that delivers batches. Implemented by the integration for each sink.
pub trait Deliver: Send + 'static {
    /// What the sink takes. Serialized as JSON in the spool and in `rejected.jsonl`.
    type Item: serde::Serialize + serde::de::DeserializeOwned + Send + 'static;

    /// Delivers `batch` (1..=`max_batch` items, in push order) and says
    /// what became of each item. A call may be abandoned (its future
    /// dropped) at the shutdown deadline; its items are then kept for the
    /// next start, so the backend may see them again.
    fn deliver(
        &mut self,
        batch: Vec<Self::Item>,
    ) -> impl Future<Output = Delivery<Self::Item>> + Send;

    /// True when a call abandoned at the shutdown deadline still completes
    /// on its own (its write runs to the end on a thread of its own, as the
    /// embedded stores' do). Then the outbox keeps no spool copy of each
    /// attempt: encoding every batch as spool records before sending it
    /// cost a JSON serialization per item on the async runtime's threads.
    /// By default (`false`) every attempt is encoded first, so one cut
    /// short at the deadline is spooled for the next start.
    fn completes_when_abandoned(&self) -> bool {
        false
    }
}

/// What a [`Deliver::deliver`] call did with its batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery<T> {
    /// Every item was delivered.
    Done,
    /// Exactly these items were not delivered and may succeed later
    /// (throttled, backend down, partial failure). Retried, in their
    /// original order, before anything newer; the rest of the batch counts
    /// as delivered.
    Retry {
        /// The items to send again.
        items: Vec<T>,
        /// Why (kept as the outbox's `last_error`).
        reason: String,
    },
    /// These items can never be delivered (validation error from the
    /// backend). Written to `<dir>/rejected.jsonl` with the reason and
    /// counted; never silently dropped. The rest counts as delivered.
    Reject {
        /// The items refused.
        items: Vec<T>,
        /// Why.
        reason: String,
    },
    /// Some of each; the rest of the batch counts as delivered.
    Partial {
        /// Items to send again.
        retry: Vec<T>,
        /// Items refused for good.
        reject: Vec<T>,
        /// Why.
        reason: String,
    },
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
