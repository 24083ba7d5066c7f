//! SNS notifications (alerts): `PublishBatch` in groups of ten, reporting
//! exactly the entries that failed.

use std::sync::Arc;

use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use crate::error::{classify, AwsError};

/// Entries per `PublishBatch` call (the service limit).
pub const BATCH_SIZE: usize = 10;

/// One message to publish. Attributes are sent as `String` message attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub subject: Option<String>,
    pub message: String,
    pub attributes: Vec<(String, String)>,
}

/// Publishes to one topic.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: Arc<str>,
}

impl SnsPublisher {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: Arc::from(topic_arn.into()),
        }
    }

    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }

    /// Publish all; returns the notifications that failed, each with its
    /// error (an entry the service blames on the sender is permanent, any
    /// other entry failure retryable; a failed call fails its whole group).
    pub async fn publish(&self, notes: Vec<Notification>) -> Vec<(Notification, AwsError)> {
        let mut failed = Vec::new();
        let mut notes = notes.into_iter().peekable();
        while notes.peek().is_some() {
            let group: Vec<Notification> = notes.by_ref().take(BATCH_SIZE).collect();
            self.publish_group(group, &mut failed).await;
        }
        failed
    }

    async fn publish_group(
        &self,
        group: Vec<Notification>,
        failed: &mut Vec<(Notification, AwsError)>,
    ) {
        let mut entries = Vec::with_capacity(group.len());
        let mut sendable: Vec<Option<Notification>> = Vec::with_capacity(group.len());
        for (i, note) in group.into_iter().enumerate() {
            match entry(i, &note) {
                Ok(e) => {
                    entries.push(e);
                    sendable.push(Some(note));
                }
                Err(why) => {
                    failed.push((note, AwsError::Permanent(why)));
                    sendable.push(None);
                }
            }
        }
        if entries.is_empty() {
            return;
        }
        let out = self
            .client
            .publish_batch()
            .topic_arn(&*self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let err = classify(&e);
                failed.extend(sendable.into_iter().flatten().map(|n| (n, err.clone())));
                return;
            }
        };
        for ok in out.successful() {
            if let Some(slot) = ok.id().and_then(|id| id.parse::<usize>().ok()) {
                if let Some(s) = sendable.get_mut(slot) {
                    s.take();
                }
            }
        }
        for f in out.failed() {
            let Some(note) = f
                .id()
                .parse::<usize>()
                .ok()
                .and_then(|i| sendable.get_mut(i))
                .and_then(Option::take)
            else {
                continue;
            };
            let msg = format!("{}: {}", f.code(), f.message().unwrap_or("no message"));
            let err = if f.sender_fault() {
                AwsError::Permanent(msg)
            } else {
                AwsError::Retryable(msg)
            };
            failed.push((note, err));
        }
        // An entry the answer does not mention did not demonstrably get out.
        for note in sendable.into_iter().flatten() {
            failed.push((
                note,
                AwsError::Retryable("entry missing from PublishBatch response".into()),
            ));
        }
    }
}

fn entry(i: usize, note: &Notification) -> Result<PublishBatchRequestEntry, String> {
    let mut b = PublishBatchRequestEntry::builder()
        .id(i.to_string())
        .message(&note.message)
        .set_subject(note.subject.clone());
    for (k, v) in &note.attributes {
        let value = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .map_err(|e| e.to_string())?;
        b = b.message_attributes(k, value);
    }
    b.build().map_err(|e| e.to_string())
}
