//! The AWS IoT data-plane HTTP API (`iot-data`), for what AWS's SDKs call
//! over HTTP: boto3's `iot-data` client, the AWS CLI's `aws iot-data`, a
//! backend that sets a device's desired state, a device that can only
//! make HTTP requests.
//!
//! | operation | request |
//! |---|---|
//! | GetThingShadow | `GET /things/<thing>/shadow[?name=<shadow>]` |
//! | UpdateThingShadow | `POST /things/<thing>/shadow[?name=<shadow>]` |
//! | DeleteThingShadow | `DELETE /things/<thing>/shadow[?name=<shadow>]` |
//! | ListNamedShadowsForThing | `GET /api/things/shadow/ListNamedShadowsForThing/<thing>` |
//! | Publish | `POST /topics/<topic>[?qos=0\|1&retain=true\|false]` |
//! | GetRetainedMessage | `GET /retainedMessage/<topic>` |
//! | ListRetainedMessages | `GET /retainedMessage[?maxResults=&nextToken=]` |
//!
//! Off unless `[http] listen` is set. Requests are signed with AWS
//! Signature Version 4 by one of `[[http.credentials]]` ([`sigv4`]); with
//! none configured the API serves only a loopback address, unchecked.
//! With the fleet CA, `[http] tls_listen` serves the same API over HTTPS
//! to devices holding their certificate, as AWS's port 8443 does
//! ([`tls`]): each request is the thing's, under the thing's policy.
//! Errors are AWS's exceptions ([`error`]), so an SDK raises what it would
//! against AWS.
//!
//! - [`config`]: the `[http]` table.
//! - [`sigv4`]: checking a request's signature.
//! - [`shadow`]: the shadow operations, through the shadow service.
//! - [`answers`]: the shadow service's answers for requests waiting on them.
//! - [`publish`]: Publish, and how any HTTP request enters the engine.
//! - [`retained`]: reading the retained messages.
//! - [`tls`]: the HTTPS listener for devices (mTLS).
//! - [`error`]: AWS's error responses.

pub mod answers;
pub mod config;
pub mod error;
pub mod publish;
pub mod retained;
pub mod shadow;
pub mod sigv4;
pub mod tls;

pub use config::HttpConfig;

use crate::broker::retained::Retained;
use crate::broker::{Broker, BrokerError};
use crate::engine::{EngineHandle, Publisher};
use crate::identity::IdentityService;
use crate::metrics::Metrics;
use crate::store::KvStore;
use answers::Answers;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use error::ApiError;
use percent_encoding::percent_decode_str;
use rumqttd::local::LinkTx;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use weir_identity::policy::ResolvedPolicy;

/// The client id of messages published over HTTP (what `clientid()`
/// returns for them).
pub const HTTP_CLIENT_ID: &str = "weir-http";

/// The parts of the running host the API works through.
pub struct Host<'a> {
    pub broker: &'a Broker,
    pub engine: EngineHandle,
    pub kv: Arc<KvStore>,
    pub metrics: Arc<Metrics>,
    /// The fleet CA and registry, when they exist.
    pub identity: Option<Arc<IdentityService>>,
    /// Retained messages as recorded in the store.
    pub retained: Arc<Retained>,
}

/// The API's shared state.
pub struct Api {
    engine: EngineHandle,
    kv: Arc<KvStore>,
    metrics: Arc<Metrics>,
    answers: Arc<Answers>,
    publisher: tokio::sync::Mutex<LinkTx>,
    verifier: Option<sigv4::Verifier>,
    /// The fleet CA and registry, for devices on the HTTPS listener.
    identity: Option<Arc<IdentityService>>,
    retained: Arc<Retained>,
    answer_timeout: Duration,
    max_body: usize,
    pkid: AtomicU16,
}

impl Api {
    /// The API's state, and the task handing out the shadow service's
    /// answers (it ends when `stop` changes).
    pub fn start(
        config: &HttpConfig,
        max_body: usize,
        host: Host<'_>,
        stop: watch::Receiver<bool>,
    ) -> Result<(Arc<Api>, tokio::task::JoinHandle<()>), BrokerError> {
        let (answers, task) = Answers::start(host.broker, stop)?;
        let api = Arc::new(Api {
            engine: host.engine,
            kv: host.kv,
            metrics: host.metrics,
            answers,
            publisher: tokio::sync::Mutex::new(host.broker.publisher("weir.internal.http")?),
            verifier: (!config.credentials.is_empty())
                .then(|| sigv4::Verifier::new(&config.credentials)),
            identity: host.identity,
            retained: host.retained,
            answer_timeout: Duration::from_millis(config.answer_timeout_ms),
            max_body,
            pkid: AtomicU16::new(1),
        });
        Ok((api, task))
    }

