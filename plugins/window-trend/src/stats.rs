//! The statistics of one metric in one window, folded one reading at a
//! time: count, min, max, mean, sample stddev (Welford), first and last by
//! event time.

use serde::{Deserialize, Serialize};

/// Running statistics of one window of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acc {
    pub n: u64,
    pub mean: f64,
    /// Sum of squared deviations from the mean (Welford's M2).
    pub m2: f64,
    pub min: f64,
    pub max: f64,
    pub first: f64,
    /// Event time of `first`.
    pub first_t: i64,
    pub last: f64,
    /// Event time of `last`.
    pub last_t: i64,
}

impl Acc {
    /// The statistics of a single reading `x` at event time `t`.
    pub fn new(x: f64, t: i64) -> Acc {
        Acc {
            n: 1,
            mean: x,
            m2: 0.0,
            min: x,
            max: x,
            first: x,
            first_t: t,
            last: x,
            last_t: t,
        }
    }

    /// Fold in reading `x` at event time `t`. Readings may arrive out of
    /// order: `first`/`last` follow event time (ties: arrival order).
    pub fn add(&mut self, x: f64, t: i64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        // Comparisons, not `f64::min`/`max` (a libm call each in Wasm);
        // `x` is finite (see `Tracker::observe`).
        if x < self.min {
            self.min = x;
        }
        if x > self.max {
            self.max = x;
        }
        if t < self.first_t {
            self.first = x;
            self.first_t = t;
        }
        if t >= self.last_t {
            self.last = x;
            self.last_t = t;
        }
    }

    /// Sample standard deviation (n − 1); 0 for a single reading.
    pub fn stddev(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2.max(0.0) / (self.n - 1) as f64).sqrt()
        }
    }

    /// Whether the numbers are usable (saved state may be hand-edited).
    pub fn is_valid(&self) -> bool {
        self.n > 0
            && [
                self.mean, self.m2, self.min, self.max, self.first, self.last,
            ]
            .iter()
            .all(|v| v.is_finite())
            && self.m2 >= 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_window() {
        // 10, 12, 11, 13, 9 at t = 5, 1, 3, 4, 2: mean 11, squares
        // 1+1+0+4+4 = 10, sample var 10/4 = 2.5. First by event time is
        // t=1 (12), last is t=5 (10).
        let mut a = Acc::new(10.0, 5);
        for (x, t) in [(12.0, 1), (11.0, 3), (13.0, 4), (9.0, 2)] {
            a.add(x, t);
        }
        assert_eq!(a.n, 5);
        assert!((a.mean - 11.0).abs() < 1e-12);
        assert!((a.m2 - 10.0).abs() < 1e-12);
        assert!((a.stddev() - 2.5f64.sqrt()).abs() < 1e-12);
        assert_eq!((a.min, a.max), (9.0, 13.0));
        assert_eq!((a.first, a.first_t), (12.0, 1));
        assert_eq!((a.last, a.last_t), (10.0, 5));
        assert!(a.is_valid());
    }

    #[test]
    fn single_reading() {
        let a = Acc::new(4.0, 7);
        assert_eq!(a.stddev(), 0.0);
        assert_eq!((a.first, a.last, a.min, a.max), (4.0, 4.0, 4.0, 4.0));
    }
}
