//! Backoff schedule: exponential ceilings with full jitter.

use std::time::Duration;

use crate::RetryPolicy;

/// The state of one retry sequence.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Backoff {
            policy,
            attempt: 0,
            rng: fastrand::Rng::new(),
        }
    }

    #[cfg(test)]
    fn with_seed(policy: RetryPolicy, seed: u64) -> Self {
        Backoff {
            policy,
            attempt: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The ceiling for attempt `n`: `min(max, initial * multiplier^n)`.
    pub(crate) fn ceiling(policy: &RetryPolicy, n: u32) -> Duration {
        let exp = i32::try_from(n.min(1024)).unwrap_or(1024);
        let secs = policy.initial.as_secs_f64() * policy.multiplier.powi(exp);
        let max = policy.max.as_secs_f64();
        if !secs.is_finite() || secs >= max {
            policy.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The wait before the next attempt; advances the schedule.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = Self::ceiling(&self.policy, self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.u64(0..=nanos))
    }

    /// Back to the first ceiling (after a success).
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
        }
    }

    #[test]
    fn ceilings_grow_and_cap() {
        let p = policy();
        let got: Vec<u128> = (0..7)
            .map(|n| Backoff::ceiling(&p, n).as_millis())
            .collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(Backoff::ceiling(&p, u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn delays_stay_under_ceiling_and_reset() {
        let p = policy();
        let mut b = Backoff::with_seed(p, 7);
        for n in 0..50 {
            let d = b.next_delay();
            assert!(d <= Backoff::ceiling(&p, n), "attempt {n}: {d:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads() {
        let mut b = Backoff::with_seed(policy(), 1);
        let delays: std::collections::BTreeSet<Duration> = (0..20)
            .map(|_| {
                b.reset();
                b.next_delay()
            })
            .collect();
        assert!(
            delays.len() > 10,
            "full jitter gives distinct waits: {delays:?}"
        );
    }
}
