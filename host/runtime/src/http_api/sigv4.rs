//! Checking AWS Signature Version 4 on a request, as AWS's SDKs sign them
//! (`Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
//! Signature=…` with `X-Amz-Date`), against the configured access keys.
//!
//! The canonical request is rebuilt from the request as it arrived: the
//! path exactly as sent, encoded once more (AWS's rule for every service
//! but S3), the query decoded and re-encoded in sorted order, the signed
//! headers' values trimmed, and the SHA-256 of the body. A request dated
//! more than 15 minutes from the host's clock is refused, as AWS does.

use super::config::AccessKey;
use axum::http::HeaderMap;
use percent_encoding::percent_decode_str;
use ring::hmac;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// How far a request's `X-Amz-Date` may be from the host's clock.
const MAX_SKEW_S: i64 = 15 * 60;

/// Why a request's signature was not accepted; the text is what the caller
/// is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Missing Authentication Token: the request is not signed (AWS Signature Version 4)")]
    Missing,
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("The security token included in the request is invalid: unknown access key {0}")]
    UnknownKey(String),
    #[error("Signature expired: the request's X-Amz-Date is more than 15 minutes from the server's time")]
    Skewed,
    #[error("The request signature we calculated does not match the signature you provided")]
    Mismatch,
}

/// The accepted access keys.
pub struct Verifier {
    secrets: HashMap<String, String>,
}

/// What a request's signature is checked over.
pub struct Signed<'a> {
    pub method: &'a str,
    /// The path as sent (still percent-encoded).
    pub path: &'a str,
    /// The query as sent, without `?`.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

struct Authorization<'a> {
    key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

impl Verifier {
    pub fn new(keys: &[AccessKey]) -> Verifier {
        Verifier {
            secrets: keys
                .iter()
                .map(|k| (k.access_key_id.clone(), k.secret_access_key.clone()))
                .collect(),
        }
    }

    /// The access key id that signed `request`, if its signature holds at
    /// `now_s` (seconds since the epoch).
    pub fn verify(&self, request: &Signed<'_>, now_s: i64) -> Result<String, AuthError> {
        let header = request
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::Malformed("not ASCII"))?;
        let auth = parse_authorization(header)?;
        let secret = self
            .secrets
            .get(auth.key_id)
            .ok_or_else(|| AuthError::UnknownKey(auth.key_id.to_string()))?;
        let amz_date = request
            .headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or(AuthError::Malformed("no X-Amz-Date header"))?;
        if !amz_date.starts_with(auth.date) {
            return Err(AuthError::Malformed(
                "the credential's date is not the X-Amz-Date's",
            ));
        }
        let when = parse_amz_date(amz_date).ok_or(AuthError::Malformed("bad X-Amz-Date"))?;
        if (when - now_s).abs() > MAX_SKEW_S {
            return Err(AuthError::Skewed);
        }
        let canonical = canonical_request(request, auth.signed_headers)?;
        let scope = format!(
            "{}/{}/{}/aws4_request",
            auth.date, auth.region, auth.service
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = signing_key(secret, auth.date, auth.region, auth.service);
        let expected = hex::decode(auth.signature).map_err(|_| AuthError::Mismatch)?;
        hmac::verify(&key, to_sign.as_bytes(), &expected).map_err(|_| AuthError::Mismatch)?;
        Ok(auth.key_id.to_string())
    }
}

fn parse_authorization(header: &str) -> Result<Authorization<'_>, AuthError> {
    let rest = header
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or(AuthError::Malformed("only AWS4-HMAC-SHA256 is supported"))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential = credential.ok_or(AuthError::Malformed("no Credential"))?;
    let mut scope = credential.split('/');
    let (Some(key_id), Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(AuthError::Malformed(
            "Credential must be <key>/<date>/<region>/<service>/aws4_request",
        ));
    };
    Ok(Authorization {
        key_id,
        date,
        region,
        service,
        signed_headers: signed_headers.ok_or(AuthError::Malformed("no SignedHeaders"))?,
        signature: signature.ok_or(AuthError::Malformed("no Signature"))?,
    })
}

