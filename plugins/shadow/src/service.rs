//! AWS IoT's Device Shadow service over MQTT, answered from the shadows
//! this plugin holds. Pure: no host calls; [`serve`] returns what to publish.
//!
//! Requests (a device or an application publishes them):
//!
//! | topic | does |
//! |---|---|
//! | `$aws/things/<thing>/shadow/update` | merge `{"state":{"desired":…,"reported":…}}` |
//! | `$aws/things/<thing>/shadow/get` | answer the whole document |
//! | `$aws/things/<thing>/shadow/delete` | delete the shadow |
//!
//! and the same under `$aws/things/<thing>/shadow/name/<shadow>/…` for a
//! named shadow. Answers go on `<request topic>/accepted` or `/rejected`
//! (`{"code":…,"message":…}` with AWS's codes and messages). An accepted
//! update is also published on `…/update/documents` (the document before
//! and after) and, when it set desired state that the reported state does
//! not match, on `…/update/delta` (only the differing desired fields).
//! Every answer carries the request's `clientToken`.
//!
//! As AWS does: `null` deletes a field (or a whole `desired`/`reported`
//! section), objects merge field by field at any depth, arrays are replaced
//! whole; every field written gets `metadata` `{"timestamp":<secs>}`; a
//! request `version` that is not the current one is a conflict (409); a
//! section nested deeper than 6 levels, a `clientToken` over 64 bytes and a
//! request or state over 8 KB are refused. A deleted shadow is stored as a
//! mark holding its last version (see [`ShadowDoc::deleted`]), so a shadow
//! made again continues the numbering, as AWS's does for 48 hours (here,
//! for good). A delta is computed from the whole document after each
//! update that sets desired state.

use crate::doc::ShadowDoc;
use serde_json::{json, Map, Value};

/// Largest request, and largest `state` (desired and reported as JSON).
pub const MAX_BYTES: usize = 8 * 1024;
/// Deepest `desired` or `reported` section.
pub const MAX_DEPTH: usize = 6;
/// Longest `clientToken`, in bytes.
pub const MAX_TOKEN: usize = 64;

const THINGS: &str = "$aws/things/";

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Update,
    Delete,
}

/// A shadow request, read from its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The request topic, `<prefix>/<op>`.
    pub topic: &'a str,
    pub thing: &'a str,
    /// The named shadow; `None` for the classic shadow.
    pub shadow: Option<&'a str>,
    pub op: Op,
}

