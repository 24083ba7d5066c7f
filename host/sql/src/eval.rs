//! Evaluates compiled [`Node`]s against one message.

use crate::compile::{CQuery, Item, Lit, Node, Step};
use crate::error::EvalError;
use crate::functions::{self, types};
use crate::value::{self, V};
use crate::{Lookup, Message, MqttProperties, Payload};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The values of a statement's SET variables for one message, from
/// [`crate::Statement::bind`]: each evaluated once, in order, before WHERE,
/// SELECT and the actions' templates read them.
#[derive(Debug, Default)]
pub struct Variables<'a> {
    values: Vec<V<'a>>,
}

impl<'a> Variables<'a> {
    /// Evaluate `set` in order against `cx`, each expression seeing the
    /// variables before it.
    pub(crate) fn bind(set: &[Node], cx: &Cx<'a>) -> Variables<'a> {
        let payload = match cx.scope {
            Scope::Bytes(b) => Some(b),
            Scope::Json(_) => None,
        };
        let mut values: Vec<V<'a>> = Vec::with_capacity(set.len());
        for node in set {
            let v = eval(
                node,
                &Cx {
                    vars: &values,
                    ..*cx
                },
            );
            let v = detach(v, payload);
            values.push(v);
        }
        Variables { values }
    }

    pub(crate) fn values(&self) -> &[V<'a>] {
        &self.values
    }
}

/// `v` without borrows from the evaluation (it may borrow earlier
/// variables): strings and JSON copied; raw bytes can only be the
/// message's payload, so they borrow that.
fn detach<'a>(v: V<'_>, payload: Option<&'a [u8]>) -> V<'a> {
    match v {
        // Already owned: kept, not copied.
        V::Own(j) => V::Own(j),
        V::Str(Cow::Owned(s)) => V::Str(Cow::Owned(s)),
        V::Bytes(b) => match payload {
            Some(p) if std::ptr::eq(b, p) => V::Bytes(p),
            _ => V::Undef,
        },
        other => other.to_static(),
    }
}

/// What names resolve against.
#[derive(Clone, Copy)]
pub enum Scope<'a> {
    Json(&'a Value),
    Bytes(&'a [u8]),
}

/// Evaluation context: the scope plus the message's metadata.
#[derive(Clone, Copy)]
pub struct Cx<'a> {
    pub scope: Scope<'a>,
    pub topic: &'a str,
    pub client_id: &'a str,
    pub timestamp_ms: i64,
    pub principal: Option<&'a str>,
    pub source_ip: Option<&'a str>,
    pub mqtt: Option<&'a MqttProperties>,
    pub trace_id: Option<&'a str>,
    pub lookup: Option<&'a dyn Lookup>,
    /// The statement's SET variables (empty without SET).
    pub vars: &'a [V<'a>],
}

impl<'a> Cx<'a> {
    pub fn new(msg: &Message<'a>) -> Cx<'a> {
        Cx {
            scope: match msg.payload {
                Payload::Json(v) => Scope::Json(v),
                Payload::Binary(b) => Scope::Bytes(b),
            },
            topic: msg.topic,
            client_id: msg.client_id,
            timestamp_ms: msg.timestamp_ms,
            principal: msg.principal,
            source_ip: msg.source_ip,
            mqtt: msg.mqtt,
            trace_id: msg.trace_id,
            lookup: msg.lookup,
            vars: &[],
        }
    }

    /// This context reading `vars`.
    pub fn with_vars<'b>(&self, vars: &'b Variables<'b>) -> Cx<'b>
    where
        'a: 'b,
    {
        Cx {
            vars: vars.values(),
            ..*self
        }
    }

    fn with_scope<'b>(&self, v: &'b Value) -> Cx<'b>
    where
        'a: 'b,
    {
        Cx {
            scope: Scope::Json(v),
            ..*self
        }
    }
}

