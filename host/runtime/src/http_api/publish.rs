//! Publish (`POST /topics/<topic>?qos=&retain=`): a message sent over HTTP
//! enters as a device's would, to the rules and to subscribers, under the
//! same topic policy; `$aws/rules/<rule>/…` is Basic Ingest.

use super::error::ApiError;
use super::Api;
use crate::engine::{Ingest, Publisher};
use crate::listener::{basic_ingest, packets, policy};
use axum::http::HeaderMap;
use base64::Engine as _;
use bytes::Bytes;
use rumqttd::protocol::{Packet, PublishProperties};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// How a message is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivery {
    pub qos1: bool,
    pub retain: bool,
}

impl Delivery {
    /// From the request's `qos` and `retain` parameters (AWS's names).
    pub fn from_query(query: &[(String, String)]) -> Result<Delivery, ApiError> {
        let mut d = Delivery::default();
        for (k, v) in query {
            match (k.as_str(), v.as_str()) {
                ("qos", "0") => d.qos1 = false,
                ("qos", "1") => d.qos1 = true,
                ("qos", other) => {
                    return Err(ApiError::invalid(format!(
                        "qos must be 0 or 1, not {other:?}"
                    )))
                }
                ("retain", "true") => d.retain = true,
                ("retain", "false") => d.retain = false,
                ("retain", other) => {
                    return Err(ApiError::invalid(format!(
                        "retain must be true or false, not {other:?}"
                    )))
                }
                _ => {}
            }
        }
        Ok(d)
    }
}

/// The MQTT 5 properties of a Publish, as AWS's API passes them: query
/// `contentType`, `responseTopic` and `messageExpiry` (seconds); headers
/// `x-amz-mqtt5-user-properties` (base64 of a JSON list of one-key
/// objects, `[{"site":"lab"}]`), `x-amz-mqtt5-payload-format-indicator`
/// (`UTF8_DATA` or `UNSPECIFIED_BYTES`) and `x-amz-mqtt5-correlation-data`
/// (base64). `None` when the request has none.
pub fn properties(
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Option<PublishProperties>, ApiError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let header = |name: &str| -> Result<Option<&str>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| ApiError::invalid(format!("header {name} is not ASCII")))
            })
            .transpose()
    };
    let mut props = PublishProperties::default();
    for (k, v) in query {
        match k.as_str() {
            "contentType" => props.content_type = Some(v.clone()),
            "responseTopic" => {
                if v.is_empty() || v.contains(['+', '#']) {
                    return Err(ApiError::invalid("responseTopic must be a topic name"));
                }
                props.response_topic = Some(v.clone());
            }
            "messageExpiry" => {
                let s: u32 = v
                    .parse()
                    .map_err(|_| ApiError::invalid("messageExpiry must be whole seconds"))?;
                props.message_expiry_interval = Some(s);
            }
            _ => {}
        }
    }
    if let Some(v) = header("x-amz-mqtt5-user-properties")? {
        let bad = || {
            ApiError::invalid(
                "x-amz-mqtt5-user-properties must be base64 of a JSON list of one-key objects of strings",
            )
        };
        let json = b64.decode(v.trim()).map_err(|_| bad())?;
        // The AWS SDKs send the header as a JSON value: the list itself, or
        // (boto3, given the list as a string) a JSON string holding it.
        let mut value: serde_json::Value = serde_json::from_slice(&json).map_err(|_| bad())?;
        if let serde_json::Value::String(inner) = &value {
            value = serde_json::from_str(inner).map_err(|_| bad())?;
        }
        let list: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_value(value).map_err(|_| bad())?;
        for entry in list {
            for (key, value) in entry {
                let value = value.as_str().ok_or_else(bad)?.to_string();
                props.user_properties.push((key, value));
            }
        }
    }
    match header("x-amz-mqtt5-payload-format-indicator")? {
        None => {}
        Some("UTF8_DATA") => props.payload_format_indicator = Some(1),
        Some("UNSPECIFIED_BYTES") => props.payload_format_indicator = Some(0),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "payloadFormatIndicator must be UTF8_DATA or UNSPECIFIED_BYTES, not {other:?}"
            )))
        }
    }
    if let Some(v) = header("x-amz-mqtt5-correlation-data")? {
        let data = b64
            .decode(v.trim())
            .map_err(|_| ApiError::invalid("correlationData must be base64"))?;
        props.correlation_data = Some(Bytes::from(data));
    }
    Ok((props != PublishProperties::default()).then_some(props))
}

/// Why a topic cannot be published to over HTTP, if it cannot.
pub fn refuse(topic: &str) -> Option<ApiError> {
    if topic.contains(['+', '#', '\0']) {
        return Some(ApiError::invalid(format!(
            "topic {topic:?} is not a topic name (no wildcards)"
        )));
    }
    if let Some(why) = policy::refuse_publish(topic) {
        return Some(ApiError::forbidden(format!(
            "publishing to {topic:?} is refused: {why}"
        )));
    }
    if crate::jobs::device_api::is_request(topic)
        || crate::identity::provisioning::is_request(topic)
    {
        return Some(ApiError::forbidden(format!(
            "{topic:?} is answered to the MQTT connection that asks; publish it over MQTT"
        )));
    }
    None
}

