//! Device shadow in DynamoDB: one item per device, written with a condition so
//! that a stored shadow never goes back to an older version.
//!
//! Item layout: `device_id` (S, partition key), `reported` (M, the JSON
//! object mapped to attribute values), `version` (N), `updated_at` (N, ms).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use serde_json::{Map, Number, Value};

use crate::error::{classify, AwsError};

/// How many `PutItem` calls [`ShadowTable::put_many`] keeps in flight.
pub const PUT_CONCURRENCY: usize = 16;

/// The latest reported state of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowItem {
    pub device: String,
    pub reported: Map<String, Value>,
    pub version: u64,
    pub updated_at_ms: i64,
}

/// What a conditional put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored (new device, or a newer version than the stored one).
    Written,
    /// Not stored: the table already holds this version or a newer one.
    Stale,
}

/// Keep only the highest version per device (first-seen order of devices).
pub fn coalesce(items: Vec<ShadowItem>) -> Vec<ShadowItem> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<ShadowItem> = Vec::new();
    for item in items {
        match index.get(&item.device) {
            Some(&i) => {
                if item.version >= out[i].version {
                    out[i] = item;
                }
            }
            None => {
                index.insert(item.device.clone(), out.len());
                out.push(item);
            }
        }
    }
    out
}

/// JSON → DynamoDB attribute value.
pub fn json_to_attr(v: &Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(a) => AttributeValue::L(a.iter().map(json_to_attr).collect()),
        Value::Object(o) => AttributeValue::M(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_attr(v)))
                .collect(),
        ),
    }
}

/// DynamoDB attribute value → JSON (sets become arrays, binary base64).
pub fn attr_to_json(a: &AttributeValue) -> Result<Value, String> {
    use base64::Engine as _;
    let b64 = |b: &aws_sdk_dynamodb::primitives::Blob| {
        Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
    };
    Ok(match a {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::N(n) => Value::Number(parse_number(n)?),
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::L(l) => Value::Array(l.iter().map(attr_to_json).collect::<Result<_, _>>()?),
        AttributeValue::M(m) => {
            // DynamoDB maps are unordered; sort keys for a stable document.
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), attr_to_json(&m[k])?);
            }
            Value::Object(out)
        }
        AttributeValue::Ss(s) => Value::Array(s.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(n) => Value::Array(
            n.iter()
                .map(|n| parse_number(n).map(Value::Number))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::B(b) => b64(b),
        AttributeValue::Bs(bs) => Value::Array(bs.iter().map(b64).collect()),
        other => return Err(format!("unsupported attribute value {other:?}")),
    })
}

fn parse_number(n: &str) -> Result<Number, String> {
    serde_json::from_str::<Number>(n).map_err(|e| format!("bad number {n:?}: {e}"))
}

/// One DynamoDB table of device shadows.
#[derive(Debug, Clone)]
pub struct ShadowTable {
    client: aws_sdk_dynamodb::Client,
    table: Arc<str>,
}

