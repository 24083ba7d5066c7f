//! Lexer: turns SQL text into tokens with byte spans.
//!
//! Strings are single- or double-quoted, a doubled quote inside stands for one
//! quote; there are no backslash escapes (so regular expressions read as written).
//! Backtick-quoted identifiers allow keys with spaces or dashes.

use crate::error::{Span, SqlError};

/// One token kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// Bare identifier or keyword (keywords are recognised by the parser).
    Ident(String),
    /// Backtick-quoted identifier: never a keyword.
    QuotedIdent(String),
    /// `@name`: a variable of the SET clause (the name without `@`).
    Var(String),
    /// String literal.
    Str(String),
    /// Integer literal.
    Int(i64),
    /// Decimal literal.
    Dec(f64),
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Dot,
    Colon,
    Star,
    Plus,
    Minus,
    Slash,
    Percent,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// End of input.
    Eof,
}

impl Tok {
    /// How the token is shown in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::QuotedIdent(s) => format!("`{s}`"),
            Tok::Var(s) => format!("variable @{s}"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Int(i) => format!("number {i}"),
            Tok::Dec(d) => format!("number {d}"),
            Tok::Eof => "end of input".to_string(),
            other => format!("`{}`", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::Colon => ":",
            Tok::Star => "*",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Eq => "=",
            Tok::Ne => "<>",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            _ => "?",
        }
    }
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Split `src` into tokens; the last one is always [`Tok::Eof`].
pub fn lex(src: &str) -> Result<Vec<Token>, SqlError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let single = |t: Tok| Token {
            tok: t,
            span: Span::new(start, 1),
        };
        match c {
            b'(' => out.push(single(Tok::LParen)),
            b')' => out.push(single(Tok::RParen)),
            b'[' => out.push(single(Tok::LBracket)),
            b']' => out.push(single(Tok::RBracket)),
            b'{' => out.push(single(Tok::LBrace)),
            b'}' => out.push(single(Tok::RBrace)),
            b',' => out.push(single(Tok::Comma)),
            b':' => out.push(single(Tok::Colon)),
            b'*' => out.push(single(Tok::Star)),
            b'+' => out.push(single(Tok::Plus)),
            b'-' => out.push(single(Tok::Minus)),
            b'/' => out.push(single(Tok::Slash)),
            b'%' => out.push(single(Tok::Percent)),
            b'=' => {
                // accept `==` as `=` would be lenient; AWS has only `=`.
                out.push(single(Tok::Eq))
            }
            b'<' | b'>' | b'!' => {
                let next = bytes.get(i + 1).copied();
                let (tok, len) = match (c, next) {
                    (b'<', Some(b'>')) => (Tok::Ne, 2),
                    (b'<', Some(b'=')) => (Tok::Le, 2),
                    (b'<', _) => (Tok::Lt, 1),
                    (b'>', Some(b'=')) => (Tok::Ge, 2),
                    (b'>', _) => (Tok::Gt, 1),
                    (b'!', Some(b'=')) => (Tok::Ne, 2),
                    _ => {
                        return Err(SqlError::new(
                            "unexpected character `!` (use NOT or <>)",
                            src,
                            Span::new(start, 1),
                        ))
                    }
                };
                out.push(Token {
                    tok,
                    span: Span::new(start, len),
                });
                i += len;
                continue;
            }
            b'\'' | b'"' | b'`' => {
                let quote = c;
                let mut s = String::new();
                let mut j = i + 1;
                let mut seg_start = j;
                loop {
                    match bytes.get(j) {
                        None => {
                            let what = if quote == b'`' {
                                "identifier"
                            } else {
                                "string"
                            };
                            return Err(SqlError::new(
                                format!("unterminated {what}: missing closing {}", quote as char),
                                src,
                                Span::new(start, src.len() - start),
                            ));
                        }
                        Some(&b) if b == quote => {
                            s.push_str(&src[seg_start..j]);
                            if bytes.get(j + 1) == Some(&quote) {
                                s.push(quote as char);
                                j += 2;
                                seg_start = j;
                            } else {
                                j += 1;
                                break;
                            }
                        }
                        Some(_) => j += 1,
                    }
                }
                let tok = if quote == b'`' {
                    Tok::QuotedIdent(s)
                } else {
                    Tok::Str(s)
                };
                out.push(Token {
                    tok,
                    span: Span::new(start, j - start),
                });
                i = j;
                continue;
            }
            b'0'..=b'9' | b'.' if c != b'.' || bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let mut j = i;
                let mut is_dec = false;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                if j < bytes.len()
                    && bytes[j] == b'.'
                    && bytes.get(j + 1).is_some_and(u8::is_ascii_digit)
                {
                    is_dec = true;
                    j += 1;
                    while j < bytes.len() && bytes[j].is_ascii_digit() {
                        j += 1;
                    }
                }
                if j < bytes.len() && (bytes[j] == b'e' || bytes[j] == b'E') {
                    let mut k = j + 1;
                    if k < bytes.len() && (bytes[k] == b'+' || bytes[k] == b'-') {
                        k += 1;
                    }
                    if k < bytes.len() && bytes[k].is_ascii_digit() {
                        while k < bytes.len() && bytes[k].is_ascii_digit() {
                            k += 1;
                        }
                        is_dec = true;
                        j = k;
                    }
                }
                let text = &src[i..j];
                let span = Span::new(i, j - i);
                if j < bytes.len() && (bytes[j].is_ascii_alphabetic() || bytes[j] == b'_') {
                    return Err(SqlError::new(
                        "a number cannot be followed directly by a letter",
                        src,
                        Span::new(i, j - i + 1),
                    ));
                }
                let tok = if is_dec {
                    match text.parse::<f64>() {
                        Ok(d) if d.is_finite() => Tok::Dec(d),
                        _ => return Err(SqlError::new("number out of range", src, span)),
                    }
                } else {
                    match text.parse::<i64>() {
                        Ok(n) => Tok::Int(n),
                        Err(_) => match text.parse::<f64>() {
                            Ok(d) if d.is_finite() => Tok::Dec(d),
                            _ => return Err(SqlError::new("number out of range", src, span)),
                        },
                    }
                };
                out.push(Token { tok, span });
                i = j;
                continue;
            }
            b'.' => out.push(single(Tok::Dot)),
            b'@' => {
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                if j == i + 1 {
                    return Err(SqlError::new(
                        "expected a variable name after `@` (letters, digits and underscores)",
                        src,
                        Span::new(i, 1),
                    ));
                }
                out.push(Token {
                    tok: Tok::Var(src[i + 1..j].to_string()),
                    span: Span::new(i, j - i),
                });
                i = j;
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                let mut j = i + 1;
                while j < bytes.len()
                    && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_' || bytes[j] == b'$')
                {
                    j += 1;
                }
                out.push(Token {
                    tok: Tok::Ident(src[i..j].to_string()),
                    span: Span::new(i, j - i),
                });
                i = j;
                continue;
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(SqlError::new(
                    format!("unexpected character `{ch}`"),
                    src,
                    Span::new(i, ch.len_utf8()),
                ));
            }
        }
        i += 1;
    }
    out.push(Token {
        tok: Tok::Eof,
        span: Span::new(src.len(), 0),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn basic() {
        assert_eq!(
            toks("SELECT a.b, 'it''s' <> 1.5e1 FROM"),
            vec![
                Tok::Ident("SELECT".into()),
                Tok::Ident("a".into()),
                Tok::Dot,
                Tok::Ident("b".into()),
                Tok::Comma,
                Tok::Str("it's".into()),
                Tok::Ne,
                Tok::Dec(15.0),
                Tok::Ident("FROM".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn backslash_is_literal() {
        assert_eq!(toks(r"'\d+'"), vec![Tok::Str(r"\d+".into()), Tok::Eof]);
    }

    #[test]
    fn errors_have_spans() {
        let e = lex("SELECT 'abc").unwrap_err();
        assert_eq!((e.offset, e.col), (7, 8));
        let e = lex("SELECT #").unwrap_err();
        assert_eq!(e.offset, 7);
    }

    #[test]
    fn variables() {
        assert_eq!(
            toks("@a_1 + @B"),
            vec![
                Tok::Var("a_1".into()),
                Tok::Plus,
                Tok::Var("B".into()),
                Tok::Eof
            ]
        );
        assert_eq!(lex("SELECT @ FROM").unwrap_err().offset, 7);
    }

    #[test]
    fn big_int_is_decimal() {
        assert_eq!(toks("99999999999999999999"), vec![Tok::Dec(1e20), Tok::Eof]);
    }
}