/// Run a query: `Ok(None)` when WHERE does not match.
pub fn run<'a>(q: &'a CQuery, cx: &Cx<'a>) -> Result<Option<Value>, EvalError> {
    if let Some(w) = &q.where_ {
        if !cond(w, cx) {
            return Ok(None);
        }
    }
    if q.value {
        let v = match q.items.first() {
            Some(Item::Named(_, n)) | Some(Item::Merge(n)) => eval(n, cx),
            None => V::Undef,
        };
        return Ok(Some(v.into_json().unwrap_or(Value::Null)));
    }
    // `SELECT *` alone: the payload as it is.
    if let [Item::Merge(Node::Star)] = q.items.as_slice() {
        return match cx.scope {
            Scope::Json(v) => Ok(Some(v.clone())),
            Scope::Bytes(_) => Err(EvalError::new(
                "SELECT * on a binary payload has no JSON form; forward the raw payload instead (see Statement::is_select_star)",
            )),
        };
    }
    let mut out = Map::with_capacity(q.items.len());
    for item in &q.items {
        match item {
            Item::Named(name, node) => {
                if let Some(v) = eval(node, cx).into_json() {
                    out.insert(name.clone(), v);
                }
            }
            Item::Merge(node) => match eval(node, cx) {
                V::Json(Value::Object(m)) => {
                    out.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                V::Own(Value::Object(m)) => out.extend(m),
                V::Bytes(_) => {
                    return Err(EvalError::new(
                        "SELECT *, … needs a JSON object payload, but the payload is binary",
                    ))
                }
                _ => {}
            },
        }
    }
    Ok(Some(Value::Object(out)))
}

/// WHERE semantics: only a true Boolean (or the string "true") matches.
pub fn cond<'a>(n: &'a Node, cx: &Cx<'a>) -> bool {
    match n {
        // AND is true only when both sides are true, so a false left side
        // settles the match without evaluating the right.
        Node::And(l, r) => cond(l, cx) && cond(r, cx),
        Node::Cmp(op, l, r) => {
            let a = eval(l, cx);
            let b = eval(r, cx);
            value::compare(&a, &b).is_some_and(|o| op.test(o))
        }
        Node::Eq(l, r) => value::eq(&eval(l, cx), &eval(r, cx)) == Some(true),
        _ => eval(n, cx).to_logic() == Some(true),
    }
}

fn scope_value<'a>(cx: &Cx<'a>) -> V<'a> {
    match cx.scope {
        Scope::Json(v) => V::from_json(v),
        Scope::Bytes(b) => V::Bytes(b),
    }
}

