//! Kinesis writer against moto and kinesalite: routing, exactly-once
//! arrival, pacing, resending only failed records (through the throttling
//! proxy), outages and resharding.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::{ShardIteratorType, StreamStatus};
use bytes::Bytes;
use weir_aws::kinesis::ShardBudget;
use weir_aws::{KinesisStream, StreamRecord};

use crate::common::{addr_of, clients};
use crate::kinesis_proxy::{ProxyConfig, ThrottleProxy};
use crate::servers::{LocalServer, TempDir};

const DEADLINE: Duration = Duration::from_secs(120);

fn records(n: usize, tag: &str) -> Vec<StreamRecord> {
    (0..n)
        .map(|i| StreamRecord {
            partition_key: format!("dev-{}", i % 97),
            data: Bytes::from(format!("{tag}-{i}")),
        })
        .collect()
}

/// Every record in the stream: (shard id, partition key, data), per shard in order.
async fn read_all(client: &aws_sdk_kinesis::Client, stream: &str) -> Vec<(String, String, Bytes)> {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for shard in shards.shards() {
        let it = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap();
        let mut iterator = it.shard_iterator().map(str::to_string);
        for _ in 0..1000 {
            let Some(i) = iterator.take() else { break };
            let got = client
                .get_records()
                .shard_iterator(i)
                .limit(10_000)
                .send()
                .await
                .unwrap();
            if got.records().is_empty() {
                break;
            }
            for r in got.records() {
                out.push((
                    shard.shard_id().to_string(),
                    r.partition_key().unwrap_or_default().to_string(),
                    Bytes::copy_from_slice(r.data().as_ref()),
                ));
            }
            iterator = got.next_shard_iterator().map(str::to_string);
        }
    }
    out
}

/// Each record arrived exactly once, on the shard its key hashes to, and —
/// when no record had to be resent — in put order per key. (A resent record
/// lands after later records of its key that went through the first time:
/// PutRecords does not order across calls.)
fn assert_exactly_once(
    stream: &KinesisStream,
    put: &[StreamRecord],
    read: &[(String, String, Bytes)],
    ordered: bool,
) {
    assert_eq!(read.len(), put.len());
    let mut seen: HashMap<&Bytes, usize> = HashMap::new();
    for (_, _, d) in read {
        *seen.entry(d).or_default() += 1;
    }
    for r in put {
        assert_eq!(seen.get(&r.data), Some(&1), "{:?}", r.data);
    }
    let map = stream.shard_map();
    for (shard, key, _) in read {
        assert_eq!(&map.shard_for(key).unwrap().shard_id, shard, "{key}");
    }
    if !ordered {
        return;
    }
    let mut per_key_put: HashMap<&str, Vec<&Bytes>> = HashMap::new();
    for r in put {
        per_key_put
            .entry(&r.partition_key)
            .or_default()
            .push(&r.data);
    }
    let mut per_key_read: HashMap<&str, Vec<&Bytes>> = HashMap::new();
    for (_, k, d) in read {
        per_key_read.entry(k).or_default().push(d);
    }
    assert_eq!(per_key_put, per_key_read);
}

async fn routes_and_arrives(endpoint: &str) {
    let clients = clients(endpoint).await;
    let stream = KinesisStream::new(clients.kinesis(), "readings", ShardBudget::default());
    stream.ensure_stream(2).await.expect("create stream");
    stream.ensure_stream(2).await.expect("idempotent");
    assert_eq!(stream.shard_map().shards().len(), 2);

    let put = records(1000, "r");
    let report = stream.put(put.clone(), DEADLINE).await;
    assert_eq!(report.sent, 1000);
    assert_eq!(report.failed, vec![]);
    assert_eq!(report.throttled, 0);
    assert_eq!(report.attempts, 2);

    let read = read_all(&clients.kinesis(), "readings").await;
    assert_exactly_once(&stream, &put, &read, true);
    let per_shard = |i: usize| {
        read.iter()
            .filter(|(s, ..)| *s == stream.shard_map().shards()[i].shard_id)
            .count()
    };
    assert!(per_shard(0) > 0 && per_shard(1) > 0);
    assert_eq!(per_shard(0) + per_shard(1), 1000);
}

#[tokio::test]
async fn kinesis_on_moto() {
    let moto = LocalServer::moto();
    routes_and_arrives(&moto.endpoint()).await;
}

#[tokio::test]
async fn kinesis_on_kinesalite() {
    let k = LocalServer::kinesalite(None);
    routes_and_arrives(&k.endpoint()).await;
}

#[tokio::test]
async fn throttled_records_are_resent_exactly_once() {
    let k = LocalServer::kinesalite(None);
    let proxy = ThrottleProxy::start(
        addr_of(&k.endpoint()),
        ProxyConfig {
            drop_indices: vec![0, 7, 123, 499],
            fail_every_nth: 3,
        },
    )
    .await;
    let clients = clients(&proxy.endpoint()).await;
    let stream = KinesisStream::new(clients.kinesis(), "throttled", ShardBudget::default());
    stream.ensure_stream(2).await.unwrap();

    let put = records(1200, "t");
    let report = stream.put(put.clone(), DEADLINE).await;
    assert_eq!(report.sent, 1200);
    assert_eq!(report.failed, vec![]);

    let stats = proxy.stats();
    eprintln!(
        "throttle proxy: {stats:?}",
        stats = (
            stats.put_records_calls,
            stats.rejected_calls,
            stats.records_received,
            stats.records_dropped,
            stats.records_in_rejected_calls
        )
    );
    assert!(stats.records_dropped > 0 && stats.rejected_calls > 0);
    // Forwarded exactly once each, and nothing but the failed ones was resent.
    assert_eq!(stats.records_forwarded, 1200);
    assert_eq!(
        stats.bytes_forwarded,
        put.iter().map(|r| r.data.len() as u64).sum::<u64>()
    );
    let mut fwd = stats.forwarded.clone();
    fwd.sort();
    fwd.dedup();
    assert_eq!(fwd.len(), 1200);
    assert_eq!(
        stats.records_received,
        1200 + stats.records_dropped + stats.records_in_rejected_calls
    );
    assert_eq!(
        report.throttled,
        stats.records_dropped + stats.records_in_rejected_calls
    );
    assert_eq!(u64::from(report.attempts), stats.put_records_calls);

    let read = read_all(&aws_clients_direct(&k).await, "throttled").await;
    assert_exactly_once(&stream, &put, &read, false);
}

