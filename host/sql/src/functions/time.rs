//! `parse_time(pattern, epochMillis[, zone])` and `time_to_epoch(text, pattern)`
//! with Joda-Time patterns, as AWS IoT uses them.
//!
//! Zones: `UTC`, `GMT`, `Z`, `Etc/UTC`, `Etc/GMT` and fixed offsets such as
//! `+05:30` or `-0800`. Named regional zones (`America/Belize`) need a time-zone
//! database, which this pure crate does not carry: they give Undefined, and a
//! literal one is refused at check time.

use super::{arg, Func};
use crate::value::V;
use std::borrow::Cow;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

pub(super) fn call<'a>(f: Func, args: &[V<'a>]) -> V<'a> {
    let r = match f {
        Func::ParseTime => parse_time(args),
        Func::TimeToEpoch => time_to_epoch(args),
        _ => None,
    };
    r.unwrap_or(V::Undef)
}

fn parse_time<'a>(args: &[V<'a>]) -> Option<V<'a>> {
    let V::Str(pattern) = arg(args, 0) else {
        return None;
    };
    let ms = arg(args, 1).to_int()?;
    let offset = match args.get(2) {
        Some(V::Str(z)) => zone_offset_secs(z)?,
        Some(_) => return None,
        None => 0,
    };
    format(pattern, ms, offset).map(|s| V::Str(Cow::Owned(s)))
}

/// Seconds east of UTC for the zones this crate knows.
pub fn zone_offset_secs(z: &str) -> Option<i64> {
    let t = z.trim();
    let upper = t.to_ascii_uppercase();
    if matches!(
        upper.as_str(),
        "UTC" | "GMT" | "Z" | "ETC/UTC" | "ETC/GMT" | "UT"
    ) {
        return Some(0);
    }
    let rest = upper
        .strip_prefix("UTC")
        .or_else(|| upper.strip_prefix("GMT"))
        .unwrap_or(&upper);
    let (sign, digits) = match rest.as_bytes().first() {
        Some(b'+') => (1, &rest[1..]),
        Some(b'-') => (-1, &rest[1..]),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = if digits.len() <= 2 {
        (digits.parse::<i64>().ok()?, 0)
    } else {
        let split = digits.len() - 2;
        (
            digits[..split].parse::<i64>().ok()?,
            digits[split..].parse::<i64>().ok()?,
        )
    };
    if h > 18 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// Days since 1970-01-01 for a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

enum Piece<'p> {
    Field(char, usize),
    Lit(Cow<'p, str>),
}

fn tokenize(p: &str) -> Option<Vec<Piece<'_>>> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = p.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        if c == '\'' {
            // quoted literal; '' is a single quote
            if chars.get(i + 1).map(|x| x.1) == Some('\'') {
                out.push(Piece::Lit(Cow::Borrowed("'")));
                i += 2;
                continue;
            }
            let mut s = String::new();
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None => return None,
                    Some((_, '\'')) if chars.get(j + 1).map(|x| x.1) == Some('\'') => {
                        s.push('\'');
                        j += 2;
                    }
                    Some((_, '\'')) => {
                        j += 1;
                        break;
                    }
                    Some((_, ch)) => {
                        s.push(*ch);
                        j += 1;
                    }
                }
            }
            out.push(Piece::Lit(Cow::Owned(s)));
            i = j;
        } else if c.is_ascii_alphabetic() {
            let mut j = i;
            while j < chars.len() && chars[j].1 == c {
                j += 1;
            }
            out.push(Piece::Field(c, j - i));
            i = j;
        } else {
            let end = chars.get(i + 1).map(|x| x.0).unwrap_or(p.len());
            out.push(Piece::Lit(Cow::Borrowed(&p[pos..end])));
            i += 1;
        }
    }
    Some(out)
}

fn pad(n: i64, width: usize) -> String {
    if n < 0 {
        format!("-{:0width$}", -n, width = width)
    } else {
        format!("{:0width$}", n, width = width)
    }
}

