//! The device shadow in DynamoDB: a replica of the embedded shadow bucket.
//!
//! The `shadow` plugin keeps one document per device in the key-value
//! bucket `shadow`; the embedded store stays the copy that answers
//! `weir shadow get` and `get_thing_shadow()`. With
//! `[storage.shadow] backend = "dynamodb"`, every flush of that bucket
//! (once per checkpoint interval, so several writes of one device inside
//! the interval become one) queues the devices' latest documents to the
//! table's outbox, which writes one item per device with a version
//! condition: a stale write (an older version than the table holds) is
//! skipped and counted, never applied.

use super::outbox::Factory;
use super::SinkError;
use crate::config::{Config, ShadowBackend};
use crate::metrics::Metrics;
use crate::store::KvStore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use weir_aws::dynamodb_shadow::{PutOutcome, ShadowItem, ShadowTable};
use weir_aws::AwsError;
use weir_delivery::{Deliver, Delivery, Outbox};

/// One device's shadow document on its way to DynamoDB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowDoc {
    pub device: String,
    /// The document as the `shadow` plugin stores it.
    pub doc: String,
}

pub async fn start(
    config: &Config,
    aws: Option<&weir_aws::AwsClients>,
    outboxes: &Factory,
    metrics: &Arc<Metrics>,
    kv: &Arc<KvStore>,
) -> Result<Option<Outbox<ShadowDoc>>, SinkError> {
    let s = &config.storage.shadow;
    if s.backend != ShadowBackend::Dynamodb {
        return Ok(None);
    }
    let aws = aws.ok_or_else(|| SinkError::start("shadow", "AWS clients missing"))?;
    let table = ShadowTable::new(aws.dynamodb(), s.table.clone().unwrap_or_default());
    if s.create_table {
        table
            .ensure_table()
            .await
            .map_err(|e| SinkError::start("shadow", e))?;
    }
    let outbox = outboxes.spawn(
        "shadow",
        Dynamo {
            table,
            metrics: metrics.clone(),
        },
        100,
    )?;
    let feed = outbox.clone();
    let observer_metrics = metrics.clone();
    kv.observe(
        crate::admin::SHADOW_BUCKET,
        Box::new(move |changes| {
            let docs: Vec<ShadowDoc> = changes
                .into_iter()
                .filter_map(|(device, value)| {
                    let doc = String::from_utf8(value?).ok()?;
                    Some(ShadowDoc { device, doc })
                })
                .collect();
            if let Err(e) = feed.push(docs) {
                observer_metrics.count("shadow.replica_errors", 1);
                tracing::error!(error = %e, "shadow: cannot queue documents for DynamoDB");
            }
        }),
    );
    Ok(Some(outbox))
}

/// The item for a shadow document (`{"state":{"reported":…},"version":N,"timestamp":secs}`).
pub fn item(doc: &ShadowDoc) -> Result<ShadowItem, String> {
    let v: serde_json::Value =
        serde_json::from_str(&doc.doc).map_err(|e| format!("not JSON: {e}"))?;
    let reported = v
        .pointer("/state/reported")
        .and_then(|r| r.as_object())
        .cloned()
        .ok_or("no state.reported object")?;
    let version = v
        .get("version")
        .and_then(|n| n.as_u64())
        .ok_or("no numeric version")?;
    let updated_at_ms = v
        .get("timestamp")
        .and_then(|t| t.as_f64())
        .map(|secs| (secs * 1000.0) as i64)
        .unwrap_or(0);
    Ok(ShadowItem {
        device: doc.device.clone(),
        reported,
        version,
        updated_at_ms,
    })
}

struct Dynamo {
    table: ShadowTable,
    metrics: Arc<Metrics>,
}

impl Deliver for Dynamo {
    type Item = ShadowDoc;

    async fn deliver(&mut self, batch: Vec<ShadowDoc>) -> Delivery<ShadowDoc> {
        // Several flushes may have queued the same device: keep its newest.
        let mut items = Vec::with_capacity(batch.len());
        let mut reject = Vec::new();
        let mut reject_reason = String::new();
        for doc in batch {
            match item(&doc) {
                Ok(i) => items.push((i, doc)),
                Err(e) => {
                    reject_reason = format!("shadow document of {}: {e}", doc.device);
                    reject.push(doc);
                }
            }
        }
        let newest =
            weir_aws::dynamodb_shadow::coalesce(items.iter().map(|(i, _)| i.clone()).collect());
        let mut docs: std::collections::HashMap<(String, u64), ShadowDoc> = items
            .into_iter()
            .map(|(i, d)| ((i.device.clone(), i.version), d))
            .collect();
        let mut retry = Vec::new();
        let mut reason = reject_reason;
        for (item, result) in self.table.put_many(newest).await {
            let doc = docs.remove(&(item.device.clone(), item.version));
            match result {
                Ok(PutOutcome::Written) => self.metrics.count("shadow.dynamodb_writes", 1),
                Ok(PutOutcome::Stale) => self.metrics.count("shadow.dynamodb_stale", 1),
                Err(AwsError::Retryable(e)) => {
                    reason = format!("dynamodb: {e}");
                    retry.extend(doc);
                }
                Err(AwsError::Permanent(e)) => {
                    reason = format!("dynamodb: {e}");
                    reject.extend(doc);
                }
            }
        }
        if retry.is_empty() && reject.is_empty() {
            Delivery::Done
        } else {
            Delivery::Partial {
                retry,
                reject,
                reason,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shadow_document_becomes_an_item() {
        let doc = ShadowDoc {
            device: "dev-1".into(),
            doc: r#"{"state":{"reported":{"temperature":21.5}},"metadata":{},"version":7,"timestamp":1764300000.25}"#.into(),
        };
        let i = item(&doc).unwrap();
        assert_eq!(i.device, "dev-1");
        assert_eq!(i.version, 7);
        assert_eq!(i.updated_at_ms, 1_764_300_000_250);
        assert_eq!(i.reported["temperature"], 21.5);
        let bad = ShadowDoc {
            device: "d".into(),
            doc: "{}".into(),
        };
        assert!(item(&bad).unwrap_err().contains("reported"));
    }
}
