//! # weir-sql
//!
//! The AWS IoT SQL dialect (version 2016-03-23) for Weir's rules: lexing,
//! parsing, checking, compiling and evaluating rule statements (with the SET
//! clause's variables, bound once per message by [`Statement::bind`]),
//! `${…}` substitution templates for action parameters, and the MQTT
//! topic-filter trie that dispatches messages to rules.
//!
//! This crate owns the language and nothing else: it is pure (no I/O, no
//! async runtime, no Wasm). Host data that a few functions need (the device
//! shadow for `get_thing_shadow`) comes in through the [`Lookup`] trait.
//! Functions that call AWS services in AWS IoT (`aws_lambda`, `get_dynamodb`,
//! …) are refused at check time.
//!
//! ```
//! use weir_sql::{Message, Payload, Statement};
//! let st = Statement::parse(
//!     "SELECT temperature, topic(2) AS device FROM 'dt/+/telemetry' WHERE temperature > 20",
//! ).unwrap();
//! let payload = serde_json::json!({"temperature": 25});
//! let msg = Message::new("dt/dev1/telemetry", &payload);
//! let out = st.eval(&msg).unwrap().unwrap();
//! assert_eq!(out, serde_json::json!({"temperature": 25, "device": "dev1"}));
//! ```

pub mod ast;
mod check;
mod compile;
pub mod error;
mod eval;
pub mod functions;
pub mod lexer;
pub mod parser;
mod template;
pub mod topic;
pub mod value;

pub use error::{EvalError, Span, SqlError};
pub use eval::Variables;
pub use template::Template;
pub use topic::{topic_matches, validate_topic_filter, TopicTrie};

use compile::{CQuery, Item, Node};
use functions::Func;
use serde_json::Value;

/// The payload of a message.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A payload that parsed as JSON.
    Json(&'a Value),
    /// Anything else (paths into it are Undefined; `*` is the raw bytes).
    Binary(&'a [u8]),
}

/// Host-provided data for the functions that read it.
pub trait Lookup: Send + Sync {
    /// The current shadow document of `thing` (classic shadow when `shadow_name` is `None`).
    fn thing_shadow(&self, thing: &str, shadow_name: Option<&str>) -> Option<Value>;
}

/// A message's MQTT 5 properties: what `get_mqtt_property(name)` and
/// `get_user_properties(key)` read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MqttProperties {
    pub content_type: Option<String>,
    /// 0: unspecified bytes, 1: UTF-8 data.
    pub payload_format_indicator: Option<u8>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Vec<u8>>,
    /// In the order they were sent; a key may repeat.
    pub user_properties: Vec<(String, String)>,
}

/// One incoming message, as the rule sees it.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    pub topic: &'a str,
    pub client_id: &'a str,
    pub payload: Payload<'a>,
    /// Server receive time in epoch milliseconds: what `timestamp()` returns.
    pub timestamp_ms: i64,
    /// What `principal()` returns: the publisher's certificate id.
    pub principal: Option<&'a str>,
    /// What `sourceip()` returns: the publisher's IP address.
    pub source_ip: Option<&'a str>,
    /// The MQTT 5 properties it was published with (none for 3.1.1).
    pub mqtt: Option<&'a MqttProperties>,
    pub trace_id: Option<&'a str>,
    pub lookup: Option<&'a dyn Lookup>,
}

impl<'a> Message<'a> {
    /// A JSON message with empty client id, time 0 and no extras (handy in tests).
    pub fn new(topic: &'a str, payload: &'a Value) -> Message<'a> {
        Message {
            topic,
            client_id: "",
            payload: Payload::Json(payload),
            timestamp_ms: 0,
            principal: None,
            source_ip: None,
            mqtt: None,
            trace_id: None,
            lookup: None,
        }
    }
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic)
            .field("client_id", &self.client_id)
            .field("payload", &self.payload)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("principal", &self.principal)
            .field("source_ip", &self.source_ip)
            .field("mqtt", &self.mqtt)
            .field("trace_id", &self.trace_id)
            .field("lookup", &self.lookup.is_some())
            .finish()
    }
}

/// A parsed, checked and compiled rule statement. `Send + Sync`; evaluate it
/// as often as you like.
#[derive(Debug, Clone)]
pub struct Statement {
    query: CQuery,
    topic_filter: String,
    reads_payload: bool,
    reads_json: bool,
    outputs_raw: bool,
    /// The SET clause's variable names, in order.
    variables: Vec<String>,
}

