//! Turning one routed message into what the sink emits: the topic to publish
//! on and the one-line JSON document. Pure: no host calls.

use serde_json::Value;
use weir_plugin::Message;

/// An alert ready to go out.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// `<topic_prefix>/<device>`.
    pub topic: String,
    /// The alert as JSON on one line (the publish payload and the journal
    /// line).
    pub line: String,
}

/// Prepare a message: its payload must be JSON. The device is the payload's
/// `device` field when it is a non-empty string (the detector's own
/// device, whatever the routing rule set), else the message's device.
pub fn prepare(msg: &Message, topic_prefix: &str) -> Result<Prepared, String> {
    let payload = msg.payload.trim();
    let value: Value =
        serde_json::from_str(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let device = value
        .get("device")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
        .unwrap_or(&msg.device);
    if device.is_empty() {
        return Err("alert names no device".into());
    }
    let line = if payload.contains(['\n', '\r']) {
        // Keep the journal one document per line.
        serde_json::to_string(&value).map_err(|e| e.to_string())?
    } else {
        payload.to_string()
    };
    Ok(Prepared {
        topic: format!("{topic_prefix}/{}", topic_level(device)),
        line,
    })
}

/// A device id as one topic level: MQTT separators and wildcards, which a
/// device id taken from a payload could contain, become `_`.
pub fn topic_level(device: &str) -> String {
    device
        .chars()
        .map(|c| match c {
            '/' | '+' | '#' | '\0' => '_',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(device: &str, payload: &str) -> Message {
        Message {
            device: device.into(),
            payload: payload.into(),
            ..Default::default()
        }
    }

    #[test]
    fn device_from_payload_first() {
        let p = prepare(
            &msg("weir", r#"{"kind":"zscore","device":"dev-1","z":4.2}"#),
            "weir/alerts",
        )
        .unwrap();
        assert_eq!(p.topic, "weir/alerts/dev-1");
        assert_eq!(p.line, r#"{"kind":"zscore","device":"dev-1","z":4.2}"#);
    }

    #[test]
    fn device_from_message_otherwise() {
        let p = prepare(&msg("dev-2", r#"{"kind":"trend"}"#), "weir/alerts").unwrap();
        assert_eq!(p.topic, "weir/alerts/dev-2");
        let p = prepare(&msg("dev-2", r#"{"device":""}"#), "x").unwrap();
        assert_eq!(p.topic, "x/dev-2");
        assert!(prepare(&msg("", r#"{"a":1}"#), "x").is_err());
    }

    #[test]
    fn multi_line_payloads_become_one_line_in_order() {
        let p = prepare(&msg("d", "{\n  \"z\": 1,\n  \"a\": 2\n}\n"), "x").unwrap();
        assert_eq!(p.line, r#"{"z":1,"a":2}"#);
    }

    #[test]
    fn bad_payloads_are_errors() {
        assert!(prepare(&msg("d", "not json"), "x").is_err());
        assert!(prepare(&msg("d", ""), "x").is_err());
    }

    #[test]
    fn wildcards_never_reach_the_topic() {
        let p = prepare(&msg("d", r#"{"device":"a/b+#"}"#), "weir/alerts").unwrap();
        assert_eq!(p.topic, "weir/alerts/a_b__");
    }
}