async fn aws_clients_direct(k: &LocalServer) -> aws_sdk_kinesis::Client {
    clients(&k.endpoint()).await.kinesis()
}

#[tokio::test]
async fn outage_fails_by_deadline_then_recovers() {
    let dir = TempDir::new("kinesalite");
    let mut k = LocalServer::kinesalite(Some(dir.path()));
    let stream = KinesisStream::new(
        clients(&k.endpoint()).await.kinesis(),
        "outage",
        ShardBudget::default(),
    );
    stream.ensure_stream(1).await.unwrap();
    let first = records(10, "a");
    assert_eq!(stream.put(first.clone(), DEADLINE).await.sent, 10);

    k.stop();
    let second = records(10, "b");
    let report = stream.put(second.clone(), Duration::from_millis(500)).await;
    assert_eq!(report.sent, 0);
    assert!(report.attempts >= 1);
    let codes: Vec<&str> = report.failed.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(codes, vec!["TransportError"; 10]);
    let failed: Vec<StreamRecord> = report.failed.into_iter().map(|(r, _)| r).collect();
    assert_eq!(failed, second);

    k.restart();
    let report = stream.put(failed, DEADLINE).await;
    assert_eq!(report.sent, 10);
    let read = read_all(&clients(&k.endpoint()).await.kinesis(), "outage").await;
    let all: Vec<StreamRecord> = first.into_iter().chain(second).collect();
    assert_exactly_once(&stream, &all, &read, true);
}

#[tokio::test]
async fn missing_stream_fails_permanently() {
    let k = LocalServer::kinesalite(None);
    let stream = KinesisStream::new(
        clients(&k.endpoint()).await.kinesis(),
        "absent",
        ShardBudget::default(),
    );
    let report = stream.put(records(3, "x"), DEADLINE).await;
    assert_eq!(report.sent, 0);
    let codes: Vec<&str> = report.failed.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(codes, vec!["ResourceNotFoundException"; 3]);
    assert_eq!(report.attempts, 1);
}

#[tokio::test]
async fn reshard_refreshes_the_map() {
    let k = LocalServer::kinesalite(None);
    let client = clients(&k.endpoint()).await.kinesis();
    let stream = KinesisStream::new(client.clone(), "split", ShardBudget::default());
    stream.ensure_stream(1).await.unwrap();
    let parent = stream.shard_map().shards()[0].shard_id.clone();
    client
        .split_shard()
        .stream_name("split")
        .shard_to_split(&parent)
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    for _ in 0..200 {
        let s = client
            .describe_stream_summary()
            .stream_name("split")
            .send()
            .await
            .unwrap();
        if s.stream_description_summary().unwrap().stream_status() == &StreamStatus::Active {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The writer still has the old map: Kinesis puts records on the children.
    assert_eq!(stream.shard_map().shards().len(), 1);
    let put = records(200, "s");
    let report = stream.put(put.clone(), DEADLINE).await;
    assert_eq!(report.sent, 200);
    let map = stream.shard_map();
    assert_eq!(map.shards().len(), 2);
    assert!(map.shards().iter().all(|s| s.shard_id != parent));
    let read = read_all(&client, "split").await;
    assert_exactly_once(&stream, &put, &read, true);
}

/// Not a threshold, a measurement: prints records/s into kinesalite.
#[tokio::test]
async fn kinesalite_throughput() {
    let k = LocalServer::kinesalite(None);
    let clients = clients(&k.endpoint()).await;
    for (shards, budget) in [
        (
            4,
            ShardBudget {
                records_per_sec: 1_000_000,
                bytes_per_sec: 1 << 30,
            },
        ),
        (2, ShardBudget::default()),
    ] {
        let name = format!("tp{shards}");
        let stream = KinesisStream::new(clients.kinesis(), &name, budget);
        stream.ensure_stream(shards).await.unwrap();
        let n = 6000;
        let recs: Vec<StreamRecord> = (0..n)
            .map(|i| StreamRecord {
                partition_key: format!("dev-{i}"),
                data: Bytes::from(vec![b'x'; 100]),
            })
            .collect();
        let t0 = Instant::now();
        let report = stream.put(recs, DEADLINE).await;
        let secs = t0.elapsed().as_secs_f64();
        assert_eq!(report.sent, n);
        eprintln!(
            "kinesalite: {n} records x 100 B, {shards} shards, budget {} rec/s/shard: {:.2} s, {:.0} records/s, {} calls",
            budget.records_per_sec,
            secs,
            n as f64 / secs,
            report.attempts
        );
    }
}