impl Api {
    /// Publish `payload` on `topic` as `from`, with MQTT 5 `props`: to the
    /// engine, then (unless Basic Ingest) to subscribers.
    pub async fn inject(
        &self,
        topic: &str,
        payload: Bytes,
        delivery: Delivery,
        from: Arc<Publisher>,
        props: Option<PublishProperties>,
    ) -> Result<(), ApiError> {
        let (rule_topic, basic_ingest) = match basic_ingest::split(topic) {
            Some((rule, rest)) => (rest, Some(rule.into())),
            None => (topic, None),
        };
        let to_broker = basic_ingest.is_none();
        self.metrics.messages_received.fetch_add(1, Relaxed);
        let ingest = Ingest {
            topic: rule_topic.to_string(),
            payload: payload.clone(),
            from,
            properties: props.as_ref().and_then(packets::rule_properties),
            basic_ingest,
            received_at: crate::clock::now_ms(),
            hops: 0,
        };
        if !self.engine.send(ingest).await {
            return Err(ApiError::unavailable("the engine is shutting down"));
        }
        if !to_broker {
            self.metrics.count("basic_ingest.messages", 1);
            return Ok(());
        }
        if delivery.retain {
            let qos = u8::from(delivery.qos1);
            self.retained
                .record(topic, &payload, qos, crate::clock::now_ms());
        }
        let publish = if delivery.qos1 {
            let pkid = self.next_pkid();
            crate::broker::qos1_publish(topic, payload, delivery.retain, pkid)
                .ok_or_else(|| ApiError::invalid("topic longer than 65535 bytes"))?
        } else {
            rumqttd::protocol::Publish::new(
                Bytes::from(crate::broker::to_router(topic).into_owned()),
                payload,
                delivery.retain,
            )
        };
        let mut link = self.publisher.lock().await;
        link.send(Packet::Publish(publish, props))
            .await
            .map_err(|e| ApiError::unavailable(format!("broker: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn qos_and_retain_as_aws_spells_them() {
        assert_eq!(Delivery::from_query(&[]), Ok(Delivery::default()));
        assert_eq!(
            Delivery::from_query(&q(&[
                ("qos", "1"),
                ("retain", "true"),
                ("contentType", "x")
            ])),
            Ok(Delivery {
                qos1: true,
                retain: true
            })
        );
        assert!(Delivery::from_query(&q(&[("qos", "2")])).is_err());
        assert!(Delivery::from_query(&q(&[("retain", "yes")])).is_err());
    }

    #[test]
    fn mqtt5_properties_as_aws_passes_them() {
        use axum::http::HeaderValue;
        assert_eq!(properties(&[], &HeaderMap::new()), Ok(None));
        let mut h = HeaderMap::new();
        // base64 of [{"site":"lab"},{"site":"roof"},{"fw":"2.1"}]
        let users = base64::engine::general_purpose::STANDARD
            .encode(r#"[{"site":"lab"},{"site":"roof"},{"fw":"2.1"}]"#);
        h.insert(
            "x-amz-mqtt5-user-properties",
            HeaderValue::from_str(&users).unwrap(),
        );
        h.insert(
            "x-amz-mqtt5-payload-format-indicator",
            HeaderValue::from_static("UTF8_DATA"),
        );
        h.insert(
            "x-amz-mqtt5-correlation-data",
            HeaderValue::from_static("AQL/"),
        );
        let q = q(&[
            ("contentType", "application/json"),
            ("responseTopic", "reply/x"),
            ("messageExpiry", "60"),
        ]);
        let p = properties(&q, &h).unwrap().expect("properties");
        assert_eq!(p.content_type.as_deref(), Some("application/json"));
        assert_eq!(p.response_topic.as_deref(), Some("reply/x"));
        assert_eq!(p.message_expiry_interval, Some(60));
        assert_eq!(p.payload_format_indicator, Some(1));
        assert_eq!(p.correlation_data.as_deref(), Some(&[1u8, 2, 255][..]));
        assert_eq!(
            p.user_properties,
            [("site", "lab"), ("site", "roof"), ("fw", "2.1")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        // As boto3 sends it: the list as a JSON string.
        let mut h = HeaderMap::new();
        let users = base64::engine::general_purpose::STANDARD.encode(r#""[{\"site\":\"lab\"}]""#);
        h.insert(
            "x-amz-mqtt5-user-properties",
            HeaderValue::from_str(&users).unwrap(),
        );
        let p = properties(&[], &h).unwrap().expect("properties");
        assert_eq!(p.user_properties, [("site".to_string(), "lab".to_string())]);
        let mut bad = HeaderMap::new();
        bad.insert(
            "x-amz-mqtt5-user-properties",
            HeaderValue::from_static("not base64!"),
        );
        assert!(properties(&[], &bad).is_err());
        assert!(properties(&q_one("responseTopic", "a/#"), &HeaderMap::new()).is_err());
        assert!(properties(&q_one("messageExpiry", "-1"), &HeaderMap::new()).is_err());
    }

    fn q_one(k: &str, v: &str) -> Vec<(String, String)> {
        q(&[(k, v)])
    }

    #[test]
    fn topics_http_may_not_publish() {
        assert!(refuse("dt/thermostat/dev-1/telemetry").is_none());
        assert!(refuse("$aws/things/lamp/shadow/update").is_none());
        assert!(refuse("$aws/rules/telemetry/dt/x").is_none());
        assert_eq!(refuse("dt/+/x").unwrap().kind, "InvalidRequestException");
        // Answers only the shadow service may publish; device APIs answered over MQTT.
        assert_eq!(
            refuse("$aws/things/lamp/shadow/update/accepted")
                .unwrap()
                .kind,
            "ForbiddenException"
        );
        assert!(refuse("$aws/things/lamp/jobs/get").is_some());
        assert!(refuse("$aws/certificates/create/json").is_some());
    }
}