    /// A packet id for a QoS 1 publish (never 0).
    fn next_pkid(&self) -> u16 {
        loop {
            let id = self.pkid.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }
}

/// Serve the API on `listener` until `shutdown` changes.
pub async fn serve(listener: TcpListener, api: Arc<Api>, mut shutdown: watch::Receiver<bool>) {
    let app = axum::Router::new().fallback(handle).with_state(api);
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = shutdown.changed().await;
    })
    .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the HTTP API stopped");
    }
}

async fn handle(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    api.respond(peer, None, request).await
}

/// Who made a request: what its messages are published as, and for a
/// device (HTTPS with its certificate) the policy its topics must pass.
pub struct Caller {
    pub from: Arc<Publisher>,
    policy: Option<ResolvedPolicy>,
}

impl Caller {
    /// Refuse a device whose policy does not let it subscribe to `topic`.
    fn may_read(&self, topic: &str) -> Result<(), ApiError> {
        match &self.policy {
            Some(p) if !p.allows_subscribe(topic) => Err(ApiError::forbidden(format!(
                "{topic:?} is not allowed by the device's policy"
            ))),
            _ => Ok(()),
        }
    }

    /// Whether the caller is a device (HTTPS with its certificate).
    fn is_device(&self) -> bool {
        self.policy.is_some()
    }

    /// Refuse a device whose policy does not let it publish on `topic`.
    fn may_publish(&self, topic: &str) -> Result<(), ApiError> {
        match &self.policy {
            Some(p) if !p.allows_publish(topic) => Err(ApiError::forbidden(format!(
                "{topic:?} is not allowed by the device's policy"
            ))),
            _ => Ok(()),
        }
    }
}

impl Api {
    /// Answer one request from `peer`; `device_cert` is the client
    /// certificate of the HTTPS listener's connection.
    pub async fn respond(
        &self,
        peer: SocketAddr,
        device_cert: Option<&[u8]>,
        request: Request,
    ) -> Response {
        let (parts, body) = request.into_parts();
        self.metrics.count("http.requests", 1);
        let Ok(body) = axum::body::to_bytes(body, self.max_body).await else {
            self.metrics.count("http.errors", 1);
            return ApiError::too_large(format!(
                "the request body is over {} bytes",
                self.max_body
            ))
            .into_response();
        };
        let path = parts.uri.path();
        let caller = match device_cert {
            Some(cert) => self.device(cert, peer),
            None => self.signer(&parts, &body, peer),
        };
        let caller = match caller {
            Ok(c) => c,
            Err(e) => {
                self.metrics.count("http.unauthorized", 1);
                tracing::warn!(%peer, method = %parts.method, path, error = %e.message, "HTTP API request refused");
                return e.into_response();
            }
        };
        match route(self, &parts, body, &caller).await {
            Ok(r) => r,
            Err(e) => {
                self.metrics.count("http.errors", 1);
                tracing::debug!(method = %parts.method, path, status = %e.status, error = %e.message, "HTTP API error");
                e.into_response()
            }
        }
    }

    /// The caller of a request on the plain listener: the access key that
    /// signed it, when keys are configured.
    fn signer(
        &self,
        parts: &axum::http::request::Parts,
        body: &[u8],
        peer: SocketAddr,
    ) -> Result<Caller, ApiError> {
        let principal = match &self.verifier {
            None => None,
            Some(v) => {
                let signed = sigv4::Signed {
                    method: parts.method.as_str(),
                    path: parts.uri.path(),
                    query: parts.uri.query().unwrap_or(""),
                    headers: &parts.headers,
                    body,
                };
                let key = v
                    .verify(&signed, crate::clock::now_ms() / 1000)
                    .map_err(|e| ApiError::forbidden(e.to_string()))?;
                Some(key)
            }
        };
        Ok(Caller {
            from: Arc::new(Publisher {
                client_id: HTTP_CLIENT_ID.into(),
                principal,
                source_ip: Some(peer.ip().to_string()),
            }),
            policy: None,
        })
    }

