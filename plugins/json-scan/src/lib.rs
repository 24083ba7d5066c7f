//! # weir-json-scan: a cursor over the JSON devices send
//!
//! The tokens of JSON text for the one-pass scanners that read readings
//! without building values: the engine's scan of pass-through payloads
//! (`weir-runtime`, natively) and the shadow plugin's field scan (in
//! Wasm). It takes keys and strings without escapes, numbers, literals
//! and nesting up to [`MAX_DEPTH`] levels, and answers `None` for anything
//! else, valid or not, without deciding it: each scanner then hands the
//! text to serde_json, whose errors say what is wrong.
//!
//! No dependencies, so both the host and a `wasm32-wasip2` plugin build it.

/// Deeper nesting is left to serde_json (whose own limit is 128).
pub const MAX_DEPTH: usize = 64;

/// Powers of ten that are exact in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Digits before the point that a number without an exponent may have and
/// still be below `f64::MAX` (about 1.8e308) whatever they are.
const SAFE_INTEGER_DIGITS: u32 = 308;

/// What [`Cursor::number_shape`] saw of a number token. `digits` counts
/// every digit (a leading `0` before the point excepted), `mantissa` holds
/// the first 16 of them.
struct Shape {
    negative: bool,
    mantissa: u64,
    digits: u32,
    fraction: u32,
    point: bool,
    exponent: bool,
}

impl Shape {
    /// No fraction and no exponent.
    fn integer(&self) -> bool {
        !self.point && !self.exponent
    }
}

/// A number token and its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number<'a> {
    /// The token as written.
    pub token: &'a str,
    /// Its value, rounded correctly (as serde_json's `float_roundtrip`).
    pub value: f64,
    /// No fraction and no exponent.
    pub integer: bool,
}

