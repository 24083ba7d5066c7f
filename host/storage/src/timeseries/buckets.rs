//! Folding a time-ordered stream of samples into epoch-aligned buckets.

use super::types::{Bucket, Sample};

/// Start of the bucket holding `time_ms`: the largest multiple of `every_ms`
/// (counted from the epoch) not after it. `every_ms` must be positive.
pub fn bucket_start(time_ms: i64, every_ms: i64) -> i64 {
    time_ms - time_ms.rem_euclid(every_ms)
}

/// Accumulates samples, fed in time order, into buckets.
pub struct Bucketer {
    every_ms: i64,
    limit: usize,
    done: Vec<Bucket>,
    open: Option<(Bucket, f64)>, // bucket being filled, running sum
}

impl Bucketer {
    /// `every_ms` must be positive; at most `limit` buckets are kept.
    pub fn new(every_ms: i64, limit: usize) -> Self {
        Self {
            every_ms,
            limit,
            done: Vec::new(),
            open: None,
        }
    }

    /// True once `limit` buckets are complete: later samples cannot matter.
    pub fn full(&self) -> bool {
        self.done.len() >= self.limit
    }

    /// Adds one sample; samples must come in non-decreasing time order.
    pub fn push(&mut self, s: Sample) {
        let start = bucket_start(s.time_ms, self.every_ms);
        if let Some((b, sum)) = &mut self.open {
            if b.start_ms == start {
                b.count += 1;
                b.min = b.min.min(s.value);
                b.max = b.max.max(s.value);
                b.last = s.value;
                *sum += s.value;
                return;
            }
        }
        self.close_open();
        if !self.full() {
            let b = Bucket {
                start_ms: start,
                count: 1,
                min: s.value,
                max: s.value,
                mean: s.value,
                first: s.value,
                last: s.value,
            };
            self.open = Some((b, s.value));
        }
    }

    fn close_open(&mut self) {
        if let Some((mut b, sum)) = self.open.take() {
            b.mean = sum / b.count as f64;
            self.done.push(b);
        }
    }

    /// The finished buckets, earliest first.
    pub fn finish(mut self) -> Vec<Bucket> {
        self.close_open();
        self.done.truncate(self.limit);
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(time_ms: i64, value: f64) -> Sample {
        Sample { time_ms, value }
    }

    #[test]
    fn aligns_to_epoch_multiples() {
        assert_eq!(bucket_start(0, 60_000), 0);
        assert_eq!(bucket_start(59_999, 60_000), 0);
        assert_eq!(bucket_start(60_000, 60_000), 60_000);
        assert_eq!(bucket_start(-1, 60_000), -60_000);
    }

    #[test]
    fn folds_and_limits() {
        let mut b = Bucketer::new(10, 2);
        for x in [s(1, 4.0), s(3, 2.0), s(9, 6.0), s(12, 1.0), s(35, 7.0)] {
            b.push(x);
        }
        let got = b.finish();
        assert_eq!(
            got,
            vec![
                Bucket {
                    start_ms: 0,
                    count: 3,
                    min: 2.0,
                    max: 6.0,
                    mean: 4.0,
                    first: 4.0,
                    last: 6.0
                },
                Bucket {
                    start_ms: 10,
                    count: 1,
                    min: 1.0,
                    max: 1.0,
                    mean: 1.0,
                    first: 1.0,
                    last: 1.0
                },
            ]
        );
    }
}