impl<'a> Request<'a> {
    /// The request on `topic`, if it is one: `$aws/things/<thing>/shadow/<op>`
    /// or `$aws/things/<thing>/shadow/name/<shadow>/<op>`. Answers
    /// (`…/accepted`) and anything else are not.
    pub fn parse(topic: &'a str) -> Option<Request<'a>> {
        let rest = topic.strip_prefix(THINGS)?;
        let (thing, rest) = rest.split_once('/')?;
        let rest = rest.strip_prefix("shadow/")?;
        let (shadow, op) = match rest.strip_prefix("name/") {
            Some(named) => {
                let (shadow, op) = named.split_once('/')?;
                (Some(shadow), op)
            }
            None => (None, rest),
        };
        let op = match op {
            "get" => Op::Get,
            "update" => Op::Update,
            "delete" => Op::Delete,
            _ => return None,
        };
        let valid = |s: &str| !s.is_empty() && !s.contains(['+', '#']);
        (valid(thing) && shadow.is_none_or(valid)).then_some(Request {
            topic,
            thing,
            shadow,
            op,
        })
    }

    /// The key of the shadow in the bucket: the thing name for the classic
    /// shadow (the key telemetry merges into), `<thing>/<shadow>` for a
    /// named one (a topic level holds no `/`, so keys cannot collide).
    pub fn key(&self) -> String {
        match self.shadow {
            None => self.thing.to_string(),
            Some(s) => format!("{}/{s}", self.thing),
        }
    }

    fn answer(&self, suffix: &str, payload: Value) -> Answer {
        Answer {
            topic: format!("{}/{suffix}", self.topic),
            payload: payload.to_string(),
        }
    }

    /// `<prefix>/update/<what>`, for the documents and delta topics.
    fn update_topic(&self, what: &str) -> String {
        let prefix = self
            .topic
            .rsplit_once('/')
            .map_or(self.topic, |(prefix, _)| prefix);
        format!("{prefix}/update/{what}")
    }
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub topic: String,
    pub payload: String,
}

/// Serve `request` with body `body` against `doc` (version 0: no shadow),
/// at `now` (seconds). Returns the messages to publish and the change.
pub fn serve(doc: &mut ShadowDoc, request: &Request<'_>, body: &[u8], now: i64) -> Served {
    let mut served = Served {
        answers: Vec::new(),
        changed: false,
    };
    let rejected = |code: u16, message: &str, token: Option<&Value>| {
        let mut v = json!({"code": code, "message": message, "timestamp": now});
        with_token(&mut v, token);
        request.answer("rejected", v)
    };
    if body.len() > MAX_BYTES {
        let message = "The payload exceeds the maximum size allowed";
        served.answers.push(rejected(413, message, None));
        return served;
    }
    let parsed = match parse_body(body, request.op) {
        Ok(v) => v,
        Err((code, message)) => {
            served.answers.push(rejected(code, message, None));
            return served;
        }
    };
    let token = match parsed.get("clientToken") {
        None => None,
        Some(t @ Value::String(s)) if s.len() <= MAX_TOKEN => Some(t.clone()),
        Some(_) => {
            served
                .answers
                .push(rejected(400, "Invalid clientToken", None));
            return served;
        }
    };
    let token = token.as_ref();
    if !doc.exists() && request.op != Op::Update {
        let name = request.shadow.unwrap_or(request.thing);
        let message = format!("No shadow exists with name: '{name}'");
        served.answers.push(rejected(404, &message, token));
        return served;
    }
    match request.op {
        Op::Get => {
            let view = View::of(doc);
            let mut state = view.state();
            let delta = delta(&view.desired, &view.reported);
            if !delta.is_empty() {
                state.insert("delta".into(), Value::Object(delta));
            }
            let mut v = json!({
                "state": state,
                "metadata": view.metadata(),
                "version": doc.version,
                "timestamp": now,
            });
            with_token(&mut v, token);
            served.answers.push(request.answer("accepted", v));
        }
        Op::Delete => {
            let mut v = json!({"version": doc.version, "timestamp": now});
            with_token(&mut v, token);
            served.answers.push(request.answer("accepted", v));
            *doc = ShadowDoc {
                version: doc.version,
                timestamp: now,
                deleted: true,
                ..ShadowDoc::default()
            };
            served.changed = true;
        }
        Op::Update => match update(doc, request, &parsed, token, now) {
            Ok(answers) => {
                served.answers = answers;
                served.changed = true;
            }
            Err((code, message)) => served.answers.push(rejected(code, message, token)),
        },
    }
    served
}

/// The outcome of [`serve`].
#[derive(Debug)]
pub struct Served {
    pub answers: Vec<Answer>,
    /// The shadow changed (updated, or deleted: see [`ShadowDoc::deleted`])
    /// and must be stored.
    pub changed: bool,
}

type Rejection = (u16, &'static str);

/// The request document. A get or delete may have an empty body.
fn parse_body(body: &[u8], op: Op) -> Result<Map<String, Value>, Rejection> {
    if op != Op::Update && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err((400, "Invalid JSON")),
    }
}

/// Apply an update request; the answers for an accepted one.
fn update(
    doc: &mut ShadowDoc,
    request: &Request<'_>,
    parsed: &Map<String, Value>,
    token: Option<&Value>,
    now: i64,
) -> Result<Vec<Answer>, Rejection> {
    match parsed.get("version") {
        None => {}
        Some(v) => match v.as_u64() {
            Some(v) if v == doc.version => {}
            Some(_) => return Err((409, "Version conflict")),
            None => return Err((400, "Invalid version")),
        },
    }
    let state = match parsed.get("state") {
        None => return Err((400, "Missing required node: state")),
        Some(Value::Object(s)) => s,
        Some(_) => return Err((400, "State node must be an object")),
    };
    for (name, section) in state {
        let message = match name.as_str() {
            "desired" => "Desired node must be an object",
            "reported" => "Reported node must be an object",
            _ => return Err((400, "State contains an invalid node")),
        };
        match section {
            Value::Null => {}
            Value::Object(m) if depth(m) > MAX_DEPTH => {
                return Err((
                    400,
                    "JSON contains too many levels of nesting; maximum is 6",
                ))
            }
            Value::Object(_) => {}
            _ => return Err((400, message)),
        }
    }
    let existed = doc.exists();
    let before = View::of(doc);
    let mut after = before.clone();
    let mut accepted_meta = Map::new();
    for (name, section) in state {
        let (values, meta) = after.section_mut(name);
        match section {
            Value::Object(patch) => {
                merge(values, meta, patch, now);
                accepted_meta.insert(name.clone(), metadata_of(section, now));
            }
            _ => {
                values.clear();
                meta.clear();
                accepted_meta.insert(name.clone(), json!({"timestamp": now}));
            }
        }
    }
    let state_text = Value::Object(after.state()).to_string();
    if state_text.len() > MAX_BYTES {
        return Err((413, "The payload exceeds the maximum size allowed"));
    }
    let version = doc.version + 1;

    let mut answers = Vec::with_capacity(3);
    let mut accepted = json!({
        "state": state,
        "metadata": accepted_meta,
        "version": version,
        "timestamp": now,
    });
    with_token(&mut accepted, token);
    answers.push(request.answer("accepted", accepted));

    let mut documents = Map::new();
    if existed {
        documents.insert("previous".into(), before.snapshot(version - 1));
    }
    documents.insert("current".into(), after.snapshot(version));
    documents.insert("timestamp".into(), now.into());
    let mut documents = Value::Object(documents);
    with_token(&mut documents, token);
    answers.push(Answer {
        topic: request.update_topic("documents"),
        payload: documents.to_string(),
    });

    if matches!(state.get("desired"), Some(Value::Object(_))) {
        let delta = delta(&after.desired, &after.reported);
        if !delta.is_empty() {
            let metadata = metadata_subset(&after.desired_meta, &delta);
            let mut v = json!({
                "version": version,
                "timestamp": now,
                "state": delta,
                "metadata": metadata,
            });
            with_token(&mut v, token);
            answers.push(Answer {
                topic: request.update_topic("delta"),
                payload: v.to_string(),
            });
        }
    }
    after.store(doc, version, now);
    Ok(answers)
}

/// A shadow's desired and reported state with their metadata, as JSON
/// values: what the service reads and rewrites (the telemetry merge works
/// on [`ShadowDoc`] directly).
#[derive(Debug, Clone, Default)]
struct View {
    desired: Map<String, Value>,
    desired_meta: Map<String, Value>,
    reported: Map<String, Value>,
    reported_meta: Map<String, Value>,
    /// The rest of the stored document (`device_type` and anything else).
    rest: Map<String, Value>,
    state_rest: Map<String, Value>,
    metadata_rest: Map<String, Value>,
}

impl View {
    fn of(doc: &ShadowDoc) -> View {
        let mut whole = match serde_json::from_slice(&doc.to_json()) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let take = |m: &mut Map<String, Value>, k: &str| match m.remove(k) {
            Some(Value::Object(o)) => o,
            _ => Map::new(),
        };
        let mut state = take(&mut whole, "state");
        let mut metadata = take(&mut whole, "metadata");
        let desired = take(&mut state, "desired");
        let reported = take(&mut state, "reported");
        let desired_meta = take(&mut metadata, "desired");
        let reported_meta = take(&mut metadata, "reported");
        whole.remove("version");
        whole.remove("timestamp");
        whole.remove("deleted");
        View {
            desired,
            desired_meta,
            reported,
            reported_meta,
            rest: whole,
            state_rest: state,
            metadata_rest: metadata,
        }
    }

