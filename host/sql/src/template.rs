//! `${expr}` substitution templates for action parameters, AWS style: each
//! expression is evaluated against the incoming message (so `${topic(2)}`,
//! `${clientid()}` and payload paths all work) and printed without quotes;
//! Undefined prints as nothing.

use crate::check;
use crate::compile::{self, Node};
use crate::error::{EvalError, Span, SqlError};
use crate::eval::{eval, Cx};
use crate::parser::parse_expression;
use crate::value::V;
use crate::{Message, Variables};
use std::borrow::Cow;

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Expr(Node),
}

/// A compiled substitution template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parse and check `text`; errors point into `text`.
    pub fn parse(text: &str) -> Result<Template, SqlError> {
        Template::parse_with_variables(text, &[])
    }

    /// As [`Template::parse`], where `${@name}` may read the variables a
    /// statement's SET clause assigns ([`crate::Statement::variables`]);
    /// render with [`Template::render_cow_with`] and the bound values.
    pub fn parse_with_variables(text: &str, variables: &[String]) -> Result<Template, SqlError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = 0;
        while let Some(i) = text[rest..].find("${") {
            let open = rest + i;
            lit.push_str(&text[rest..open]);
            let body_start = open + 2;
            let close = find_close(text, body_start).ok_or_else(|| {
                SqlError::new(
                    "unterminated `${`: missing `}`",
                    text,
                    Span::new(open, text.len() - open),
                )
            })?;
            let body = &text[body_start..close];
            if body.trim().is_empty() {
                return Err(SqlError::new(
                    "empty substitution `${}`",
                    text,
                    Span::new(open, close + 1 - open),
                ));
            }
            let e = parse_expression(body, variables).map_err(|e| e.rebase(text, body_start))?;
            if let Some(err) = check::check_expr(&e, body).into_iter().next() {
                return Err(err.rebase(text, body_start));
            }
            if !lit.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut lit)));
            }
            parts.push(Part::Expr(compile::expr(&e)));
            rest = close + 1;
        }
        lit.push_str(&text[rest..]);
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template { parts })
    }

    /// Render against the incoming message.
    pub fn render(&self, msg: &Message<'_>) -> Result<String, EvalError> {
        Ok(self.render_in(&Cx::new(msg)))
    }

    /// Render, borrowing where the result is text the template or the
    /// message already holds: a literal template, or one expression whose
    /// value is a piece of the message (`${topic(3)}`, `${clientid()}`).
    pub fn render_cow<'a>(&'a self, msg: &'a Message<'_>) -> Result<Cow<'a, str>, EvalError> {
        Ok(self.render_cow_in(&Cx::new(msg)))
    }

    /// As [`Template::render_cow`], reading the variables the rule's
    /// statement bound for this message ([`crate::Statement::bind`]).
    pub fn render_cow_with<'a>(
        &'a self,
        msg: &'a Message<'a>,
        vars: &'a Variables<'a>,
    ) -> Result<Cow<'a, str>, EvalError> {
        Ok(self.render_cow_in(&Cx::new(msg).with_vars(vars)))
    }

    fn render_in(&self, cx: &Cx<'_>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Expr(n) => match eval(n, cx) {
                    V::Undef => {}
                    V::Null => out.push_str("null"),
                    v => {
                        if let Some(s) = v.to_str() {
                            out.push_str(&s)
                        }
                    }
                },
            }
        }
        out
    }

    fn render_cow_in<'a>(&'a self, cx: &Cx<'a>) -> Cow<'a, str> {
        match self.parts.as_slice() {
            [] => Cow::Borrowed(""),
            [Part::Text(t)] => Cow::Borrowed(t),
            [Part::Expr(n)] => match eval(n, cx) {
                V::Undef => Cow::Borrowed(""),
                V::Null => Cow::Borrowed("null"),
                V::Str(Cow::Borrowed(s)) => Cow::Borrowed(s),
                v => Cow::Owned(v.to_str().map(Cow::into_owned).unwrap_or_default()),
            },
            _ => Cow::Owned(self.render_in(cx)),
        }
    }

    /// Whether rendering reads the payload (a path such as `${device.id}`),
    /// rather than only the topic, client id, timestamp or literals.
    pub fn reads_payload(&self) -> bool {
        self.parts.iter().any(|p| match p {
            Part::Text(_) => false,
            Part::Expr(n) => crate::node_reads_payload(n),
        })
    }

    /// Whether the template reads a SET variable (`${@name}`).
    pub fn reads_variables(&self) -> bool {
        self.parts.iter().any(|p| match p {
            Part::Text(_) => false,
            Part::Expr(n) => crate::node_reads_variables(n),
        })
    }

    /// True when the template has no `${…}` at all.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }
}

