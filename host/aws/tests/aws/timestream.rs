//! Timestream writes: ingestion into moto (read back through moto's
//! `/moto-api/data.json`), and endpoint discovery + per-record rejections
//! + whole-call throttling against an in-test stub.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use weir_aws::{TimestreamWriter, TsRecord};

use crate::common::{clients, http_get, StubServer};
use crate::servers::LocalServer;

fn records(n: usize) -> Vec<TsRecord> {
    (0..n)
        .map(|i| TsRecord {
            device: format!("d{i}"),
            device_type: "thermostat".into(),
            time_ms: 1_764_300_000_000 + i as i64,
            measures: vec![
                ("temperature".into(), 20.0 + i as f64 / 4.0),
                ("humidity".into(), 40.5),
            ],
        })
        .collect()
}

#[tokio::test]
async fn records_arrive_in_moto() {
    let moto = LocalServer::moto();
    let clients = clients(&moto.endpoint()).await;
    // An endpoint override turns discovery off by default (moto's
    // DescribeEndpoints names the real AWS host).
    assert!(!clients.settings().timestream_discovery_enabled());
    let writer = TimestreamWriter::from_clients(&clients, "weir", "readings");
    writer
        .ensure_database_and_table()
        .await
        .expect("create db/table");
    writer
        .ensure_database_and_table()
        .await
        .expect("idempotent");

    let recs = records(250);
    let report = writer.write(&recs).await;
    assert_eq!(report.written, 250);
    assert_eq!(report.rejected, vec![]);
    assert_eq!(report.retryable, vec![]);

    let (status, body) = http_get(&moto.endpoint(), "/moto-api/data.json").await;
    assert_eq!(status, 200);
    let data: Value = serde_json::from_str(&body).unwrap();
    let tables = data["timestreamwrite"]["TimestreamTable"]
        .as_array()
        .unwrap();
    // moto tracks every table object it built (the conflicting second
    // CreateTable built one too): take the one holding records.
    let table = tables
        .iter()
        .filter(|t| t["name"] == "readings")
        .max_by_key(|t| t["records"].as_array().map_or(0, Vec::len))
        .expect("table in moto");
    let stored = table["records"].as_array().unwrap();
    assert_eq!(stored.len(), 250);
    assert_eq!(
        stored[3],
        json!({
            "Dimensions": [
                {"Name": "device_id", "Value": "d3"},
                {"Name": "device_type", "Value": "thermostat"}
            ],
            "MeasureName": "reading",
            "MeasureValueType": "MULTI",
            "MeasureValues": [
                {"Name": "temperature", "Value": "20.75", "Type": "DOUBLE"},
                {"Name": "humidity", "Value": "40.5", "Type": "DOUBLE"}
            ],
            "Time": "1764300000003",
            "TimeUnit": "MILLISECONDS"
        })
    );
    let devices: Vec<&str> = stored
        .iter()
        .map(|r| r["Dimensions"][0]["Value"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..250).map(|i| format!("d{i}")).collect();
    assert_eq!(devices, want);
}

#[tokio::test]
async fn discovery_rejections_and_throttling() {
    // The stub plays both the discovery endpoint and the discovered cell.
    let port = Arc::new(AtomicU16::new(0));
    let p = port.clone();
    let stub = StubServer::start(move |req| {
        let target = req.header("x-amz-target").unwrap_or_default().to_string();
        if target.ends_with(".DescribeEndpoints") {
            let addr = format!("127.0.0.1:{}", p.load(Ordering::SeqCst));
            return (200, json!({"Endpoints": [{"Address": addr, "CachePeriodInMinutes": 1}]}).to_string());
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let recs = body["Records"].as_array().unwrap();
        let first = recs[0]["Dimensions"][0]["Value"].as_str().unwrap();
        if first == "throttle" {
            return (400, json!({"__type": "ThrottlingException", "Message": "slow down"}).to_string());
        }
        let rejected: Vec<Value> = recs
            .iter()
            .enumerate()
            .filter(|(_, r)| r["Dimensions"][0]["Value"] == "bad")
            .map(|(i, _)| json!({"RecordIndex": i, "Reason": "Measure value out of range"}))
            .collect();
        if rejected.is_empty() {
            (200, json!({"RecordsIngested": {"Total": recs.len()}}).to_string())
        } else {
            (419, json!({"__type": "RejectedRecordsException", "Message": "rejected", "RejectedRecords": rejected}).to_string())
        }
    })
    .await;
    port.store(stub.addr.port(), Ordering::SeqCst);

    let mut settings = weir_aws::AwsSettings {
        region: Some("us-east-1".into()),
        timestream_endpoint_discovery: Some(true),
        ..Default::default()
    };
    settings.endpoints.timestream = Some(stub.endpoint());
    let clients = weir_aws::AwsClients::with_static_credentials(&settings, "k", "s").await;
    let writer = TimestreamWriter::from_clients(&clients, "db", "t");

    let mut recs = records(150);
    recs[1].device = "bad".into();
    recs[3].device = "bad".into();
    recs[100].device = "throttle".into();
    recs[120].measures = vec![]; // refused locally, never sent
    let report = writer.write(&recs).await;
    assert_eq!(report.written, 98);
    assert_eq!(
        report.rejected,
        vec![
            (1, "Measure value out of range".to_string()),
            (3, "Measure value out of range".to_string()),
            (120, "no measures".to_string()),
        ]
    );
    let retry_idx: Vec<usize> = report.retryable.iter().map(|(i, _)| *i).collect();
    let want: Vec<usize> = (100..150).filter(|i| *i != 120).collect();
    assert_eq!(retry_idx, want);
    assert!(
        report.retryable[0]
            .1
            .starts_with("ThrottlingException: slow down"),
        "{:?}",
        report.retryable[0]
    );
    assert_eq!(
        writer.discovered_address().await,
        Some(stub.addr.to_string())
    );

    // A second write reuses the cached endpoint.
    let report = writer.write(&records(5)).await;
    assert_eq!(report.written, 5);
    let targets: Vec<String> = stub
        .requests()
        .iter()
        .map(|r| {
            r.header("x-amz-target")
                .unwrap_or_default()
                .rsplit('.')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        targets,
        vec![
            "DescribeEndpoints",
            "WriteRecords",
            "WriteRecords",
            "WriteRecords"
        ]
    );
}
