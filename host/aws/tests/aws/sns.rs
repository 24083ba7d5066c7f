//! SNS publishing, read back through an SQS queue subscribed to the topic
//! (raw delivery), on moto.

use std::collections::BTreeMap;

use weir_aws::{AwsError, Notification, SnsPublisher};

use crate::common::clients;
use crate::servers::LocalServer;

#[tokio::test]
async fn published_messages_arrive_exactly() {
    let moto = LocalServer::moto();
    let clients = clients(&moto.endpoint()).await;
    let sns = clients.sns();
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(clients.sdk_config())
            .endpoint_url(moto.endpoint())
            .build(),
    );
    let topic = sns.create_topic().name("weir-alerts").send().await.unwrap();
    let topic_arn = topic.topic_arn().unwrap().to_string();
    let queue = sqs
        .create_queue()
        .queue_name("alerts-tap")
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url().unwrap().to_string();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let queue_arn =
        attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();

    let notes: Vec<Notification> = (0..23)
        .map(|i| Notification {
            subject: (i % 2 == 0).then(|| format!("alert {i}")),
            message: format!("{{\"kind\":\"zscore\",\"device\":\"dev-{i}\",\"z\":{i}.5}}"),
            attributes: vec![
                ("device".into(), format!("dev-{i}")),
                ("severity".into(), "high".into()),
            ],
        })
        .collect();
    let publisher = SnsPublisher::new(sns.clone(), &topic_arn);
    let failed = publisher.publish(notes.clone()).await;
    assert_eq!(failed, vec![]);

    let mut got: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for _ in 0..50 {
        if got.len() == notes.len() {
            break;
        }
        let out = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            let attrs: BTreeMap<String, String> = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.clone(), v.string_value().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let dup = got.insert(m.body().unwrap().to_string(), attrs);
            assert!(dup.is_none(), "delivered twice: {:?}", m.body());
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    let want: BTreeMap<String, BTreeMap<String, String>> = notes
        .iter()
        .map(|n| (n.message.clone(), n.attributes.iter().cloned().collect()))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn failures_are_returned_and_classified() {
    let moto = LocalServer::moto();
    let sns = clients(&moto.endpoint()).await.sns();
    let arn = "arn:aws:sns:us-east-1:123456789012:no-such-topic";
    let notes: Vec<Notification> = (0..12)
        .map(|i| Notification {
            subject: None,
            message: format!("m{i}"),
            attributes: vec![],
        })
        .collect();
    let failed = SnsPublisher::new(sns, arn).publish(notes.clone()).await;
    assert_eq!(failed.len(), 12);
    let (got, errs): (Vec<Notification>, Vec<AwsError>) = failed.into_iter().unzip();
    assert_eq!(got, notes);
    assert!(
        errs.iter()
            .all(|e| !e.is_retryable() && e.message().starts_with("NotFound")),
        "{errs:?}"
    );
}
