//! Recursive-descent parser from tokens to [`crate::ast`]. A statement is
//! `[SET @a = expr, …] SELECT … FROM '<filter>' [WHERE …]`; `@name` resolves
//! to the assignment before it (its slot), or to none (a check error).
//!
//! Precedence, lowest first: `OR`, `AND`, `NOT`, comparisons (`= <> != < <= > >=
//! IN CONTAINS`), `+ -`, `* / %`, unary `-`, postfix `.name` and `[index]`.

use crate::ast::*;
use crate::error::{Span, SqlError};
use crate::lexer::{lex, Tok, Token};

const MAX_DEPTH: usize = 48;

/// The longest variable name AWS accepts.
pub const MAX_VARIABLE_NAME: usize = 64;

const RESERVED: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "IN", "CONTAINS", "CASE", "WHEN", "THEN",
    "ELSE", "END", "TRUE", "FALSE", "NULL",
];

/// Parse a whole statement (`[SET @v = …, …] SELECT … FROM '<filter>'
/// [WHERE …]`).
pub fn parse_statement(src: &str) -> Result<Query, SqlError> {
    let mut p = Parser::new(src)?;
    let set = p.set_clause()?;
    let mut q = p.query(true)?;
    q.set = set;
    p.expect_eof()?;
    Ok(q)
}