    /// The caller holding a device certificate: the thing it is attached
    /// to, checked against the registry on every request (a certificate
    /// revoked while a connection stays open is refused at once).
    fn device(&self, cert: &[u8], peer: SocketAddr) -> Result<Caller, ApiError> {
        let identity = self
            .identity
            .as_ref()
            .ok_or_else(|| ApiError::forbidden("no fleet CA"))?;
        let principal = identity
            .authorize_device(cert)
            .map_err(|r| ApiError::forbidden(r.reason))?;
        let thing = principal
            .thing
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default();
        Ok(Caller {
            from: Publisher::device(
                &thing,
                Some(principal.certificate_id),
                peer.ip().to_string(),
            ),
            policy: Some(principal.policy),
        })
    }
}

/// Percent-decode one part of a request.
fn decode(s: &str) -> Result<String, ApiError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ApiError::invalid("the request path is not UTF-8"))
}

fn query_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// A page size parameter: `default` when absent, else 1 to `max`.
fn page_size(
    query: &[(String, String)],
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match param(query, name) {
        None => Ok(default),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::invalid(format!("{name} must be 1 to {max}"))),
    }
}

/// A response with a JSON body, as every answer of the API has.
fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    r
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn route(
    api: &Api,
    parts: &axum::http::request::Parts,
    body: Bytes,
    caller: &Caller,
) -> Result<Response, ApiError> {
    let (method, path) = (&parts.method, parts.uri.path());
    let from = caller.from.clone();
    let query = query_pairs(parts.uri.query().unwrap_or(""))?;
    let rest = path.trim_start_matches('/');
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["things", thing, "shadow"] => {
            let op = match *method {
                Method::GET => shadow::Op::Get,
                Method::POST => shadow::Op::Update,
                Method::DELETE => shadow::Op::Delete,
                _ => return Err(not_allowed(method, path)),
            };
            api.metrics.count("http.shadow_requests", 1);
            let thing = decode(thing)?;
            let name = param(&query, "name").filter(|n| !n.is_empty());
            api.shadow(op, &thing, name, &body, caller).await
        }
        ["api", "things", "shadow", "ListNamedShadowsForThing", thing] => {
            if method != Method::GET {
                return Err(not_allowed(method, path));
            }
            let page_size = page_size(&query, "pageSize", 25, 100)?;
            let thing = decode(thing)?;
            api.list_named(&thing, page_size, param(&query, "nextToken"), caller)
        }
        ["retainedMessage"] | ["retainedMessage", ""] => {
            if method != Method::GET {
                return Err(not_allowed(method, path));
            }
            if caller.is_device() {
                return Err(ApiError::forbidden(
                    "ListRetainedMessages is for backends (signed requests), not devices",
                ));
            }
            let max = page_size(&query, "maxResults", 200, 200)?;
            Ok(api.list_retained(max, param(&query, "nextToken")))
        }
        ["retainedMessage", _, ..] => {
            if method != Method::GET {
                return Err(not_allowed(method, path));
            }
            let topic = decode(&rest["retainedMessage/".len()..])?;
            caller.may_read(&topic)?;
            api.get_retained(&topic)
        }
        ["topics", _, ..] => {
            if method != Method::POST {
                return Err(not_allowed(method, path));
            }
            // The topic is one encoded segment (`a%2Fb`, as the SDKs send
            // it) or the rest of the path (`a/b`, as curl users write it).
            let topic = decode(&rest["topics/".len()..])?;
            if let Some(refused) = publish::refuse(&topic) {
                return Err(refused);
            }
            caller.may_publish(&topic)?;
            let delivery = publish::Delivery::from_query(&query)?;
            let props = publish::properties(&query, &parts.headers)?;
            api.metrics.count("http.publish", 1);
            api.inject(&topic, body, delivery, from, props).await?;
            Ok(StatusCode::OK.into_response())
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("no such operation: {method} {path}"),
        )),
    }
}

fn not_allowed(method: &Method, path: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowedException",
        format!("{method} is not allowed on {path}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded() {
        let q = query_pairs("name=config&nextToken=a%2Fb&flag").unwrap();
        assert_eq!(param(&q, "name"), Some("config"));
        assert_eq!(param(&q, "nextToken"), Some("a/b"));
        assert_eq!(param(&q, "flag"), Some(""));
        assert!(query_pairs("x=%ff").is_err());
    }
}
