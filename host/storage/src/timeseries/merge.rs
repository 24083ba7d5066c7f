//! Ordering points by time with "last write wins": normalizing a head
//! (arrival order) and merging sorted runs where the newer source wins ties.

/// Sorts `points` by time (stably, unless `sorted` says they already are
/// strictly increasing) and keeps only the last-written point of each time.
pub fn normalize(points: &mut Vec<(i64, f64)>, sorted: bool) {
    if sorted {
        return;
    }
    points.sort_by_key(|p| p.0);
    // `dedup_by` keeps the first of a run; copy each later value over it.
    points.dedup_by(|later, kept| {
        if later.0 == kept.0 {
            kept.1 = later.1;
            true
        } else {
            false
        }
    });
}

/// Merges two runs sorted by time with unique times, calling `emit` in time
/// order; on equal times only `newer`'s point is emitted. Stops as soon as
/// `emit` returns false, and then returns false.
pub fn merge_with(
    older: &[(i64, f64)],
    newer: &[(i64, f64)],
    mut emit: impl FnMut(i64, f64) -> bool,
) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < older.len() && j < newer.len() {
        let (a, b) = (older[i], newer[j]);
        let p = if a.0 < b.0 {
            i += 1;
            a
        } else {
            if a.0 == b.0 {
                i += 1;
            }
            j += 1;
            b
        };
        if !emit(p.0, p.1) {
            return false;
        }
    }
    older[i..]
        .iter()
        .chain(&newer[j..])
        .all(|&(t, v)| emit(t, v))
}

/// [`merge_with`] into a vector.
pub fn merge(older: &[(i64, f64)], newer: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(older.len() + newer.len());
    merge_with(older, newer, |t, v| {
        out.push((t, v));
        true
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_keeps_last_written() {
        let mut p = vec![(5, 1.0), (3, 2.0), (5, 3.0), (1, 4.0), (3, 5.0), (5, 6.0)];
        normalize(&mut p, false);
        assert_eq!(p, vec![(1, 4.0), (3, 5.0), (5, 6.0)]);
        let mut s = vec![(1, 1.0), (2, 2.0)];
        normalize(&mut s, true);
        assert_eq!(s, vec![(1, 1.0), (2, 2.0)]);
    }

    #[test]
    fn merge_prefers_newer_on_ties_and_stops_early() {
        let older = [(1, 1.0), (3, 3.0), (5, 5.0)];
        let newer = [(0, 0.5), (3, 30.0), (6, 60.0)];
        assert_eq!(
            merge(&older, &newer),
            vec![(0, 0.5), (1, 1.0), (3, 30.0), (5, 5.0), (6, 60.0)]
        );
        let mut got = Vec::new();
        let done = merge_with(&older, &newer, |t, _| {
            got.push(t);
            got.len() < 2
        });
        assert!(!done);
        assert_eq!(got, vec![0, 1]);
        assert_eq!(merge(&[], &newer), newer.to_vec());
    }
}
