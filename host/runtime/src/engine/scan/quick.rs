//! The quick scanner: a hand-written pass over the JSON devices send.
//!
//! It handles objects, arrays, numbers, `true`/`false`/`null`, and keys
//! and strings without escapes (the payload is already known to be UTF-8).
//! It gives up (`None`) on anything else: an escape, nesting deeper than
//! [`MAX_DEPTH`], a number out of range, a `ts` that is neither a number
//! nor a string, a repeated key, and on anything that is not valid JSON.
//! The serde scanner then decides, so errors keep the parser's message.

use super::{same, Scan};
use crate::plugin::batch::MetricRef;
use serde_json::{Number, Value};
use std::borrow::Cow;

/// Deeper nesting is left to the parser (whose own limit is 128).
const MAX_DEPTH: usize = 64;

/// Powers of ten that are exact in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Scan `text`, or `None` to leave it to the serde scanner.
pub fn scan(text: &str) -> Option<Scan<'_>> {
    let mut s = Scanner {
        text,
        at: 0,
        keys: Vec::with_capacity(16),
        prefix: String::new(),
        scan: Scan {
            metrics: Vec::with_capacity(8),
            ..Scan::default()
        },
    };
    s.ws();
    s.value(Name::Top, 0)?;
    s.ws();
    (s.at == text.len()).then_some(s.scan)
}

/// What the value being scanned is called, for its metric.
#[derive(Clone, Copy)]
enum Name<'a> {
    /// The payload itself.
    Top,
    /// A field of the payload: its key, as it appears in the payload.
    Key(&'a str),
    /// A field of a nested object: the scanner's `prefix`.
    Prefix,
    /// Inside an array: no metrics.
    Silent,
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
    /// Keys of the objects being scanned, innermost last.
    keys: Vec<&'a str>,
    /// The dotted name of the nested field being scanned.
    prefix: String,
    scan: Scan<'a>,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn value(&mut self, name: Name<'a>, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(name, depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(drop),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => {
                let (_, value, _) = self.number()?;
                // A field with an empty name is not a metric.
                let name = match name {
                    Name::Key(key) if !key.is_empty() => Cow::Borrowed(key),
                    Name::Prefix if !self.prefix.is_empty() => Cow::Owned(self.prefix.clone()),
                    _ => return Some(()),
                };
                self.scan.metrics.push(MetricRef { name, value });
                Some(())
            }
        }
    }

    fn object(&mut self, name: Name<'a>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        let first_key = self.keys.len();
        loop {
            let key = self.string()?;
            if self.keys[first_key..].iter().any(|k| same(k, key)) {
                return None;
            }
            self.keys.push(key);
            self.ws();
            self.eat(b':')?;
            self.ws();
            match name {
                Name::Top if key == "ts" || key == "timestamp" => self.device_time(key)?,
                Name::Top => self.value(Name::Key(key), depth)?,
                Name::Silent => self.value(Name::Silent, depth)?,
                Name::Key(parent) => {
                    self.prefix.clear();
                    self.prefix.push_str(parent);
                    self.nested(key, depth)?;
                }
                Name::Prefix => self.nested(key, depth)?,
            }
            self.ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.ws();
                }
                b'}' => {
                    self.at += 1;
                    self.keys.truncate(first_key);
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The value of `key` in the object named by `prefix`.
    fn nested(&mut self, key: &str, depth: usize) -> Option<()> {
        let len = self.prefix.len();
        if !self.prefix.is_empty() {
            self.prefix.push('.');
        }
        self.prefix.push_str(key);
        self.value(Name::Prefix, depth)?;
        self.prefix.truncate(len);
        Some(())
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.ws();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.value(Name::Silent, depth)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.ws();
                }
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string without escapes, without its quotes.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let rest = self.text.as_bytes().get(start..)?;
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        self.text.get(start..start + len)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        (self.text.as_bytes().get(self.at..end)? == word.as_bytes()).then(|| self.at = end)
    }

    /// A number (JSON's grammar): its token, its value, and whether it is
    /// an integer. `None` for a malformed one or one out of range.
    fn number(&mut self) -> Option<(&'a str, f64, bool)> {
        let start = self.at;
        let negative = self.eat(b'-').is_some();
        // The digits as an integer, while they fit exactly in an f64.
        let mut mantissa: u64 = 0;
        let mut digits = 0u32;
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(&mut mantissa, &mut digits),
            _ => return None,
        }
        let mut integer = true;
        let mut fraction = 0u32;
        if self.eat(b'.').is_some() {
            integer = false;
            self.peek().filter(u8::is_ascii_digit)?;
            let before = digits;
            self.digits(&mut mantissa, &mut digits);
            fraction = digits - before;
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.peek() {
            integer = false;
            exponent = true;
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.peek().filter(u8::is_ascii_digit)?;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.at += 1;
            }
        }
        let token = self.text.get(start..self.at)?;
        // Clinger's fast path: an integer below 2^53 divided by an exact
        // power of ten is one correctly rounded operation. Anything else
        // goes through the full parse.
        let value = if !exponent && digits <= 15 && (fraction as usize) < POW10.len() {
            let v = mantissa as f64 / POW10[fraction as usize];
            if negative {
                -v
            } else {
                v
            }
        } else {
            token.parse::<f64>().ok().filter(|v| v.is_finite())?
        };
        Some((token, value, integer))
    }

    /// Consume decimal digits, accumulating up to 15 of them.
    fn digits(&mut self, mantissa: &mut u64, count: &mut u32) {
        while let Some(b @ b'0'..=b'9') = self.peek() {
            if *count < 16 {
                *mantissa = *mantissa * 10 + u64::from(b - b'0');
            }
            *count += 1;
            self.at += 1;
        }
    }

    /// The payload's `ts` or `timestamp`: a number (also a metric) or a
    /// string; anything else is left to the serde scanner.
    fn device_time(&mut self, key: &'a str) -> Option<()> {
        let value = match self.peek()? {
            b'"' => Value::String(self.string()?.to_string()),
            _ => {
                let (token, value, integer) = self.number()?;
                self.scan.metrics.push(MetricRef {
                    name: Cow::Borrowed(key),
                    value,
                });
                Value::Number(json_number(token, integer, value)?)
            }
        };
        match key {
            "ts" => self.scan.ts = Some(value),
            _ => self.scan.timestamp = Some(value),
        }
        Some(())
    }
}

/// The [`Number`] serde_json makes of a token: an unsigned integer, a
/// negative one, or a float for fractions, exponents, `-0` and integers
/// out of 64-bit range.
fn json_number(token: &str, integer: bool, value: f64) -> Option<Number> {
    if integer {
        if let Some(digits) = token.strip_prefix('-') {
            if let Ok(n) = token.parse::<i64>() {
                if !digits.bytes().all(|b| b == b'0') {
                    return Some(Number::from(n));
                }
            }
        } else if let Ok(n) = token.parse::<u64>() {
            return Some(Number::from(n));
        }
    }
    Number::from_f64(value)
}
