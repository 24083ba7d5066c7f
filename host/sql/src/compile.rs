//! Compiles a checked syntax tree into [`Node`]s: functions resolved to ids,
//! paths pre-split into steps, literal arrays/objects folded into constants,
//! literal regular expressions compiled once, output key names decided.

use crate::ast::*;
use crate::functions::{self, Func};
use crate::value::{whole_to_int, Arith, Num};
use regex::Regex;
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;

/// One step of a pre-split path.
#[derive(Debug, Clone)]
pub enum Step {
    Key(String),
    Idx(usize),
    /// A negative literal index: always Undefined.
    Never,
}

/// A constant.
#[derive(Debug, Clone)]
pub enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Dec(f64),
    Str(String),
    /// A constant array or object.
    Json(Value),
}

/// Comparison operators (after AWS's conversions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    pub fn test(self, o: Ordering) -> bool {
        match self {
            Cmp::Lt => o == Ordering::Less,
            Cmp::Le => o != Ordering::Greater,
            Cmp::Gt => o == Ordering::Greater,
            Cmp::Ge => o != Ordering::Less,
        }
    }
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub enum Node {
    Lit(Lit),
    /// The whole payload, or the current element of a sub-select.
    Star,
    /// A path from the scope (payload or element): `a.b[0].c`.
    Path(Vec<Step>),
    /// A SET variable, by its position in the SET clause.
    Var(usize),
    /// A path applied to a computed value.
    Get(Box<Node>, Vec<Step>),
    /// A computed index or key: `a[i + 1]`.
    Index(Box<Node>, Box<Node>),
    Call(Func, Vec<Node>, Option<Box<Regex>>),
    Topic,
    TopicLevel(usize),
    TopicDyn(Box<Node>),
    ClientId,
    Timestamp,
    TraceId,
    Principal,
    SourceIp,
    /// `parse_time(pattern, ms[, zone])` with a literal pattern and zone
    /// compiled once.
    ParseTime {
        pattern: Option<Box<functions::time::Pattern>>,
        zone: Option<Box<functions::time::Zone>>,
        args: Vec<Node>,
    },
    /// `get_mqtt_property(name)`.
    MqttProperty(Box<Node>),
    /// `get_user_properties(key)`.
    UserProperties(Box<Node>),
    Shadow(Vec<Node>),
    Cast(Box<Node>, CastType),
    Neg(Box<Node>),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Eq(Box<Node>, Box<Node>),
    Ne(Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    In(Box<Node>, Box<Node>),
    Contains(Box<Node>, Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    Case {
        operand: Option<Box<Node>>,
        whens: Vec<(Node, Node)>,
        else_: Option<Box<Node>>,
    },
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
    Sub(Box<CQuery>),
}

/// One compiled SELECT item.
#[derive(Debug, Clone)]
pub enum Item {
    /// An unaliased `*`: the payload's keys are merged into the output.
    Merge(Node),
    /// `expr [AS name]`.
    Named(String, Node),
}

/// A compiled query.
#[derive(Debug, Clone)]
pub struct CQuery {
    /// The SET clause's expressions, in order (top level only).
    pub set: Vec<Node>,
    pub value: bool,
    pub items: Vec<Item>,
    /// Sub-selects only: the array to iterate.
    pub from: Option<Node>,
    pub where_: Option<Node>,
}

/// Compile a checked query.
pub fn query(q: &Query) -> CQuery {
    let items = q
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let node = expr(&item.expr);
            match (&item.alias, &item.expr.kind) {
                (Some((name, _)), _) => Item::Named(name.clone(), node),
                (None, ExprKind::Star) if !q.value => Item::Merge(node),
                (None, _) => Item::Named(default_name(&item.expr, i), node),
            }
        })
        .collect();
    CQuery {
        set: q.set.iter().map(|a| expr(&a.expr)).collect(),
        value: q.value,
        items,
        from: match &q.from {
            From::Topic { .. } => None,
            From::Expr(e) => Some(expr(e)),
        },
        where_: q.where_.as_ref().map(expr),
    }
}

/// The output key of an unaliased item: the last key of a path, the name of a
/// function, otherwise `_N` (1-based position).
pub fn default_name(e: &Expr, index: usize) -> String {
    match &e.kind {
        ExprKind::Ident(n) | ExprKind::Field(_, n) | ExprKind::Var { name: n, .. } => n.clone(),
        ExprKind::Index(b, _) => default_name(b, index),
        ExprKind::Call { name, .. } => name.clone(),
        ExprKind::Cast(..) => "cast".to_string(),
        _ => format!("_{}", index + 1),
    }
}