impl Statement {
    /// Parse, check and compile. The error is the first problem found; use
    /// [`Statement::diagnostics`] for all of them.
    pub fn parse(sql: &str) -> Result<Statement, SqlError> {
        let q = parser::parse_statement(sql)?;
        if let Some(e) = check::check_query(&q, sql).into_iter().next() {
            return Err(e);
        }
        let topic_filter = match &q.from {
            ast::From::Topic { filter, .. } => filter.clone(),
            ast::From::Expr(_) => String::new(),
        };
        let query = compile::query(&q);
        let reads_payload = query_reads(&query, Reads::Any);
        let reads_json = query_reads(&query, Reads::Json);
        let outputs_raw = is_select_star(&query) && !clauses_read(&query, Reads::Json);
        Ok(Statement {
            query,
            topic_filter,
            reads_payload,
            reads_json,
            outputs_raw,
            variables: q.set.into_iter().map(|a| a.name).collect(),
        })
    }

    /// Every problem in `sql` (syntax errors stop at the first one).
    pub fn diagnostics(sql: &str) -> Vec<SqlError> {
        match parser::parse_statement(sql) {
            Ok(q) => check::check_query(&q, sql),
            Err(e) => vec![e],
        }
    }

    /// The FROM topic filter.
    pub fn topic_filter(&self) -> &str {
        &self.topic_filter
    }

    /// Evaluate against one message. `Ok(None)`: WHERE did not match.
    /// `Ok(Some(v))`: the output object (or the value, for `SELECT VALUE`;
    /// an Undefined `SELECT VALUE` gives `null`).
    pub fn eval(&self, msg: &Message<'_>) -> Result<Option<Value>, EvalError> {
        self.eval_with(msg, &self.bind(msg))
    }

    /// The SET clause's variable names (without `@`), in order: what the
    /// rule's substitution templates may refer to
    /// ([`Template::parse_with_variables`]).
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// Evaluate the SET clause against `msg`: each variable once, in order
    /// (nothing to do, and no allocation, without SET). Pass the result to
    /// the `*_with` methods and to the actions' templates, so they all see
    /// the same values (one `newuuid()` per message, not one per use).
    pub fn bind<'a>(&self, msg: &Message<'a>) -> Variables<'a> {
        if self.query.set.is_empty() {
            return Variables::default();
        }
        Variables::bind(&self.query.set, &eval::Cx::new(msg))
    }

    /// As [`Statement::eval`], with the variables [`Statement::bind`] gave
    /// for `msg`.
    pub fn eval_with<'a>(
        &'a self,
        msg: &Message<'a>,
        vars: &'a Variables<'a>,
    ) -> Result<Option<Value>, EvalError> {
        eval::run(&self.query, &eval::Cx::new(msg).with_vars(vars))
    }

    /// True for `SELECT * FROM …` with no WHERE: every message's output is
    /// its payload, unchanged and unconditionally.
    pub fn is_passthrough(&self) -> bool {
        self.is_select_star() && self.query.where_.is_none() && self.query.set.is_empty()
    }

    /// Evaluate only the WHERE clause: true when there is none or it holds.
    /// With [`is_select_star`](Self::is_select_star), this plus the payload
    /// itself is everything [`eval`](Self::eval) would give, without copying
    /// the payload into a new value.
    pub fn where_matches(&self, msg: &Message<'_>) -> bool {
        self.where_matches_with(msg, &self.bind(msg))
    }

    /// As [`Statement::where_matches`], with the variables already bound.
    pub fn where_matches_with<'a>(&'a self, msg: &Message<'a>, vars: &'a Variables<'a>) -> bool {
        let cx = eval::Cx::new(msg).with_vars(vars);
        self.query
            .where_
            .as_ref()
            .is_none_or(|w| eval::cond(w, &cx))
    }

    /// Whether the statement reads the payload at all.
    pub fn reads_payload(&self) -> bool {
        self.reads_payload
    }

    /// Whether the statement needs the payload to be JSON: it reads a
    /// field, or uses `*` other than as the bytes `encode(*, …)` encodes.
    /// A statement that does not may run on a payload that is not JSON
    /// (empty, binary, malformed), as AWS IoT's binary-payload rules do:
    /// `SELECT encode(*, 'base64') AS data, topic() AS t FROM …`.
    pub fn reads_json(&self) -> bool {
        self.reads_json
    }

    /// True for a plain `SELECT * FROM … [WHERE …]`: the output is the payload
    /// unchanged, so a runtime may forward the raw bytes (needed for binary
    /// payloads, which have no JSON form).
    pub fn is_select_star(&self) -> bool {
        is_select_star(&self.query)
    }

    /// True for a `SELECT *` whose WHERE and SET read no field of the
    /// payload: on a payload that is not JSON (binary, plain text, empty)
    /// its output is the payload's bytes as they came, as AWS IoT's
    /// `SELECT * FROM 'topic/subtopic'` forwards a binary payload. Such an
    /// output is not a JSON value, so [`Statement::eval`] does not give it:
    /// the runtime forwards the bytes itself.
    pub fn outputs_raw(&self) -> bool {
        self.outputs_raw
    }

    /// Whether a payload that is not JSON fails the statement: it reads
    /// JSON ([`reads_json`](Self::reads_json)) and is not a `SELECT *` that
    /// then outputs the bytes ([`outputs_raw`](Self::outputs_raw)).
    pub fn needs_json(&self) -> bool {
        self.reads_json && !self.outputs_raw
    }
}

