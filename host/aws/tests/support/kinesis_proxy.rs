//! A throttling HTTP proxy for Kinesis tests, in front of kinesalite (or any
//! Kinesis endpoint speaking AWS JSON 1.1, which is what aws-sdk-kinesis
//! sends: `Content-Type: application/x-amz-json-1.1`,
//! `X-Amz-Target: Kinesis_20131202.<Operation>`).
//!
//! For `PutRecords` it:
//! - answers every `fail_every_nth` call with HTTP 400
//!   `{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}`
//!   without forwarding it;
//! - otherwise removes the records at `drop_indices` from the request before
//!   forwarding (each distinct record is dropped at most once, so retries make
//!   progress) and splices
//!   `{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded"}`
//!   at those indices into the response, adding to `FailedRecordCount`.
//!
//! Every other request is forwarded untouched. kinesalite checks only that a
//! signature is present, so rewriting a signed body is fine. Uses tokio and
//! serde_json; include it with `#[path]`.

#![allow(dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What to do to `PutRecords` calls.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    /// Indices (within a call) whose records are throttled.
    pub drop_indices: Vec<usize>,
    /// Answer every Nth `PutRecords` call with a whole-call throttle (0 = never).
    pub fail_every_nth: usize,
}

/// What the proxy saw and did.
#[derive(Debug, Clone, Default)]
pub struct ProxyStats {
    pub put_records_calls: u64,
    pub rejected_calls: u64,
    /// Records in all `PutRecords` calls received from the client.
    pub records_received: u64,
    /// Records throttled by index.
    pub records_dropped: u64,
    /// Records in rejected (HTTP 400) calls.
    pub records_in_rejected_calls: u64,
    /// Records forwarded upstream, and their data bytes.
    pub records_forwarded: u64,
    pub bytes_forwarded: u64,
    /// Base64 data of every record forwarded, in order.
    pub forwarded: Vec<String>,
    /// Base64 data of each received `PutRecords` call, per call.
    pub received_calls: Vec<Vec<String>>,
}

#[derive(Debug)]
struct State {
    config: ProxyConfig,
    stats: ProxyStats,
    dropped_once: HashSet<String>,
}

/// The running proxy; stops when dropped.
#[derive(Debug)]
pub struct ThrottleProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl ThrottleProxy {
    /// Listen on 127.0.0.1:0 and forward to `upstream` (`host:port`).
    pub async fn start(upstream: SocketAddr, config: ProxyConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(Mutex::new(State {
            config,
            stats: ProxyStats::default(),
            dropped_once: HashSet::new(),
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, upstream, st).await;
                });
            }
        });
        Self { addr, state, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> ProxyStats {
        self.state.lock().unwrap().stats.clone()
    }
}

impl Drop for ThrottleProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP/1.1 message: start line, headers, body.
#[derive(Debug, Clone)]
pub struct Message {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn to_bytes(&self, close: bool) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            let skip = ["content-length", "transfer-encoding", "connection"];
            if !skip.iter().any(|s| k.eq_ignore_ascii_case(s)) {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str(&format!("content-length: {}\r\n", self.body.len()));
        out.push_str(if close {
            "connection: close\r\n\r\n"
        } else {
            "connection: keep-alive\r\n\r\n"
        });
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Read one message; `Ok(None)` on a clean EOF before any byte.
pub async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Message>> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 8192];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "eof in headers",
                ))
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut msg = Message {
        start,
        headers,
        body: Vec::new(),
    };
    let chunked = msg
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            let line = read_line(r, buf).await?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("0").trim(), 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            fill(r, buf, size + 2).await?;
            msg.body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
            if size == 0 {
                break;
            }
        }
    } else if let Some(len) = msg
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        fill(r, buf, len).await?;
        msg.body = buf.drain(..len).collect();
    } else if msg.start.starts_with("HTTP/") {
        // Close-delimited response.
        r.read_to_end(buf).await?;
        msg.body = std::mem::take(buf);
    }
    Ok(Some(msg))
}

