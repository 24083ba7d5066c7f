//! Locating problems in the rules directory's files: every report is
//! `file:line:col: message`, the source line, and a caret line under the
//! span (rendered by [`weir_sql::SqlError::render`]).
//!
//! SQL statements and `${…}` templates live inside TOML strings, so an
//! error found in the decoded string is mapped back through the string's
//! quoting and escapes to the byte it came from in the file.

use super::RuleProblem;
use std::ops::Range;
use std::path::Path;
use weir_sql::{Span, SqlError};

/// A problem at `span` (bytes of `text`, the whole file).
pub fn at(path: &Path, text: &str, span: Range<usize>, message: impl Into<String>) -> RuleProblem {
    let start = span.start.min(text.len());
    let len = span.end.saturating_sub(start);
    let e = SqlError::new(message, text, Span::new(start, len));
    RuleProblem {
        file: path.to_path_buf(),
        report: e.render(&path.display().to_string(), text),
    }
}

/// A problem about the whole file (no useful position).
pub fn whole_file(path: &Path, message: impl std::fmt::Display) -> RuleProblem {
    RuleProblem {
        file: path.to_path_buf(),
        report: format!("{}: {message}", path.display()),
    }
}

/// A TOML syntax or shape error, at the span the parser gives.
pub fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> RuleProblem {
    let message = e
        .message()
        .trim_end()
        .replace('\n', "; ")
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key");
    match e.span() {
        Some(span) => at(path, text, span, message),
        None => whole_file(path, message),
    }
}

/// The (line, column) a report made by [`at`] for the file shown as
/// `shown` starts with; reports without one sort first.
pub fn position(report: &str, shown: &str) -> (usize, usize) {
    let mut parts = report
        .strip_prefix(shown)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or("")
        .splitn(3, ':')
        .map(|n| n.parse::<usize>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Where each byte of a TOML string value comes from in the file.
///
/// `span` is the span of the value (quotes included) and `value` its
/// decoded text. The result has `value.len() + 1` entries: entry `i` is the
/// file offset of decoded byte `i`, the last one the closing quote. `None`
/// when the raw text does not decode to `value` (then callers fall back to
/// the start of the string).
pub struct StringMap {
    offsets: Vec<usize>,
}

impl StringMap {
    pub fn new(text: &str, span: Range<usize>, value: &str) -> Option<StringMap> {
        let raw = text.get(span.clone())?;
        let quote = ["'''", "\"\"\"", "'", "\""]
            .into_iter()
            .find(|q| raw.starts_with(q) && raw.len() >= 2 * q.len() && raw.ends_with(q))?;
        let multiline = quote.len() == 3;
        let literal = quote.starts_with('\'');
        let mut i = span.start + quote.len();
        let end = span.end - quote.len();
        // A newline right after an opening triple quote is not part of the string.
        if multiline {
            if text[i..end].starts_with("\r\n") {
                i += 2;
            } else if text[i..end].starts_with('\n') {
                i += 1;
            }
        }
        let bytes = text.as_bytes();
        let mut decoded = String::with_capacity(value.len());
        let mut offsets = Vec::with_capacity(value.len() + 1);
        while i < end {
            if !literal && bytes[i] == b'\\' {
                let esc = *bytes.get(i + 1)?;
                let simple = match esc {
                    b'b' => Some('\u{8}'),
                    b't' => Some('\t'),
                    b'n' => Some('\n'),
                    b'f' => Some('\u{c}'),
                    b'r' => Some('\r'),
                    b'e' => Some('\u{1b}'),
                    b'"' => Some('"'),
                    b'\\' => Some('\\'),
                    _ => None,
                };
                if let Some(c) = simple {
                    push_char(&mut decoded, &mut offsets, c, i);
                    i += 2;
                    continue;
                }
                let hex_len = match esc {
                    b'x' => 2,
                    b'u' => 4,
                    b'U' => 8,
                    _ => 0,
                };
                if hex_len > 0 {
                    let hex = text.get(i + 2..i + 2 + hex_len)?;
                    let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                    push_char(&mut decoded, &mut offsets, c, i);
                    i += 2 + hex_len;
                    continue;
                }
                // A line-ending backslash (multi-line strings) eats the
                // newline and all whitespace up to the next character.
                if multiline && matches!(esc, b' ' | b'\t' | b'\r' | b'\n') {
                    let mut j = i + 1;
                    while j < end && matches!(bytes[j], b' ' | b'\t' | b'\r' | b'\n') {
                        j += 1;
                    }
                    i = j;
                    continue;
                }
                return None;
            }
            let c = text[i..].chars().next()?;
            push_char(&mut decoded, &mut offsets, c, i);
            i += c.len_utf8();
        }
        offsets.push(end);
        (decoded == value).then_some(StringMap { offsets })
    }

    /// The file span of decoded bytes `offset .. offset + len`.
    pub fn span(&self, offset: usize, len: usize) -> Range<usize> {
        let last = self.offsets.len() - 1;
        let start = self.offsets[offset.min(last)];
        let end_index = (offset + len).min(last);
        // The end of a span is just past its last byte.
        let end = if len == 0 || end_index == 0 {
            start
        } else {
            self.offsets[end_index - 1] + 1
        };
        start..end.max(start)
    }
}

fn push_char(decoded: &mut String, offsets: &mut Vec<usize>, c: char, at: usize) {
    decoded.push(c);
    for _ in 0..c.len_utf8() {
        offsets.push(at);
    }
}

/// An error found in the decoded string `value` (whose value span in the
/// file is `span`), reported at its own place in the file.
pub fn in_string(
    path: &Path,
    text: &str,
    span: Range<usize>,
    value: &str,
    e: &SqlError,
    prefix: &str,
) -> RuleProblem {
    let message = format!("{prefix}{}", e.message);
    match StringMap::new(text, span.clone(), value) {
        Some(map) => at(path, text, map.span(e.offset, e.len), message),
        // Could not map (unusual escapes): point at the string, say where inside.
        None => at(
            path,
            text,
            span.start..span.start + 1,
            format!("{message} (at {}:{} of the string)", e.line, e.col),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_of(text: &str) -> (StringMap, String) {
        #[derive(serde::Deserialize)]
        struct S {
            s: toml::Spanned<String>,
        }
        let s: S = toml::from_str(text).unwrap();
        let value = s.s.get_ref().clone();
        (StringMap::new(text, s.s.span(), &value).unwrap(), value)
    }

    #[test]
    fn maps_literal_and_basic_strings() {
        let text = "s = 'abc'";
        let (m, _) = map_of(text);
        assert_eq!(m.span(1, 1), 6..7);
        let text = "s = \"a\\tb\\u00e9c\"";
        let (m, v) = map_of(text);
        assert_eq!(v, "a\tbéc");
        // 'c' is decoded byte 5 (é is two bytes), file offset 15.
        assert_eq!(&text[m.span(5, 1)], "c");
        assert_eq!(&text[m.span(1, 1)], "\\");
    }

    #[test]
    fn maps_multiline_strings() {
        let text = "s = \"\"\"\nSELECT \\\n    x FROM 'a'\"\"\"";
        let (m, v) = map_of(text);
        assert_eq!(v, "SELECT x FROM 'a'");
        assert_eq!(&text[m.span(7, 1)], "x");
        let text = "s = '''\nSELECT *\nFROM 'a'\n'''";
        let (m, v) = map_of(text);
        assert_eq!(&v[9..13], "FROM");
        assert_eq!(&text[m.span(9, 4)], "FROM");
        // End of the string: the closing quotes.
        assert_eq!(m.span(v.len(), 0).start, text.len() - 3);
    }
}
