//! # notify: every message as a notification
//!
//! A sink plugin, usually routed alerts (`SELECT * FROM '$weir/alerts/+'`).
//! Each message becomes one notification to the `target` setting (an
//! operator-configured `[notify.<target>]`, for example an SNS topic): the
//! body is the message payload; the subject is the `subject` setting with
//! `{device}`, `{device_type}`, and `{<field>}` of the payload filled in;
//! the string attributes `device` and `device_type` (and the payload's
//! `kind` and `metric` when present) let subscribers filter.
//!
//! ## Settings
//!
//! | key       | default                           | meaning |
//! |-----------|-----------------------------------|---------|
//! | `target`  | (none)                            | the notify target (required) |
//! | `subject` | `Weir alert: {device} {metric}`   | subject template; `{name}` is a payload field, the message's device or device_type |
//!
//! ## Grants
//!
//! `notify = ["<target>"]`.

use weir_plugin::notify::{self, Notification};
use weir_plugin::{config, export_sink, Message, Sink};

/// The plugin instance.
pub struct Notify {
    target: String,
    subject: String,
}

/// Fill `{name}` placeholders from the payload, the device and device type.
pub fn fill(template: &str, m: &Message, payload: &serde_json::Value) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &after[..close];
        let value = match name {
            "device" => payload
                .get("device")
                .and_then(|v| v.as_str())
                .unwrap_or(&m.device)
                .to_string(),
            "device_type" => m.device_type.clone(),
            _ => match payload.get(name) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            },
        };
        out.push_str(&value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out.trim().to_string()
}

impl Notify {
    pub fn with(target: impl Into<String>, subject: impl Into<String>) -> Self {
        Notify {
            target: target.into(),
            subject: subject.into(),
        }
    }

    /// The notification for one message.
    pub fn notification(&self, m: &Message) -> Notification {
        let payload: serde_json::Value =
            serde_json::from_str(&m.payload).unwrap_or(serde_json::Value::Null);
        let mut n = Notification::new(m.payload.clone()).subject(fill(&self.subject, m, &payload));
        let device = payload
            .get("device")
            .and_then(|v| v.as_str())
            .unwrap_or(&m.device)
            .to_string();
        n = n.attribute("device", device);
        if !m.device_type.is_empty() {
            n = n.attribute("device_type", m.device_type.clone());
        }
        for key in ["kind", "metric"] {
            if let Some(v) = payload.get(key).and_then(|v| v.as_str()) {
                n = n.attribute(key, v);
            }
        }
        n
    }
}

impl Sink for Notify {
    fn new() -> Result<Self, String> {
        let target = config::get("target")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or("setting `target` is required (the name of a [notify.<target>] in weir.toml)")?;
        let subject =
            config::get("subject").unwrap_or_else(|| "Weir alert: {device} {metric}".into());
        Ok(Notify::with(target, subject))
    }

    fn write(&mut self, batch: Vec<Message>) -> Result<(), String> {
        let notes: Vec<Notification> = batch.iter().map(|m| self.notification(m)).collect();
        notify::send(&self.target, &notes)
    }
}

export_sink!(Notify);

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(payload: &str) -> Message {
        Message {
            rule: "alerts".into(),
            topic: "$weir/alerts/dev-1".into(),
            client_id: "weir".into(),
            device: "weir".into(),
            device_type: String::new(),
            received_at: 1,
            device_time: None,
            metrics: vec![],
            payload: payload.into(),
        }
    }

    #[test]
    fn subject_and_attributes_come_from_the_alert() {
        let n = Notify::with("ops", "Weir alert: {device} {metric} z={z}").notification(&msg(
            r#"{"device":"dev-1","metric":"temperature","z":7.5,"kind":"anomaly"}"#,
        ));
        assert_eq!(
            n.subject.as_deref(),
            Some("Weir alert: dev-1 temperature z=7.5")
        );
        assert_eq!(
            n.body,
            r#"{"device":"dev-1","metric":"temperature","z":7.5,"kind":"anomaly"}"#
        );
        assert_eq!(
            n.attributes,
            vec![
                ("device".to_string(), "dev-1".to_string()),
                ("kind".to_string(), "anomaly".to_string()),
                ("metric".to_string(), "temperature".to_string()),
            ]
        );
    }

    #[test]
    fn missing_fields_and_unclosed_braces() {
        let n = Notify::with("ops", "x {nope} {device").notification(&msg("not json"));
        assert_eq!(n.subject.as_deref(), Some("x  {device"));
        assert_eq!(
            n.attributes,
            vec![("device".to_string(), "weir".to_string())]
        );
    }
}
