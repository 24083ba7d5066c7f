//! Per-shard write budget: two token buckets (records/s and bytes/s) that
//! refill continuously and hold at most one second's worth. The writer takes
//! tokens before it puts a record in a batch and, when none are left, waits
//! (tokio time) instead of throwing the burst at Kinesis.

use std::time::Duration;

use tokio::time::Instant;

/// Write limits of one shard. AWS's are 1,000 records/s and 1 MiB/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardBudget {
    pub records_per_sec: u32,
    /// Counts record data plus partition key bytes.
    pub bytes_per_sec: u64,
}

impl Default for ShardBudget {
    fn default() -> Self {
        Self {
            records_per_sec: 1_000,
            bytes_per_sec: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Self {
        let rate = rate.max(1.0);
        Self {
            rate,
            capacity: rate,
            tokens: rate,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        self.last = now;
    }

    /// How long until `n` fits (a request larger than the capacity needs a
    /// full bucket and then drives it negative).
    fn wait_for(&self, n: f64) -> Duration {
        let need = n.min(self.capacity);
        if self.tokens >= need {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((need - self.tokens) / self.rate)
        }
    }
}

/// The two buckets of one shard.
#[derive(Debug, Clone)]
pub struct TokenBuckets {
    records: Bucket,
    bytes: Bucket,
}

impl TokenBuckets {
    /// Full buckets (a shard idle for a second can take a second's worth).
    pub fn new(budget: ShardBudget, now: Instant) -> Self {
        Self {
            records: Bucket::new(f64::from(budget.records_per_sec), now),
            bytes: Bucket::new(budget.bytes_per_sec as f64, now),
        }
    }

    /// Take tokens for one record of `bytes` bytes if it fits now; otherwise
    /// take nothing and say how long until it would.
    pub fn try_take(&mut self, bytes: usize, now: Instant) -> Result<(), Duration> {
        self.records.refill(now);
        self.bytes.refill(now);
        let wait = self
            .records
            .wait_for(1.0)
            .max(self.bytes.wait_for(bytes as f64));
        if wait.is_zero() {
            self.records.tokens -= 1.0;
            self.bytes.tokens -= bytes as f64;
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Give back tokens taken for a record that was then not sent.
    pub fn refund(&mut self, bytes: usize) {
        self.records.tokens = (self.records.tokens + 1.0).min(self.records.capacity);
        self.bytes.tokens = (self.bytes.tokens + bytes as f64).min(self.bytes.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_rate() {
        let t0 = Instant::now();
        let mut b = TokenBuckets::new(
            ShardBudget {
                records_per_sec: 10,
                bytes_per_sec: 1_000_000,
            },
            t0,
        );
        for _ in 0..10 {
            assert_eq!(b.try_take(1, t0), Ok(()));
        }
        assert_eq!(b.try_take(1, t0), Err(Duration::from_millis(100)));
        assert_eq!(b.try_take(1, t0 + Duration::from_millis(100)), Ok(()));
        assert!(b.try_take(1, t0 + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn byte_rate_and_oversized_record() {
        let t0 = Instant::now();
        let mut b = TokenBuckets::new(
            ShardBudget {
                records_per_sec: 1000,
                bytes_per_sec: 100,
            },
            t0,
        );
        assert_eq!(b.try_take(60, t0), Ok(()));
        assert_eq!(b.try_take(60, t0), Err(Duration::from_millis(200)));
        // Larger than a second's worth: needs a full bucket, then goes negative.
        let t1 = t0 + Duration::from_millis(600);
        assert_eq!(b.try_take(250, t1), Ok(()));
        assert_eq!(b.try_take(1, t1), Err(Duration::from_millis(1510)));
    }
}
