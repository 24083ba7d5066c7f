//! Streams: Amazon Kinesis Data Streams. The writer paces records to each
//! shard's budget (1,000 records/s and 1 MiB/s by default, shard map from
//! ListShards), sends PutRecords batches of at most 500, and resends
//! exactly the records that failed, with backoff and jitter, for up to a
//! few seconds; what still fails goes back to the outbox, which spools it
//! and tries again later, in order.

use super::outbox::Factory;
use super::{SinkError, StreamItem};
use crate::config::StreamTarget;
use std::time::Duration;
use weir_aws::kinesis::{KinesisStream, ShardBudget, StreamRecord};
use weir_delivery::{Deliver, Delivery, Outbox};

/// How long one delivery keeps retrying failed records before handing them
/// back to the outbox.
const PUT_DEADLINE: Duration = Duration::from_secs(10);

pub async fn start(
    name: &str,
    target: &StreamTarget,
    aws: &weir_aws::AwsClients,
    outboxes: &Factory,
) -> Result<Outbox<StreamItem>, SinkError> {
    let backend = format!("stream.{name}");
    let stream = KinesisStream::new(
        aws.kinesis(),
        target.stream_name.clone(),
        ShardBudget {
            records_per_sec: target.shard_records_per_sec,
            bytes_per_sec: target.shard_bytes_per_sec,
        },
    );
    if target.create_shards > 0 {
        stream
            .ensure_stream(target.create_shards as i32)
            .await
            .map_err(|e| SinkError::start(&backend, e))?;
    }
    outboxes.spawn(&backend, Kinesis { stream }, 2000)
}

struct Kinesis {
    stream: KinesisStream,
}

impl Deliver for Kinesis {
    type Item = StreamItem;

    async fn deliver(&mut self, batch: Vec<StreamItem>) -> Delivery<StreamItem> {
        let records = batch
            .into_iter()
            .map(|i| StreamRecord {
                partition_key: i.partition_key,
                data: bytes::Bytes::from(i.data),
            })
            .collect();
        let report = self.stream.put(records, PUT_DEADLINE).await;
        if report.failed.is_empty() {
            return Delivery::Done;
        }
        let reason = format!(
            "kinesis: {} records still failing after {} attempts (first: {})",
            report.failed.len(),
            report.attempts,
            report.failed[0].1
        );
        Delivery::Retry {
            items: report
                .failed
                .into_iter()
                .map(|(r, _)| StreamItem {
                    partition_key: r.partition_key,
                    data: r.data.to_vec(),
                })
                .collect(),
            reason,
        }
    }
}
