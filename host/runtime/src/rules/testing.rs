//! Rule tests: messages in, expected outputs, kept beside the rules.
//!
//! A rules directory may hold a `tests/` subdirectory (which the rules
//! loader does not read) of TOML test files. Each file is a list of cases:
//!
//! ```toml
//! # rules/tests/telemetry.toml
//! rule = "telemetry"                 # default rule of the cases below
//!
//! [[case]]
//! name = "a reading goes to zscore and the shadow"
//! topic = "dt/thermostat/dev-1/telemetry"
//! client_id = "dev-1"                # default "weir-test"
//! timestamp = 1764300000000          # receive time, ms (default: now)
//! payload = { ts = 1764300000000, temperature = 21.5 }
//! expect = { ts = 1764300000000, temperature = 21.5 }
//! actions = [
//!   { plugin = "zscore", device = "dev-1", device_type = "thermostat" },
//!   { plugin = "shadow", device = "dev-1", device_type = "thermostat" },
//! ]
//!
//! [[case]]
//! name = "other topics do not reach the rule"
//! topic = "dt/thermostat/dev-1/status"
//! payload = '{"temperature": 21.5}'
//! no_match = true
//! ```
//!
//! - `rule`: the rule's name (its file stem); per case or once per file.
//! - `payload`: a TOML table, array, number or boolean is sent as its JSON;
//!   a string is sent as those bytes (JSON text, or anything else, which
//!   the rule sees as a binary payload).
//! - exactly one expectation: `expect` (the output; a table, or JSON text
//!   in a string), `no_match = true` (the FROM filter or the WHERE does not
//!   match), or `error = "text"` (evaluation fails with a message
//!   containing the text).
//! - `actions` (optional, with `expect`): one entry per action of the rule,
//!   in order; the fields given (`plugin`, `device`, `device_type`,
//!   `device_time`) are compared with the action's templates rendered for
//!   the message, with the engine's defaults (device: the client id,
//!   device type: empty).
//!
//! A case runs the way the engine runs a message: the topic trie picks the
//! rules (so a topic the FROM filter does not match is `no_match`), the
//! payload is parsed as JSON or else passed as binary (an error if the
//! statement reads it), and the statement is evaluated.

use super::{diag, RuleProblem, RuleSet};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use toml::Spanned;
use weir_sql::{Message, Payload};

/// The subdirectory of a rules directory that holds rule tests.
pub const TESTS_DIR: &str = "tests";

/// Client id of a case that does not set one.
pub const DEFAULT_CLIENT_ID: &str = "weir-test";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    rule: Option<Spanned<String>>,
    #[serde(default)]
    case: Vec<Spanned<RawCase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Option<String>,
    rule: Option<Spanned<String>>,
    topic: Spanned<String>,
    client_id: Option<String>,
    timestamp: Option<i64>,
    principal: Option<String>,
    source_ip: Option<String>,
    mqtt5: Option<Spanned<RawMqtt5>>,
    payload: Spanned<toml::Value>,
    expect: Option<Spanned<toml::Value>>,
    no_match: Option<Spanned<bool>>,
    error: Option<Spanned<String>>,
    actions: Option<Spanned<Vec<ExpectedAction>>>,
}

/// A case's MQTT 5 publish properties (what `get_mqtt_property` and
/// `get_user_properties` read).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt5 {
    content_type: Option<String>,
    format_indicator: Option<u8>,
    response_topic: Option<String>,
    /// Base64, as `get_mqtt_property('correlation_data')` returns it.
    correlation_data: Option<String>,
    #[serde(default)]
    user_properties: Vec<(String, String)>,
}

/// What one action's rendered parameters should be; unset fields are not compared.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAction {
    /// The plugin, or `republish`.
    pub plugin: Option<String>,
    /// A republish action's rendered topic.
    pub republish: Option<String>,
    pub device: Option<String>,
    pub device_type: Option<String>,
    pub device_time: Option<String>,
}

/// The payload a case sends.
#[derive(Debug, Clone)]
pub enum CasePayload {
    /// Sent as this JSON's text.
    Json(Value),
    /// Sent as these bytes.
    Raw(String),
}

/// What a case expects.
#[derive(Debug, Clone)]
pub enum Expect {
    Output {
        output: Value,
        actions: Option<Vec<ExpectedAction>>,
    },
    NoMatch,
    Error(String),
}

/// One test case.
#[derive(Debug, Clone)]
pub struct Case {
    /// The file the case is in.
    pub file: PathBuf,
    /// 1-based line of the case (its `topic`).
    pub line: usize,
    /// The case's name (default: `case <n>`).
    pub name: String,
    pub rule: String,
    pub topic: String,
    pub client_id: String,
    pub timestamp_ms: Option<i64>,
    pub principal: Option<String>,
    /// What `sourceip()` returns (default: none, Undefined).
    pub source_ip: Option<String>,
    /// The MQTT 5 properties it is published with (default: none, as 3.1.1).
    pub mqtt5: Option<weir_sql::MqttProperties>,
    pub payload: CasePayload,
    pub expect: Expect,
}

