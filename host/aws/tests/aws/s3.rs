//! S3 uploads, small (PutObject) and multipart, read back byte-exact from
//! moto and s3rver.

use std::path::Path;

use weir_aws::{AwsError, S3Uploader};

use crate::common::{addr_of, clients, clients_with_keys, StubServer};
use crate::servers::{LocalServer, TempDir};

const MIB: u64 = 1024 * 1024;

/// Deterministic, non-repeating bytes.
/// `expect_parts`: the server reports multipart ETags and lists open uploads (moto).
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn read_back(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get object");
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

async fn upload_and_read_back(client: aws_sdk_s3::Client, dir: &Path, expect_parts: Option<usize>) {
    let up = S3Uploader::new(client.clone(), "weir-history", "raw", 6 * MIB, 5 * MIB);
    up.ensure_bucket().await.expect("create bucket");
    up.ensure_bucket().await.expect("idempotent");

    let small = content(1000, 7);
    let small_path = dir.join("small.parquet");
    std::fs::write(&small_path, &small).unwrap();
    up.upload_file(&small_path, "device_type=t/date=2026-01-01/small.parquet")
        .await
        .expect("small upload");
    assert_eq!(
        read_back(
            &client,
            "weir-history",
            "raw/device_type=t/date=2026-01-01/small.parquet"
        )
        .await,
        small
    );

    // 12 MiB + 123 bytes with 5 MiB parts: 3 parts (5, 5, 2 MiB + 123).
    let big = content((12 * MIB + 123) as usize, 11);
    let big_path = dir.join("big.parquet");
    std::fs::write(&big_path, &big).unwrap();
    up.upload_file(&big_path, "device_type=t/date=2026-01-01/big.parquet")
        .await
        .expect("multipart upload");
    let got = read_back(
        &client,
        "weir-history",
        "raw/device_type=t/date=2026-01-01/big.parquet",
    )
    .await;
    assert_eq!(got.len(), big.len());
    assert!(got == big, "multipart object differs");
    let head = client
        .head_object()
        .bucket("weir-history")
        .key("raw/device_type=t/date=2026-01-01/big.parquet")
        .send()
        .await
        .unwrap();
    // A multipart ETag ends in -<parts> (s3rver's does not).
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    if let Some(parts) = expect_parts {
        assert!(etag.ends_with(&format!("-{parts}")), "{etag}");
    }

    // Nothing left half-done (s3rver has no ListMultipartUploads).
    if expect_parts.is_some() {
        let open = client
            .list_multipart_uploads()
            .bucket("weir-history")
            .send()
            .await
            .unwrap();
        assert_eq!(open.uploads().len(), 0);
    }

    let err = up.upload_file(&dir.join("missing"), "k").await.unwrap_err();
    assert!(matches!(err, AwsError::Permanent(_)), "{err:?}");
}

#[tokio::test]
async fn uploads_to_moto() {
    let moto = LocalServer::moto();
    let dir = TempDir::new("s3-moto");
    upload_and_read_back(clients(&moto.endpoint()).await.s3(), dir.path(), Some(3)).await;
}

#[tokio::test]
async fn uploads_to_s3rver() {
    let data = TempDir::new("s3rver-data");
    let s3rver = LocalServer::s3rver(data.path());
    let dir = TempDir::new("s3-s3rver");
    let clients = clients_with_keys(&s3rver.endpoint(), "S3RVER", "S3RVER").await;
    upload_and_read_back(clients.s3(), dir.path(), None).await;
}

#[tokio::test]
async fn failed_multipart_is_aborted() {
    let moto = LocalServer::moto();
    let direct = clients(&moto.endpoint()).await.s3();
    direct
        .create_bucket()
        .bucket("weir-abort")
        .send()
        .await
        .unwrap();
    // Part 2 fails with a 500; everything else reaches moto.
    let proxy = StubServer::proxy(addr_of(&moto.endpoint()), |req| {
        (req.start.starts_with("PUT ") && req.start.contains("partNumber=2")).then(|| {
            (
                500,
                "<Error><Code>InternalError</Code><Message>boom</Message></Error>".to_string(),
            )
        })
    })
    .await;
    let client = clients(&proxy.endpoint()).await.s3();
    let dir = TempDir::new("s3-abort");
    let up = S3Uploader::new(client, "weir-abort", "", 5 * MIB, 5 * MIB);
    let path = dir.path().join("big");
    std::fs::write(&path, content((11 * MIB) as usize, 3)).unwrap();
    let err = up.upload_file(&path, "big").await.unwrap_err();
    assert_eq!(
        err,
        AwsError::Retryable("InternalError: boom (HTTP 500)".into())
    );
    let methods: Vec<String> = proxy
        .requests()
        .iter()
        .map(|r| {
            let mut it = r.start.split(' ');
            let m = it.next().unwrap_or_default();
            let path = it.next().unwrap_or_default();
            let q = path.split_once('?').map(|(_, q)| q).unwrap_or("");
            let mut q: Vec<&str> = q
                .split('&')
                .map(|kv| kv.split('=').next().unwrap())
                .filter(|k| !k.is_empty() && *k != "x-id")
                .collect();
            q.sort_unstable();
            format!("{m} {}", q.join("&"))
        })
        .collect();
    assert_eq!(
        methods,
        vec![
            "POST uploads",
            "PUT partNumber&uploadId",
            "PUT partNumber&uploadId",
            "DELETE uploadId"
        ]
    );
    let abort_status = proxy
        .responses
        .lock()
        .unwrap()
        .last()
        .map(|r| r.start.clone());
    assert_eq!(abort_status.as_deref(), Some("HTTP/1.1 204 NO CONTENT"));
    let open = direct
        .list_multipart_uploads()
        .bucket("weir-abort")
        .send()
        .await
        .unwrap();
    assert_eq!(open.uploads().len(), 0);
    assert!(direct
        .head_object()
        .bucket("weir-abort")
        .key("big")
        .send()
        .await
        .is_err());
}