fn is_select_star(q: &CQuery) -> bool {
    !q.value && matches!(q.items.as_slice(), [Item::Merge(Node::Star)])
}

/// What a payload read counts: any read, or only those that need JSON.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reads {
    Any,
    /// Not `*` as the first argument of `encode`, which takes the raw bytes.
    Json,
}

fn query_reads(q: &CQuery, reads: Reads) -> bool {
    clauses_read(q, reads)
        || q.items.iter().any(|i| match i {
            Item::Merge(n) | Item::Named(_, n) => node_reads(n, reads),
        })
}

/// Whether the clauses other than SELECT's items (SET, WHERE and a nested
/// FROM) read the payload, counting what `reads` counts.
fn clauses_read(q: &CQuery, reads: Reads) -> bool {
    let node = |n: &Node| node_reads(n, reads);
    q.set.iter().any(node)
        || q.where_.as_ref().is_some_and(node)
        || q.from.as_ref().is_some_and(node)
}

/// Whether `n` reads a SET variable anywhere.
pub(crate) fn node_reads_variables(n: &Node) -> bool {
    let mut found = false;
    compile::visit(n, &mut |n| found |= matches!(n, Node::Var(_)));
    found
}

pub(crate) fn node_reads_payload(n: &Node) -> bool {
    node_reads(n, Reads::Any)
}