/// Parse one standalone expression (used by substitution templates), in
/// which `@name` refers to `variables` (a statement's SET clause, in order).
pub fn parse_expression(src: &str, variables: &[String]) -> Result<Expr, SqlError> {
    let mut p = Parser::new(src)?;
    p.vars = variables.to_vec();
    let e = p.expr()?;
    p.expect_eof()?;
    Ok(e)
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    /// Variables assigned so far, in order: what `@name` can refer to.
    vars: Vec<String>,
}

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> Result<Self, SqlError> {
        Ok(Parser {
            src,
            toks: lex(src)?,
            pos: 0,
            depth: 0,
            vars: Vec::new(),
        })
    }

    fn peek(&self) -> &Token {
        let i = self.pos.min(self.toks.len().saturating_sub(1));
        &self.toks[i]
    }

    fn peek_at(&self, n: usize) -> &Tok {
        let i = (self.pos + n).min(self.toks.len().saturating_sub(1));
        &self.toks[i].tok
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn err<T>(&self, msg: impl Into<String>, span: Span) -> Result<T, SqlError> {
        Err(SqlError::new(msg, self.src, span))
    }

    fn unexpected<T>(&self, wanted: &str) -> Result<T, SqlError> {
        let t = self.peek();
        self.err(
            format!("expected {wanted}, found {}", t.tok.describe()),
            t.span,
        )
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<Span, SqlError> {
        if self.is_kw(kw) {
            Ok(self.bump().span)
        } else {
            self.unexpected(kw)
        }
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if &self.peek().tok == t {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: Tok) -> Result<Span, SqlError> {
        if self.peek().tok == t {
            Ok(self.bump().span)
        } else {
            self.unexpected(&t.describe())
        }
    }

    fn expect_eof(&mut self) -> Result<(), SqlError> {
        if self.peek().tok == Tok::Eof {
            Ok(())
        } else {
            self.unexpected("end of statement")
        }
    }

    fn enter(&mut self, span: Span) -> Result<(), SqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("expression nested too deeply", span);
        }
        Ok(())
    }

    /// `SET @a = expr, @b = expr …` before SELECT (none: empty). Each
    /// expression sees the variables assigned before it.
    fn set_clause(&mut self) -> Result<Vec<Assignment>, SqlError> {
        if !self.eat_kw("SET") {
            return Ok(Vec::new());
        }
        let mut set: Vec<Assignment> = Vec::new();
        loop {
            let t = self.bump();
            let Tok::Var(name) = t.tok else {
                return self.err(
                    format!(
                        "expected a variable such as @name after SET, found {}",
                        t.tok.describe()
                    ),
                    t.span,
                );
            };
            if name.len() > MAX_VARIABLE_NAME {
                return self.err(
                    format!(
                        "variable names are at most {MAX_VARIABLE_NAME} characters; @{name} has {}",
                        name.len()
                    ),
                    t.span,
                );
            }
            if set.iter().any(|a| a.name == name) {
                return self.err(
                    format!("variable @{name} is already set: variables are assigned once"),
                    t.span,
                );
            }
            self.expect(Tok::Eq)?;
            let expr = self.expr()?;
            self.vars.push(name.clone());
            set.push(Assignment {
                name,
                span: t.span,
                expr,
            });
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        if self.is_kw("SET") {
            return self.err(
                "SET may appear once per statement: separate assignments with commas",
                self.peek().span,
            );
        }
        Ok(set)
    }

    fn query(&mut self, top: bool) -> Result<Query, SqlError> {
        self.expect_kw("SELECT")?;
        let mut value = false;
        if self.is_kw("VALUE")
            && !matches!(
                self.peek_at(1),
                Tok::Comma | Tok::Dot | Tok::LBracket | Tok::Eof
            )
            && !matches!(self.peek_at(1), Tok::Ident(s) if s.eq_ignore_ascii_case("FROM") || s.eq_ignore_ascii_case("AS"))
        {
            self.bump();
            value = true;
        }
        let mut items = Vec::new();
        loop {
            let expr = self.expr()?;
            let alias = if self.eat_kw("AS") {
                let t = self.bump();
                match t.tok {
                    // `AS bar.baz` (AWS's JSON-extensions example): the key
                    // is the dotted name as written.
                    Tok::Ident(mut s) => {
                        let mut span = t.span;
                        while self.peek().tok == Tok::Dot
                            && matches!(self.peek_at(1), Tok::Ident(_) | Tok::QuotedIdent(_))
                        {
                            self.bump();
                            let part = self.bump();
                            if let Tok::Ident(p) | Tok::QuotedIdent(p) = part.tok {
                                s.push('.');
                                s.push_str(&p);
                            }
                            span = span.to(part.span);
                        }
                        Some((s, span))
                    }
                    Tok::QuotedIdent(s) | Tok::Str(s) => Some((s, t.span)),
                    other => {
                        return self.err(
                            format!("expected a name after AS, found {}", other.describe()),
                            t.span,
                        )
                    }
                }
            } else {
                None
            };
            items.push(SelectItem { expr, alias });
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        if value && items.len() > 1 {
            return self.err(
                "SELECT VALUE takes exactly one expression",
                items[1].expr.span,
            );
        }
        if value {
            if let Some((_, span)) = &items[0].alias {
                return self.err("SELECT VALUE cannot have an alias", *span);
            }
        }
        let from = if top {
            if !self.is_kw("FROM") {
                return self.unexpected("FROM");
            }
            self.bump();
            let t = self.bump();
            match t.tok {
                Tok::Str(filter) => From::Topic {
                    filter,
                    span: t.span,
                },
                other => {
                    return self.err(
                        format!(
                            "expected a quoted topic filter after FROM, such as 'sensors/+/data', found {}",
                            other.describe()
                        ),
                        t.span,
                    )
                }
            }
        } else {
            self.expect_kw("FROM")?;
            From::Expr(self.expr()?)
        };
        let where_ = if self.eat_kw("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        Ok(Query {
            set: Vec::new(),
            value,
            items,
            from,
            where_,
        })
    }

    fn expr(&mut self) -> Result<Expr, SqlError> {
        let span = self.peek().span;
        self.enter(span)?;
        let r = self.or_expr();
        self.depth -= 1;
        r
    }

    fn bin(op: BinOp, l: Expr, r: Expr) -> Expr {
        let span = l.span.to(r.span);
        Expr {
            kind: ExprKind::Binary(op, Box::new(l), Box::new(r)),
            span,
        }
    }

    fn or_expr(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.and_expr()?;
        while self.eat_kw("OR") {
            let r = self.and_expr()?;
            l = Self::bin(BinOp::Or, l, r);
        }
        Ok(l)
    }

    fn and_expr(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.not_expr()?;
        while self.eat_kw("AND") {
            let r = self.not_expr()?;
            l = Self::bin(BinOp::And, l, r);
        }
        Ok(l)
    }

    fn not_expr(&mut self) -> Result<Expr, SqlError> {
        if self.is_kw("NOT") {
            let start = self.bump().span;
            self.enter(start)?;
            let e = self.not_expr();
            self.depth -= 1;
            let e = e?;
            let span = start.to(e.span);
            return Ok(Expr {
                kind: ExprKind::Unary(UnOp::Not, Box::new(e)),
                span,
            });
        }
        self.cmp_expr()
    }

    fn cmp_expr(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.add_expr()?;
        loop {
            let op = match &self.peek().tok {
                Tok::Eq => BinOp::Eq,
                Tok::Ne => BinOp::Ne,
                Tok::Lt => BinOp::Lt,
                Tok::Le => BinOp::Le,
                Tok::Gt => BinOp::Gt,
                Tok::Ge => BinOp::Ge,
                Tok::Ident(s) if s.eq_ignore_ascii_case("IN") => BinOp::In,
                Tok::Ident(s) if s.eq_ignore_ascii_case("CONTAINS") => BinOp::Contains,
                _ => return Ok(l),
            };
            self.bump();
            let r = self.add_expr()?;
            l = Self::bin(op, l, r);
        }
    }

    fn add_expr(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.mul_expr()?;
        loop {
            let op = match self.peek().tok {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(l),
            };
            self.bump();
            let r = self.mul_expr()?;
            l = Self::bin(op, l, r);
        }
    }

    fn mul_expr(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.unary_expr()?;
        loop {
            let op = match self.peek().tok {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                Tok::Percent => BinOp::Mod,
                _ => return Ok(l),
            };
            self.bump();
            let r = self.unary_expr()?;
            l = Self::bin(op, l, r);
        }
    }

    fn unary_expr(&mut self) -> Result<Expr, SqlError> {
        if self.peek().tok == Tok::Minus {
            let start = self.bump().span;
            self.enter(start)?;
            let e = self.unary_expr();
            self.depth -= 1;
            let e = e?;
            let span = start.to(e.span);
            // Fold negative literals so `-9223372036854775808` stays an Int.
            let kind = match e.kind {
                ExprKind::Lit(Literal::Int(i)) => ExprKind::Lit(
                    i.checked_neg()
                        .map(Literal::Int)
                        .unwrap_or(Literal::Dec(-(i as f64))),
                ),
                ExprKind::Lit(Literal::Dec(d)) => ExprKind::Lit(Literal::Dec(-d)),
                other => ExprKind::Unary(
                    UnOp::Neg,
                    Box::new(Expr {
                        kind: other,
                        span: e.span,
                    }),
                ),
            };
            return Ok(Expr { kind, span });
        }
        if self.peek().tok == Tok::Plus {
            self.bump();
            return self.unary_expr();
        }
        self.postfix_expr()
    }

    fn postfix_expr(&mut self) -> Result<Expr, SqlError> {
        let mut e = self.primary()?;
        loop {
            match self.peek().tok {
                Tok::Dot => {
                    self.bump();
                    let t = self.bump();
                    let name = match t.tok {
                        Tok::Ident(s) | Tok::QuotedIdent(s) => s,
                        other => {
                            return self.err(
                                format!(
                                    "expected a field name after `.`, found {}",
                                    other.describe()
                                ),
                                t.span,
                            )
                        }
                    };
                    let span = e.span.to(t.span);
                    e = Expr {
                        kind: ExprKind::Field(Box::new(e), name),
                        span,
                    };
                }
                Tok::LBracket => {
                    self.bump();
                    let idx = self.expr()?;
                    let end = self.expect(Tok::RBracket)?;
                    let span = e.span.to(end);
                    e = Expr {
                        kind: ExprKind::Index(Box::new(e), Box::new(idx)),
                        span,
                    };
                }
                _ => return Ok(e),
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, SqlError> {
        let t = self.peek().clone();
        let lit = |l: Literal| Expr {
            kind: ExprKind::Lit(l),
            span: t.span,
        };
        match t.tok {
            Tok::Int(i) => {
                self.bump();
                Ok(lit(Literal::Int(i)))
            }
            Tok::Dec(d) => {
                self.bump();
                Ok(lit(Literal::Dec(d)))
            }
            Tok::Str(ref s) => {
                self.bump();
                Ok(lit(Literal::Str(s.clone())))
            }
            Tok::Star => {
                self.bump();
                Ok(Expr {
                    kind: ExprKind::Star,
                    span: t.span,
                })
            }
            Tok::LParen => {
                self.bump();
                if self.is_kw("SELECT") {
                    self.enter(t.span)?;
                    let q = self.query(false);
                    self.depth -= 1;
                    let q = q?;
                    let end = self.expect(Tok::RParen)?;
                    return Ok(Expr {
                        kind: ExprKind::Subquery(Box::new(q)),
                        span: t.span.to(end),
                    });
                }
                let mut e = self.expr()?;
                let end = self.expect(Tok::RParen)?;
                e.span = t.span.to(end);
                Ok(e)
            }
            Tok::LBracket => {
                self.bump();
                let mut items = Vec::new();
                if !self.eat(&Tok::RBracket) {
                    loop {
                        items.push(self.expr()?);
                        if self.eat(&Tok::Comma) {
                            continue;
                        }
                        break;
                    }
                    let end = self.expect(Tok::RBracket)?;
                    return Ok(Expr {
                        kind: ExprKind::Array(items),
                        span: t.span.to(end),
                    });
                }
                Ok(Expr {
                    kind: ExprKind::Array(items),
                    span: t.span.to(self.toks[self.pos.saturating_sub(1)].span),
                })
            }
            Tok::LBrace => {
                self.bump();
                let mut fields = Vec::new();
                if self.peek().tok != Tok::RBrace {
                    loop {
                        let k = self.bump();
                        let key = match k.tok {
                            Tok::Str(s) | Tok::Ident(s) | Tok::QuotedIdent(s) => s,
                            other => {
                                return self.err(
                                    format!("expected an object key, found {}", other.describe()),
                                    k.span,
                                )
                            }
                        };
                        self.expect(Tok::Colon)?;
                        let v = self.expr()?;
                        fields.push((key, v));
                        if !self.eat(&Tok::Comma) {
                            break;
                        }
                    }
                }
                let end = self.expect(Tok::RBrace)?;
                Ok(Expr {
                    kind: ExprKind::Object(fields),
                    span: t.span.to(end),
                })
            }
            Tok::QuotedIdent(ref s) => {
                self.bump();
                Ok(Expr {
                    kind: ExprKind::Ident(s.clone()),
                    span: t.span,
                })
            }
            Tok::Var(ref name) => {
                self.bump();
                Ok(Expr {
                    kind: ExprKind::Var {
                        name: name.clone(),
                        slot: self.vars.iter().position(|v| v == name),
                    },
                    span: t.span,
                })
            }
            Tok::Ident(ref s) => {
                let upper = s.to_ascii_uppercase();
                match upper.as_str() {
                    "TRUE" => {
                        self.bump();
                        return Ok(lit(Literal::Bool(true)));
                    }
                    "FALSE" => {
                        self.bump();
                        return Ok(lit(Literal::Bool(false)));
                    }
                    "NULL" => {
                        self.bump();
                        return Ok(lit(Literal::Null));
                    }
                    "CASE" => return self.case_expr(),
                    _ => {}
                }
                if RESERVED.contains(&upper.as_str()) {
                    return self.err(
                        format!("expected an expression, found keyword {upper}"),
                        t.span,
                    );
                }
                self.bump();
                if self.peek().tok == Tok::LParen {
                    self.bump();
                    if upper == "CAST" {
                        return self.cast_rest(t.span);
                    }
                    let mut args = Vec::new();
                    if self.peek().tok != Tok::RParen {
                        loop {
                            args.push(self.expr()?);
                            if !self.eat(&Tok::Comma) {
                                break;
                            }
                        }
                    }
                    let end = self.expect(Tok::RParen)?;
                    return Ok(Expr {
                        kind: ExprKind::Call {
                            name: s.clone(),
                            name_span: t.span,
                            args,
                        },
                        span: t.span.to(end),
                    });
                }
                Ok(Expr {
                    kind: ExprKind::Ident(s.clone()),
                    span: t.span,
                })
            }
            _ => self.unexpected("an expression"),
        }
    }

    fn cast_rest(&mut self, start: Span) -> Result<Expr, SqlError> {
        let e = self.expr()?;
        self.expect_kw("AS")?;
        let t = self.bump();
        let ty = match &t.tok {
            Tok::Ident(s) | Tok::Str(s) => match s.to_ascii_lowercase().as_str() {
                // AWS's keywords; `Double` is a Decimal of double precision,
                // which every Weir Decimal is.
                "int" | "integer" => CastType::Int,
                "decimal" | "double" => CastType::Decimal,
                "bool" | "boolean" => CastType::Bool,
                "string" | "nvarchar" | "text" | "ntext" | "varchar" => CastType::String,
                _ => {
                    return self.err(
                        format!("unknown cast type `{s}`: use Int, Decimal, Boolean or String"),
                        t.span,
                    )
                }
            },
            other => {
                return self.err(
                    format!("expected a type after AS, found {}", other.describe()),
                    t.span,
                )
            }
        };
        let end = self.expect(Tok::RParen)?;
        Ok(Expr {
            kind: ExprKind::Cast(Box::new(e), ty),
            span: start.to(end),
        })
    }

    fn case_expr(&mut self) -> Result<Expr, SqlError> {
        let start = self.bump().span;
        let operand = if self.is_kw("WHEN") {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        let mut whens = Vec::new();
        while self.eat_kw("WHEN") {
            let w = self.expr()?;
            self.expect_kw("THEN")?;
            let th = self.expr()?;
            whens.push((w, th));
        }
        if whens.is_empty() {
            return self.unexpected("WHEN");
        }
        let else_ = if self.eat_kw("ELSE") {
            Some(Box::new(self.expr()?))
        } else {
            None
        };
        let end = self.expect_kw("END")?;
        Ok(Expr {
            kind: ExprKind::Case {
                operand,
                whens,
                else_,
            },
            span: start.to(end),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic() {
        let q = parse_statement("SELECT a.b AS x, * FROM 'a/+' WHERE a > 1 AND NOT b").unwrap();
        assert_eq!(q.items.len(), 2);
        assert!(matches!(q.from, From::Topic { ref filter, .. } if filter == "a/+"));
        assert!(q.where_.is_some());
    }

    #[test]
    fn select_value_and_field_named_value() {
        assert!(parse_statement("SELECT VALUE a FROM 't'").unwrap().value);
        assert!(!parse_statement("SELECT value FROM 't'").unwrap().value);
        assert!(!parse_statement("SELECT value.x FROM 't'").unwrap().value);
    }

    #[test]
    fn precedence() {
        let e = parse_expression("1 + 2 * 3 = 7 OR false", &[]).unwrap();
        match e.kind {
            ExprKind::Binary(BinOp::Or, l, _) => {
                assert!(matches!(l.kind, ExprKind::Binary(BinOp::Eq, _, _)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors() {
        let e = parse_statement("SELECT a FROM topic").unwrap_err();
        assert!(e.message.contains("quoted topic filter"), "{}", e.message);
        assert_eq!(e.col, 15);
        let e = parse_statement("SELECT FROM 'x'").unwrap_err();
        assert_eq!(e.col, 8);
        let deep = format!("SELECT {}1{} FROM 'x'", "(".repeat(1000), ")".repeat(1000));
        assert!(parse_statement(&deep).is_err());
    }

    #[test]
    fn subquery_and_case() {
        parse_statement(
            "SELECT (SELECT VALUE n FROM e WHERE v > 1) AS s, CASE x WHEN 1 THEN 'a' ELSE 'b' END AS c FROM '#'",
        )
        .unwrap();
    }
}