fn walk<'v>(mut v: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    for s in steps {
        v = match (s, v) {
            (Step::Key(k), Value::Object(m)) => m.get(k)?,
            (Step::Idx(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

fn bool_v<'a>(b: Option<bool>) -> V<'a> {
    b.map(V::Bool).unwrap_or(V::Undef)
}

fn opt_str<'a>(s: Option<&'a str>) -> V<'a> {
    s.map(|s| V::Str(Cow::Borrowed(s))).unwrap_or(V::Undef)
}

/// Evaluate one expression.
pub fn eval<'a>(n: &'a Node, cx: &Cx<'a>) -> V<'a> {
    match n {
        Node::Lit(l) => match l {
            Lit::Null => V::Null,
            Lit::Bool(b) => V::Bool(*b),
            Lit::Int(i) => V::Int(*i),
            Lit::Dec(d) => V::Dec(*d),
            Lit::Str(s) => V::Str(Cow::Borrowed(s)),
            Lit::Json(v) => V::Json(v),
        },
        Node::Star => scope_value(cx),
        Node::Var(i) => cx.vars.get(*i).map(V::borrowed).unwrap_or(V::Undef),
        Node::Path(steps) => match cx.scope {
            Scope::Json(root) => walk(root, steps).map(V::from_json).unwrap_or(V::Undef),
            Scope::Bytes(_) => V::Undef,
        },
        Node::Get(base, steps) => match eval(base, cx) {
            V::Json(v) => walk(v, steps).map(V::from_json).unwrap_or(V::Undef),
            V::Own(v) => walk(&v, steps)
                .map(|x| V::from_owned(x.clone()))
                .unwrap_or(V::Undef),
            _ => V::Undef,
        },
        Node::Index(base, idx) => {
            let k = eval(idx, cx);
            types::get(eval(base, cx), &k)
        }
        Node::ParseTime {
            pattern,
            zone,
            args,
        } => {
            let vals: Vec<V<'a>> = args.iter().map(|a| eval(a, cx)).collect();
            functions::time::parse_time_compiled(pattern.as_deref(), zone.as_deref(), &vals)
                .unwrap_or(V::Undef)
        }
        Node::Call(f, args, re) => {
            let mut vals: Vec<V<'a>> = args.iter().map(|a| eval(a, cx)).collect();
            functions::call(*f, &mut vals, re.as_deref())
        }
        Node::Topic => V::Str(Cow::Borrowed(cx.topic)),
        Node::TopicLevel(i) => topic_level(cx.topic, *i),
        Node::TopicDyn(x) => match eval(x, cx).to_int() {
            Some(i) if i >= 1 => topic_level(cx.topic, i as usize),
            _ => V::Undef,
        },
        Node::ClientId => V::Str(Cow::Borrowed(cx.client_id)),
        Node::Timestamp => V::Int(cx.timestamp_ms),
        Node::TraceId => opt_str(cx.trace_id),
        Node::Principal => opt_str(cx.principal),
        Node::SourceIp => opt_str(cx.source_ip),
        Node::MqttProperty(name) => match (eval(name, cx), cx.mqtt) {
            (V::Str(name), Some(props)) => mqtt_property(&name, props),
            _ => V::Undef,
        },
        Node::UserProperties(key) => match (eval(key, cx), cx.mqtt) {
            (V::Str(key), Some(props)) => {
                let values: Vec<Value> = props
                    .user_properties
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, v)| Value::String(v.clone()))
                    .collect();
                if values.is_empty() {
                    V::Undef
                } else {
                    V::Own(Value::Array(values))
                }
            }
            _ => V::Undef,
        },
        Node::Shadow(args) => {
            let vals: Vec<V<'a>> = args.iter().map(|a| eval(a, cx)).collect();
            shadow(&vals, cx)
        }
        Node::Cast(x, t) => types::cast(eval(x, cx), *t),
        Node::Neg(x) => value::neg(&eval(x, cx)),
        Node::Not(x) => bool_v(eval(x, cx).to_logic().map(|b| !b)),
        Node::And(l, r) => {
            let a = eval(l, cx).to_logic();
            let b = eval(r, cx).to_logic();
            match (a, b) {
                (Some(x), Some(y)) => V::Bool(x && y),
                _ => V::Undef,
            }
        }
        Node::Or(l, r) => {
            let a = eval(l, cx).to_logic();
            let b = eval(r, cx).to_logic();
            match (a, b) {
                (Some(x), Some(y)) => V::Bool(x || y),
                _ => V::Undef,
            }
        }
        Node::Eq(l, r) => bool_v(value::eq(&eval(l, cx), &eval(r, cx))),
        Node::Ne(l, r) => bool_v(value::eq(&eval(l, cx), &eval(r, cx)).map(|b| !b)),
        Node::Cmp(op, l, r) => {
            bool_v(value::compare(&eval(l, cx), &eval(r, cx)).map(|o| op.test(o)))
        }
        Node::In(l, r) => bool_v(value::in_array(&eval(l, cx), &eval(r, cx))),
        Node::Contains(l, r) => bool_v(value::contains(&eval(l, cx), &eval(r, cx))),
        Node::Arith(op, l, r) => value::arith(*op, &eval(l, cx), &eval(r, cx)),
        Node::Case {
            operand,
            whens,
            else_,
        } => {
            match operand {
                Some(o) => {
                    let v = eval(o, cx);
                    // AWS: "If v is Undefined, the result of the case
                    // statement is Undefined" (ELSE included).
                    if v.is_undef() {
                        return V::Undef;
                    }
                    for (w, t) in whens {
                        if value::eq(&v, &eval(w, cx)) == Some(true) {
                            return eval(t, cx);
                        }
                    }
                }
                None => {
                    for (w, t) in whens {
                        if eval(w, cx).to_logic() == Some(true) {
                            return eval(t, cx);
                        }
                    }
                }
            }
            // No match and no ELSE: Undefined, as AWS documents.
            match else_ {
                Some(e) => eval(e, cx),
                None => V::Undef,
            }
        }
        Node::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                // Undefined elements are left out, as in objects.
                if let Some(v) = eval(i, cx).into_json() {
                    out.push(v);
                }
            }
            V::Own(Value::Array(out))
        }
        Node::Object(fields) => {
            let mut m = Map::with_capacity(fields.len());
            for (k, v) in fields {
                if let Some(v) = eval(v, cx).into_json() {
                    m.insert(k.clone(), v);
                }
            }
            V::Own(Value::Object(m))
        }
        Node::Sub(q) => subquery(q, cx),
    }
}

