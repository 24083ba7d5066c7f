//! InfluxDB v2 line protocol over HTTP (Timestream for InfluxDB, or any
//! InfluxDB 2.x / 3.x with the v2 write API).
//!
//! Each [`TsRecord`] becomes one line: measurement `reading`, tags
//! `device_id` and `device_type`, one float field per measure, timestamp in
//! milliseconds (`precision=ms`). Lines are POSTed to `/api/v2/write` in chunks
//! of [`LINES_PER_REQUEST`]. Points are idempotent in InfluxDB (same series and
//! time overwrite), so a failed write may be retried whole.
//!
//! The HTTP client is hyper 1 + rustls/ring, the stack the AWS SDK already
//! builds, so this adds almost nothing to the build.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::error::AwsError;
use crate::timestream::TsRecord;

/// Lines per POST.
pub const LINES_PER_REQUEST: usize = 5_000;

/// Escape a tag key, tag value or field key: commas, equals signs and spaces
/// get a backslash; a line break (not representable) becomes a space.
pub fn escape_key(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push_str("\\ "),
            _ => out.push(c),
        }
    }
    out
}

/// Render records as line protocol, one line per record, each ending in `\n`.
/// Non-finite measures are left out; a record with no finite measure gives
/// no line; an empty tag value is left out (line protocol has no empty tags).
pub fn line_protocol(records: &[TsRecord]) -> String {
    let mut out = String::new();
    for r in records {
        write_line(&mut out, r);
    }
    out
}

fn write_line(out: &mut String, r: &TsRecord) -> bool {
    let fields: Vec<&(String, f64)> = r.measures.iter().filter(|(_, v)| v.is_finite()).collect();
    if fields.is_empty() {
        return false;
    }
    out.push_str("reading");
    for (k, v) in [("device_id", &r.device), ("device_type", &r.device_type)] {
        if !v.is_empty() {
            let _ = write!(out, ",{k}={}", escape_key(v));
        }
    }
    for (i, (name, v)) in fields.iter().enumerate() {
        out.push(if i == 0 { ' ' } else { ',' });
        // `{:?}` keeps a decimal point on whole numbers (40.0), so the field
        // is a float, never mistaken for anything else by a strict parser.
        let _ = write!(out, "{}={:?}", escape_key(name), v);
    }
    let _ = writeln!(out, " {}", r.time_ms);
    true
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Writes readings to one bucket.
#[derive(Clone)]
pub struct InfluxWriter {
    write_url: String,
    token: Option<String>,
    timeout: Duration,
    client: HttpsClient,
}

impl std::fmt::Debug for InfluxWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxWriter")
            .field("write_url", &self.write_url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl InfluxWriter {
    /// `url` is the server root (`https://host:8086`, a path prefix is kept).
    pub fn new(
        url: &str,
        org: &str,
        bucket: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Self {
        let base = url.trim_end_matches('/');
        let write_url = format!(
            "{base}/api/v2/write?org={}&bucket={}&precision=ms",
            percent_encode(org),
            percent_encode(bucket)
        );
        let provider = rustls::crypto::ring::default_provider();
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match builder.with_provider_and_native_roots(provider) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "no native TLS roots; https to InfluxDB will fail");
                let config = rustls::ClientConfig::builder_with_provider(
                    rustls::crypto::ring::default_provider().into(),
                )
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                });
                match config {
                    Ok(c) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(c),
                    // ring supports the default versions; unreachable in practice.
                    Err(e) => panic!("rustls/ring configuration: {e}"),
                }
            }
        };
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self {
            write_url,
            token,
            timeout,
            client,
        }
    }

    /// The full write URL (with org, bucket, precision).
    pub fn write_url(&self) -> &str {
        &self.write_url
    }

    /// Write the records, [`LINES_PER_REQUEST`] lines per POST. Stops at the
    /// first failed POST: 429/5xx/network/timeout are retryable, other 4xx
    /// permanent.
    pub async fn write(&self, records: &[TsRecord]) -> Result<(), AwsError> {
        let mut body = String::new();
        let mut lines = 0;
        for r in records {
            if write_line(&mut body, r) {
                lines += 1;
            }
            if lines == LINES_PER_REQUEST {
                self.post(std::mem::take(&mut body)).await?;
                lines = 0;
            }
        }
        if lines > 0 {
            self.post(body).await?;
        }
        Ok(())
    }

    async fn post(&self, body: String) -> Result<(), AwsError> {
        let mut req = hyper::Request::post(&self.write_url)
            .header("content-type", "text/plain; charset=utf-8")
            .header("accept", "application/json");
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Token {token}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| AwsError::Permanent(format!("influx request: {e}")))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| AwsError::Retryable(format!("influx: {e}")))?;
            let status = resp.status().as_u16();
            let text = resp
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            Ok::<_, AwsError>((status, text))
        };
        let (status, text) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                AwsError::Retryable(format!("influx: no answer within {:?}", self.timeout))
            })??;
        match status {
            200..=299 => Ok(()),
            429 | 500..=599 => Err(AwsError::Retryable(format!("influx HTTP {status}: {text}"))),
            _ => Err(AwsError::Permanent(format!("influx HTTP {status}: {text}"))),
        }
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(device: &str, device_type: &str, measures: Vec<(&str, f64)>) -> TsRecord {
        TsRecord {
            device: device.into(),
            device_type: device_type.into(),
            time_ms: 1_764_300_000_123,
            measures: measures
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_key("a b,c=d"), "a\\ b\\,c\\=d");
        assert_eq!(escape_key("plain-id_1.x"), "plain-id_1.x");
        assert_eq!(escape_key("line\nbreak"), "line\\ break");
        assert_eq!(escape_key("back\\slash"), "back\\slash");
    }

    #[test]
    fn lines() {
        let lp = line_protocol(&[
            rec(
                "dev 1",
                "thermo,stat",
                vec![("temp=c", 21.5), ("humidity", 40.0)],
            ),
            rec("d2", "", vec![("x", f64::NAN), ("y", -1e-3)]),
            rec("d3", "t", vec![("x", f64::INFINITY)]),
        ]);
        assert_eq!(
            lp,
            "reading,device_id=dev\\ 1,device_type=thermo\\,stat temp\\=c=21.5,humidity=40.0 1764300000123\n\
             reading,device_id=d2 y=-0.001 1764300000123\n"
        );
    }

    #[test]
    fn url() {
        let w = InfluxWriter::new(
            "http://h:8086/",
            "my org",
            "b&1",
            None,
            Duration::from_secs(1),
        );
        assert_eq!(
            w.write_url(),
            "http://h:8086/api/v2/write?org=my%20org&bucket=b%261&precision=ms"
        );
    }
}