fn b(e: &Expr) -> Box<Node> {
    Box::new(expr(e))
}

/// Compile one expression.
pub fn expr(e: &Expr) -> Node {
    match &e.kind {
        ExprKind::Lit(l) => Node::Lit(match l {
            Literal::Null => Lit::Null,
            Literal::Bool(b) => Lit::Bool(*b),
            Literal::Int(i) => Lit::Int(*i),
            Literal::Dec(d) => match whole_to_int(*d) {
                Num::Int(i) => Lit::Int(i),
                Num::Dec(d) => Lit::Dec(d),
            },
            Literal::Str(s) => Lit::Str(s.clone()),
        }),
        ExprKind::Star => Node::Star,
        ExprKind::Ident(n) => Node::Path(vec![Step::Key(n.clone())]),
        // Unknown variables are check errors, so `None` is never compiled;
        // if it were, no slot has it and it reads as Undefined.
        ExprKind::Var { slot, .. } => Node::Var(slot.unwrap_or(usize::MAX)),
        ExprKind::Field(base, name) => push_step(expr(base), Step::Key(name.clone())),
        ExprKind::Index(base, idx) => match &idx.kind {
            ExprKind::Lit(Literal::Int(i)) => push_step(
                expr(base),
                usize::try_from(*i).map(Step::Idx).unwrap_or(Step::Never),
            ),
            ExprKind::Lit(Literal::Str(s)) => push_step(expr(base), Step::Key(s.clone())),
            _ => Node::Index(b(base), b(idx)),
        },
        ExprKind::Call { name, args, .. } => call(name, args),
        ExprKind::Cast(x, t) => Node::Cast(b(x), *t),
        ExprKind::Unary(UnOp::Neg, x) => Node::Neg(b(x)),
        ExprKind::Unary(UnOp::Not, x) => Node::Not(b(x)),
        ExprKind::Binary(op, l, r) => {
            let (l, r) = (b(l), b(r));
            match op {
                BinOp::Or => Node::Or(l, r),
                BinOp::And => Node::And(l, r),
                BinOp::Eq => Node::Eq(l, r),
                BinOp::Ne => Node::Ne(l, r),
                BinOp::Lt => Node::Cmp(Cmp::Lt, l, r),
                BinOp::Le => Node::Cmp(Cmp::Le, l, r),
                BinOp::Gt => Node::Cmp(Cmp::Gt, l, r),
                BinOp::Ge => Node::Cmp(Cmp::Ge, l, r),
                BinOp::In => Node::In(l, r),
                BinOp::Contains => Node::Contains(l, r),
                BinOp::Add => Node::Arith(Arith::Add, l, r),
                BinOp::Sub => Node::Arith(Arith::Sub, l, r),
                BinOp::Mul => Node::Arith(Arith::Mul, l, r),
                BinOp::Div => Node::Arith(Arith::Div, l, r),
                BinOp::Mod => Node::Arith(Arith::Mod, l, r),
            }
        }
        ExprKind::Case {
            operand,
            whens,
            else_,
        } => Node::Case {
            operand: operand.as_deref().map(|o| Box::new(expr(o))),
            whens: whens.iter().map(|(w, t)| (expr(w), expr(t))).collect(),
            else_: else_.as_deref().map(|x| Box::new(expr(x))),
        },
        ExprKind::Array(items) => {
            let nodes: Vec<Node> = items.iter().map(expr).collect();
            match nodes.iter().map(const_json).collect::<Option<Vec<_>>>() {
                Some(vals) => Node::Lit(Lit::Json(Value::Array(vals))),
                None => Node::Array(nodes),
            }
        }
        ExprKind::Object(fields) => {
            let nodes: Vec<(String, Node)> =
                fields.iter().map(|(k, v)| (k.clone(), expr(v))).collect();
            let consts: Option<Map<String, Value>> = nodes
                .iter()
                .map(|(k, n)| const_json(n).map(|v| (k.clone(), v)))
                .collect();
            match consts {
                Some(m) => Node::Lit(Lit::Json(Value::Object(m))),
                None => Node::Object(nodes),
            }
        }
        ExprKind::Subquery(q) => Node::Sub(Box::new(query(q))),
    }
}

fn const_json(n: &Node) -> Option<Value> {
    match n {
        Node::Lit(Lit::Null) => Some(Value::Null),
        Node::Lit(Lit::Bool(b)) => Some(Value::Bool(*b)),
        Node::Lit(Lit::Int(i)) => Some(Value::Number((*i).into())),
        Node::Lit(Lit::Dec(d)) => Number::from_f64(*d).map(Value::Number),
        Node::Lit(Lit::Str(s)) => Some(Value::String(s.clone())),
        Node::Lit(Lit::Json(v)) => Some(v.clone()),
        _ => None,
    }
}

