//! Checks a parsed statement: known functions with the right number of
//! arguments, refused AWS-service functions, literal regular expressions,
//! encodings and time zones, and the FROM topic filter. Every problem is
//! reported with its span.

use crate::ast::*;
use crate::error::{Span, SqlError};
use crate::functions::{self, FnSpec as FnSpecView, Func};

/// Check a whole statement; returns every problem found, in source order.
pub fn check_query(q: &Query, src: &str) -> Vec<SqlError> {
    let mut c = Checker {
        src,
        errors: Vec::new(),
        assigned: q.set.iter().map(|a| a.name.as_str()).collect(),
    };
    c.query(q);
    c.errors.sort_by_key(|e| e.offset);
    c.errors
}

/// Check one expression (for templates).
pub fn check_expr(e: &Expr, src: &str) -> Vec<SqlError> {
    let mut c = Checker {
        src,
        errors: Vec::new(),
        assigned: Vec::new(),
    };
    c.expr(e);
    c.errors
}

struct Checker<'s> {
    src: &'s str,
    errors: Vec<SqlError>,
    /// Every variable the SET clause assigns (to tell a use before the
    /// assignment from a variable never assigned).
    assigned: Vec<&'s str>,
}

/// The names `get_mqtt_property` takes, as AWS spells them.
const MQTT_PROPERTIES: [&str; 4] = [
    "format_indicator",
    "content_type",
    "response_topic",
    "correlation_data",
];

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "argument"
    } else {
        "arguments"
    }
}

impl<'s> Checker<'s> {
    fn err(&mut self, msg: impl Into<String>, span: Span) {
        self.errors.push(SqlError::new(msg, self.src, span));
    }