/// Whether `n` reads the payload, counting what `reads` counts.
pub(crate) fn node_reads(n: &Node, reads: Reads) -> bool {
    use Node::*;
    // Every sub-expression is read the same way.
    let reads_in = |n: &Node| node_reads(n, reads);
    match n {
        Star | Path(_) => true,
        // A variable's own expression is counted where it is assigned.
        Lit(_) | Var(_) | Topic | TopicLevel(_) | ClientId | Timestamp | TraceId | Principal
        | SourceIp => false,
        MqttProperty(b) | UserProperties(b) => reads_in(b),
        Get(b, _) | TopicDyn(b) | Cast(b, _) | Neg(b) | Not(b) => reads_in(b),
        Index(a, b)
        | And(a, b)
        | Or(a, b)
        | Eq(a, b)
        | Ne(a, b)
        | Cmp(_, a, b)
        | In(a, b)
        | Contains(a, b)
        | Arith(_, a, b) => reads_in(a) || reads_in(b),
        Call(Func::Encode, args, _) if reads == Reads::Json => match args.split_first() {
            Some((Star, rest)) => rest.iter().any(reads_in),
            _ => args.iter().any(reads_in),
        },
        Call(_, args, _) | Shadow(args) | Array(args) | ParseTime { args, .. } => {
            args.iter().any(reads_in)
        }
        Object(fields) => fields.iter().any(|(_, v)| reads_in(v)),
        Case {
            operand,
            whens,
            else_,
        } => {
            operand.as_deref().is_some_and(reads_in)
                || whens.iter().any(|(w, t)| reads_in(w) || reads_in(t))
                || else_.as_deref().is_some_and(reads_in)
        }
        // A sub-select reads the payload through its FROM.
        Sub(q) => q.from.as_ref().is_some_and(reads_in),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn statement_is_send_sync() {
        assert_send_sync::<Statement>();
        assert_send_sync::<Template>();
        assert_send_sync::<TopicTrie<Statement>>();
    }

    #[test]
    fn reads_payload() {
        assert!(Statement::parse("SELECT a FROM 'x'")
            .unwrap()
            .reads_payload());
        assert!(!Statement::parse(
            "SELECT topic() AS t, timestamp() AS ts FROM 'x' WHERE clientid() = 'a'"
        )
        .unwrap()
        .reads_payload());
        assert!(Statement::parse("SELECT * FROM 'x'")
            .unwrap()
            .is_select_star());
    }

    #[test]
    fn select_star_outputs_raw_bytes_unless_a_clause_reads_a_field() {
        let raw = |sql: &str| Statement::parse(sql).unwrap().outputs_raw();
        // AWS's binary-payload examples.
        assert!(raw("SELECT * FROM 'topic/subtopic'"));
        assert!(raw(
            "SELECT * FROM 'topic/subtopic' WHERE timestamp() % 12 = 0"
        ));
        // A field read needs JSON; so does any other projection.
        assert!(!raw("SELECT * FROM 'x' WHERE temperature > 50"));
        assert!(!raw("SET @t = temperature SELECT * FROM 'x'"));
        assert!(!raw("SELECT *, timestamp() AS ts FROM 'x'"));
        assert!(!raw("SELECT a FROM 'x'"));
        assert!(!raw("SELECT VALUE * FROM 'x'"));
        let needs = |sql: &str| Statement::parse(sql).unwrap().needs_json();
        assert!(!needs("SELECT * FROM 'x'"));
        assert!(!needs("SELECT encode(*, 'base64') AS data FROM 'x'"));
        assert!(needs("SELECT * FROM 'x' WHERE temperature > 50"));
        assert!(needs("SELECT a FROM 'x'"));
    }

    #[test]
    fn set_variables_are_evaluated_once_per_message() {
        let st = Statement::parse(
            "SET @id = newuuid(), @r = rand() SELECT @id AS a, @id AS b, @r AS r1, @r AS r2 FROM 'x'",
        )
        .unwrap();
        assert_eq!(st.variables(), ["id", "r"]);
        let payload = json!({});
        let out = st.eval(&Message::new("x", &payload)).unwrap().unwrap();
        assert_eq!(out["a"], out["b"]);
        assert_eq!(out["r1"], out["r2"]);
        assert!(out["a"].as_str().is_some_and(|s| s.len() == 36));
        // Another message, other values.
        let again = st.eval(&Message::new("x", &payload)).unwrap().unwrap();
        assert_ne!(out["a"], again["a"]);
    }

    #[test]
    fn templates_read_the_bound_variables() {
        let st = Statement::parse(
            "SET @id = newuuid(), @dev = upper(topic(2)) SELECT @id AS id FROM 'dt/+/t'",
        )
        .unwrap();
        let key = Template::parse_with_variables("${@dev}/${@id}.json", st.variables()).unwrap();
        assert!(key.reads_variables());
        let payload = json!({"t": 1});
        let msg = Message::new("dt/dev1/t", &payload);
        let vars = st.bind(&msg);
        let out = st.eval_with(&msg, &vars).unwrap().unwrap();
        let rendered = key.render_cow_with(&msg, &vars).unwrap();
        assert_eq!(
            rendered,
            format!("DEV1/{}.json", out["id"].as_str().unwrap())
        );
        // Without the statement's variables, `@id` is unknown.
        let e = Template::parse("${@id}").unwrap_err();
        assert!(e.message.contains("unknown variable @id"), "{}", e.message);
        assert!(!Template::parse("${topic(2)}").unwrap().reads_variables());
    }

    #[test]
    fn set_variables_in_where_and_payload_reads() {
        let st = Statement::parse("SET @t = temp SELECT * FROM 'x' WHERE @t > 20").unwrap();
        assert!(st.is_select_star());
        assert!(!st.is_passthrough());
        assert!(st.reads_payload());
        let hot = json!({"temp": 25});
        let cold = json!({"temp": 15});
        assert!(st.where_matches(&Message::new("x", &hot)));
        assert!(!st.where_matches(&Message::new("x", &cold)));
        assert_eq!(
            st.eval(&Message::new("x", &hot)).unwrap(),
            Some(hot.clone())
        );
        let no_payload = Statement::parse("SET @d = topic(1) SELECT @d AS d FROM 'x'").unwrap();
        assert!(!no_payload.reads_payload());
    }

    #[test]
    fn parse_time_compiled_and_from_the_payload_agree() {
        let literal = Statement::parse(
            "SELECT parse_time('yyyy-MM-dd HH:mm z', ts, 'America/Los_Angeles') AS t, parse_time('HH:mm', ts) AS u FROM 'x'",
        )
        .unwrap();
        let dynamic =
            Statement::parse("SELECT parse_time(p, ts, z) AS t, parse_time(q, ts) AS u FROM 'x'")
                .unwrap();
        for ts in [0i64, 1_720_000_000_000, 1_736_000_000_000] {
            let payload = json!({"ts": ts, "p": "yyyy-MM-dd HH:mm z", "z": "America/Los_Angeles", "q": "HH:mm"});
            let msg = Message::new("x", &payload);
            assert_eq!(literal.eval(&msg).unwrap(), dynamic.eval(&msg).unwrap());
        }
        let bad = json!({"ts": 0, "p": "yyyy", "z": "Mars/Olympus_Mons", "q": "'unterminated"});
        assert_eq!(
            dynamic.eval(&Message::new("x", &bad)).unwrap(),
            Some(json!({}))
        );
    }

    #[test]
    fn where_matches_agrees_with_eval_for_select_star() {
        let payload = json!({"t": 30, "s": "x"});
        let msg = Message::new("dt/a/b", &payload);
        for (sql, expect) in [
            ("SELECT * FROM '#'", true),
            ("SELECT * FROM '#' WHERE t > 25", true),
            ("SELECT * FROM '#' WHERE t > 35", false),
            ("SELECT * FROM '#' WHERE missing = 1", false),
        ] {
            let st = Statement::parse(sql).unwrap();
            assert!(st.is_select_star(), "{sql}");
            assert_eq!(st.where_matches(&msg), expect, "{sql}");
            let out = st.eval(&msg).unwrap();
            assert_eq!(out.is_some(), expect, "{sql}");
            if let Some(v) = out {
                assert_eq!(v, payload, "{sql}");
            }
        }
        assert!(!Statement::parse("SELECT *, 1 AS one FROM '#'")
            .unwrap()
            .is_select_star());
    }

    /// The binary payloads page: what a rule may do with a non-JSON payload.
    #[test]
    fn aws_doc_binary_payload_rules() {
        let payload = Value::Null;
        let msg = Message {
            payload: Payload::Binary(&[0, 1, 2, 0xff]),
            timestamp_ms: 1_481_825_251_152, // a multiple of 12
            ..Message::new("topic/subtopic", &payload)
        };
        // `*` alone: the runtime forwards the raw payload.
        let st = Statement::parse("SELECT * FROM 'topic/subtopic'").unwrap();
        assert!(st.is_select_star() && st.is_passthrough());
        // Rule #1 kept: the WHERE clause reads no JSON name.
        let st =
            Statement::parse("SELECT * FROM 'topic/subtopic' WHERE timestamp() % 12 = 0").unwrap();
        assert!(st.is_select_star());
        assert!(st.where_matches(&msg));
        let later = Message {
            timestamp_ms: 1_481_825_251_155,
            ..msg
        };
        assert!(!st.where_matches(&later));
        // Rule #1 broken: a JSON name in WHERE is Undefined, so nothing is sent.
        let st =
            Statement::parse("SELECT * FROM 'topic/subtopic' WHERE device_type = 'thermostat'")
                .unwrap();
        assert!(!st.where_matches(&msg));
    }

    #[test]
    fn binary_payload() {
        let st = Statement::parse("SELECT encode(*, 'base64') AS data, a FROM 'x'").unwrap();
        let msg = Message {
            payload: Payload::Binary(b"hi"),
            ..Message::new("x", &Value::Null)
        };
        assert_eq!(st.eval(&msg).unwrap(), Some(json!({"data": "aGk="})));
        let st = Statement::parse("SELECT * FROM 'x'").unwrap();
        assert!(st.eval(&msg).is_err());
    }

    /// Which statements a payload that is not JSON may run: those reading
    /// it only as the bytes `encode(*, …)` takes.
    #[test]
    fn reads_json_only_for_fields_and_star_values() {
        for (sql, json) in [
            ("SELECT encode(*, 'base64') AS data FROM 'x'", false),
            (
                "SELECT encode(*, 'base64') AS data, topic(2) AS t FROM 'x' WHERE timestamp() > 0",
                false,
            ),
            (
                "SELECT decode(encode(*, 'base64'), 'base64') AS d FROM 'x'",
                false,
            ),
            ("SELECT * FROM 'x'", true),
            ("SELECT encode(a, 'base64') AS data FROM 'x'", true),
            (
                "SELECT encode(*, 'base64') AS data FROM 'x' WHERE a > 1",
                true,
            ),
            ("SELECT encode(*, enc) AS data FROM 'x'", true),
            ("SELECT md5(*) AS h FROM 'x'", true),
        ] {
            let st = Statement::parse(sql).unwrap();
            assert!(st.reads_payload(), "{sql}");
            assert_eq!(st.reads_json(), json, "{sql}");
        }
        let st = Statement::parse(
            "SELECT encode(*, 'base64') AS request, topic(2) AS thing FROM 'x/+/y'",
        )
        .unwrap();
        let msg = Message {
            payload: Payload::Binary(b""),
            ..Message::new("x/t1/y", &Value::Null)
        };
        assert_eq!(
            st.eval(&msg).unwrap(),
            Some(json!({"request": "", "thing": "t1"}))
        );
    }
}
