//! GetRetainedMessage (`GET /retainedMessage/<topic>`) and
//! ListRetainedMessages (`GET /retainedMessage`), read from the retained
//! messages the store records ([`crate::broker::retained`]).

use super::error::ApiError;
use super::Api;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

impl Api {
    /// The retained message of `topic`: its payload (base64, as AWS's
    /// blob), QoS and time.
    pub fn get_retained(&self, topic: &str) -> Result<Response, ApiError> {
        let stored = self.retained.get(topic).ok_or_else(|| {
            ApiError::not_found(format!("no retained message on topic {topic:?}"))
        })?;
        Ok(super::json_response(
            StatusCode::OK,
            json!({
                "topic": topic,
                "payload": stored.payload,
                "qos": stored.qos,
                "lastModifiedTime": stored.last_modified,
            })
            .to_string(),
        ))
    }

    /// A page of retained topics, in topic order.
    pub fn list_retained(&self, max: usize, next_token: Option<&str>) -> Response {
        let (page, next) = self.retained.list(next_token, max);
        let topics: Vec<Value> = page
            .iter()
            .map(|(topic, s)| {
                json!({
                    "topic": topic,
                    "payloadSize": s.bytes().len(),
                    "qos": s.qos,
                    "lastModifiedTime": s.last_modified,
                })
            })
            .collect();
        let mut doc = json!({ "retainedTopics": topics });
        if let Some(token) = next {
            doc["nextToken"] = Value::String(token);
        }
        super::json_response(StatusCode::OK, doc.to_string())
    }
}
