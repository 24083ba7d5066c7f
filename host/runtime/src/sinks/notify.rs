//! Notify targets: Amazon SNS topics, published with PublishBatch (ten
//! entries per call); exactly the entries SNS failed are retried.

use super::outbox::Factory;
use super::{NotifyItem, SinkError};
use crate::config::NotifyTarget;
use weir_aws::sns::{Notification, SnsPublisher};
use weir_aws::AwsError;
use weir_delivery::{Deliver, Delivery, Outbox};

pub async fn start(
    name: &str,
    target: &NotifyTarget,
    aws: &weir_aws::AwsClients,
    outboxes: &Factory,
) -> Result<Outbox<NotifyItem>, SinkError> {
    let backend = format!("notify.{name}");
    let publisher = SnsPublisher::new(aws.sns(), target.topic_arn.clone());
    if target.create_topic {
        // CreateTopic is idempotent: it returns the existing topic's ARN.
        let name = target.topic_arn.rsplit(':').next().unwrap_or_default();
        aws.sns()
            .create_topic()
            .name(name)
            .send()
            .await
            .map_err(|e| SinkError::start(&backend, weir_aws::error::classify(&e)))?;
    }
    outboxes.spawn(&backend, Sns { publisher }, 100)
}

struct Sns {
    publisher: SnsPublisher,
}

fn to_aws(n: &NotifyItem) -> Notification {
    Notification {
        subject: n.subject.clone(),
        message: n.body.clone(),
        attributes: n.attributes.clone(),
    }
}

impl Deliver for Sns {
    type Item = NotifyItem;

    async fn deliver(&mut self, batch: Vec<NotifyItem>) -> Delivery<NotifyItem> {
        let notes = batch.iter().map(to_aws).collect();
        let failed = self.publisher.publish(notes).await;
        if failed.is_empty() {
            return Delivery::Done;
        }
        let mut retry = Vec::new();
        let mut reject = Vec::new();
        let mut reason = String::new();
        for (note, err) in failed {
            let item = NotifyItem {
                subject: note.subject,
                body: note.message,
                attributes: note.attributes,
            };
            match err {
                AwsError::Retryable(e) => {
                    reason = format!("sns: {e}");
                    retry.push(item);
                }
                AwsError::Permanent(e) => {
                    reason = format!("sns: {e}");
                    reject.push(item);
                }
            }
        }
        Delivery::Partial {
            retry,
            reject,
            reason,
        }
    }
}
