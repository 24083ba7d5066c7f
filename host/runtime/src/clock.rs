//! Wall-clock helpers: every timestamp in Weir is ms since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Interpret a device-supplied time as ms since the epoch, if it is sane:
/// seconds or milliseconds (numbers), or RFC 3339 text, after 2000-01-01 and
/// no more than a day ahead of `now`.
pub fn device_time_ms(value: &serde_json::Value, now: i64) -> Option<i64> {
    const Y2000_MS: i64 = 946_684_800_000;
    const DAY_MS: i64 = 86_400_000;
    let ms = match value {
        serde_json::Value::Number(n) => {
            let f = n.as_f64()?;
            if !f.is_finite() {
                return None;
            }
            // Below 1e11 it can only be seconds (1e11 s is the year 5138).
            if f.abs() < 1e11 {
                (f * 1000.0) as i64
            } else {
                f as i64
            }
        }
        serde_json::Value::String(s) => parse_rfc3339_ms(s)?,
        _ => return None,
    };
    (Y2000_MS..=now + DAY_MS).contains(&ms).then_some(ms)
}

/// A small RFC 3339 parser (`2024-05-01T12:00:00Z`, fractional seconds and
/// numeric offsets allowed), so the host needs no date crate for this.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = s.get(start..i)?;
        let padded: String = digits.chars().chain("000".chars()).take(3).collect();
        frac_ms = padded.parse().ok()?;
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let m = oh * 60 + om;
            if *sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return None,
    };
    let days = weir_sql::functions::time::days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + frac_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2025-11-28T03:20:00.250Z"),
            Some(1_764_300_000_250)
        );
        assert_eq!(
            parse_rfc3339_ms("2025-11-28T05:20:00+02:00"),
            Some(1_764_300_000_000)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    #[test]
    fn device_time_units_and_sanity() {
        let now = 1_764_300_000_000;
        assert_eq!(device_time_ms(&json!(1_764_300_000_000i64), now), Some(now));
        assert_eq!(device_time_ms(&json!(1_764_300_000), now), Some(now));
        assert_eq!(device_time_ms(&json!(5), now), None);
        assert_eq!(device_time_ms(&json!(now + 2 * 86_400_000), now), None);
    }
}
