//! Trend detection over the last K closed windows of one metric.
//!
//! * `slope`: the least-squares slope of the window means against the
//!   window index (`start / window_size`, so a gap of silent windows counts
//!   as distance); the rise is `slope · K`.
//! * `rising`: the K means are strictly increasing (or decreasing); the
//!   rise is `last mean − first mean`.
//!
//! Either way the rise must also be large enough: `|rise| >
//! trend_threshold · pooled stddev` (the within-window sample stddev of
//! the readings, pooled over the K windows: `sqrt(Σ M2ᵢ / Σ (nᵢ − 1))`;
//! with no within-window spread, e.g. windows of one reading, this test
//! fails, as z does on a flat baseline), and `|rise| ≥ trend_min_delta`,
//! and, when `trend_drift_threshold` is set, `|rise| > trend_drift_threshold
//! · σₘ` where σₘ is the metric's usual window-to-window wander ([`Drift`]).
//! Set any of them to 0 to turn that test off.

use crate::settings::{Direction, Method, Settings};
use serde::{Deserialize, Serialize};

/// What a closed window leaves for trend detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Window start, ms since the epoch.
    pub start: i64,
    pub n: u64,
    pub mean: f64,
    /// Sum of squared deviations within the window.
    pub m2: f64,
}

/// How much a metric's window mean moves between adjacent windows when
/// nothing is wrong: an exponentially weighted mean of the squared changes
/// (weight `max(α, 1/n)`, `α = 1 − 2^(−1/half_life)`). For independent
/// window means `E[(mᵢ − mᵢ₋₁)²] = 2σₘ²`, so `σₘ = sqrt(ms / 2)`; for a
/// drifting or cycling signal it is the natural wander per window, which
/// the within-window stddev does not see.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub n: u64,
    pub ms: f64,
}

impl Drift {
    /// Fold in one change between adjacent window means.
    pub fn update(&mut self, change: f64, half_life: f64) {
        if !change.is_finite() {
            return;
        }
        self.n += 1;
        let alpha = 1.0 - 0.5f64.powf(1.0 / half_life);
        let w = alpha.max(1.0 / self.n as f64);
        self.ms += w * (change * change - self.ms);
    }

    /// `σₘ`, once at least `min_n` changes were seen.
    pub fn stddev(&self, min_n: u64) -> Option<f64> {
        (self.n >= min_n && self.ms.is_finite()).then(|| (self.ms.max(0.0) / 2.0).sqrt())
    }
}

/// A trend found over the last K windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Least-squares slope of the means, per window.
    pub slope: f64,
    /// The change the alert is about (see the module docs).
    pub rise: f64,
    /// Pooled within-window stddev (0 when undefined).
    pub pooled_stddev: f64,
}

/// Least-squares slope of `ys` against `xs`; `None` with fewer than two
/// distinct x.
pub fn slope(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len().min(ys.len());
    if n < 2 {
        return None;
    }
    let mx = xs[..n].iter().sum::<f64>() / n as f64;
    let my = ys[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in xs[..n].iter().zip(&ys[..n]) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
    }
    (sxx > 0.0).then(|| sxy / sxx)
}

/// `sqrt(Σ M2ᵢ / Σ (nᵢ − 1))`, or `None` when no window has 2 readings.
pub fn pooled_stddev(windows: &[Summary]) -> Option<f64> {
    let dof: u64 = windows.iter().map(|w| w.n.saturating_sub(1)).sum();
    if dof == 0 {
        return None;
    }
    let m2: f64 = windows.iter().map(|w| w.m2.max(0.0)).sum();
    Some((m2 / dof as f64).sqrt())
}

