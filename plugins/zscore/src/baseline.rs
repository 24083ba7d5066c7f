//! An online baseline of one metric: count, mean and variance, updated one
//! reading at a time in O(1) memory.
//!
//! Both modes share one recursion. With weight `w` for the new reading `x`:
//!
//! ```text
//! d    = x - mean
//! mean = mean + w·d
//! var  = (1 - w)·(var + w·d²)
//! ```
//!
//! * **Welford** (`half_life = 0`): `w = 1/n`. This is Welford's algorithm
//!   written for the population variance `M2/n` instead of `M2` (multiply
//!   both sides by `n` to get `M2ₙ = M2ₙ₋₁ + d·(x - meanₙ)`), so it is exact
//!   and numerically stable. The stddev used for z is the **sample** stddev,
//!   `sqrt(var·n/(n-1))`, i.e. `sqrt(M2/(n-1))`.
//! * **Exponentially weighted** (`half_life = h > 0` readings): `w =
//!   max(α, 1/n)` with `α = 1 - 2^(-1/h)`, so a reading's weight halves every
//!   `h` readings and the baseline follows slow (seasonal) change. Taking
//!   `1/n` while it is larger makes the first readings an exact average
//!   instead of letting the very first reading dominate. The stddev is
//!   `sqrt(var)` (the weighted variance has no n-1 correction).
//!
//! Because both modes store the same three numbers, a saved baseline stays
//! valid when an operator switches modes.

use serde::{Deserialize, Serialize};

/// How the baseline weighs past readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Every reading weighs the same (plain Welford).
    Welford,
    /// Exponential forgetting: `alpha` is the weight of the newest reading.
    Ewma { alpha: f64 },
}

impl Mode {
    /// The mode for a half-life in readings (0 = Welford).
    pub fn from_half_life(half_life: f64) -> Mode {
        if half_life > 0.0 {
            Mode::Ewma {
                alpha: 1.0 - 0.5f64.powf(1.0 / half_life),
            }
        } else {
            Mode::Welford
        }
    }
}

/// Count, mean and (population) variance of the readings seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Readings folded into the baseline.
    pub n: u64,
    pub mean: f64,
    /// Population variance (Welford) or weighted variance (EWMA).
    pub var: f64,
}

impl Baseline {
    /// Fold one reading into the baseline.
    pub fn update(&mut self, x: f64, mode: Mode) {
        self.n += 1;
        let by_count = 1.0 / self.n as f64;
        let w = match mode {
            Mode::Welford => by_count,
            Mode::Ewma { alpha } => max(alpha, by_count),
        };
        let d = x - self.mean;
        self.mean += w * d;
        self.var = (1.0 - w) * (self.var + w * d * d);
    }

    /// The stddev that z is measured in (see the module docs): sample stddev
    /// for Welford, weighted stddev for EWMA. 0 with fewer than 2 readings.
    pub fn stddev(&self, mode: Mode) -> f64 {
        if self.n < 2 {
            return 0.0;
        }
        let var = match mode {
            Mode::Welford => self.var * self.n as f64 / (self.n - 1) as f64,
            Mode::Ewma { .. } => self.var,
        };
        max(var, 0.0).sqrt()
    }

    /// Whether the numbers are usable (a hand-edited or corrupt saved
    /// baseline may not be).
    pub fn is_valid(&self) -> bool {
        self.mean.is_finite() && self.var.is_finite() && self.var >= 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * (1.0 + b.abs())
    }

    #[test]
    fn welford_on_a_known_sequence() {
        // 10, 12, 11, 13, 9: sum 55, mean 11; deviations -1, 1, 0, 2, -2;
        // squares 1+1+0+4+4 = 10; population var 10/5 = 2; sample var
        // 10/4 = 2.5; sample stddev sqrt(2.5) = 1.5811388300841898.
        let mut b = Baseline::default();
        for x in [10.0, 12.0, 11.0, 13.0, 9.0] {
            b.update(x, Mode::Welford);
        }
        assert_eq!(b.n, 5);
        assert!(close(b.mean, 11.0));
        assert!(close(b.var, 2.0));
        assert!(close(b.stddev(Mode::Welford), 2.5f64.sqrt()));
    }