fn push_step(base: Node, step: Step) -> Node {
    match base {
        Node::Path(mut steps) => {
            steps.push(step);
            Node::Path(steps)
        }
        Node::Get(inner, mut steps) => {
            steps.push(step);
            Node::Get(inner, steps)
        }
        other => Node::Get(Box::new(other), vec![step]),
    }
}

fn call(name: &str, args: &[Expr]) -> Node {
    let Some(spec) = functions::find(name) else {
        return Node::Lit(Lit::Null);
    };
    let mut nodes: Vec<Node> = args.iter().map(expr).collect();
    match spec.func {
        Func::Topic => match nodes.pop() {
            None => Node::Topic,
            Some(Node::Lit(Lit::Int(i))) if i >= 1 => Node::TopicLevel(i as usize),
            Some(n) => Node::TopicDyn(Box::new(n)),
        },
        Func::ClientId => Node::ClientId,
        Func::Timestamp => Node::Timestamp,
        Func::TraceId => Node::TraceId,
        Func::Principal => Node::Principal,
        Func::SourceIp => Node::SourceIp,
        Func::ParseTime => {
            let pattern = match nodes.first() {
                Some(Node::Lit(Lit::Str(p))) => functions::time::Pattern::compile(p).map(Box::new),
                _ => None,
            };
            let zone = match nodes.get(2) {
                Some(Node::Lit(Lit::Str(z))) => functions::time::Zone::parse(z).map(Box::new),
                _ => None,
            };
            Node::ParseTime {
                pattern,
                zone,
                args: nodes,
            }
        }
        Func::GetMqttProperty | Func::GetUserProperties => {
            let arg = Box::new(nodes.pop().unwrap_or(Node::Lit(Lit::Null)));
            if spec.func == Func::GetMqttProperty {
                Node::MqttProperty(arg)
            } else {
                Node::UserProperties(arg)
            }
        }
        Func::GetThingShadow => Node::Shadow(nodes),
        f @ (Func::RegexpMatches | Func::RegexpReplace | Func::RegexpSubstr) => {
            let re = match nodes.get(1) {
                Some(Node::Lit(Lit::Str(p))) => Regex::new(p).ok().map(Box::new),
                _ => None,
            };
            Node::Call(f, nodes, re)
        }
        f => Node::Call(f, nodes, None),
    }
}

/// Call `f` on `n` and every node inside it (sub-selects included).
pub fn visit(n: &Node, f: &mut impl FnMut(&Node)) {
    f(n);
    match n {
        Node::Lit(_)
        | Node::Star
        | Node::Path(_)
        | Node::Var(_)
        | Node::Topic
        | Node::TopicLevel(_)
        | Node::ClientId
        | Node::Timestamp
        | Node::TraceId
        | Node::Principal
        | Node::SourceIp => {}
        Node::Get(b, _)
        | Node::TopicDyn(b)
        | Node::Cast(b, _)
        | Node::Neg(b)
        | Node::Not(b)
        | Node::MqttProperty(b)
        | Node::UserProperties(b) => visit(b, f),
        Node::Index(a, b)
        | Node::And(a, b)
        | Node::Or(a, b)
        | Node::Eq(a, b)
        | Node::Ne(a, b)
        | Node::Cmp(_, a, b)
        | Node::In(a, b)
        | Node::Contains(a, b)
        | Node::Arith(_, a, b) => {
            visit(a, f);
            visit(b, f);
        }
        Node::Call(_, args, _)
        | Node::Shadow(args)
        | Node::Array(args)
        | Node::ParseTime { args, .. } => args.iter().for_each(|a| visit(a, f)),
        Node::Object(fields) => fields.iter().for_each(|(_, v)| visit(v, f)),
        Node::Case {
            operand,
            whens,
            else_,
        } => {
            if let Some(o) = operand {
                visit(o, f);
            }
            for (w, t) in whens {
                visit(w, f);
                visit(t, f);
            }
            if let Some(e) = else_ {
                visit(e, f);
            }
        }
        Node::Sub(q) => {
            q.set.iter().for_each(|n| visit(n, f));
            q.items.iter().for_each(|i| match i {
                Item::Merge(n) | Item::Named(_, n) => visit(n, f),
            });
            if let Some(n) = &q.from {
                visit(n, f);
            }
            if let Some(n) = &q.where_ {
                visit(n, f);
            }
        }
    }
}