    fn section_mut(&mut self, name: &str) -> (&mut Map<String, Value>, &mut Map<String, Value>) {
        if name == "desired" {
            (&mut self.desired, &mut self.desired_meta)
        } else {
            (&mut self.reported, &mut self.reported_meta)
        }
    }

    /// `state` as answered: the sections that hold anything.
    fn state(&self) -> Map<String, Value> {
        sections(&self.desired, &self.reported)
    }

    fn metadata(&self) -> Map<String, Value> {
        sections(&self.desired_meta, &self.reported_meta)
    }

    /// `{"state":…,"metadata":…,"version":…}`, as `/update/documents` has it.
    fn snapshot(&self, version: u64) -> Value {
        json!({"state": self.state(), "metadata": self.metadata(), "version": version})
    }

    /// Write this state into `doc` (through its stored form, so reported
    /// fields keep the representation the telemetry merge uses).
    fn store(self, doc: &mut ShadowDoc, version: u64, now: i64) {
        let mut state = self.state_rest;
        state.insert("reported".into(), Value::Object(self.reported));
        if !self.desired.is_empty() {
            state.insert("desired".into(), Value::Object(self.desired));
        }
        let mut metadata = self.metadata_rest;
        metadata.insert("reported".into(), Value::Object(self.reported_meta));
        if !self.desired_meta.is_empty() {
            metadata.insert("desired".into(), Value::Object(self.desired_meta));
        }
        let mut whole = self.rest;
        whole.insert("state".into(), Value::Object(state));
        whole.insert("metadata".into(), Value::Object(metadata));
        whole.insert("version".into(), version.into());
        whole.insert("timestamp".into(), now.into());
        // A document this module built always reads back.
        if let Ok(new) = ShadowDoc::from_json(Value::Object(whole).to_string().as_bytes()) {
            *doc = new;
        }
    }
}

/// `{"desired":…,"reported":…}`, each only when not empty.
fn sections(desired: &Map<String, Value>, reported: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    if !desired.is_empty() {
        out.insert("desired".into(), Value::Object(desired.clone()));
    }
    if !reported.is_empty() {
        out.insert("reported".into(), Value::Object(reported.clone()));
    }
    out
}

/// Merge `patch` into `values`, stamping what it writes in `meta`.
fn merge(
    values: &mut Map<String, Value>,
    meta: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    now: i64,
) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                values.remove(k);
                meta.remove(k);
            }
            Value::Object(p) => {
                if !matches!(values.get(k), Some(Value::Object(_))) {
                    values.insert(k.clone(), Value::Object(Map::new()));
                }
                if !matches!(meta.get(k), Some(Value::Object(m)) if !is_stamp(m)) {
                    meta.insert(k.clone(), Value::Object(Map::new()));
                }
                if let (Some(Value::Object(inner)), Some(Value::Object(inner_meta))) =
                    (values.get_mut(k), meta.get_mut(k))
                {
                    merge(inner, inner_meta, p, now);
                }
            }
            _ => {
                values.insert(k.clone(), v.clone());
                meta.insert(k.clone(), metadata_of(v, now));
            }
        }
    }
}