/// Format epoch milliseconds with a Joda pattern at a fixed offset.
pub fn format(pattern: &str, ms: i64, offset_secs: i64) -> Option<String> {
    let local = ms.checked_add(offset_secs.checked_mul(1000)?)?;
    let days = local.div_euclid(86_400_000);
    let in_day = local.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    let hour = in_day / 3_600_000;
    let minute = in_day / 60_000 % 60;
    let second = in_day / 1000 % 60;
    let millis = in_day % 1000;
    let dow = (days + 3).rem_euclid(7); // 0 = Monday (1970-01-01 was a Thursday)
    let doy = days - days_from_civil(y, 1, 1) + 1;
    let mut out = String::new();
    for piece in tokenize(pattern)? {
        match piece {
            Piece::Lit(s) => out.push_str(&s),
            Piece::Field(c, n) => {
                let s = match c {
                    'G' => if y > 0 { "AD" } else { "BC" }.to_string(),
                    'y' | 'Y' | 'u' => {
                        if n == 2 {
                            pad(y.rem_euclid(100), 2)
                        } else {
                            pad(y, n)
                        }
                    }
                    'M' => match n {
                        1 | 2 => pad(mo, n),
                        3 => MONTHS[(mo - 1) as usize][..3].to_string(),
                        _ => MONTHS[(mo - 1) as usize].to_string(),
                    },
                    'd' => pad(d, n),
                    'D' => pad(doy, n),
                    'E' => {
                        let name = DAYS[dow as usize];
                        if n <= 3 { &name[..3] } else { name }.to_string()
                    }
                    'e' => pad(dow + 1, n),
                    'a' => if hour < 12 { "AM" } else { "PM" }.to_string(),
                    'H' => pad(hour, n),
                    'k' => pad(if hour == 0 { 24 } else { hour }, n),
                    'h' => pad(if hour % 12 == 0 { 12 } else { hour % 12 }, n),
                    'K' => pad(hour % 12, n),
                    'm' => pad(minute, n),
                    's' => pad(second, n),
                    'S' => {
                        let three = format!("{millis:03}");
                        if n <= 3 {
                            three[..n].to_string()
                        } else {
                            three + &"0".repeat(n - 3)
                        }
                    }
                    'Z' => {
                        let sign = if offset_secs < 0 { '-' } else { '+' };
                        let a = offset_secs.abs();
                        match n {
                            1 => format!("{sign}{:02}{:02}", a / 3600, a / 60 % 60),
                            2 => format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60),
                            _ => zone_name(offset_secs),
                        }
                    }
                    'z' => zone_name(offset_secs),
                    _ => return None,
                };
                out.push_str(&s);
            }
        }
    }
    Some(out)
}

fn zone_name(offset_secs: i64) -> String {
    if offset_secs == 0 {
        "UTC".to_string()
    } else {
        let sign = if offset_secs < 0 { '-' } else { '+' };
        let a = offset_secs.abs();
        format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60)
    }
}

fn time_to_epoch<'a>(args: &[V<'a>]) -> Option<V<'a>> {
    let (V::Str(text), V::Str(pattern)) = (arg(args, 0), arg(args, 1)) else {
        return None;
    };
    parse(text, pattern).map(V::Int)
}

