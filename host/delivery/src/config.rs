//! Configuration of one outbox and of its retry schedule.

use std::path::PathBuf;
use std::time::Duration;

use crate::OutboxError;

/// How one outbox queues, spools, batches and retries.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxConfig {
    /// Name used in logs, errors and stats (e.g. `"dynamodb:shadow"`).
    pub name: String,
    /// Directory owned by this outbox: spool segments, the cursor, the lock
    /// file and `rejected.jsonl` live here. Created if missing.
    pub dir: PathBuf,
    /// Items held in memory (not counting the batch being delivered) before
    /// new pushes spill to the spool. `0` sends everything through the spool.
    pub memory_capacity: usize,
    /// Spooled (not yet acknowledged) bytes at which the outbox reports
    /// saturation. A soft limit: pushes past it are still written.
    pub spool_limit_bytes: u64,
    /// Most items handed to the backend in one call (at least 1).
    pub max_batch: usize,
    /// How long to wait for a batch to fill before sending a partial one.
    pub linger: Duration,
    /// Backoff between attempts while the backend fails.
    pub retry: RetryPolicy,
}

impl OutboxConfig {
    /// A configuration with defaults: 10,000 items in memory, 1 GiB of spool,
    /// batches of up to 500 items, 20 ms linger, [`RetryPolicy::default`].
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        OutboxConfig {
            name: name.into(),
            dir: dir.into(),
            memory_capacity: 10_000,
            spool_limit_bytes: 1 << 30,
            max_batch: 500,
            linger: Duration::from_millis(20),
            retry: RetryPolicy::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), OutboxError> {
        let fail = |reason: &str| {
            Err(OutboxError::Config {
                name: self.name.clone(),
                reason: reason.to_owned(),
            })
        };
        if self.max_batch == 0 {
            return fail("max_batch must be at least 1");
        }
        if self.spool_limit_bytes == 0 {
            return fail("spool_limit_bytes must be at least 1");
        }
        if self.dir.as_os_str().is_empty() {
            return fail("dir must not be empty");
        }
        if !(self.retry.multiplier.is_finite() && self.retry.multiplier >= 1.0) {
            return fail("retry.multiplier must be a finite number >= 1");
        }
        if self.retry.initial > self.retry.max {
            return fail("retry.initial must not exceed retry.max");
        }
        Ok(())
    }
}

/// Exponential backoff with full jitter: attempt `n` (from 0) waits a uniform
/// random time in `[0, min(max, initial * multiplier^n)]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Ceiling of the first wait.
    pub initial: Duration,
    /// Largest ceiling.
    pub max: Duration,
    /// Growth of the ceiling per failed attempt (at least 1).
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    /// 100 ms, doubling, capped at 30 s.
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            multiplier: 2.0,
        }
    }
}