/// Is this metadata entry a leaf's `{"timestamp": …}`?
fn is_stamp(m: &Map<String, Value>) -> bool {
    m.len() == 1 && m.get("timestamp").is_some_and(Value::is_number)
}

/// The metadata AWS gives a written value: a timestamp per leaf, objects
/// and arrays mirrored.
fn metadata_of(v: &Value, now: i64) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), metadata_of(v, now)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| metadata_of(v, now)).collect()),
        _ => json!({"timestamp": now}),
    }
}

/// The desired fields the reported state does not match, at any depth.
fn delta(desired: &Map<String, Value>, reported: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, d) in desired {
        match (d, reported.get(k)) {
            (d, Some(r)) if d == r => {}
            (Value::Object(d), Some(Value::Object(r))) => {
                let inner = delta(d, r);
                if !inner.is_empty() {
                    out.insert(k.clone(), Value::Object(inner));
                }
            }
            (d, _) => {
                out.insert(k.clone(), d.clone());
            }
        }
    }
    out
}

/// The part of `meta` that describes the fields of `delta`.
fn metadata_subset(meta: &Map<String, Value>, delta: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, d) in delta {
        let Some(m) = meta.get(k) else { continue };
        match (d, m) {
            (Value::Object(d), Value::Object(m)) if !is_stamp(m) => {
                out.insert(k.clone(), Value::Object(metadata_subset(m, d)));
            }
            _ => {
                out.insert(k.clone(), m.clone());
            }
        }
    }
    out
}

