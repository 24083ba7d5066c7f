//! The quick scanner: a pass over the JSON devices send, on the tokens of
//! [`weir_json_scan`].
//!
//! It handles objects, arrays, numbers, `true`/`false`/`null`, and keys
//! and strings without escapes (the payload is already known to be UTF-8),
//! and notes where each top-level field's name and value are.
//! It gives up (`None`) on anything else: an escape, nesting deeper than
//! [`weir_json_scan::MAX_DEPTH`], a number out of range, a `ts` that is
//! neither a number nor a string, a repeated key, and on anything that is
//! not valid JSON. The serde scanner then decides, so errors keep the
//! parser's message.

use super::{same, Scan};
use crate::plugin::batch::{FieldSpan, MetricRef};
use serde_json::{Number, Value};
use std::borrow::Cow;
use weir_json_scan::{Cursor, MAX_DEPTH};

/// Scan `text`, or `None` to leave it to the serde scanner.
pub fn scan(text: &str) -> Option<Scan<'_>> {
    let mut s = Scanner {
        cursor: Cursor::new(text),
        keys: Vec::with_capacity(16),
        prefix: String::new(),
        scan: Scan {
            metrics: Vec::with_capacity(8),
            ..Scan::default()
        },
    };
    s.cursor.ws();
    s.value(Name::Top, 0)?;
    s.cursor.ws();
    s.cursor.at_end().then_some(s.scan)
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
}

struct Scanner<'a> {
    cursor: Cursor<'a>,
    /// Keys of the objects being scanned, innermost last.
    keys: Vec<&'a str>,
    /// The dotted name of the nested field being scanned.
    prefix: String,
    scan: Scan<'a>,
}

impl<'a> Scanner<'a> {
    fn value(&mut self, name: Name<'a>, depth: usize) -> Option<()> {
        match self.cursor.peek()? {
            b'{' => self.object(name, depth + 1),
            // Arrays hold no metrics (as in `message::metrics`).
            b'[' | b'"' | b't' | b'f' | b'n' => self.cursor.skip_value(depth),
            _ => {
                let value = self.cursor.number()?.value;
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
        if let Name::Top = name {
            self.scan.fields = Some(Vec::with_capacity(8));
        }
        if !self.cursor.open(b'{', b'}')? {
            return Some(());
        }
        let first_key = self.keys.len();
        loop {
            // After the opening quote.
            let key_start = self.cursor.position() + 1;
            let key = self.cursor.key()?;
            let value_start = self.cursor.position();
            if self.keys[first_key..].iter().any(|k| same(k, key)) {
                return None;
            }
            self.keys.push(key);
            match name {
                Name::Top if key == "ts" || key == "timestamp" => self.device_time(key)?,
                Name::Top => self.value(Name::Key(key), depth)?,
                Name::Key(parent) => {
                    self.prefix.clear();
                    self.prefix.push_str(parent);
                    self.nested(key, depth)?;
                }
                Name::Prefix => self.nested(key, depth)?,
            }
            if let (Name::Top, Some(fields)) = (name, &mut self.scan.fields) {
                fields.push(FieldSpan {
                    name: (key_start as u32, key.len() as u32),
                    value: (
                        value_start as u32,
                        (self.cursor.position() - value_start) as u32,
                    ),
                });
            }
            if !self.cursor.next_member(b'}')? {
                self.keys.truncate(first_key);
                return Some(());
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

    /// The payload's `ts` or `timestamp`: a number (also a metric) or a
    /// string; anything else is left to the serde scanner.
    fn device_time(&mut self, key: &'a str) -> Option<()> {
        let value = match self.cursor.peek()? {
            b'"' => Value::String(self.cursor.string()?.to_string()),
            _ => {
                let number = self.cursor.number()?;
                self.scan.metrics.push(MetricRef {
                    name: Cow::Borrowed(key),
                    value: number.value,
                });
                Value::Number(json_number(&number)?)
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
fn json_number(n: &weir_json_scan::Number<'_>) -> Option<Number> {
    // Up to 15 digits (a `ts` in milliseconds has 13) the value is the
    // integer exactly: no second parse.
    if n.integer && n.token.len() <= 15 && n.token != "-0" {
        return Some(if n.value < 0.0 {
            Number::from(n.value as i64)
        } else {
            Number::from(n.value as u64)
        });
    }
    if n.integer {
        if let Some(digits) = n.token.strip_prefix('-') {
            if let Ok(i) = n.token.parse::<i64>() {
                if !digits.bytes().all(|b| b == b'0') {
                    return Some(Number::from(i));
                }
            }
        } else if let Ok(u) = n.token.parse::<u64>() {
            return Some(Number::from(u));
        }
    }
    Number::from_f64(n.value)
}
