//! Device shadow against moto and dynalite (and dynalite across a restart).

use serde_json::{json, Map, Value};
use weir_aws::{coalesce, PutOutcome, ShadowItem, ShadowTable};

use crate::common::clients;
use crate::servers::{LocalServer, TempDir};

fn item(device: &str, version: u64, reported: Value) -> ShadowItem {
    let Value::Object(reported) = reported else {
        panic!("object")
    };
    ShadowItem {
        device: device.into(),
        reported,
        version,
        updated_at_ms: 1_764_300_000_000 + version as i64,
    }
}

async fn never_goes_back(endpoint: &str) {
    let table = ShadowTable::new(clients(endpoint).await.dynamodb(), "shadows");
    table.ensure_table().await.expect("create table");
    table.ensure_table().await.expect("ensure is idempotent");

    let v2 = item(
        "dev-1",
        2,
        json!({"temperature": 21.5, "humidity": 40, "label": "hall", "on": true, "err": null,
               "hist": [1, 2.5, "x", [false]], "nested": {"a": {"b": -3}}}),
    );
    assert_eq!(table.put(&v2).await, Ok(PutOutcome::Written));
    assert_eq!(
        table
            .put(&item("dev-1", 1, json!({"temperature": 1})))
            .await,
        Ok(PutOutcome::Stale)
    );
    assert_eq!(
        table
            .put(&item("dev-1", 2, json!({"temperature": 2})))
            .await,
        Ok(PutOutcome::Stale)
    );
    assert_eq!(table.get("dev-1").await, Ok(Some(v2)));

    let v3 = item("dev-1", 3, json!({"temperature": 22}));
    assert_eq!(table.put(&v3).await, Ok(PutOutcome::Written));
    assert_eq!(table.get("dev-1").await, Ok(Some(v3)));
    assert_eq!(table.get("nobody").await, Ok(None));

    // Out-of-order versions in one call, many devices at once: the highest
    // always wins and is always reported Written (nothing newer exists).
    // (Moto's conditional writes are not atomic under concurrent requests;
    // put_many writes one device's items one after another.)
    let mut many = Vec::new();
    for d in 0..20 {
        for v in [3u64, 1, 2] {
            many.push(item(&format!("d{d}"), v, json!({"v": v})));
        }
    }
    let results = table.put_many(many.clone()).await;
    assert_eq!(results.len(), 60);
    for ((got, outcome), want) in results.iter().zip(&many) {
        assert_eq!(got, want, "results keep input order");
        if got.version == 3 {
            assert_eq!(outcome, &Ok(PutOutcome::Written), "{}", got.device);
        } else {
            assert!(outcome.is_ok(), "{outcome:?}");
        }
    }
    for d in 0..20 {
        let stored = table.get(&format!("d{d}")).await.unwrap().unwrap();
        assert_eq!(stored.version, 3);
        assert_eq!(
            stored.reported,
            Map::from_iter([("v".to_string(), json!(3))])
        );
    }

    // Coalesced: one item per device, all newer than stored → all written.
    let batch: Vec<ShadowItem> = (4..=6)
        .flat_map(|v| (0..20).map(move |d| item(&format!("d{d}"), v, json!({"v": v}))))
        .collect();
    let batch = coalesce(batch);
    assert_eq!(batch.len(), 20);
    let results = table.put_many(batch).await;
    assert!(results
        .iter()
        .all(|(i, r)| i.version == 6 && r == &Ok(PutOutcome::Written)));
}

#[tokio::test]
async fn shadow_on_moto() {
    let moto = LocalServer::moto();
    never_goes_back(&moto.endpoint()).await;
}

#[tokio::test]
async fn shadow_on_dynalite() {
    let dynalite = LocalServer::dynalite(None);
    never_goes_back(&dynalite.endpoint()).await;
}

#[tokio::test]
async fn shadow_survives_dynalite_restart_and_outage_is_retryable() {
    let dir = TempDir::new("dynalite");
    let mut dynalite = LocalServer::dynalite(Some(dir.path()));
    let table = ShadowTable::new(clients(&dynalite.endpoint()).await.dynamodb(), "shadows");
    table.ensure_table().await.unwrap();
    let v1 = item("dev-9", 1, json!({"t": 1}));
    assert_eq!(table.put(&v1).await, Ok(PutOutcome::Written));

    dynalite.stop();
    let err = table
        .put(&item("dev-9", 2, json!({"t": 2})))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");

    dynalite.restart();
    assert_eq!(table.get("dev-9").await, Ok(Some(v1)));
    assert_eq!(
        table.put(&item("dev-9", 2, json!({"t": 2}))).await,
        Ok(PutOutcome::Written)
    );
}

#[tokio::test]
async fn missing_table_is_permanent() {
    let dynalite = LocalServer::dynalite(None);
    let table = ShadowTable::new(clients(&dynalite.endpoint()).await.dynamodb(), "absent");
    let err = table.put(&item("d", 1, json!({}))).await.unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert!(
        err.message().starts_with("ResourceNotFoundException"),
        "{err:?}"
    );
}