async fn read_line<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<String> {
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..i]).into_owned();
            buf.drain(..i + 2);
            return Ok(line);
        }
        let mut chunk = [0u8; 4096];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "eof in chunk",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    len: usize,
) -> std::io::Result<()> {
    while buf.len() < len {
        let mut chunk = [0u8; 8192];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "eof in body",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

async fn forward(upstream: SocketAddr, req: &Message) -> std::io::Result<Message> {
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(&req.to_bytes(true)).await?;
    let mut buf = Vec::new();
    read_message(&mut up, &mut buf)
        .await?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no response"))
}

fn b64_len(s: &str) -> u64 {
    let pad = s.bytes().rev().take_while(|b| *b == b'=').count();
    (s.len() / 4 * 3).saturating_sub(pad) as u64
}

async fn serve(
    mut sock: TcpStream,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = read_message(&mut sock, &mut buf).await? {
        let is_put_records = req
            .header("x-amz-target")
            .is_some_and(|t| t.ends_with(".PutRecords"));
        let resp = if is_put_records {
            put_records(upstream, req, &state).await?
        } else {
            forward(upstream, &req).await?
        };
        sock.write_all(&resp.to_bytes(false)).await?;
    }
    Ok(())
}

async fn put_records(
    upstream: SocketAddr,
    mut req: Message,
    state: &Mutex<State>,
) -> std::io::Result<Message> {
    let mut body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let records: Vec<Value> = body["Records"].as_array().cloned().unwrap_or_default();
    let datas: Vec<String> = records
        .iter()
        .map(|r| r["Data"].as_str().unwrap_or_default().to_string())
        .collect();
    // Decide under the lock, forward without it.
    let (reject, drop_at) = {
        let mut st = state.lock().unwrap();
        let State {
            config,
            stats,
            dropped_once,
        } = &mut *st;
        stats.put_records_calls += 1;
        stats.records_received += records.len() as u64;
        stats.received_calls.push(datas.clone());
        if config.fail_every_nth > 0 && stats.put_records_calls % config.fail_every_nth as u64 == 0
        {
            stats.rejected_calls += 1;
            stats.records_in_rejected_calls += records.len() as u64;
            (true, Vec::new())
        } else {
            let mut drop_at = Vec::new();
            for &i in &config.drop_indices {
                if let Some(d) = datas.get(i) {
                    if dropped_once.insert(d.clone()) {
                        drop_at.push(i);
                    }
                }
            }
            drop_at.sort_unstable();
            stats.records_dropped += drop_at.len() as u64;
            (false, drop_at)
        }
    };
    if reject {
        return Ok(Message {
            start: "HTTP/1.1 400 Bad Request".into(),
            headers: vec![("content-type".into(), "application/x-amz-json-1.1".into())],
            body:
                br#"{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}"#
                    .to_vec(),
        });
    }
    let kept: Vec<Value> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| !drop_at.contains(i))
        .map(|(_, r)| r.clone())
        .collect();
    let kept_datas: Vec<String> = datas
        .iter()
        .enumerate()
        .filter(|(i, _)| !drop_at.contains(i))
        .map(|(_, d)| d.clone())
        .collect();
    body["Records"] = Value::Array(kept);
    req.body = serde_json::to_vec(&body).expect("serialize request");
    let mut resp = if kept_datas.is_empty() {
        // Nothing left to forward: answer as Kinesis would for an all-failed call.
        Message {
            start: "HTTP/1.1 200 OK".into(),
            headers: vec![("content-type".into(), "application/x-amz-json-1.1".into())],
            body: br#"{"FailedRecordCount":0,"Records":[]}"#.to_vec(),
        }
    } else {
        forward(upstream, &req).await?
    };
    if resp.start.split(' ').nth(1) == Some("200") {
        let mut out: Value = serde_json::from_slice(&resp.body)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let upstream_results: Vec<Value> = out["Records"].as_array().cloned().unwrap_or_default();
        let mut results = upstream_results.into_iter();
        let mut merged = Vec::with_capacity(records.len());
        for i in 0..records.len() {
            if drop_at.contains(&i) {
                merged.push(json!({"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded"}));
            } else if let Some(r) = results.next() {
                merged.push(r);
            }
        }
        let failed = out["FailedRecordCount"].as_u64().unwrap_or(0) + drop_at.len() as u64;
        out["FailedRecordCount"] = json!(failed);
        out["Records"] = Value::Array(merged);
        resp.body = serde_json::to_vec(&out).expect("serialize response");
        let mut st = state.lock().unwrap();
        st.stats.records_forwarded += kept_datas.len() as u64;
        st.stats.bytes_forwarded += kept_datas.iter().map(|d| b64_len(d)).sum::<u64>();
        st.stats.forwarded.extend(kept_datas);
    }
    Ok(resp)
}