/// `20261130T081500Z` as seconds since the epoch.
fn parse_amz_date(s: &str) -> Option<i64> {
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ").ok()?;
    Some(t.and_utc().timestamp())
}

fn canonical_request(request: &Signed<'_>, signed_headers: &str) -> Result<String, AuthError> {
    let mut out = String::with_capacity(256);
    out.push_str(request.method);
    out.push('\n');
    out.push_str(&encode(request.path, true));
    out.push('\n');
    out.push_str(&canonical_query(request.query));
    out.push('\n');
    for name in signed_headers.split(';') {
        let values: Vec<&str> = request
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Err(AuthError::Malformed("a signed header is missing"));
        }
        out.push_str(name);
        out.push(':');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&v.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_headers);
    out.push('\n');
    match request
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
    {
        Some("UNSIGNED-PAYLOAD") => out.push_str("UNSIGNED-PAYLOAD"),
        _ => out.push_str(&hex::encode(Sha256::digest(request.body))),
    }
    Ok(out)
}

/// The query's parameters decoded, re-encoded and sorted.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            (encode(&decode(k), false), encode(&decode(v), false))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// SigV4's URI encoding: every byte but `A-Za-z0-9-_.~` (and `/` in a path)
/// as `%XX`.
fn encode(s: &str, path: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (path && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let step = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let k_date = step(format!("AWS4{secret}").as_bytes(), date);
    let k_region = step(k_date.as_ref(), region);
    let k_service = step(k_region.as_ref(), service);
    let k_signing = step(k_service.as_ref(), "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// AWS's Signature Version 4 test suite, case `get-vanilla`.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const VANILLA: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
    const WHEN: i64 = 1_440_938_160; // 2015-08-30T12:36:00Z

    fn verifier() -> Verifier {
        Verifier::new(&[AccessKey {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: SECRET.into(),
        }])
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        h.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        h.insert("authorization", HeaderValue::from_str(auth).unwrap());
        h
    }

    fn request<'a>(headers: &'a HeaderMap, query: &'a str) -> Signed<'a> {
        Signed {
            method: "GET",
            path: "/",
            query,
            headers,
            body: b"",
        }
    }

    #[test]
    fn aws_test_suite_get_vanilla() {
        let h = headers(VANILLA);
        assert_eq!(
            verifier().verify(&request(&h, ""), WHEN),
            Ok("AKIDEXAMPLE".to_string())
        );
    }

    #[test]
    fn a_changed_request_or_wrong_key_is_refused() {
        let h = headers(VANILLA);
        let v = verifier();
        assert_eq!(
            v.verify(&request(&h, "a=b"), WHEN),
            Err(AuthError::Mismatch)
        );
        let mut post = request(&h, "");
        post.method = "POST";
        assert_eq!(v.verify(&post, WHEN), Err(AuthError::Mismatch));
        let mut body = request(&h, "");
        body.body = b"x";
        assert_eq!(v.verify(&body, WHEN), Err(AuthError::Mismatch));
        assert_eq!(
            v.verify(&request(&h, ""), WHEN + 16 * 60),
            Err(AuthError::Skewed)
        );
        let other = headers(&VANILLA.replace("AKIDEXAMPLE", "AKIDOTHER"));
        assert_eq!(
            v.verify(&request(&other, ""), WHEN),
            Err(AuthError::UnknownKey("AKIDOTHER".into()))
        );
        let mut unsigned = h.clone();
        unsigned.remove("authorization");
        assert_eq!(
            v.verify(&request(&unsigned, ""), WHEN),
            Err(AuthError::Missing)
        );
        let garbage = headers("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/x");
        assert!(matches!(
            v.verify(&request(&garbage, ""), WHEN),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn canonical_forms() {
        // The path as sent is encoded once more (`%24` → `%2524`).
        assert_eq!(encode("/topics/%24aws%2Fx", true), "/topics/%2524aws%252Fx");
        // Query parameters decoded, re-encoded and sorted.
        assert_eq!(canonical_query("qos=1&a=x%2By&b=%7e"), "a=x%2By&b=~&qos=1");
        assert_eq!(canonical_query(""), "");
    }
}