/// Evaluate the newest `trend_windows` of `history` (oldest first);
/// `drift` is the metric's [`Drift::stddev`] before these windows, needed
/// only when `trend_drift_threshold` is set.
pub fn evaluate(history: &[Summary], s: &Settings, drift: Option<f64>) -> Option<Finding> {
    let k = s.trend_windows;
    if history.len() < k {
        return None;
    }
    let recent = &history[history.len() - k..];
    let origin = recent[0].start;
    let xs: Vec<f64> = recent
        .iter()
        .map(|w| (w.start - origin) as f64 / s.window_ms as f64)
        .collect();
    let ys: Vec<f64> = recent.iter().map(|w| w.mean).collect();
    let slope = slope(&xs, &ys)?;
    let rise = match s.trend_method {
        Method::Slope => slope * k as f64,
        Method::Rising => {
            let up = ys.windows(2).all(|p| p[1] > p[0]);
            let down = ys.windows(2).all(|p| p[1] < p[0]);
            if !(up || down) {
                return None;
            }
            ys[k - 1] - ys[0]
        }
    };
    let direction_ok = match s.trend_direction {
        Direction::Up => rise > 0.0,
        Direction::Down => rise < 0.0,
        Direction::Both => rise != 0.0,
    };
    if !direction_ok {
        return None;
    }
    let pooled = pooled_stddev(recent);
    let relative_ok = s.trend_threshold == 0.0
        || pooled.is_some_and(|p| p > 0.0 && rise.abs() > s.trend_threshold * p);
    let absolute_ok = rise.abs() >= s.trend_min_delta;
    let drift_ok = s.trend_drift_threshold == 0.0
        || drift.is_some_and(|d| d > 0.0 && rise.abs() > s.trend_drift_threshold * d);
    (relative_ok && absolute_ok && drift_ok).then_some(Finding {
        slope,
        rise,
        pooled_stddev: pooled.unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows of 60 s starting at 0 with the given (mean, n, sample var).
    fn windows(stats: &[(f64, u64, f64)]) -> Vec<Summary> {
        stats
            .iter()
            .enumerate()
            .map(|(i, &(mean, n, var))| Summary {
                start: i as i64 * 60_000,
                n,
                mean,
                m2: var * n.saturating_sub(1) as f64,
            })
            .collect()
    }

    fn settings() -> Settings {
        Settings::default() // K = 5, slope, threshold 2, both directions
    }

    #[test]
    fn slope_by_hand() {
        // x 0..4, y 1,3,2,5,4: mean x 2, mean y 3; Σ(x-2)(y-3) =
        // (-2)(-2)+(-1)(0)+0+(1)(2)+(2)(1) = 8; Σ(x-2)² = 10: slope 0.8.
        let s = slope(&[0.0, 1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 5.0, 4.0]).unwrap();
        assert!((s - 0.8).abs() < 1e-12);
        assert_eq!(slope(&[1.0, 1.0], &[0.0, 5.0]), None);
    }

    #[test]
    fn pooled_by_hand() {
        // var 1 over 10 readings (M2 9) and var 4 over 4 readings (M2 12):
        // (9 + 12) / (9 + 3) = 1.75.
        let w = windows(&[(0.0, 10, 1.0), (0.0, 4, 4.0)]);
        assert!((pooled_stddev(&w).unwrap() - 1.75f64.sqrt()).abs() < 1e-12);
        assert_eq!(
            pooled_stddev(&windows(&[(1.0, 1, 0.0), (2.0, 1, 0.0)])),
            None
        );
    }

    #[test]
    fn ramp_alerts_noise_does_not() {
        // A ramp of 1 per window, readings with stddev 1: slope 1, rise
        // 5 > 2 · 1.
        let ramp = windows(&[
            (20.0, 60, 1.0),
            (21.0, 60, 1.0),
            (22.0, 60, 1.0),
            (23.0, 60, 1.0),
            (24.0, 60, 1.0),
        ]);
        let f = evaluate(&ramp, &settings(), None).unwrap();
        assert!((f.slope - 1.0).abs() < 1e-12);
        assert!((f.rise - 5.0).abs() < 1e-12);
        assert!((f.pooled_stddev - 1.0).abs() < 1e-12);

        // Noise: means 20.1, 19.9, 20.2, 19.8, 20.0 → Σ(x-2)(y-20) =
        // (-2)(.1)+(-1)(-.1)+0+(1)(-.2)+0 = -0.3; slope -0.03, rise -0.15:
        // far below 2 · 1.
        let noise = windows(&[
            (20.1, 60, 1.0),
            (19.9, 60, 1.0),
            (20.2, 60, 1.0),
            (19.8, 60, 1.0),
            (20.0, 60, 1.0),
        ]);
        assert_eq!(evaluate(&noise, &settings(), None), None);
        // Too few windows.
        assert_eq!(evaluate(&ramp[..4], &settings(), None), None);
    }

    #[test]
    fn small_ramp_in_large_noise_is_not_a_trend() {
        // Same ramp, but readings with stddev 3: rise 5 < 2 · 3.
        let w = windows(&[
            (20.0, 60, 9.0),
            (21.0, 60, 9.0),
            (22.0, 60, 9.0),
            (23.0, 60, 9.0),
            (24.0, 60, 9.0),
        ]);
        assert_eq!(evaluate(&w, &settings(), None), None);
        // An absolute-only detector (threshold 0, min delta 4) fires.
        let abs = Settings {
            trend_threshold: 0.0,
            trend_min_delta: 4.0,
            ..settings()
        };
        assert!(evaluate(&w, &abs, None).is_some());
    }

    #[test]
    fn direction_and_rising_method() {
        let falling = windows(&[
            (24.0, 10, 1.0),
            (23.0, 10, 1.0),
            (22.0, 10, 1.0),
            (21.0, 10, 1.0),
            (20.0, 10, 1.0),
        ]);
        let f = evaluate(&falling, &settings(), None).unwrap();
        assert!((f.rise + 5.0).abs() < 1e-12);
        let up_only = Settings {
            trend_direction: Direction::Up,
            ..settings()
        };
        assert_eq!(evaluate(&falling, &up_only, None), None);

        let rising = Settings {
            trend_method: Method::Rising,
            ..settings()
        };
        // Monotone: rise = 20 - 24 = -4 > 2 · 1 in size.
        assert!((evaluate(&falling, &rising, None).unwrap().rise + 4.0).abs() < 1e-12);
        // One step back breaks "K consecutive rising means".
        let bumpy = windows(&[
            (20.0, 10, 1.0),
            (22.0, 10, 1.0),
            (21.9, 10, 1.0),
            (24.0, 10, 1.0),
            (26.0, 10, 1.0),
        ]);
        assert_eq!(evaluate(&bumpy, &rising, None), None);
        assert!(evaluate(&bumpy, &settings(), None).is_some());
    }

    #[test]
    fn single_reading_windows_have_no_pooled_stddev() {
        let w = windows(&[
            (1.0, 1, 0.0),
            (2.0, 1, 0.0),
            (3.0, 1, 0.0),
            (4.0, 1, 0.0),
            (5.0, 1, 0.0),
        ]);
        assert_eq!(evaluate(&w, &settings(), None), None);
        let abs = Settings {
            trend_threshold: 0.0,
            trend_min_delta: 1.0,
            ..settings()
        };
        assert!(evaluate(&w, &abs, None).is_some());
    }

    #[test]
    fn gaps_count_as_distance() {
        // Means 0,1,2,3 then a window 6 positions later with mean 6: the
        // points lie on y = x, so the slope is exactly 1 per window.
        let mut w = windows(&[
            (0.0, 10, 1.0),
            (1.0, 10, 1.0),
            (2.0, 10, 1.0),
            (3.0, 10, 1.0),
        ]);
        w.push(Summary {
            start: 6 * 60_000,
            n: 10,
            mean: 6.0,
            m2: 9.0,
        });
        let f = evaluate(&w, &settings(), None).unwrap();
        assert!((f.slope - 1.0).abs() < 1e-12);
    }

    #[test]
    fn drift_by_hand() {
        // half-life 1 (α = 0.5): changes 2, 0, 2: n=1 w=1 ms=4; n=2 w=.5
        // ms=2; n=3 w=.5 ms=3. σₘ = sqrt(3/2).
        let mut d = Drift::default();
        for c in [2.0, 0.0, 2.0] {
            d.update(c, 1.0);
        }
        assert_eq!(d.n, 3);
        assert!((d.ms - 3.0).abs() < 1e-12);
        assert_eq!(d.stddev(4), None);
        assert!((d.stddev(3).unwrap() - 1.5f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn drift_gate() {
        // The ramp of `ramp_alerts_noise_does_not` (rise 5): a metric whose
        // means usually wander by σₘ = 1 passes a gate of 3, one that
        // wanders by σₘ = 2 does not; without an estimate the gate fails.
        let ramp = windows(&[
            (20.0, 60, 1.0),
            (21.0, 60, 1.0),
            (22.0, 60, 1.0),
            (23.0, 60, 1.0),
            (24.0, 60, 1.0),
        ]);
        let gated = Settings {
            trend_drift_threshold: 3.0,
            ..settings()
        };
        assert!(evaluate(&ramp, &gated, Some(1.0)).is_some());
        assert_eq!(evaluate(&ramp, &gated, Some(2.0)), None);
        assert_eq!(evaluate(&ramp, &gated, None), None);
    }
}