/// Levels of objects and arrays in `m`, itself counting one.
fn depth(m: &Map<String, Value>) -> usize {
    fn of(v: &Value) -> usize {
        match v {
            Value::Object(m) => depth(m),
            Value::Array(a) => 1 + a.iter().map(of).max().unwrap_or(0),
            _ => 0,
        }
    }
    1 + m.values().map(of).max().unwrap_or(0)
}

fn with_token(v: &mut Value, token: Option<&Value>) {
    if let (Some(t), Value::Object(m)) = (token, v) {
        m.insert("clientToken".into(), t.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "$aws/things/lamp/shadow/update";

    fn serve_on(doc: &mut ShadowDoc, topic: &str, body: &str, now: i64) -> Served {
        let request = Request::parse(topic).expect("a request topic");
        serve(doc, &request, body.as_bytes(), now)
    }

    fn answer(served: &Served, topic: &str) -> Option<Value> {
        served
            .answers
            .iter()
            .find(|a| a.topic == topic)
            .map(|a| serde_json::from_str(&a.payload).unwrap())
    }

    #[test]
    fn request_topics() {
        let r = Request::parse("$aws/things/lamp/shadow/get").unwrap();
        assert_eq!((r.thing, r.shadow, r.op), ("lamp", None, Op::Get));
        assert_eq!(r.key(), "lamp");
        let r = Request::parse("$aws/things/lamp/shadow/name/config/delete").unwrap();
        assert_eq!(
            (r.thing, r.shadow, r.op),
            ("lamp", Some("config"), Op::Delete)
        );
        assert_eq!(r.key(), "lamp/config");
        assert_eq!(
            r.update_topic("delta"),
            "$aws/things/lamp/shadow/name/config/update/delta"
        );
        for not in [
            "$aws/things/lamp/shadow/update/accepted",
            "$aws/things/lamp/shadow/name/config/get/rejected",
            "$aws/things/lamp/shadow",
            "$aws/things/lamp/shadow/list",
            "$aws/things//shadow/get",
            "$aws/things/lamp/shadow/name//get",
            "$aws/things/lamp/jobs/get",
            "dt/lamp/shadow/get",
        ] {
            assert_eq!(Request::parse(not), None, "{not}");
        }
    }

    #[test]
    fn an_update_creates_the_shadow_and_answers_as_aws() {
        let mut doc = ShadowDoc::default();
        let served = serve_on(
            &mut doc,
            T,
            r#"{"state":{"desired":{"color":"red","power":{"on":true}}},"clientToken":"tok"}"#,
            100,
        );
        assert!(served.changed);
        assert_eq!(doc.version, 1);
        assert_eq!(
            answer(&served, "$aws/things/lamp/shadow/update/accepted").unwrap(),
            json!({
                "state": {"desired": {"color": "red", "power": {"on": true}}},
                "metadata": {"desired": {"color": {"timestamp": 100}, "power": {"on": {"timestamp": 100}}}},
                "version": 1, "timestamp": 100, "clientToken": "tok"
            })
        );
        let documents = answer(&served, "$aws/things/lamp/shadow/update/documents").unwrap();
        assert!(documents.get("previous").is_none(), "a new shadow");
        assert_eq!(documents["current"]["version"], 1);
        assert_eq!(documents["current"]["state"]["desired"]["color"], "red");
        assert_eq!(documents["clientToken"], "tok");
        // Nothing reported yet: all of desired is the delta.
        assert_eq!(
            answer(&served, "$aws/things/lamp/shadow/update/delta").unwrap(),
            json!({
                "version": 1, "timestamp": 100,
                "state": {"color": "red", "power": {"on": true}},
                "metadata": {"color": {"timestamp": 100}, "power": {"on": {"timestamp": 100}}},
                "clientToken": "tok"
            })
        );
    }

    #[test]
    fn reported_state_clears_the_delta_and_sends_none() {
        let mut doc = ShadowDoc::default();
        serve_on(
            &mut doc,
            T,
            r#"{"state":{"desired":{"color":"red","level":3}}}"#,
            1,
        );
        let served = serve_on(&mut doc, T, r#"{"state":{"reported":{"color":"red"}}}"#, 2);
        assert!(answer(&served, "$aws/things/lamp/shadow/update/delta").is_none());
        let documents = answer(&served, "$aws/things/lamp/shadow/update/documents").unwrap();
        assert_eq!(documents["previous"]["version"], 1);
        assert_eq!(
            documents["current"]["state"]["reported"],
            json!({"color": "red"})
        );
        // The get answer carries what is still different.
        let got = serve_on(&mut doc, "$aws/things/lamp/shadow/get", "", 3);
        assert!(!got.changed);
        let got = answer(&got, "$aws/things/lamp/shadow/get/accepted").unwrap();
        assert_eq!(got["state"]["delta"], json!({"level": 3}));
        assert_eq!(got["state"]["reported"], json!({"color": "red"}));
        assert_eq!(got["metadata"]["desired"]["level"], json!({"timestamp": 1}));
        assert_eq!(got["version"], 2);
        assert_eq!(got["timestamp"], 3);
    }

    #[test]
    fn nulls_delete_fields_and_sections_and_objects_merge() {
        let mut doc = ShadowDoc::default();
        serve_on(
            &mut doc,
            T,
            r#"{"state":{"reported":{"a":{"x":1,"y":2},"b":[1,{"c":2}],"gone":1},"desired":{"a":{"x":1}}}}"#,
            1,
        );
        let served = serve_on(
            &mut doc,
            T,
            r#"{"state":{"reported":{"a":{"y":null,"z":3},"gone":null},"desired":null}}"#,
            5,
        );
        assert_eq!(
            answer(&served, "$aws/things/lamp/shadow/update/accepted").unwrap()["metadata"],
            json!({"reported": {"a": {"y": {"timestamp": 5}, "z": {"timestamp": 5}}, "gone": {"timestamp": 5}},
                   "desired": {"timestamp": 5}})
        );
        let got = serve_on(&mut doc, "$aws/things/lamp/shadow/get", "{}", 6);
        let got = answer(&got, "$aws/things/lamp/shadow/get/accepted").unwrap();
        assert_eq!(
            got["state"],
            json!({"reported": {"a": {"x": 1, "z": 3}, "b": [1, {"c": 2}]}})
        );
        assert_eq!(
            got["metadata"],
            json!({"reported": {
                "a": {"x": {"timestamp": 1}, "z": {"timestamp": 5}},
                "b": [{"timestamp": 1}, {"c": {"timestamp": 1}}]
            }})
        );
    }

    #[test]
    fn telemetry_and_requests_share_one_document() {
        let mut doc = ShadowDoc::default();
        doc.merge(r#"{"temperature":21.5}"#, 10_000, "thermostat")
            .unwrap();
        let served = serve_on(
            &mut doc,
            T,
            r#"{"state":{"desired":{"setpoint":20}},"version":1}"#,
            11,
        );
        assert_eq!(doc.version, 2);
        assert_eq!(
            answer(&served, "$aws/things/lamp/shadow/update/delta").unwrap()["state"],
            json!({"setpoint": 20})
        );
        doc.merge(r#"{"temperature":21.0}"#, 12_000, "").unwrap();
        let stored: Value = serde_json::from_slice(&doc.to_json()).unwrap();
        assert_eq!(stored["state"]["desired"], json!({"setpoint": 20}));
        assert_eq!(stored["state"]["reported"], json!({"temperature": 21.0}));
        assert_eq!(stored["device_type"], "thermostat");
        assert_eq!(stored["version"], 3);
    }

    #[test]
    fn rejections_carry_aws_codes_and_change_nothing() {
        let mut doc = ShadowDoc::default();
        serve_on(&mut doc, T, r#"{"state":{"reported":{"a":1}}}"#, 1);
        let before = doc.clone();
        let deep = r#"{"state":{"reported":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}}"#;
        let long_token = format!(r#"{{"state":{{}},"clientToken":"{}"}}"#, "x".repeat(65));
        let big = format!(
            r#"{{"state":{{"reported":{{"a":"{}"}}}}}}"#,
            "x".repeat(9000)
        );
        let grows = format!(
            r#"{{"state":{{"desired":{{"b":"{}"}}}}}}"#,
            "x".repeat(8100)
        );
        for (body, code, message) in [
            ("", 400, "Invalid JSON"),
            ("{oops", 400, "Invalid JSON"),
            ("[1]", 400, "Invalid JSON"),
            (
                r#"{"clientToken":"t"}"#,
                400,
                "Missing required node: state",
            ),
            (r#"{"state":1}"#, 400, "State node must be an object"),
            (
                r#"{"state":{"desired":1}}"#,
                400,
                "Desired node must be an object",
            ),
            (
                r#"{"state":{"reported":"x"}}"#,
                400,
                "Reported node must be an object",
            ),
            (
                r#"{"state":{"delta":{}}}"#,
                400,
                "State contains an invalid node",
            ),
            (r#"{"state":{},"version":"1"}"#, 400, "Invalid version"),
            (r#"{"state":{},"version":7}"#, 409, "Version conflict"),
            (
                deep,
                400,
                "JSON contains too many levels of nesting; maximum is 6",
            ),
            (&long_token, 400, "Invalid clientToken"),
            (&big, 413, "The payload exceeds the maximum size allowed"),
        ] {
            let served = serve_on(&mut doc, T, body, 9);
            assert!(!served.changed, "{body}");
            let r = answer(&served, "$aws/things/lamp/shadow/update/rejected").expect(body);
            assert_eq!(
                (r["code"].as_u64(), r["message"].as_str()),
                (Some(code), Some(message)),
                "{body}"
            );
            assert_eq!(doc, before, "{body}");
        }
        // Under the request limit, but the state would outgrow it.
        let served = serve_on(&mut doc, T, &grows, 9);
        assert!(answer(&served, "$aws/things/lamp/shadow/update/accepted").is_some());
        let served = serve_on(&mut doc, T, &grows.replace("\"b\"", "\"c\""), 9);
        assert_eq!(
            answer(&served, "$aws/things/lamp/shadow/update/rejected").unwrap()["code"],
            413
        );
        // A rejection names the request's token when it is readable.
        let served = serve_on(
            &mut doc,
            T,
            r#"{"state":{},"version":99,"clientToken":"k"}"#,
            9,
        );
        assert_eq!(
            answer(&served, "$aws/things/lamp/shadow/update/rejected").unwrap()["clientToken"],
            "k"
        );
    }

    #[test]
    fn get_and_delete_of_no_shadow_are_404_and_delete_removes_it() {
        let mut doc = ShadowDoc::default();
        let named = "$aws/things/lamp/shadow/name/config/get";
        let served = serve_on(&mut doc, named, r#"{"clientToken":"c"}"#, 1);
        assert_eq!(
            answer(&served, &format!("{named}/rejected")).unwrap(),
            json!({"code": 404, "message": "No shadow exists with name: 'config'", "timestamp": 1, "clientToken": "c"})
        );
        let served = serve_on(&mut doc, "$aws/things/lamp/shadow/delete", "", 1);
        assert_eq!(
            answer(&served, "$aws/things/lamp/shadow/delete/rejected").unwrap()["message"],
            "No shadow exists with name: 'lamp'"
        );
        serve_on(&mut doc, T, r#"{"state":{"reported":{"a":1}}}"#, 1);
        serve_on(&mut doc, T, r#"{"state":{"reported":{"a":2}}}"#, 2);
        let served = serve_on(
            &mut doc,
            "$aws/things/lamp/shadow/delete",
            r#"{"clientToken":"d"}"#,
            3,
        );
        assert!(served.changed);
        assert_eq!(
            answer(&served, "$aws/things/lamp/shadow/delete/accepted").unwrap(),
            json!({"version": 2, "timestamp": 3, "clientToken": "d"})
        );
        assert!(doc.deleted && !doc.exists() && doc.reported.is_empty());
        let served = serve_on(&mut doc, "$aws/things/lamp/shadow/get", "", 4);
        assert!(answer(&served, "$aws/things/lamp/shadow/get/rejected").is_some());
        // Garbage in a get is refused, not ignored.
        serve_on(&mut doc, T, r#"{"state":{"reported":{"a":1}}}"#, 5);
        let served = serve_on(&mut doc, "$aws/things/lamp/shadow/get", "nope", 6);
        assert_eq!(
            answer(&served, "$aws/things/lamp/shadow/get/rejected").unwrap()["code"],
            400
        );
    }
}