impl ShadowTable {
    pub fn new(client: aws_sdk_dynamodb::Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table: Arc::from(table_name.into()),
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Create the table (`device_id` S key, on-demand billing) if missing and
    /// wait until it is ACTIVE.
    pub async fn ensure_table(&self) -> Result<(), AwsError> {
        match self
            .client
            .describe_table()
            .table_name(&*self.table)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                let created = self
                    .client
                    .create_table()
                    .table_name(&*self.table)
                    .billing_mode(BillingMode::PayPerRequest)
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name("device_id")
                            .attribute_type(ScalarAttributeType::S)
                            .build()
                            .map_err(|e| AwsError::Permanent(e.to_string()))?,
                    )
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name("device_id")
                            .key_type(KeyType::Hash)
                            .build()
                            .map_err(|e| AwsError::Permanent(e.to_string()))?,
                    )
                    .send()
                    .await;
                match created {
                    Ok(_) => {}
                    // Someone else created it meanwhile.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_resource_in_use_exception()) => {}
                    Err(e) => return Err(classify(&e)),
                }
            }
            Err(e) => return Err(classify(&e)),
        }
        let what = format!("table {}", self.table);
        crate::error::poll_until_active(&what, || async {
            let out = self
                .client
                .describe_table()
                .table_name(&*self.table)
                .send()
                .await
                .map_err(|e| classify(&e))?;
            Ok(out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active))
        })
        .await
    }

    /// Conditional put: stored only if the device is new or the stored
    /// version is lower. A newer stored version gives `Ok(Stale)`.
    pub async fn put(&self, item: &ShadowItem) -> Result<PutOutcome, AwsError> {
        let version = item.version.to_string();
        let result = self
            .client
            .put_item()
            .table_name(&*self.table)
            .item("device_id", AttributeValue::S(item.device.clone()))
            .item(
                "reported",
                AttributeValue::M(
                    item.reported
                        .iter()
                        .map(|(k, v)| (k.clone(), json_to_attr(v)))
                        .collect(),
                ),
            )
            .item("version", AttributeValue::N(version.clone()))
            .item(
                "updated_at",
                AttributeValue::N(item.updated_at_ms.to_string()),
            )
            .condition_expression("attribute_not_exists(device_id) OR version < :v")
            .expression_attribute_values(":v", AttributeValue::N(version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Written),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(PutOutcome::Stale)
            }
            Err(e) => Err(classify(&e)),
        }
    }

    /// [`put`](Self::put) each item, [`PUT_CONCURRENCY`] devices at a time;
    /// results in input order. One device's items are written one after
    /// another, in input order: the version condition then decides, on
    /// DynamoDB and on emulators whose conditional writes are not atomic
    /// under concurrent requests alike.
    pub async fn put_many(
        &self,
        items: Vec<ShadowItem>,
    ) -> Vec<(ShadowItem, Result<PutOutcome, AwsError>)> {
        let n = items.len();
        let mut per_device: Vec<Vec<(usize, ShadowItem)>> = Vec::new();
        let mut slot: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, item) in items.into_iter().enumerate() {
            let k = *slot.entry(item.device.clone()).or_insert_with(|| {
                per_device.push(Vec::new());
                per_device.len() - 1
            });
            per_device[k].push((i, item));
        }
        let sem = Arc::new(tokio::sync::Semaphore::new(PUT_CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        for device_items in per_device {
            let this = self.clone();
            let sem = sem.clone();
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let mut done = Vec::with_capacity(device_items.len());
                for (i, item) in device_items {
                    let r = this.put(&item).await;
                    done.push((i, item, r));
                }
                done
            });
        }
        let mut out: Vec<Option<(ShadowItem, Result<PutOutcome, AwsError>)>> =
            (0..n).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(done) => {
                    for (i, item, r) in done {
                        out[i] = Some((item, r));
                    }
                }
                // A panicking put is a bug; surface it rather than lose the item silently.
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        out.into_iter().flatten().collect()
    }

    /// Read one device's shadow (strongly consistent).
    pub async fn get(&self, device: &str) -> Result<Option<ShadowItem>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&*self.table)
            .key("device_id", AttributeValue::S(device.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        parse_item(item).map(Some).map_err(AwsError::Permanent)
    }
}

fn parse_item(item: &HashMap<String, AttributeValue>) -> Result<ShadowItem, String> {
    let device = match item.get("device_id") {
        Some(AttributeValue::S(s)) => s.clone(),
        other => return Err(format!("device_id: expected S, got {other:?}")),
    };
    let reported = match item.get("reported") {
        Some(a @ AttributeValue::M(_)) => match attr_to_json(a)? {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        None => Map::new(),
        Some(other) => return Err(format!("reported: expected M, got {other:?}")),
    };
    let num = |name: &str| -> Result<&str, String> {
        match item.get(name) {
            Some(AttributeValue::N(n)) => Ok(n.as_str()),
            other => Err(format!("{name}: expected N, got {other:?}")),
        }
    };
    let version = num("version")?
        .parse::<u64>()
        .map_err(|e| format!("version: {e}"))?;
    let updated_at_ms = num("updated_at")?
        .parse::<i64>()
        .map_err(|e| format!("updated_at: {e}"))?;
    Ok(ShadowItem {
        device,
        reported,
        version,
        updated_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(device: &str, version: u64) -> ShadowItem {
        ShadowItem {
            device: device.into(),
            reported: Map::new(),
            version,
            updated_at_ms: version as i64,
        }
    }

    #[test]
    fn coalesce_keeps_highest_version_per_device() {
        let out = coalesce(vec![
            item("a", 2),
            item("b", 1),
            item("a", 5),
            item("a", 3),
            item("b", 4),
        ]);
        let got: Vec<(&str, u64)> = out.iter().map(|i| (i.device.as_str(), i.version)).collect();
        assert_eq!(got, vec![("a", 5), ("b", 4)]);
    }

    #[test]
    fn json_attribute_round_trip() {
        let v = json!({"a": 1, "b": -2.5, "c": "x", "d": true, "e": null, "f": [1, "y", [false]], "g": {"h": {"i": 1e-7}}});
        let a = json_to_attr(&v);
        match &a {
            AttributeValue::M(m) => {
                assert_eq!(m["a"], AttributeValue::N("1".into()));
                assert_eq!(m["b"], AttributeValue::N("-2.5".into()));
                assert_eq!(m["c"], AttributeValue::S("x".into()));
                assert_eq!(m["d"], AttributeValue::Bool(true));
                assert_eq!(m["e"], AttributeValue::Null(true));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(attr_to_json(&a).unwrap(), v);
    }
}