/// `get_mqtt_property(name)`: one of the MQTT 5 header properties, as AWS
/// returns it (the format indicator by name, correlation data in base64).
fn mqtt_property<'a>(name: &str, props: &'a MqttProperties) -> V<'a> {
    let text = |s: &'a Option<String>| opt_str(s.as_deref());
    match name {
        "content_type" => text(&props.content_type),
        "response_topic" => text(&props.response_topic),
        "format_indicator" => match props.payload_format_indicator {
            Some(1) => V::Str(Cow::Borrowed("UTF8_DATA")),
            Some(_) => V::Str(Cow::Borrowed("UNSPECIFIED_BYTES")),
            None => V::Undef,
        },
        "correlation_data" => match &props.correlation_data {
            Some(d) => V::Str(Cow::Owned(functions::encoding::base64_encode(d))),
            None => V::Undef,
        },
        _ => V::Undef,
    }
}

fn topic_level<'a>(topic: &'a str, i: usize) -> V<'a> {
    match topic.split(crate::topic::is_separator).nth(i - 1) {
        Some(s) => V::Str(Cow::Borrowed(s)),
        None => V::Undef,
    }
}

fn shadow<'a>(args: &[V<'a>], cx: &Cx<'a>) -> V<'a> {
    let Some(lookup) = cx.lookup else {
        return V::Undef;
    };
    let Some(V::Str(thing)) = args.first() else {
        return V::Undef;
    };
    // (thing, roleArn) or (thing, shadowName, roleArn); the role is ignored.
    let shadow_name = if args.len() == 3 {
        match &args[1] {
            V::Str(s) => Some(s.as_ref()),
            _ => return V::Undef,
        }
    } else {
        None
    };
    match lookup.thing_shadow(thing, shadow_name) {
        Some(v) => V::from_owned(v),
        None => V::Undef,
    }
}

fn subquery<'a>(q: &'a CQuery, cx: &Cx<'a>) -> V<'a> {
    let Some(from) = &q.from else {
        return V::Undef;
    };
    let source = eval(from, cx);
    // Over an object, a sub-select runs once with the object as its scope
    // and gives its result itself (AWS's transform example: `(SELECT a, b
    // FROM data2)` is an object, `(SELECT VALUE c FROM data2)` c's value).
    if let Some(obj) = source.container().filter(|v| v.is_object()) {
        let inner = cx.with_scope(obj);
        return match run(q, &inner) {
            Ok(Some(v)) if !(q.value && v.is_null() && !produces_null(q, &inner)) => {
                V::from_owned(v)
            }
            _ => V::Undef,
        };
    }
    let Some(arr) = source.as_array() else {
        return V::Undef;
    };
    let mut out = Vec::with_capacity(arr.len());
    for el in arr {
        let inner = cx.with_scope(el);
        match run(q, &inner) {
            Ok(Some(v)) => {
                if q.value && v.is_null() && !produces_null(q, &inner) {
                    continue;
                }
                out.push(v)
            }
            Ok(None) => {}
            Err(_) => return V::Undef,
        }
    }
    V::Own(Value::Array(out))
}

/// For `SELECT VALUE` in a sub-select: tell a real null from an Undefined one.
fn produces_null<'b>(q: &'b CQuery, cx: &Cx<'b>) -> bool {
    match q.items.first() {
        Some(Item::Named(_, n)) | Some(Item::Merge(n)) => matches!(eval(n, cx), V::Null),
        None => false,
    }
}
