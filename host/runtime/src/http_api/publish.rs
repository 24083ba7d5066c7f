//! Publish (`POST /topics/<topic>?qos=&retain=`): a message sent over HTTP
//! enters as a device's would, to the rules and to subscribers, under the
//! same topic policy; `$aws/rules/<rule>/…` is Basic Ingest.

use super::error::ApiError;
use super::Api;
use crate::engine::{Ingest, Publisher};
use crate::listener::{basic_ingest, policy};
use bytes::Bytes;
use rumqttd::protocol::Packet;
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
    /// Publish `payload` on `topic` as `from`: to the engine, then (unless
    /// Basic Ingest) to subscribers.
    pub async fn inject(
        &self,
        topic: &str,
        payload: Bytes,
        delivery: Delivery,
        from: Arc<Publisher>,
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
            properties: None,
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
        link.send(Packet::Publish(publish, None))
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
