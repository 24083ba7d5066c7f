//! GetThingShadow, UpdateThingShadow and DeleteThingShadow
//! (`GET|POST|DELETE /things/<thing>/shadow[?name=<shadow>]`), and
//! ListNamedShadowsForThing.
//!
//! The three shadow operations are requests to the shadow service on their
//! MQTT topics (`$aws/things/<thing>/shadow[/name/<shadow>]/<op>`), so one
//! implementation answers devices and HTTP alike, on the thing's own
//! worker, and an update made over HTTP reaches devices as `…/delta` and
//! `…/documents` exactly as one made over MQTT. The request carries a
//! `clientToken` (the caller's, or one the API makes and takes out of the
//! response) by which its answer is recognised.

use super::error::ApiError;
use super::publish::Delivery;
use super::{Api, Caller};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value};

/// The shadow service's limit on a request document.
const MAX_DOCUMENT: usize = 8 * 1024;
/// The longest `clientToken` AWS accepts.
const MAX_TOKEN: usize = 64;
/// The longest shadow name AWS accepts.
const MAX_SHADOW_NAME: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Update,
    Delete,
}

impl Op {
    fn topic_word(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// Check a thing name and optional shadow name from the request.
pub fn check_names(thing: &str, shadow: Option<&str>) -> Result<(), ApiError> {
    if !weir_identity::registry::is_valid_thing_name(thing) {
        return Err(ApiError::invalid(format!(
            "thing name {thing:?} must be 1-128 characters of [a-zA-Z0-9:_-]"
        )));
    }
    if let Some(s) = shadow {
        if s.len() > MAX_SHADOW_NAME || !weir_identity::registry::is_valid_thing_name(s) {
            return Err(ApiError::invalid(format!(
                "shadow name {s:?} must be 1-64 characters of [a-zA-Z0-9:_-]"
            )));
        }
    }
    Ok(())
}

/// The request topic of `op` on a thing's classic or named shadow.
pub fn request_topic(op: Op, thing: &str, shadow: Option<&str>) -> String {
    match shadow {
        Some(s) => format!("$aws/things/{thing}/shadow/name/{s}/{}", op.topic_word()),
        None => format!("$aws/things/{thing}/shadow/{}", op.topic_word()),
    }
}

/// The document to publish for `op` with `body`, and its token; whether
/// the token is one the API made (taken out of the answer).
pub fn request_document(op: Op, body: &[u8]) -> Result<(Vec<u8>, String, bool), ApiError> {
    let made = || format!("weir-http-{}", uuid::Uuid::new_v4().simple());
    if op != Op::Update {
        // AWS's REST get and delete have no body.
        let token = made();
        let doc = serde_json::json!({ "clientToken": token }).to_string();
        return Ok((doc.into_bytes(), token, true));
    }
    let too_large = || ApiError::too_large("The payload exceeds the maximum size allowed");
    if body.len() > MAX_DOCUMENT {
        return Err(too_large());
    }
    let mut doc: Map<String, Value> =
        serde_json::from_slice(body).map_err(|_| ApiError::invalid("Invalid JSON"))?;
    let (token, made) = match doc.get("clientToken") {
        None => {
            let t = made();
            doc.insert("clientToken".into(), Value::String(t.clone()));
            (t, true)
        }
        Some(Value::String(t)) if t.len() <= MAX_TOKEN => (t.clone(), false),
        Some(_) => return Err(ApiError::invalid("Invalid clientToken")),
    };
    let bytes = serde_json::to_vec(&doc).map_err(|_| ApiError::invalid("Invalid JSON"))?;
    if bytes.len() > MAX_DOCUMENT {
        return Err(too_large());
    }
    Ok((bytes, token, made))
}

/// The HTTP response for the service's answer.
pub fn response(accepted: bool, payload: &[u8], strip_token: bool) -> Result<Response, ApiError> {
    let doc: Value = serde_json::from_slice(payload).map_err(|_| {
        ApiError::from_rejection(500, "the shadow service answered with invalid JSON")
    })?;
    if !accepted {
        let code = doc.get("code").and_then(Value::as_u64).unwrap_or(500);
        let message = doc
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("rejected by the shadow service");
        return Err(ApiError::from_rejection(code, message));
    }
    let body = if strip_token {
        let mut doc = doc;
        if let Some(m) = doc.as_object_mut() {
            m.remove("clientToken");
        }
        doc.to_string()
    } else {
        String::from_utf8_lossy(payload).into_owned()
    };
    Ok(super::json_response(StatusCode::OK, body))
}

impl Api {
    /// One shadow operation through the shadow service, for `caller`
    /// (a device only on its policy's topics).
    pub async fn shadow(
        &self,
        op: Op,
        thing: &str,
        shadow: Option<&str>,
        body: &[u8],
        caller: &Caller,
    ) -> Result<Response, ApiError> {
        check_names(thing, shadow)?;
        let topic = request_topic(op, thing, shadow);
        caller.may_publish(&topic)?;
        let (doc, token, made) = request_document(op, body)?;
        let mut waiting = self.answers.expect(&topic, &token);
        let from = caller.from.clone();
        self.inject(&topic, Bytes::from(doc), Delivery::default(), from, None)
            .await?;
        let answer = match tokio::time::timeout(self.answer_timeout, &mut waiting.rx).await {
            Ok(Ok(answer)) => answer,
            _ => {
                self.metrics.count("http.shadow_timeouts", 1);
                tracing::warn!(topic, "no answer from the shadow service");
                return Err(ApiError::unavailable(format!(
                    "no answer from the shadow service within {} ms: is a rule routing $aws/things/+/shadow/+ to the shadow plugin loaded (rules/shadow-service.toml)?",
                    self.answer_timeout.as_millis()
                )));
            }
        };
        response(answer.accepted, &answer.payload, made)
    }

    /// ListNamedShadowsForThing: the thing's named shadows (not deleted) in
    /// name order, `page_size` at a time after `next_token`. Read from the
    /// store, so a shadow made in the last checkpoint interval may not be
    /// listed yet. A device may list the things whose classic shadow its
    /// policy lets it get.
    pub fn list_named(
        &self,
        thing: &str,
        page_size: usize,
        next_token: Option<&str>,
        caller: &Caller,
    ) -> Result<Response, ApiError> {
        check_names(thing, None)?;
        caller.may_publish(&request_topic(Op::Get, thing, None))?;
        let prefix = format!("{thing}/");
        let keys = self
            .kv
            .keys_with_prefix(crate::admin::SHADOW_BUCKET, &prefix)
            .map_err(|e| ApiError::from_rejection(500, &format!("store: {e}")))?;
        let after = next_token.map(|t| format!("{prefix}{t}"));
        let live = |key: &str| {
            self.kv
                .get(crate::admin::SHADOW_BUCKET, key)
                .ok()
                .flatten()
                .and_then(|v| serde_json::from_slice::<Value>(&v).ok())
                .is_some_and(|doc| doc.get("deleted") != Some(&Value::Bool(true)))
                .then_some(())
        };
        let (page, more) = crate::store::kv::page(keys, after.as_deref(), page_size, live);
        let name = |key: &str| key[prefix.len()..].to_string();
        let mut doc = serde_json::json!({
            "results": page.iter().map(|(key, _)| name(key)).collect::<Vec<_>>(),
            "timestamp": crate::clock::now_ms() / 1000,
        });
        if let Some(last) = more {
            doc["nextToken"] = Value::String(name(&last));
        }
        Ok(super::json_response(StatusCode::OK, doc.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_names() {
        assert_eq!(
            request_topic(Op::Update, "lamp", None),
            "$aws/things/lamp/shadow/update"
        );
        assert_eq!(
            request_topic(Op::Delete, "lamp", Some("config")),
            "$aws/things/lamp/shadow/name/config/delete"
        );
        assert!(check_names("lamp-1:a_b", Some("cfg")).is_ok());
        assert!(check_names("lamp/1", None).is_err());
        assert!(check_names("lamp", Some("a+b")).is_err());
        assert!(check_names("lamp", Some(&"x".repeat(65))).is_err());
    }

    #[test]
    fn request_documents_carry_a_token() {
        let (doc, token, made) = request_document(Op::Get, b"ignored").unwrap();
        assert!(made && token.starts_with("weir-http-") && token.len() <= MAX_TOKEN);
        let v: Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(v["clientToken"], token.as_str());

        let (doc, token, made) = request_document(
            Op::Update,
            br#"{"state":{"desired":{"on":true}},"clientToken":"mine"}"#,
        )
        .unwrap();
        assert!(!made);
        assert_eq!(token, "mine");
        let v: Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(v["state"]["desired"]["on"], true);

        let (doc, _, made) = request_document(Op::Update, br#"{"state":{}}"#).unwrap();
        assert!(made);
        assert!(String::from_utf8(doc)
            .unwrap()
            .starts_with(r#"{"state":{},"clientToken":"weir-http-"#));
    }

    #[test]
    fn bad_update_documents_are_answered_here() {
        let kind = |body: &[u8]| request_document(Op::Update, body).unwrap_err().kind;
        assert_eq!(kind(b"{not json"), "InvalidRequestException");
        assert_eq!(kind(b"[1]"), "InvalidRequestException");
        assert_eq!(kind(br#"{"clientToken":5}"#), "InvalidRequestException");
        let long = format!(r#"{{"clientToken":"{}"}}"#, "t".repeat(65));
        assert_eq!(kind(long.as_bytes()), "InvalidRequestException");
        let big = format!(
            r#"{{"state":{{"reported":{{"x":"{}"}}}}}}"#,
            "y".repeat(9000)
        );
        assert_eq!(kind(big.as_bytes()), "RequestEntityTooLargeException");
    }

    #[test]
    fn answers_become_responses() {
        let ok = response(true, br#"{"version":2,"clientToken":"weir-http-1"}"#, true).unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        let e = response(
            false,
            br#"{"code":409,"message":"Version conflict"}"#,
            false,
        )
        .unwrap_err();
        assert_eq!(
            (e.status, e.kind),
            (StatusCode::CONFLICT, "ConflictException")
        );
        assert_eq!(e.message, "Version conflict");
    }
}