/// A difference between what a case expects and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// What differs: `output`, `action 2 device`, …
    pub what: String,
    pub expected: String,
    pub got: String,
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Empty when the case passed.
    pub mismatches: Vec<Mismatch>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// The test files of a rules directory: `*.toml` in `<dir>/tests/`, sorted.
/// A directory without tests gives an empty list.
pub fn test_files(rules_dir: &Path) -> Result<Vec<PathBuf>, RuleProblem> {
    let dir = rules_dir.join(TESTS_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        diag::whole_file(&dir, format_args!("cannot read the tests directory: {e}"))
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    Ok(paths)
}

/// Parse one test file. Problems (TOML errors, a case naming no rule or an
/// unknown one, a bad expectation) point at their place in the file; all of
/// them are reported.
pub fn parse_file(path: &Path, text: &str, rules: &RuleSet) -> Result<Vec<Case>, Vec<RuleProblem>> {
    let raw: RawFile = toml::from_str(text).map_err(|e| vec![diag::toml_error(path, text, &e)])?;
    let mut problems = Vec::new();
    let mut cases = Vec::new();
    if raw.case.is_empty() {
        problems.push(diag::whole_file(path, "no [[case]] in this test file"));
    }
    for (i, c) in raw.case.into_iter().enumerate() {
        let case_span = c.span();
        let c = c.into_inner();
        let topic_span = c.topic.span();
        let mut bad = |span: std::ops::Range<usize>, message: String| {
            problems.push(diag::at(path, text, span, message))
        };
        let label = format!("case {}", i + 1);
        let rule = match c.rule.as_ref().or(raw.rule.as_ref()) {
            None => {
                bad(
                    topic_span.clone(),
                    format!(
                        "{label}: no `rule` (set it in the case or once at the top of the file)"
                    ),
                );
                None
            }
            Some(r) if rules.by_name(r.get_ref()).is_none() => {
                let names: Vec<&str> = rules.rules.iter().map(|r| r.name.as_str()).collect();
                bad(
                    r.span(),
                    format!(
                        "unknown rule {:?}; the enabled rules are: {}",
                        r.get_ref(),
                        if names.is_empty() {
                            "(none)".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                );
                None
            }
            Some(r) => Some(r.get_ref().clone()),
        };
        if let Err(e) = validate_topic_name(c.topic.get_ref()) {
            bad(
                topic_span.clone(),
                format!("{label}: topic {:?}: {e}", c.topic.get_ref()),
            );
        }
        let payload = match c.payload.get_ref() {
            toml::Value::String(s) => Some(CasePayload::Raw(s.clone())),
            v => match to_json(v) {
                Ok(j) => Some(CasePayload::Json(j)),
                Err(e) => {
                    bad(c.payload.span(), format!("{label}: payload: {e}"));
                    None
                }
            },
        };
        let given = [c.expect.is_some(), c.no_match.is_some(), c.error.is_some()];
        let expect = if given.iter().filter(|g| **g).count() != 1 {
            bad(
                topic_span.clone(),
                format!("{label}: give exactly one of `expect`, `no_match = true` or `error`"),
            );
            None
        } else if let Some(e) = &c.expect {
            let output = match e.get_ref() {
                toml::Value::String(s) => serde_json::from_str::<Value>(s)
                    .map_err(|err| format!("expect is not JSON: {err}")),
                v => to_json(v).map_err(|err| format!("expect: {err}")),
            };
            match output {
                Ok(output) => Some(Expect::Output {
                    output,
                    actions: c.actions.as_ref().map(|a| a.get_ref().clone()),
                }),
                Err(m) => {
                    bad(e.span(), format!("{label}: {m}"));
                    None
                }
            }
        } else if let Some(n) = &c.no_match {
            if !*n.get_ref() {
                bad(
                    n.span(),
                    format!("{label}: `no_match = false` expects nothing; use `expect` instead"),
                );
                None
            } else {
                Some(Expect::NoMatch)
            }
        } else {
            c.error.as_ref().map(|e| Expect::Error(e.get_ref().clone()))
        };
        if let (Some(a), false) = (&c.actions, c.expect.is_some()) {
            bad(
                a.span(),
                format!("{label}: `actions` needs `expect` (actions run only on a match)"),
            );
        }
        let mqtt5 = match c.mqtt5 {
            None => Some(None),
            Some(m) => {
                let span = m.span();
                let m = m.into_inner();
                let correlation_data = match m.correlation_data.as_deref().map(|b| {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.decode(b)
                }) {
                    None => Some(None),
                    Some(Ok(bytes)) => Some(Some(bytes)),
                    Some(Err(e)) => {
                        bad(
                            span,
                            format!("{label}: mqtt5.correlation_data is not base64: {e}"),
                        );
                        None
                    }
                };
                correlation_data.map(|correlation_data| {
                    Some(weir_sql::MqttProperties {
                        content_type: m.content_type,
                        payload_format_indicator: m.format_indicator,
                        response_topic: m.response_topic,
                        correlation_data,
                        user_properties: m.user_properties,
                    })
                })
            }
        };
        if let (Some(rule), Some(payload), Some(expect), Some(mqtt5)) =
            (rule, payload, expect, mqtt5)
        {
            cases.push(Case {
                file: path.to_path_buf(),
                line: text[..case_span.start.min(text.len())]
                    .matches('\n')
                    .count()
                    + 1,
                name: c.name.unwrap_or(label),
                rule,
                topic: c.topic.into_inner(),
                client_id: c.client_id.unwrap_or_else(|| DEFAULT_CLIENT_ID.to_string()),
                timestamp_ms: c.timestamp,
                principal: c.principal,
                source_ip: c.source_ip,
                mqtt5,
                payload,
                expect,
            });
        }
    }
    if problems.is_empty() {
        Ok(cases)
    } else {
        Err(problems)
    }
}

/// What running a case's message through its rule gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The rule's output and its actions' rendered parameters (or the
    /// error rendering them).
    Output {
        output: Value,
        actions: Vec<(String, Result<Rendered, String>)>,
    },
    /// The FROM filter or the WHERE did not match.
    NoMatch(String),
    /// Evaluation failed.
    Error(String),
}

/// Run one case the way the engine runs a message.
pub fn evaluate(rules: &RuleSet, case: &Case, now_ms: i64) -> Outcome {
    let Some((index, rule)) = rules.by_name(&case.rule) else {
        return Outcome::Error(format!("no enabled rule {:?}", case.rule));
    };
    // Basic Ingest (`$aws/rules/<rule>/<topic>`): the named rule alone,
    // whatever its FROM, seeing `<topic>`.
    let topic = match crate::listener::basic_ingest::split(&case.topic) {
        Some((name, rest)) if name == case.rule => rest,
        Some((name, _)) => {
            return Outcome::NoMatch(format!(
                "published by Basic Ingest to rule {name:?}, not {:?}",
                case.rule
            ))
        }
        None => {
            let mut matches = Vec::new();
            rules.matching(&case.topic, &mut matches);
            if !matches.contains(&index) {
                return Outcome::NoMatch(format!(
                    "the topic does not match FROM '{}'",
                    rule.statement.topic_filter()
                ));
            }
            &case.topic
        }
    };
    let bytes = match &case.payload {
        CasePayload::Json(v) => v.to_string(),
        CasePayload::Raw(s) => s.clone(),
    };
    let parsed: Result<Value, String> =
        serde_json::from_str(&bytes).map_err(|e| format!("payload is not valid JSON: {e}"));
    // A `SELECT *` of a payload that is not JSON outputs the bytes as they
    // came (as the engine forwards them); a case expects them as a string.
    let raw = parsed.is_err() && rule.statement.outputs_raw();
    let payload = match &parsed {
        Ok(v) => Payload::Json(v),
        Err(e) if rule.statement.needs_json() => return Outcome::Error(e.clone()),
        // A plugin takes JSON readings: the engine sends the rule's plugin
        // actions to its error action (republish actions still forward the
        // bytes).
        Err(e) => {
            if let Some(why) = raw.then(|| rule.plugins_refuse(e)).flatten() {
                return Outcome::Error(why);
            }
            Payload::Binary(bytes.as_bytes())
        }
    };
    let message = Message {
        topic,
        client_id: &case.client_id,
        payload,
        timestamp_ms: case.timestamp_ms.unwrap_or(now_ms),
        principal: case.principal.as_deref(),
        source_ip: case.source_ip.as_deref(),
        mqtt: case.mqtt5.as_ref(),
        trace_id: None,
        lookup: None,
    };
    let vars = rule.statement.bind(&message);
    let result = if raw {
        Ok(rule
            .statement
            .where_matches_with(&message, &vars)
            .then(|| Value::String(bytes.clone())))
    } else {
        rule.statement.eval_with(&message, &vars)
    };
    match result {
        Ok(Some(output)) => Outcome::Output {
            output,
            actions: rule
                .actions
                .iter()
                .map(|a| {
                    let rendered = match &a.target {
                        super::Target::Plugin(_) => a
                            .render_params(&message, &vars)
                            .map(|p| Rendered::Params(p.into_owned()))
                            .map_err(|e| e.to_string()),
                        super::Target::Republish(topic) => topic
                            .render_cow_with(&message, &vars)
                            .map(|t| Rendered::Republish(t.into_owned()))
                            .map_err(|e| e.to_string()),
                    };
                    (a.name().to_string(), rendered)
                })
                .collect(),
        },
        Ok(None) => Outcome::NoMatch("the WHERE clause is not true".into()),
        Err(e) => Outcome::Error(e.to_string()),
    }
}

/// One action rendered for a case's message.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    /// A plugin action's parameters.
    Params(super::ActionParams<'static>),
    /// A republish action's topic.
    Republish(String),
}

/// Compare what happened with what the case expects.
pub fn judge(case: &Case, outcome: &Outcome) -> CaseResult {
    let mut mismatches = Vec::new();
    let mut differ = |what: &str, expected: String, got: String| {
        mismatches.push(Mismatch {
            what: what.to_string(),
            expected,
            got,
        })
    };
    let describe = |o: &Outcome| match o {
        Outcome::Output { output, .. } => pretty(output),
        Outcome::NoMatch(why) => format!("no match ({why})"),
        Outcome::Error(e) => format!("error: {e}"),
    };
    match (&case.expect, outcome) {
        (
            Expect::Output { output, actions },
            Outcome::Output {
                output: got,
                actions: got_actions,
            },
        ) => {
            if output != got {
                differ("output", pretty(output), pretty(got));
            }
            if let Some(expected) = actions {
                if expected.len() != got_actions.len() {
                    differ(
                        "number of actions",
                        expected.len().to_string(),
                        format!(
                            "{} ({})",
                            got_actions.len(),
                            got_actions
                                .iter()
                                .map(|(p, _)| p.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
                for (i, (want, (plugin, params))) in expected.iter().zip(got_actions).enumerate() {
                    let n = i + 1;
                    if let Some(p) = &want.plugin {
                        if p != plugin {
                            differ(&format!("action {n} plugin"), p.clone(), plugin.clone());
                        }
                    }
                    let params = match params {
                        Ok(Rendered::Params(p)) => p,
                        Ok(Rendered::Republish(topic)) => {
                            if let Some(want) = &want.republish {
                                if want != topic {
                                    differ(
                                        &format!("action {n} (republish) topic"),
                                        format!("{want:?}"),
                                        format!("{topic:?}"),
                                    );
                                }
                            }
                            continue;
                        }
                        Err(e) => {
                            differ(
                                &format!("action {n} parameters"),
                                "rendered".into(),
                                format!("error: {e}"),
                            );
                            continue;
                        }
                    };
                    if let Some(want) = &want.republish {
                        differ(
                            &format!("action {n} republish"),
                            format!("a republish to {want:?}"),
                            format!("plugin {plugin}"),
                        );
                    }
                    let fields = [
                        ("device", &want.device, Some(&*params.device)),
                        ("device_type", &want.device_type, Some(&*params.device_type)),
                        (
                            "device_time",
                            &want.device_time,
                            params.device_time.as_deref(),
                        ),
                    ];
                    for (field, want, got) in fields {
                        if let Some(want) = want {
                            if Some(want.as_str()) != got {
                                differ(
                                    &format!("action {n} ({plugin}) {field}"),
                                    format!("{want:?}"),
                                    got.map(|g| format!("{g:?}"))
                                        .unwrap_or_else(|| "(not set)".into()),
                                );
                            }
                        }
                    }
                }
            }
        }
        (Expect::NoMatch, Outcome::NoMatch(_)) => {}
        (Expect::Error(want), Outcome::Error(got)) => {
            if !got.contains(want.as_str()) {
                differ(
                    "error",
                    format!("an error containing {want:?}"),
                    format!("error: {got}"),
                );
            }
        }
        (Expect::Output { output, .. }, got) => differ("outcome", pretty(output), describe(got)),
        (Expect::NoMatch, got) => differ("outcome", "no match".into(), describe(got)),
        (Expect::Error(want), got) => differ(
            "outcome",
            format!("an error containing {want:?}"),
            describe(got),
        ),
    }
    CaseResult { mismatches }
}

/// JSON with sorted keys, one field a line, for readable diffs.
pub fn pretty(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string_pretty(&sorted(v)).unwrap_or_else(|_| v.to_string())
}

/// A topic a message is published on: not empty, no wildcards, no NUL.
fn validate_topic_name(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        Err("a topic cannot be empty")
    } else if topic.contains(['+', '#']) {
        Err("a message's topic cannot hold the wildcards + or #")
    } else if topic.contains('\0') {
        Err("a topic cannot contain the NUL character")
    } else {
        Ok(())
    }
}

/// TOML to JSON: tables to objects, datetimes to their text.
fn to_json(v: &toml::Value) -> Result<Value, String> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} has no JSON form"))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(to_json).collect::<Result<_, _>>()?),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}