/// Parse `text` with a Joda pattern into epoch milliseconds.
pub fn parse(text: &str, pattern: &str) -> Option<i64> {
    let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut ms) =
        (1970i64, 1i64, 1i64, 0i64, 0i64, 0i64, 0i64);
    let mut pm: Option<bool> = None;
    let mut offset = 0i64;
    let mut rest = text;
    let pieces = tokenize(pattern)?;
    let count = pieces.len();
    for (idx, piece) in pieces.into_iter().enumerate() {
        match piece {
            Piece::Lit(l) => rest = rest.strip_prefix(l.as_ref())?,
            Piece::Field(c, n) => {
                // A numeric field directly followed by another field is fixed-width.
                let fixed = idx + 1 < count;
                match c {
                    'y' | 'Y' | 'u' => {
                        let (v, r) = take_num(rest, if n == 2 { 2 } else { 9 }, true)?;
                        y = if n == 2 { 2000 + v } else { v };
                        rest = r;
                    }
                    'M' if n >= 3 => {
                        let (i, r) = take_name(rest, &MONTHS, n == 3)?;
                        mo = i as i64 + 1;
                        rest = r;
                    }
                    'E' => {
                        let (_, r) = take_name(rest, &DAYS, n <= 3)?;
                        rest = r;
                    }
                    'a' => {
                        let up = rest.get(..2)?.to_ascii_uppercase();
                        pm = Some(match up.as_str() {
                            "AM" => false,
                            "PM" => true,
                            _ => return None,
                        });
                        rest = &rest[2..];
                    }
                    'S' => {
                        let width = if fixed { n } else { 9 };
                        let digits: String = rest
                            .chars()
                            .take_while(char::is_ascii_digit)
                            .take(width)
                            .collect();
                        if digits.is_empty() {
                            return None;
                        }
                        let mut three = digits.clone();
                        three.truncate(3);
                        while three.len() < 3 {
                            three.push('0');
                        }
                        ms = three.parse().ok()?;
                        rest = &rest[digits.len()..];
                    }
                    'Z' | 'z' => {
                        if let Some(r) = rest.strip_prefix('Z') {
                            rest = r;
                        } else if let Some(r) = rest.strip_prefix("UTC") {
                            rest = r;
                        } else {
                            let len = rest
                                .char_indices()
                                .skip(1)
                                .find(|(_, ch)| !(ch.is_ascii_digit() || *ch == ':'))
                                .map(|(i, _)| i)
                                .unwrap_or(rest.len());
                            offset = zone_offset_secs(rest.get(..len)?)?;
                            rest = &rest[len..];
                        }
                    }
                    _ => {
                        let width = if fixed { n.max(2) } else { 9 };
                        let (v, r) = take_num(rest, width, false)?;
                        rest = r;
                        match c {
                            'M' => mo = v,
                            'd' => d = v,
                            'H' | 'k' => h = v % 24,
                            'h' | 'K' => h = v % 12,
                            'm' => mi = v,
                            's' => s = v,
                            'D' => {
                                mo = 1;
                                d = v;
                            }
                            _ => return None,
                        }
                    }
                }
            }
        }
    }
    if !rest.is_empty() {
        return None;
    }
    if pm == Some(true) {
        h += 12;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let local = days
        .checked_mul(86_400)?
        .checked_add(h * 3600 + mi * 60 + s)?
        .checked_sub(offset)?;
    local.checked_mul(1000)?.checked_add(ms)
}

fn take_num(s: &str, max: usize, signed: bool) -> Option<(i64, &str)> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) if signed => (true, r),
        _ => (false, s),
    };
    let len = body
        .bytes()
        .take(max)
        .take_while(u8::is_ascii_digit)
        .count();
    if len == 0 {
        return None;
    }
    let v: i64 = body[..len].parse().ok()?;
    Some((if neg { -v } else { v }, &body[len..]))
}

fn take_name<'s>(s: &'s str, names: &[&str], short: bool) -> Option<(usize, &'s str)> {
    for (i, name) in names.iter().enumerate() {
        let n = if short { &name[..3] } else { name };
        if s.len() >= n.len() && s.is_char_boundary(n.len()) && s[..n.len()].eq_ignore_ascii_case(n)
        {
            return Some((i, &s[n.len()..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(
            format("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 1_481_825_251_155, 0).unwrap(),
            "2016-12-15T18:07:31.155+0000"
        );
        assert_eq!(
            format("EEE, d MMM yyyy hh:mm a z", 0, 0).unwrap(),
            "Thu, 1 Jan 1970 12:00 AM UTC"
        );
        assert_eq!(format("HH:mm ZZ", 0, 19_800).unwrap(), "05:30 +05:30");
    }

    #[test]
    fn parses() {
        assert_eq!(
            parse("2016-12-15T18:07:31.155+0000", "yyyy-MM-dd'T'HH:mm:ss.SSSZ"),
            Some(1_481_825_251_155)
        );
        assert_eq!(parse("1970-01-02", "yyyy-MM-dd"), Some(86_400_000));
        assert_eq!(parse("garbage", "yyyy-MM-dd"), None);
        assert_eq!(parse("999999999-12-31", "yyyy-MM-dd"), None);
        assert!(format("yyyy", i64::MAX, 0).is_some());
        let _ = format("yyyy", i64::MIN, -3600);
        let _ = format("yyyy", i64::MIN, 0);
    }

    #[test]
    fn civil_round_trip() {
        for day in [-800_000, -1, 0, 1, 59, 365, 10_957, 2_932_896] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }
}