    fn query(&mut self, q: &Query) {
        for a in &q.set {
            self.expr(&a.expr);
        }
        match &q.from {
            From::Topic { filter, span } => {
                if let Err(m) = crate::topic::validate_topic_filter(filter) {
                    self.err(format!("bad topic filter '{filter}': {m}"), *span);
                }
            }
            From::Expr(e) => self.expr(e),
        }
        for item in &q.items {
            self.expr(&item.expr);
        }
        if let Some(w) = &q.where_ {
            self.expr(w);
        }
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Lit(_) | ExprKind::Star | ExprKind::Ident(_) => {}
            ExprKind::Var { slot: Some(_), .. } => {}
            ExprKind::Var { name, slot: None } if self.assigned.contains(&name.as_str()) => self
                .err(
                    format!(
                        "variable @{name} is used before its assignment: a SET expression sees only the variables assigned before it"
                    ),
                    e.span,
                ),
            ExprKind::Var { name, slot: None } => self.err(
                format!(
                    "unknown variable @{name}: assign it in the SET clause that starts the statement (SET @{name} = … SELECT …)"
                ),
                e.span,
            ),
            ExprKind::Field(b, _) => self.expr(b),
            ExprKind::Index(b, i) => {
                self.expr(b);
                self.expr(i);
            }
            ExprKind::Cast(b, _) | ExprKind::Unary(_, b) => self.expr(b),
            ExprKind::Binary(_, l, r) => {
                self.expr(l);
                self.expr(r);
            }
            ExprKind::Case {
                operand,
                whens,
                else_,
            } => {
                if let Some(o) = operand {
                    self.expr(o);
                }
                for (w, t) in whens {
                    self.expr(w);
                    self.expr(t);
                }
                if let Some(x) = else_ {
                    self.expr(x);
                }
            }
            ExprKind::Array(items) => items.iter().for_each(|i| self.expr(i)),
            ExprKind::Object(fields) => fields.iter().for_each(|(_, v)| self.expr(v)),
            ExprKind::Subquery(q) => self.query(q),
            ExprKind::Call {
                name,
                name_span: _,
                args,
            } => {
                for a in args {
                    self.expr(a);
                }
                self.call(name, args, e.span);
            }
        }
    }

    fn call(&mut self, name: &str, args: &[Expr], span: Span) {
        if let Some(msg) = functions::refusal(name) {
            return self.err(msg, span);
        }
        let Some(spec) = functions::find(name) else {
            return self.err(format!("unknown function `{name}`"), span);
        };
        let n = args.len();
        let proto = spec.func == Func::Decode
            && matches!(args.get(1).map(|a| &a.kind), Some(ExprKind::Lit(Literal::Str(s))) if s.eq_ignore_ascii_case("proto"));
        if proto {
            return self.err(
                "decode(…, 'proto', …) reads a protobuf descriptor from Amazon S3, which Weir does not provide",
                span,
            );
        }
        let max = if spec.func == Func::Decode {
            2
        } else {
            spec.max
        };
        if n < spec.min || n > max {
            let spec = FnSpecView { max, ..*spec };
            let want = if spec.min == spec.max {
                format!("{} {}", spec.min, plural(spec.min))
            } else if spec.max == usize::MAX {
                format!("at least {} {}", spec.min, plural(spec.min))
            } else {
                format!("{} to {} arguments", spec.min, spec.max)
            };
            return self.err(
                format!(
                    "function {} takes {want}, but {n} {} given",
                    spec.name,
                    if n == 1 { "was" } else { "were" }
                ),
                span,
            );
        }
        let lit_str = |i: usize| match args.get(i).map(|a| &a.kind) {
            Some(ExprKind::Lit(Literal::Str(s))) => Some(s.as_str()),
            _ => None,
        };
        match spec.func {
            Func::RegexpMatches | Func::RegexpReplace | Func::RegexpSubstr => {
                if let Some(p) = lit_str(1) {
                    if let Err(e) = regex::Regex::new(p) {
                        let first = e.to_string().lines().last().unwrap_or("").to_string();
                        self.err(
                            format!("invalid regular expression: {}", first.trim()),
                            args[1].span,
                        );
                    }
                }
            }
            Func::Encode | Func::Decode => {
                if let Some(s) = lit_str(1) {
                    if s.eq_ignore_ascii_case("proto") {
                        self.err(
                            format!("{}(…, 'proto') reads a protobuf descriptor from Amazon S3, which Weir does not provide", spec.name),
                            span,
                        );
                    } else if !s.eq_ignore_ascii_case("base64") {
                        self.err(
                            format!("unknown encoding scheme '{s}': Weir supports 'base64'"),
                            args[1].span,
                        );
                    }
                }
            }
            Func::GetMqttProperty => {
                if let Some(name) = lit_str(0) {
                    if !MQTT_PROPERTIES.contains(&name) {
                        self.err(
                            format!(
                                "unknown MQTT property '{name}': get_mqtt_property reads {}",
                                MQTT_PROPERTIES.join(", ")
                            ),
                            args[0].span,
                        );
                    }
                }
            }
            Func::ParseTime => {
                if let Some(z) = lit_str(2) {
                    if functions::time::Zone::parse(z).is_none() {
                        self.err(
                            format!("unknown time zone '{z}': use an IANA zone id such as 'America/Los_Angeles', UTC, or a fixed offset such as '+05:30'"),
                            args[2].span,
                        );
                    }
                }
            }
            Func::Topic => {
                if let Some(ExprKind::Lit(Literal::Int(i))) = args.first().map(|a| &a.kind) {
                    if *i < 1 {
                        self.err("topic(n) counts levels from 1", args[0].span);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse_statement;

    fn errs(sql: &str) -> Vec<String> {
        let q = parse_statement(sql).unwrap();
        check_query(&q, sql)
            .into_iter()
            .map(|e| format!("{}:{} {}", e.line, e.col, e.message))
            .collect()
    }

    #[test]
    fn reports_every_problem() {
        let e = errs("SELECT foo(1), substring('a'), aws_lambda('arn', *) FROM 'a/#/b'");
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with("1:8 unknown function `foo`"));
        assert!(e[1].contains("substring takes 2 to 3 arguments, but 1 was given"));
        assert!(e[2].contains("calls AWS Lambda"));
        assert!(e[3].contains("bad topic filter"));
    }

    #[test]
    fn regex_and_zone_literals() {
        assert_eq!(errs("SELECT regexp_matches(a, '(') FROM 'x'").len(), 1);
        assert_eq!(
            errs("SELECT parse_time('yyyy', 0, 'Mars/Base') FROM 'x'").len(),
            1
        );
        assert!(errs("SELECT parse_time('yyyy', 0, 'UTC') FROM 'x'").is_empty());
        assert!(errs("SELECT parse_time('yyyy', 0, 'America/Belize') FROM 'x'").is_empty());
        let e = errs("SELECT parse_time('yyyy', 0, 'Mars/Base') FROM 'x'");
        assert!(e[0].contains("use an IANA zone id"), "{e:?}");
    }
}
