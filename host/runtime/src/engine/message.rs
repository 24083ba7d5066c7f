//! Turning a rule's output into the message a plugin receives, and a failed
//! message into the document an error action receives.

use super::ingest::Ingest;
use super::scan::Scan;
use crate::plugin::batch::{BatchBuilder, FieldSpan, MetricRef, Parts};
use crate::rules::{ActionParams, Rule};
use serde_json::{json, Value};
use std::borrow::Cow;

/// Everything the action's templates and the plugin message need.
pub struct Context<'a> {
    pub ingest: &'a Ingest,
    pub sql: &'a weir_sql::Message<'a>,
}

/// Numeric fields of `value`, nested objects flattened with `.` (a field
/// with an empty name is not one). A top-level field's name borrows its key.
pub fn metrics(value: &Value) -> Vec<MetricRef<'_>> {
    let mut out = Vec::new();
    if let Value::Object(map) = value {
        let mut prefix = String::new();
        for (k, v) in map {
            match v {
                Value::Number(n) if !k.is_empty() => {
                    out.extend(n.as_f64().map(|value| MetricRef {
                        name: Cow::Borrowed(k.as_str()),
                        value,
                    }))
                }
                Value::Object(_) => {
                    prefix.clear();
                    prefix.push_str(k);
                    flatten(v, &mut prefix, &mut out);
                }
                _ => {}
            }
        }
    }
    out
}

/// The numeric fields of `value`, a nested field named `prefix`.
fn flatten(value: &Value, prefix: &mut String, out: &mut Vec<MetricRef<'_>>) {
    match value {
        Value::Number(n) if !prefix.is_empty() => {
            if let Some(v) = n.as_f64() {
                out.push(MetricRef {
                    name: Cow::Owned(prefix.clone()),
                    value: v,
                });
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let len = prefix.len();
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(k);
                flatten(v, prefix, out);
                prefix.truncate(len);
            }
        }
        _ => {}
    }
}

/// A rule output in the forms plugins receive, computed once and shared by
/// all of the rule's actions.
pub struct Output<'a> {
    /// The output as JSON text.
    pub payload: Cow<'a, str>,
    /// Its numeric fields.
    pub metrics: Cow<'a, [MetricRef<'a>]>,
    /// Its `ts` (else `timestamp`) field, the device's own time.
    pub device_time: Option<&'a Value>,
    /// Where its top-level fields are in `payload`, when a scan read them.
    pub fields: Option<&'a [FieldSpan]>,
    /// The output is the message's payload as it came, which is not JSON:
    /// a `SELECT *` of a binary or plain-text payload
    /// ([`weir_sql::Statement::outputs_raw`]). `payload` is then empty;
    /// republish actions forward the message's bytes, and plugin actions,
    /// which take JSON readings, refuse it.
    pub raw: bool,
}

/// The field a device's own time is read from, when the action sets none.
fn device_time_field(value: &Value) -> Option<&Value> {
    ["ts", "timestamp"].iter().find_map(|k| value.get(*k))
}

impl<'a> Output<'a> {
    /// An output the rule computed: its payload is `value` serialized.
    pub fn new(value: &'a Value) -> Output<'a> {
        Output {
            payload: Cow::Owned(serde_json::to_string(value).unwrap_or_default()),
            metrics: Cow::Owned(metrics(value)),
            device_time: device_time_field(value),
            fields: None,
            raw: false,
        }
    }

    /// The output of a `SELECT *` of a payload that is not JSON: the bytes
    /// themselves (see [`Output::raw`](Output#structfield.raw)).
    pub fn raw() -> Output<'a> {
        Output {
            payload: Cow::Borrowed(""),
            metrics: Cow::Borrowed(&[]),
            device_time: None,
            fields: None,
            raw: true,
        }
    }

    /// The output of a plain `SELECT *`: the message itself, so plugins get
    /// the payload exactly as the device sent it (`raw`, the bytes `value`
    /// was parsed from) instead of a re-serialization of it.
    pub fn passthrough(value: &'a Value, raw: &'a [u8]) -> Output<'a> {
        match std::str::from_utf8(raw) {
            Ok(text) => Output {
                payload: Cow::Borrowed(text),
                metrics: Cow::Owned(metrics(value)),
                device_time: device_time_field(value),
                fields: None,
                raw: false,
            },
            Err(_) => Output::new(value),
        }
    }

    /// The output of a pass-through rule from a [`Scan`] of its payload
    /// (`text`), with no parsed value at all.
    pub fn scanned(text: &'a str, scan: &'a Scan<'a>) -> Output<'a> {
        Output {
            payload: Cow::Borrowed(text),
            metrics: Cow::Borrowed(&scan.metrics),
            device_time: scan.device_time(),
            fields: scan.fields.as_deref(),
            raw: false,
        }
    }
}

/// Append the plugin message for one action of a rule to `batch`, with
/// the action's parameters rendered (`params`, shared by the rule's actions
/// that render alike).
pub fn for_action(
    rule: &Rule,
    params: &ActionParams,
    output: &Output<'_>,
    ctx: &Context<'_>,
    batch: &mut BatchBuilder,
) {
    let device_time = match &params.device_time {
        Some(text) => {
            let v = text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(text.to_string()));
            crate::clock::device_time_ms(&v, ctx.ingest.received_at)
        }
        None => output
            .device_time
            .and_then(|v| crate::clock::device_time_ms(v, ctx.ingest.received_at)),
    };
    batch.push(&Parts {
        rule: &rule.name,
        topic: &ctx.ingest.topic,
        client_id: &ctx.ingest.from.client_id,
        device: &params.device,
        device_type: &params.device_type,
        received_at: ctx.ingest.received_at,
        device_time,
        metrics: &output.metrics,
        payload: &output.payload,
        fields: output.fields,
    });
}

/// One failed action, AWS IoT's error-action shape.
pub struct Failure {
    pub action: String,
    pub message: String,
}

/// The document an error action receives (AWS IoT's error action payload,
/// plus Weir's receive timestamp).
pub fn error_document(rule: &str, ingest: &Ingest, failures: &[Failure]) -> Value {
    use base64::Engine as _;
    json!({
        "ruleName": rule,
        "topic": ingest.topic,
        "clientId": &*ingest.from.client_id,
        "receivedAt": ingest.received_at,
        "base64OriginalPayload": base64::engine::general_purpose::STANDARD.encode(&ingest.payload),
        "failures": failures.iter().map(|f| json!({
            "failedAction": f.action,
            "failedResource": f.action,
            "errorMessage": f.message,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_numbers_only() {
        let value = json!({"t": 21.5, "ok": true, "env": {"h": 40, "s": "x"}, "id": "d", "": 1});
        let m = metrics(&value);
        let names: Vec<_> = m.iter().map(|m| (&*m.name, m.value)).collect();
        assert_eq!(names, vec![("t", 21.5), ("env.h", 40.0)]);
    }

    #[test]
    fn passthrough_keeps_the_payload_as_sent() {
        let raw = br#"{ "t": 21.50, "n": 1e2 }"#;
        let value: Value = serde_json::from_slice(raw).unwrap();
        let out = Output::passthrough(&value, raw);
        assert_eq!(out.payload, r#"{ "t": 21.50, "n": 1e2 }"#);
        let names: Vec<_> = out.metrics.iter().map(|m| (&*m.name, m.value)).collect();
        assert_eq!(names, vec![("t", 21.5), ("n", 100.0)]);
        // A computed output is serialized.
        assert_eq!(Output::new(&value).payload, r#"{"t":21.5,"n":100.0}"#);
    }
}
