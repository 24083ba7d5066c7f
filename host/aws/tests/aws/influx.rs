//! InfluxDB v2 writes against an in-test HTTP server.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use weir_aws::{AwsError, InfluxWriter, TsRecord};

use crate::common::StubServer;

fn rec(device: &str, t: i64, temp: f64) -> TsRecord {
    TsRecord {
        device: device.into(),
        device_type: "thermo stat".into(),
        time_ms: t,
        measures: vec![("temperature".into(), temp), ("humidity".into(), 40.0)],
    }
}

#[tokio::test]
async fn posts_exact_line_protocol() {
    let stub = StubServer::start(|_| (204, String::new())).await;
    let w = InfluxWriter::new(
        &stub.endpoint(),
        "my-org",
        "weir",
        Some("s3cr3t".into()),
        Duration::from_secs(10),
    );
    w.write(&[
        rec("dev,1", 1_764_300_000_123, 21.5),
        rec("dev=2", 1_764_300_000_124, -3.25),
    ])
    .await
    .expect("write");
    let reqs = stub.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        r.start,
        "POST /api/v2/write?org=my-org&bucket=weir&precision=ms HTTP/1.1"
    );
    assert_eq!(r.header("authorization"), Some("Token s3cr3t"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        "reading,device_id=dev\\,1,device_type=thermo\\ stat temperature=21.5,humidity=40.0 1764300000123\n\
         reading,device_id=dev\\=2,device_type=thermo\\ stat temperature=-3.25,humidity=40.0 1764300000124\n"
    );
}

#[tokio::test]
async fn chunks_at_5000_lines() {
    let stub = StubServer::start(|_| (204, String::new())).await;
    let w = InfluxWriter::new(&stub.endpoint(), "o", "b", None, Duration::from_secs(10));
    let recs: Vec<TsRecord> = (0..5001).map(|i| rec(&format!("d{i}"), i, 1.0)).collect();
    w.write(&recs).await.unwrap();
    let reqs = stub.requests();
    let lines: Vec<usize> = reqs
        .iter()
        .map(|r| r.body.iter().filter(|b| **b == b'\n').count())
        .collect();
    assert_eq!(lines, vec![5000, 1]);
    assert_eq!(reqs[0].header("authorization"), None);
    let last = String::from_utf8(reqs[1].body.clone()).unwrap();
    assert_eq!(
        last,
        "reading,device_id=d5000,device_type=thermo\\ stat temperature=1.0,humidity=40.0 5000\n"
    );
}

#[tokio::test]
async fn status_classification() {
    let status = Arc::new(AtomicU16::new(0));
    let s = status.clone();
    let stub =
        StubServer::start(move |_| (s.load(Ordering::SeqCst), "{\"code\":\"x\"}".into())).await;
    let w = InfluxWriter::new(&stub.endpoint(), "o", "b", None, Duration::from_secs(10));
    let one = [rec("d", 1, 1.0)];
    for (code, retryable) in [
        (429, true),
        (500, true),
        (503, true),
        (400, false),
        (401, false),
        (404, false),
        (413, false),
    ] {
        status.store(code, Ordering::SeqCst);
        let err = w.write(&one).await.unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{code}: {err:?}");
        assert_eq!(
            err.message(),
            format!("influx HTTP {code}: {{\"code\":\"x\"}}")
        );
    }
    status.store(204, Ordering::SeqCst);
    assert_eq!(w.write(&one).await, Ok(()));
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let port = crate::servers::free_port();
    let w = InfluxWriter::new(
        &format!("http://127.0.0.1:{port}"),
        "o",
        "b",
        None,
        Duration::from_secs(10),
    );
    let err = w.write(&[rec("d", 1, 1.0)]).await.unwrap_err();
    assert!(matches!(err, AwsError::Retryable(_)), "{err:?}");
}
