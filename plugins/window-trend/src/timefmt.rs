//! Time helpers: window boundaries and RFC 3339 text of epoch milliseconds.

/// Start of the tumbling window of `size_ms` that holds `t` (windows are
/// aligned to the Unix epoch, so `[start, start + size)`).
pub fn window_start(t: i64, size_ms: i64) -> i64 {
    t.div_euclid(size_ms) * size_ms
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds
/// (`2013-12-02T21:15:00.000Z`).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm, proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        // 60 s windows: 119_999 is in [60_000, 120_000), 120_000 starts the next.
        assert_eq!(window_start(119_999, 60_000), 60_000);
        assert_eq!(window_start(120_000, 60_000), 120_000);
        assert_eq!(window_start(0, 60_000), 0);
        // Before the epoch the window still contains t.
        assert_eq!(window_start(-1, 60_000), -60_000);
    }

    #[test]
    fn rfc3339_text() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2013-12-02 21:15:00 UTC = 1386018900 s (NAB's first ambient reading's day).
        assert_eq!(rfc3339(1_386_018_900_000), "2013-12-02T21:15:00.000Z");
        assert_eq!(rfc3339(1_764_300_000_250), "2025-11-28T03:20:00.250Z");
        // Leap day.
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
