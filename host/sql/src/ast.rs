//! The syntax tree the parser produces, before checking and compiling.

use crate::error::Span;

/// A `[SET …] SELECT … FROM … [WHERE …]` query: the whole statement, or a
/// nested sub-select (which has no SET).
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `SET @name = expr, …`, in order (top level only).
    pub set: Vec<Assignment>,
    /// `SELECT VALUE expr`.
    pub value: bool,
    pub items: Vec<SelectItem>,
    pub from: From,
    pub where_: Option<Expr>,
}

/// One `@name = expr` of the SET clause.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The name without `@`.
    pub name: String,
    /// Where `@name` is written.
    pub span: Span,
    pub expr: Expr,
}

/// The source of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum From {
    /// Top level: a quoted MQTT topic filter.
    Topic { filter: String, span: Span },
    /// Sub-select: an expression yielding an array (usually a path).
    Expr(Expr),
}

/// One item of the SELECT list.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectItem {
    pub expr: Expr,
    pub alias: Option<(String, Span)>,
}

/// Literal values.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Dec(f64),
    Str(String),
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Contains,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// Target type of `cast(x AS T)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastType {
    Int,
    Decimal,
    Bool,
    String,
}

/// An expression with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

/// Expression forms.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Lit(Literal),
    /// `*`: the whole payload (or the current element in a sub-select).
    Star,
    /// A top-level key of the payload (or of the current element).
    Ident(String),
    /// `@name`: a SET variable; `slot` is its position in the SET clause,
    /// `None` when no earlier assignment defines it (a check error).
    Var {
        name: String,
        slot: Option<usize>,
    },
    /// `expr.name`.
    Field(Box<Expr>, String),
    /// `expr[index]`.
    Index(Box<Expr>, Box<Expr>),
    /// `name(args…)`.
    Call {
        name: String,
        name_span: Span,
        args: Vec<Expr>,
    },
    /// `cast(expr AS type)`.
    Cast(Box<Expr>, CastType),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `CASE [operand] WHEN a THEN b … [ELSE c] END`.
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        else_: Option<Box<Expr>>,
    },
    Array(Vec<Expr>),
    Object(Vec<(String, Expr)>),
    Subquery(Box<Query>),
}
