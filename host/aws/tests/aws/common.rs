//! Helpers shared by the integration tests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weir_aws::{AwsClients, AwsSettings, Endpoints};

use crate::kinesis_proxy::{read_message, Message};

/// Clients with every service at `endpoint`, static keys, us-east-1, path-style S3.
pub async fn clients(endpoint: &str) -> AwsClients {
    clients_with_keys(endpoint, "test", "test").await
}

pub async fn clients_with_keys(endpoint: &str, key: &str, secret: &str) -> AwsClients {
    let settings = AwsSettings {
        region: Some("us-east-1".into()),
        endpoints: Endpoints::all(endpoint),
        s3_force_path_style: true,
        ..Default::default()
    };
    settings.validate().expect("valid settings");
    AwsClients::with_static_credentials(&settings, key, secret).await
}

/// `host:port` of an `http://host:port` endpoint.
pub fn addr_of(endpoint: &str) -> SocketAddr {
    endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("endpoint address")
}

/// Plain HTTP GET; returns status and body.
pub async fn http_get(endpoint: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr_of(endpoint))
        .await
        .expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let msg = read_message(&mut s, &mut buf)
        .await
        .expect("read")
        .expect("response");
    let status = msg
        .start
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, String::from_utf8_lossy(&msg.body).into_owned())
}

type Handler = dyn Fn(&Message) -> Option<(u16, String)> + Send + Sync;

/// An HTTP server on 127.0.0.1:0 that records each request and answers from
/// `handler` (status, JSON/text body). Stops when dropped.
pub struct StubServer {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Message>>>,
    /// The answers given, in the same order as `requests`.
    pub responses: Arc<Mutex<Vec<Message>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StubServer {
    pub async fn start(
        handler: impl Fn(&Message) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(None, move |m| Some(handler(m))).await
    }

    /// A fault-injecting proxy: requests for which `handler` gives `None` are
    /// forwarded to `upstream` (without `Expect:`), the others answered.
    pub async fn proxy(
        upstream: SocketAddr,
        handler: impl Fn(&Message) -> Option<(u16, String)> + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(Some(upstream), handler).await
    }

    async fn start_with(
        upstream: Option<SocketAddr>,
        handler: impl Fn(&Message) -> Option<(u16, String)> + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind stub");
        let addr = listener.local_addr().expect("stub addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let responses = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let reqs = requests.clone();
        let resps = responses.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let handler = handler.clone();
                let reqs = reqs.clone();
                let resps = resps.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Ok(Some(mut req)) = read_message(&mut sock, &mut buf).await {
                        let answer = handler(&req);
                        let resp = match (answer, upstream) {
                            (Some((status, body)), _) => Message {
                                start: format!("HTTP/1.1 {status} X"),
                                headers: vec![(
                                    "content-type".into(),
                                    "application/x-amz-json-1.0".into(),
                                )],
                                body: body.into_bytes(),
                            },
                            (None, None) => Message {
                                start: "HTTP/1.1 404 X".into(),
                                headers: vec![],
                                body: vec![],
                            },
                            (None, Some(up)) => {
                                req.headers
                                    .retain(|(k, _)| !k.eq_ignore_ascii_case("expect"));
                                match forward(up, &req).await {
                                    Ok(r) => r,
                                    Err(_) => break,
                                }
                            }
                        };
                        reqs.lock().unwrap().push(req);
                        resps.lock().unwrap().push(resp.clone());
                        if sock.write_all(&resp.to_bytes(false)).await.is_err() {
                            break;
                        }
                    }
                    let _ = sock.shutdown().await;
                    let mut rest = Vec::new();
                    let _ = sock.read_to_end(&mut rest).await;
                });
            }
        });
        Self {
            addr,
            requests,
            responses,
            task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Message> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(upstream: SocketAddr, req: &Message) -> std::io::Result<Message> {
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(&req.to_bytes(true)).await?;
    let mut buf = Vec::new();
    read_message(&mut up, &mut buf)
        .await?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no response"))
}
