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

/// The offset of the first byte of `bytes` that `flag` marks, eight bytes
/// at a time: in Wasm each turn of a loop is also an epoch check (the
/// host's call deadline), so a byte loop over a reading's keys, strings and
/// numbers pays it per byte. `flag` sets the high bit of each marked byte
/// of a little-endian word (other bits are ignored); a borrow or carry of
/// its arithmetic may mark a byte after a marked one, never before it, so
/// the lowest marked byte is the first match. `byte` is the same test for
/// the tail shorter than a word.
#[inline]
fn first_marked(
    bytes: &[u8],
    flag: impl Fn(u64) -> u64,
    byte: impl Fn(u8) -> bool,
) -> Option<usize> {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let marked = flag(u64::from_le_bytes(eight)) & HIGH;
        if marked != 0 {
            return Some(at + (marked.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes
        .get(at..)?
        .iter()
        .position(|&b| byte(b))
        .map(|i| at + i)
}

/// Every byte of a word.
const ONES: u64 = 0x0101_0101_0101_0101;

/// The offset of the first byte of `bytes` that ends a JSON string or
/// needs a closer look: a quote, a backslash or a control character. A
/// byte is marked by the usual "has a zero byte" test of the word XORed
/// with a quote (or a backslash), or by "has a byte below 0x20".
#[inline]
fn string_end(bytes: &[u8]) -> Option<usize> {
    const QUOTE: u64 = ONES * b'"' as u64;
    const BACKSLASH: u64 = ONES * b'\\' as u64;
    const SPACE: u64 = ONES * 0x20;
    first_marked(
        bytes,
        |w| {
            let q = w ^ QUOTE;
            let b = w ^ BACKSLASH;
            (q.wrapping_sub(ONES) & !q) | (b.wrapping_sub(ONES) & !b) | (w.wrapping_sub(SPACE) & !w)
        },
        |b| b == b'"' || b == b'\\' || b < 0x20,
    )
}

/// How many of `bytes` are decimal digits before the first that is not.
/// In a word XORed with `0x30` a digit is a byte below 10; adding `0x76`
/// sets the high bit of every other byte (or it had it already).
#[inline]
fn digit_run(bytes: &[u8]) -> usize {
    first_marked(
        bytes,
        |w| {
            let x = w ^ (ONES * 0x30);
            x.wrapping_add(ONES * 0x76) | x
        },
        |b| !b.is_ascii_digit(),
    )
    .unwrap_or(bytes.len())
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
        let len = string_end(rest)?;
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
                // Below 2^53, so signed (one instruction) converts it exactly.
                let v = shape.mantissa as i64 as f64 / POW10[shape.fraction as usize];
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
        let rest = self.text.as_bytes().get(self.at..).unwrap_or_default();
        let run = digit_run(rest);
        let wanted = (16usize.saturating_sub(*count as usize)).min(run);
        for &b in &rest[..wanted] {
            *mantissa = *mantissa * 10 + u64::from(b - b'0');
        }
        *count += run as u32;
        self.at += run;
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

    /// Byte strings of every length up to 40, 400 of each: mostly `plain`
    /// bytes, one in `1 / every` from `interesting` (xorshift, so every
    /// run tests the same strings).
    fn mixes(
        interesting: &[u8],
        plain: impl Fn(u64) -> u8,
        every: u64,
        mut check: impl FnMut(&[u8]),
    ) {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..40 {
            for _ in 0..400 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        if seed.is_multiple_of(every) {
                            interesting[(seed >> 8) as usize % interesting.len()]
                        } else {
                            plain(seed >> 16)
                        }
                    })
                    .collect();
                check(&bytes);
            }
        }
    }

    /// Numbers of every length up to 20 digits, with the point anywhere,
    /// parse as `str::parse` does, at the end of the text or followed by
    /// more of it.
    #[test]
    fn numbers_of_every_length_round_as_parse_does() {
        let mut r = 99u64;
        for len in 1..=20usize {
            for point in 0..len {
                r = r.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let mut digits: String = (0..len)
                    .map(|i| char::from(b'0' + ((r >> (i * 3)) % 10) as u8))
                    .collect();
                if digits.starts_with('0') && point != 1 {
                    digits.replace_range(0..1, "7");
                }
                let token = if point == 0 {
                    digits
                } else {
                    format!("{}.{}", &digits[..point], &digits[point..])
                };
                for text in [token.clone(), format!("{token},\"x\":1}}")] {
                    let n = Cursor::new(&text).number().expect(&text);
                    assert_eq!(n.token, token);
                    assert_eq!(n.value, token.parse::<f64>().expect("parses"), "{text}");
                }
            }
        }
    }

    /// The word-at-a-time digit count agrees with a byte loop.
    #[test]
    fn digit_run_agrees_with_a_byte_loop() {
        let interesting = [
            0x00, 0x2f, b'0', b'5', b'9', 0x3a, b'.', b'e', b'-', 0x80, 0xb0, 0xb9, 0xff,
        ];
        mixes(
            &interesting,
            |r| b'0' + r as u8 % 10,
            7,
            |bytes| {
                let naive = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
                assert_eq!(digit_run(bytes), naive, "{bytes:?}");
            },
        );
    }

    /// The word-at-a-time search finds what a byte loop finds, for every
    /// mix of interesting bytes around each lane and word boundary.
    #[test]
    fn string_end_agrees_with_a_byte_loop() {
        let interesting = [
            0x00, 0x01, 0x1f, 0x20, 0x21, b'"', 0x23, b'\\', 0x5d, b'a', 0x7f, 0x80, 0x9f, 0xa0,
            0xa2, 0xdc, 0xff,
        ];
        // Mostly plain letters, as in real keys.
        mixes(
            &interesting,
            |r| b'a' + r as u8 % 26,
            5,
            |bytes| {
                let naive = bytes
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\' || b < 0x20);
                assert_eq!(string_end(bytes), naive, "{bytes:?}");
            },
        );
    }

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
