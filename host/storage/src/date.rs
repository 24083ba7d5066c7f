//! UTC calendar arithmetic for the storage tiers: which day a millisecond
//! timestamp falls on, and the `YYYYMMDD` / `YYYY-MM-DD` names of that day.
//!
//! Both tiers partition by UTC day (redb tables `chunks_YYYYMMDD`, Parquet
//! partitions `date=YYYY-MM-DD`). The conversion is the proleptic Gregorian
//! "days from civil" algorithm, so no time-zone database is involved.

/// Milliseconds in one UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// First and last day (days since 1970-01-01) whose names are four-digit
/// years: 0000-01-01 and 9999-12-31.
const MIN_DAY: i64 = -719_528;
const MAX_DAY: i64 = 2_932_896;

/// A UTC calendar day, as days since 1970-01-01 (negative before).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i64);

impl Day {
    /// The day containing `time_ms`, or `None` if it is outside the years
    /// 0000..=9999 (which the day names cannot spell).
    pub fn of_ms(time_ms: i64) -> Option<Day> {
        let day = time_ms.div_euclid(DAY_MS);
        (MIN_DAY..=MAX_DAY).contains(&day).then_some(Day(day))
    }

    /// Milliseconds since the epoch at 00:00:00.000 UTC of this day.
    pub fn start_ms(self) -> i64 {
        self.0 * DAY_MS
    }

    /// Milliseconds since the epoch at 00:00:00.000 UTC of the next day.
    pub fn end_ms(self) -> i64 {
        (self.0 + 1) * DAY_MS
    }

    /// (year, month 1..=12, day 1..=31).
    pub fn civil(self) -> (i64, u32, u32) {
        civil_from_days(self.0)
    }

    /// `YYYYMMDD`, e.g. `20231114`.
    pub fn compact(self) -> String {
        let (y, m, d) = self.civil();
        format!("{y:04}{m:02}{d:02}")
    }

    /// `YYYY-MM-DD`, e.g. `2023-11-14`.
    pub fn iso(self) -> String {
        let (y, m, d) = self.civil();
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// Parses a `YYYYMMDD` name back into a day.
    pub fn parse_compact(s: &str) -> Option<Day> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let y: i64 = s[0..4].parse().ok()?;
        let m: u32 = s[4..6].parse().ok()?;
        let d: u32 = s[6..8].parse().ok()?;
        if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return None;
        }
        Some(Day(days_from_civil(y, m, d)))
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of the civil date (the SQL crate's conversion,
/// H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    weir_sql::functions::time::days_from_civil(y, i64::from(m), i64::from(d))
}

/// Civil date of a count of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let (y, m, d) = weir_sql::functions::time::civil_from_days(z);
    // Month and day of a civil date are 1..=12 and 1..=31.
    (y, m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(Day(0).iso(), "1970-01-01");
        // 1_700_000_000_000 ms = 2023-11-14T22:13:20Z
        let d = Day::of_ms(1_700_000_000_000).unwrap();
        assert_eq!(d.iso(), "2023-11-14");
        assert_eq!(d.compact(), "20231114");
        assert_eq!(d.start_ms(), 1_699_920_000_000);
        assert_eq!(Day::of_ms(1_699_919_999_999).unwrap().iso(), "2023-11-13");
        assert_eq!(Day::of_ms(-1).unwrap().iso(), "1969-12-31");
        assert_eq!(Day(days_from_civil(2024, 2, 29)).iso(), "2024-02-29");
        assert_eq!(Day(MIN_DAY).iso(), "0000-01-01");
        assert_eq!(Day(MAX_DAY).iso(), "9999-12-31");
        assert_eq!(Day::of_ms(i64::MAX), None);
    }

    #[test]
    fn compact_round_trip() {
        for day in [MIN_DAY, -1, 0, 19_675, 20_000, MAX_DAY] {
            assert_eq!(Day::parse_compact(&Day(day).compact()), Some(Day(day)));
        }
        assert_eq!(Day::parse_compact("20230230"), None);
        assert_eq!(Day::parse_compact("2023111"), None);
        assert_eq!(Day::parse_compact("2023-1-14"), None);
    }
}
