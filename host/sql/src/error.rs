//! Error types: [`SqlError`] for parse/check problems (with a span into the
//! source text) and [`EvalError`] for per-message evaluation failures.

use std::fmt;

/// A byte span into a source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes (at least 1 when rendered).
    pub len: usize,
}

impl Span {
    /// A span from `offset` of `len` bytes.
    pub fn new(offset: usize, len: usize) -> Span {
        Span { offset, len }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        let start = self.offset.min(other.offset);
        let end = (self.offset + self.len).max(other.offset + other.len);
        Span::new(start, end - start)
    }
}

/// A parse or check error with its position in the SQL (or template) text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct SqlError {
    /// A plain sentence saying what is wrong.
    pub message: String,
    /// 1-based line of the start of the span.
    pub line: usize,
    /// 1-based column (in characters) of the start of the span.
    pub col: usize,
    /// Byte offset of the span.
    pub offset: usize,
    /// Byte length of the span.
    pub len: usize,
}

impl SqlError {
    /// Build an error for `span` in `source`, computing line and column.
    pub fn new(message: impl Into<String>, source: &str, span: Span) -> SqlError {
        let offset = floor_char_boundary(source, span.offset.min(source.len()));
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = source[line_start..offset].chars().count() + 1;
        SqlError {
            message: message.into(),
            line,
            col,
            offset,
            len: span.len,
        }
    }

    /// Shift the error by `delta` bytes (used when a snippet is embedded in a larger text).
    pub(crate) fn rebase(self, source: &str, delta: usize) -> SqlError {
        SqlError::new(
            self.message,
            source,
            Span::new(self.offset + delta, self.len),
        )
    }

    /// Render as `file:line:col: message`, then the source line, then a caret line under the span.
    pub fn render(&self, file_name: &str, source: &str) -> String {
        let offset = floor_char_boundary(source, self.offset.min(source.len()));
        let line_start = source[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line_end = source[offset..]
            .find('\n')
            .map(|i| offset + i)
            .unwrap_or(source.len());
        let line_text = source[line_start..line_end].trim_end_matches('\r');
        let lead: String = source[line_start..offset]
            .chars()
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let span_end = floor_char_boundary(source, (offset + self.len.max(1)).min(line_end));
        let carets = source
            .get(offset..span_end)
            .map(|s| s.chars().count())
            .unwrap_or(1)
            .max(1);
        format!(
            "{file_name}:{}:{}: {}\n{line_text}\n{lead}{}",
            self.line,
            self.col,
            self.message,
            "^".repeat(carets)
        )
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// An error while evaluating a statement or template against one message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    /// What went wrong.
    pub message: String,
}

impl EvalError {
    pub(crate) fn new(message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.offset, self.offset + self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_col() {
        let src = "SELECT a\nFROM 'x' WHERE foo(1)";
        let e = SqlError::new("unknown function foo", src, Span::new(24, 6));
        assert_eq!((e.line, e.col), (2, 16));
        let r = e.render("r.toml", src);
        assert_eq!(
            r,
            "r.toml:2:16: unknown function foo\nFROM 'x' WHERE foo(1)\n               ^^^^^^"
        );
    }

    #[test]
    fn span_at_end() {
        let src = "SELECT";
        let e = SqlError::new("expected FROM", src, Span::new(6, 0));
        assert_eq!((e.line, e.col), (1, 7));
        assert!(e.render("f", src).ends_with("      ^"));
    }
}