/// A position in JSON text. Its steps are `#[inline]`: the engine calls
/// them per byte of every payload, from another crate.
pub struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    pub fn new(text: &'a str) -> Self {
        Cursor { text, at: 0 }
    }

    /// The byte offset of the cursor.
    #[inline]
    pub fn position(&self) -> usize {
        self.at
    }

    /// The text from `start` to the cursor.
    #[inline]
    pub fn since(&self, start: usize) -> Option<&'a str> {
        self.text.get(start..self.at)
    }

    /// Whether the whole text has been read.
    #[inline]
    pub fn at_end(&self) -> bool {
        self.at == self.text.len()
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Skip whitespace.
    #[inline]
    pub fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Consume `byte`, if it is next.
    #[inline]
    pub fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Open an object or array (`open` is next): `Some(false)` when it is
    /// empty and already closed by `close`.
    #[inline]
    pub fn open(&mut self, open: u8, close: u8) -> Option<bool> {
        self.eat(open)?;
        self.ws();
        Some(self.eat(close).is_none())
    }

    /// After a member of an object or array: `Some(true)` when a comma
    /// follows (another member comes), `Some(false)` at `close`.
    #[inline]
    pub fn next_member(&mut self, close: u8) -> Option<bool> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.at += 1;
                self.ws();
                Some(true)
            }
            b if b == close => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// A key and its colon, with the whitespace around the colon.
    #[inline]
    pub fn key(&mut self) -> Option<&'a str> {
        let key = self.string()?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(key)
    }

    /// A string without escapes, without its quotes.
    #[inline]
    pub fn string(&mut self) -> Option<&'a str> {
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

    /// `word` (`true`, `false` or `null`), if it is next.
    #[inline]
    pub fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        (self.text.as_bytes().get(self.at..end)? == word.as_bytes()).then(|| self.at = end)
    }

    /// A number (JSON's grammar); `None` for a malformed one or one out of
    /// range (serde_json refuses those).
    #[inline]
    pub fn number(&mut self) -> Option<Number<'a>> {
        let start = self.at;
        let shape = self.number_shape()?;
        let token = self.since(start)?;
        // Clinger's fast path: an integer below 2^53 divided by an exact
        // power of ten is one correctly rounded operation. Anything else
        // goes through the full parse (which also rounds correctly).
        let value =
            if !shape.exponent && shape.digits <= 15 && (shape.fraction as usize) < POW10.len() {
                let v = shape.mantissa as f64 / POW10[shape.fraction as usize];
                if shape.negative {
                    -v
                } else {
                    v
                }
            } else {
                token.parse::<f64>().ok().filter(|v| v.is_finite())?
            };
        Some(Number {
            token,
            value,
            integer: shape.integer(),
        })
    }

    /// Skip a number, checking it as [`Cursor::number`] does, without
    /// computing its value: one without an exponent and with at most
    /// [`SAFE_INTEGER_DIGITS`] digits before the point is always in range,
    /// so only others are parsed.
    #[inline]
    pub fn skip_number(&mut self) -> Option<()> {
        let start = self.at;
        let shape = self.number_shape()?;
        if shape.exponent || shape.digits - shape.fraction > SAFE_INTEGER_DIGITS {
            let token = self.since(start)?;
            token.parse::<f64>().ok().filter(|v| v.is_finite())?;
        }
        Some(())
    }

    /// Consume a number token (JSON's grammar), noting its shape.
    #[inline]
    fn number_shape(&mut self) -> Option<Shape> {
        let negative = self.eat(b'-').is_some();
        // The digits as an integer, while they fit exactly in an f64.
        let mut mantissa: u64 = 0;
        let mut digits = 0u32;
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(&mut mantissa, &mut digits),
            _ => return None,
        }
        let mut fraction = 0u32;
        let mut point = false;
        if self.eat(b'.').is_some() {
            point = true;
            self.peek().filter(u8::is_ascii_digit)?;
            let before = digits;
            self.digits(&mut mantissa, &mut digits);
            fraction = digits - before;
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.peek() {
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
        Some(Shape {
            negative,
            mantissa,
            digits,
            fraction,
            point,
            exponent,
        })
    }

    /// Consume decimal digits, accumulating up to 16 of them.
    #[inline]
    fn digits(&mut self, mantissa: &mut u64, count: &mut u32) {
        while let Some(b @ b'0'..=b'9') = self.peek() {
            if *count < 16 {
                *mantissa = *mantissa * 10 + u64::from(b - b'0');
            }
            *count += 1;
            self.at += 1;
        }
    }

    /// Skip one value, checking it; `depth` is how deep it is nested.
    pub fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' | b'[' if depth >= MAX_DEPTH => None,
            b'{' => {
                if self.open(b'{', b'}')? {
                    loop {
                        self.key()?;
                        self.skip_value(depth + 1)?;
                        if !self.next_member(b'}')? {
                            break;
                        }
                    }
                }
                Some(())
            }
            b'[' => {
                if self.open(b'[', b']')? {
                    loop {
                        self.skip_value(depth + 1)?;
                        if !self.next_member(b']')? {
                            break;
                        }
                    }
                }
                Some(())
            }
            b'"' => self.string().map(drop),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.skip_number(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(text: &str) -> bool {
        let mut c = Cursor::new(text);
        c.ws();
        c.skip_value(0).is_some() && {
            c.ws();
            c.at_end()
        }
    }

    #[test]
    fn skips_what_devices_send() {
        for text in [
            r#"{"ts":1764300000000,"t":21.5,"fw":"1.4.2","ok":true,"n":null}"#,
            r#" { "a" : [ 1 , { } , [ ] , "é" ] , "b" : -0.5e-3 } "#,
            "[]",
            "{}",
            "-0",
            "\"text\"",
        ] {
            assert!(skips(text), "{text}");
        }
        let deep = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(skips(&deep));
    }

    #[test]
    fn gives_up_on_escapes_invalid_text_and_deep_nesting() {
        for text in [
            r#"{"a\"b":1}"#,
            r#"{"a":"x\ny"}"#,
            "{\"a\":1,}",
            "[1,]",
            "{\"a\" 1}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":1e}",
            "{\"a\":.5}",
            "{\"a\":-}",
            "{\"a\":tru}",
            "{\"a\":1e400}",
            "{\"a\":\"ctl\u{1}\"}",
            "{\"a\":\"open}",
        ] {
            assert!(!skips(text), "{text}");
        }
        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert!(!skips(&deep));
    }

    /// `skip_number` takes exactly the tokens `number` takes, out-of-range
    /// ones included (long integers are parsed only past 308 digits).
    #[test]
    fn skipping_a_number_checks_it_as_reading_it_does() {
        let long = |lead: &str, zeros: usize| format!("{lead}{}", "0".repeat(zeros));
        let mut tokens: Vec<String> = [
            "0",
            "-0",
            "21.5",
            "21.123456789012345",
            "1e400",
            "-1e400",
            "1e-400",
            "1.5E+3",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "1e+",
            "00.5",
            "-0.0e0",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        for lead in ["1", "2", "9", "-1", "-9"] {
            for zeros in [306, 307, 308, 309] {
                tokens.push(long(lead, zeros));
                tokens.push(format!("{}.25", long(lead, zeros)));
            }
        }
        for token in &tokens {
            let read = Cursor::new(token).number().map(|n| n.token.len());
            let mut c = Cursor::new(token);
            let skipped = c.skip_number().map(|()| c.position());
            assert_eq!(read, skipped, "{token}");
        }
    }

    #[test]
    fn numbers_round_as_parse_does() {
        for token in [
            "0",
            "-0",
            "21.5",
            "0.1",
            "0.30000000000000004",
            "9007199254740993",
            "123456789012345678901234567890",
            "1e-400",
            "4.9e-324",
            "1.7976931348623157e308",
            "-1.5E+3",
            "0.000000000000000000000000000001",
        ] {
            let n = Cursor::new(token).number().expect(token);
            assert_eq!(n.token, token);
            let expected: f64 = token.parse().expect(token);
            assert_eq!(n.value.to_bits(), expected.to_bits(), "{token}");
            assert_eq!(n.integer, !token.contains(['.', 'e', 'E']), "{token}");
        }
    }
}