/// Find the `}` closing a substitution, skipping quoted strings and nested braces.
fn find_close(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == q {
                        if bytes.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'{' => depth += 1,
            b'}' => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Payload;
    use serde_json::{json, Value};

    /// A message on `dt/thermo/dev1/telemetry` from `c1` with payload `p`.
    fn message(p: &Value) -> Message<'_> {
        Message {
            topic: "dt/thermo/dev1/telemetry",
            client_id: "c1",
            payload: Payload::Json(p),
            timestamp_ms: 7,
            principal: None,
            source_ip: None,
            mqtt: None,
            trace_id: None,
            lookup: None,
        }
    }

    /// AWS IoT's substitution-template examples: `${topic()}/republish`
    /// (substitution templates page) and an S3 key of
    /// `${parse_time("yyyy", timestamp(), "UTC")}` (parse_time).
    #[test]
    fn aws_doc_examples() {
        let p = json!({"deviceid": "iot123", "temp": 54.98});
        let msg = Message {
            topic: "my/iot/topic",
            timestamp_ms: 1_497_028_786_000, // 2017-06-09T17:19:46Z
            ..message(&p)
        };
        let t = Template::parse("${topic()}/republish").unwrap();
        assert_eq!(t.render(&msg).unwrap(), "my/iot/topic/republish");
        let t = Template::parse(r#"${parse_time("yyyy", timestamp(), "UTC")}"#).unwrap();
        assert_eq!(t.render(&msg).unwrap(), "2017");
    }

    #[test]
    fn renders() {
        let p = json!({"a": {"b": 5}, "s": "x"});
        let msg = message(&p);
        let t = Template::parse("dev=${topic(3)} b=${a.b + 1} s=${s} none=${nope} {x}").unwrap();
        assert_eq!(t.render(&msg).unwrap(), "dev=dev1 b=6 s=x none= {x}");
        assert!(!t.is_literal());
        assert!(Template::parse("plain").unwrap().is_literal());
        let t = Template::parse("${ {'k': '}'}.k }").unwrap();
        assert_eq!(t.render(&msg).unwrap(), "}");
    }

    #[test]
    fn render_cow_agrees_with_render_and_borrows_pieces_of_the_message() {
        let p = json!({"a": {"b": 5}, "s": "x", "n": null});
        let msg = message(&p);
        for (text, borrowed) in [
            ("${topic(3)}", true),
            ("${clientid()}", true),
            ("${topic(9)}", true),
            ("literal", true),
            ("", true),
            ("${n}", true),
            ("${a.b + 1}", false),
            ("${a}", false),
            ("x-${topic(3)}", false),
        ] {
            let t = Template::parse(text).unwrap();
            let cow = t.render_cow(&msg).unwrap();
            assert_eq!(cow, t.render(&msg).unwrap(), "{text}");
            assert_eq!(matches!(cow, Cow::Borrowed(_)), borrowed, "{text}");
        }
    }

    #[test]
    fn errors_point_into_template() {
        let e = Template::parse("abc ${nosuch(1)}").unwrap_err();
        assert_eq!(e.col, 7);
        assert!(e.message.contains("unknown function"));
        let e = Template::parse("abc ${a.b").unwrap_err();
        assert_eq!(e.col, 5);
    }
}