    #[test]
    fn welford_matches_two_pass_on_large_offsets() {
        // Values near 1e9 with spread ~1: a naive sum-of-squares loses all
        // precision here; the recursion must not.
        let xs: Vec<f64> = (0..1000)
            .map(|i| 1e9 + ((i * 7919) % 13) as f64 * 0.25)
            .collect();
        let mut b = Baseline::default();
        for &x in &xs {
            b.update(x, Mode::Welford);
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let m2: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
        assert!((b.mean - mean).abs() < 1e-6);
        assert!((b.var - m2 / n).abs() < 1e-6, "{} vs {}", b.var, m2 / n);
        assert!((b.stddev(Mode::Welford) - (m2 / (n - 1.0)).sqrt()).abs() < 1e-6);
    }

    #[test]
    fn first_readings() {
        let mut b = Baseline::default();
        assert_eq!(b.stddev(Mode::Welford), 0.0);
        b.update(5.0, Mode::Welford);
        assert_eq!((b.n, b.mean, b.var), (1, 5.0, 0.0));
        assert_eq!(b.stddev(Mode::Welford), 0.0);
    }

    #[test]
    fn half_life_alpha() {
        // half-life 1: the newest reading weighs 1/2; half-life 2: 1 - 2^-0.5.
        assert_eq!(Mode::from_half_life(1.0), Mode::Ewma { alpha: 0.5 });
        match Mode::from_half_life(2.0) {
            Mode::Ewma { alpha } => assert!(close(alpha, 1.0 - 0.5f64.sqrt())),
            m => panic!("{m:?}"),
        }
        assert_eq!(Mode::from_half_life(0.0), Mode::Welford);
    }

    #[test]
    fn ewma_on_a_known_sequence() {
        // half-life 1 (alpha 0.5), readings 0, 2, 4, 4:
        // n=1: w=1          mean 0,                  var 0
        // n=2: w=max(.5,.5) d=2: mean 1,             var .5·(0 + .5·4)   = 1
        // n=3: w=.5         d=3: mean 2.5,           var .5·(1 + .5·9)   = 2.75
        // n=4: w=.5         d=1.5: mean 3.25,        var .5·(2.75+.5·2.25) = 1.9375
        let mode = Mode::from_half_life(1.0);
        let mut b = Baseline::default();
        let expect = [(0.0, 0.0), (1.0, 1.0), (2.5, 2.75), (3.25, 1.9375)];
        for (x, (mean, var)) in [0.0, 2.0, 4.0, 4.0].into_iter().zip(expect) {
            b.update(x, mode);
            assert!(close(b.mean, mean), "mean {} != {mean}", b.mean);
            assert!(close(b.var, var), "var {} != {var}", b.var);
        }
        assert!(close(b.stddev(mode), 1.9375f64.sqrt()));
    }

    #[test]
    fn ewma_follows_a_level_shift_welford_does_not() {
        let ew = Mode::from_half_life(10.0);
        let (mut a, mut b) = (Baseline::default(), Baseline::default());
        for i in 0..200 {
            let x = if i < 100 { 0.0 } else { 10.0 };
            a.update(x, ew);
            b.update(x, Mode::Welford);
        }
        // 100 readings after the shift = 10 half-lives: the old level weighs
        // 2^-10 of the EWMA mean; Welford sits halfway.
        assert!(a.mean > 9.98, "{}", a.mean);
        assert!(close(b.mean, 5.0));
    }
}

/// `f64::max` (the non-NaN one of two), written out: on wasm32 `f64::max`
/// is a call to libc's `fmax`, which showed up at 4% of the plugin's time.
pub(crate) fn max(a: f64, b: f64) -> f64 {
    if a >= b || b.is_nan() {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod max_tests {
    use super::max;

    #[test]
    fn max_is_f64_max() {
        for (a, b) in [
            (1.0, 2.0),
            (2.0, 1.0),
            (f64::NAN, 1.0),
            (1.0, f64::NAN),
            (-0.0, 0.0),
            (3.0, 3.0),
        ] {
            let (x, y): (f64, f64) = (max(a, b), a.max(b));
            assert!(x == y || (x.is_nan() && y.is_nan()), "{a} {b}");
        }
    }
}
