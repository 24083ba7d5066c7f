//! The AWS storage tiers end to end, against real AWS-compatible servers on
//! 127.0.0.1 (moto server; kinesalite for the outage test), read back with
//! the real AWS SDK: device shadow in DynamoDB, readings in Timestream,
//! Parquet in S3, alerts through SNS (read from an SQS subscription), the
//! stream in Kinesis. The outage test stops Kinesis mid-stream: readings
//! spool to disk, ingestion is held back at the spool limit, and after the
//! restart every reading arrives.

mod support;

#[path = "../host/aws/tests/support/servers.rs"]
mod servers;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{now_ms, repo_root, Mqtt, TempDir, Weir};
use weir_aws::{AwsClients, AwsSettings, Endpoints};

const ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

const TOPIC_ARN: &str = "arn:aws:sns:us-east-1:123456789012:weir-alerts";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn clients(endpoint: &str) -> AwsClients {
    let settings = AwsSettings {
        region: Some("us-east-1".into()),
        endpoints: Endpoints::all(endpoint),
        s3_force_path_style: true,
        ..Default::default()
    };
    AwsClients::with_static_credentials(&settings, "test", "test").await
}

/// The shipped rules plus a stream rule (every reading to Kinesis) and an
/// alert rule (every alert to SNS).
fn rules_with_outlets(dir: &Path, stream_only: bool) {
    std::fs::create_dir_all(dir).expect("rules dir");
    let shipped = repo_root().join("rules");
    let mut plugins = String::new();
    if !stream_only {
        for f in ["telemetry.toml", "alerts.toml"] {
            std::fs::copy(shipped.join(f), dir.join(f)).expect("copy rule");
        }
        plugins = std::fs::read_to_string(shipped.join("plugins.toml")).expect("plugins.toml");
        plugins.push_str(
            "\n[notify]\ncomponent = \"builtin:notify\"\n\
             settings = { target = \"ops\", subject = \"Weir alert: {device} {metric}\" }\n\
             grants = { notify = [\"ops\"] }\n",
        );
        std::fs::write(
            dir.join("alerts-to-sns.toml"),
            "sql = \"SELECT * FROM '$weir/alerts/+'\"\n[[actions]]\nplugin = \"notify\"\n",
        )
        .expect("write rule");
    }
    plugins.push_str(
        "\n[kinesis]\ncomponent = \"builtin:kinesis\"\n\
         settings = { stream = \"telemetry\" }\n\
         grants = { stream = [\"telemetry\"] }\n",
    );
    std::fs::write(dir.join("plugins.toml"), plugins).expect("write plugins.toml");
    std::fs::write(
        dir.join("to-kinesis.toml"),
        "sql = \"SELECT * FROM 'dt/+/+/telemetry'\"\n[[actions]]\nplugin = \"kinesis\"\ndevice = \"${topic(3)}\"\n",
    )
    .expect("write rule");
}

fn wait_for<T>(what: &str, limit: Duration, probe: impl FnMut() -> Option<T>) -> T {
    wait_for_or(what, limit, probe, String::new)
}

/// As `wait_for`; on timeout the panic also shows `context()` (weir's status).
fn wait_for_or<T>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every record of a stream, from the start of each shard.
async fn read_stream(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<(String, Value)> {
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("ListShards");
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator;
        while let Some(it) = iterator {
            let page = kinesis
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .expect("GetRecords");
            if page.records().is_empty() {
                break;
            }
            for r in page.records() {
                let data: Value =
                    serde_json::from_slice(r.data().as_ref()).expect("record is JSON");
                out.push((r.partition_key().unwrap_or_default().to_string(), data));
            }
            iterator = page.next_shard_iterator;
        }
    }
    out
}

#[test]
fn every_tier_reaches_its_aws_service() {
    let tmp = TempDir::new("aws");
    let moto = servers::LocalServer::moto();
    let endpoint = moto.endpoint();
    let rt = runtime();
    let aws = rt.block_on(clients(&endpoint));

    // The alert topic, and an SQS queue subscribed to it to read alerts back.
    let queue_url = rt.block_on(async {
        let sns = aws.sns();
        sns.create_topic()
            .name("weir-alerts")
            .send()
            .await
            .expect("CreateTopic");
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(aws.sdk_config())
                .endpoint_url(&endpoint)
                .build(),
        );
        let url = sqs
            .create_queue()
            .queue_name("alerts")
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .expect("queue url");
        sns.subscribe()
            .topic_arn(TOPIC_ARN)
            .protocol("sqs")
            .endpoint("arn:aws:sqs:us-east-1:123456789012:alerts")
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .expect("Subscribe");
        (sqs, url)
    });

    let rules = tmp.0.join("rules");
    rules_with_outlets(&rules, false);
    let config = format!(
        "[aws]\nregion = \"us-east-1\"\ns3_force_path_style = true\n\
         [aws.endpoints]\ndynamodb = \"{endpoint}\"\ns3 = \"{endpoint}\"\nsns = \"{endpoint}\"\n\
         kinesis = \"{endpoint}\"\ntimestream = \"{endpoint}\"\n\
         [storage.shadow]\nbackend = \"dynamodb\"\ntable = \"weir-shadow\"\ncreate_table = true\n\
         [storage.timeseries]\nbackend = \"timestream\"\ndatabase = \"weir\"\ntable = \"readings\"\n\
         create_table = true\n\
         [storage.archive]\nbackend = \"s3\"\nbucket = \"weir-archive\"\nprefix = \"fleet\"\n\
         create_bucket = true\nroll_secs = 1\n\
         [notify.ops]\nkind = \"sns\"\ntopic_arn = \"{TOPIC_ARN}\"\n\
         [stream.telemetry]\nkind = \"kinesis\"\nstream_name = \"weir-telemetry\"\ncreate_shards = 2\n\
         [delivery]\nretry_max_ms = 2000\n"
    );
    let weir = Weir::start_with_env(&tmp.0.join("weir"), &rules, &config, &ENV);

    // Two devices: 25 quiet readings each, then a spike on dev-a.
    let base = now_ms() - 60_000;
    let devices = [("thermostat", "dev-a"), ("pump", "dev-b")];
    let mqtt = Mqtt::connect(weir.addr, "aws-fleet");
    let mut sent = 0;
    for i in 0..25 {
        for (d, (ty, dev)) in devices.iter().enumerate() {
            let t = 21.0 + d as f64 + (i % 5) as f64 * 0.1;
            mqtt.publish(
                &format!("dt/{ty}/{dev}/telemetry"),
                format!(
                    "{{\"ts\":{},\"seq\":{i},\"temperature\":{t},\"humidity\":40}}",
                    base + i * 1000
                ),
            );
            sent += 1;
        }
    }
    mqtt.publish(
        "dt/thermostat/dev-a/telemetry",
        format!(
            "{{\"ts\":{},\"seq\":25,\"temperature\":35.5,\"humidity\":40}}",
            base + 25_000
        ),
    );
    sent += 1;
    mqtt.disconnect();

    // Shadow: one item per device, version = readings seen, latest state.
    let dynamo = aws.dynamodb();
    let item = wait_for_or(
        "dev-a's shadow item in DynamoDB",
        Duration::from_secs(120),
        || {
            let out = rt
                .block_on(
                    dynamo
                        .get_item()
                        .table_name("weir-shadow")
                        .key(
                            "device_id",
                            aws_sdk_dynamodb::types::AttributeValue::S("dev-a".into()),
                        )
                        .send(),
                )
                .ok()?;
            let item = out.item?;
            let version: u64 = item.get("version")?.as_n().ok()?.parse().ok()?;
            (version == 26).then_some(item)
        },
        || format!("status: {}\nlog:\n{}", weir.status(), weir.log()),
    );
    let reported = item["reported"].as_m().expect("reported is a map");
    assert_eq!(
        reported["temperature"].as_n().map(String::as_str),
        Ok("35.5")
    );
    assert_eq!(reported["seq"].as_n().map(String::as_str), Ok("25"));

    // Stream: every reading once, keyed by device, content intact.
    let records = wait_for("every reading in Kinesis", Duration::from_secs(60), || {
        let r = rt.block_on(read_stream(&aws.kinesis(), "weir-telemetry"));
        (r.len() >= sent).then_some(r)
    });
    assert_eq!(records.len(), sent);
    let mut seen: BTreeMap<(String, i64), f64> = BTreeMap::new();
    for (key, data) in &records {
        let seq = data["seq"].as_i64().expect("seq");
        let t = data["temperature"].as_f64().expect("temperature");
        assert!(
            seen.insert((key.clone(), seq), t).is_none(),
            "duplicate {key}/{seq}"
        );
    }
    assert_eq!(seen[&("dev-a".to_string(), 25)], 35.5);
    assert_eq!(seen[&("dev-b".to_string(), 24)], 22.4);

    // Alert: through SNS to the subscribed queue.
    let (sqs, queue_url) = &queue_url;
    let alert = wait_for("the alert in SQS", Duration::from_secs(60), || {
        let out = rt
            .block_on(
                sqs.receive_message()
                    .queue_url(queue_url)
                    .max_number_of_messages(10)
                    .send(),
            )
            .ok()?;
        out.messages().iter().find_map(|m| {
            let v: Value = serde_json::from_str(m.body()?).ok()?;
            (v["device"] == "dev-a" && v["metric"] == "temperature").then_some(v)
        })
    });
    assert_eq!(alert["value"].as_f64(), Some(35.5));
    assert!(alert["z"].as_f64().unwrap_or(0.0) > 3.5, "{alert}");

    // Time series: every reading written to Timestream (moto keeps them).
    wait_for(
        "every reading written to Timestream",
        Duration::from_secs(60),
        || {
            let s = weir.status();
            (s["sinks"]["timeseries"]["delivered"].as_u64() == Some(sent as u64)).then_some(())
        },
    );
    let tables = rt
        .block_on(
            aws.timestream_write()
                .describe_table()
                .database_name("weir")
                .table_name("readings")
                .send(),
        )
        .expect("DescribeTable");
    assert!(tables.table.is_some());

    // Archive: Parquet objects under fleet/device_type=…/date=…/, read back.
    let s3 = aws.s3();
    let keys = wait_for("archive objects in S3", Duration::from_secs(60), || {
        let out = rt
            .block_on(
                s3.list_objects_v2()
                    .bucket("weir-archive")
                    .prefix("fleet/")
                    .send(),
            )
            .ok()?;
        let keys: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(String::from))
            .collect();
        let types: std::collections::BTreeSet<&str> =
            keys.iter().filter_map(|k| k.split('/').nth(1)).collect();
        (types.len() == 2).then_some(keys)
    });
    let download = tmp.0.join("download");
    let mut rows = 0;
    for key in &keys {
        assert!(key.ends_with(".parquet"), "{key}");
        assert!(key.starts_with("fleet/device_type="), "{key}");
        let bytes = rt
            .block_on(async {
                s3.get_object()
                    .bucket("weir-archive")
                    .key(key)
                    .send()
                    .await
                    .expect("GetObject")
                    .body
                    .collect()
                    .await
                    .expect("object body")
            })
            .into_bytes();
        let local = download.join(key);
        std::fs::create_dir_all(local.parent().expect("parent")).expect("mkdir");
        std::fs::write(&local, &bytes).expect("write");
        rows += 1;
    }
    assert!(rows >= 2);
    let count = std::process::Command::new("python3")
        .args([
            "-c",
            &format!(
                "import duckdb; print(duckdb.sql(\"SELECT count(*) FROM read_parquet('{}/**/*.parquet', hive_partitioning=true)\").fetchall()[0][0])",
                download.display()
            ),
        ])
        .output()
        .expect("python3");
    assert!(
        count.status.success(),
        "DuckDB: {}",
        String::from_utf8_lossy(&count.stderr)
    );
    // Rows still open when the listing was taken roll a second later; the
    // objects present hold complete files only, so the count is at most sent.
    let archived: usize = String::from_utf8_lossy(&count.stdout)
        .trim()
        .parse()
        .expect("count");
    assert!(
        archived > 0 && archived <= sent,
        "archived {archived} of {sent}"
    );
    weir.stop();
}

#[test]
fn a_kinesis_outage_spools_holds_back_ingestion_and_loses_nothing() {
    let tmp = TempDir::new("outage");
    let mut kinesis_server = servers::LocalServer::kinesalite(Some(&tmp.0.join("kinesalite")));
    let endpoint = kinesis_server.endpoint();
    let rt = runtime();
    let aws = rt.block_on(clients(&endpoint));

    let rules = tmp.0.join("rules");
    rules_with_outlets(&rules, true);
    // A small memory queue and the smallest spool limit, so the outage
    // reaches the disk spool and then the gate.
    let config = format!(
        "[aws]\nregion = \"us-east-1\"\n[aws.endpoints]\nkinesis = \"{endpoint}\"\n\
         [stream.telemetry]\nkind = \"kinesis\"\nstream_name = \"outage\"\ncreate_shards = 2\n\
         [delivery]\nmemory_capacity = 100\nspool_limit_mib = 1\nretry_initial_ms = 50\nretry_max_ms = 500\n"
    );
    let weir = Weir::start_with_env(&tmp.0.join("weir"), &rules, &config, &ENV);
    let padding = "x".repeat(200);
    let publish = |mqtt: &Mqtt, from: usize, to: usize| {
        for seq in from..to {
            let dev = format!("d-{}", seq % 10);
            mqtt.publish(
                &format!("dt/meter/{dev}/telemetry"),
                format!(
                    "{{\"seq\":{seq},\"kwh\":{}.5,\"note\":\"{padding}\"}}",
                    seq % 97
                ),
            );
        }
    };

    let mqtt = Mqtt::connect(weir.addr, "outage-fleet");
    publish(&mqtt, 0, 500);
    wait_for(
        "the first readings delivered",
        Duration::from_secs(60),
        || {
            let s = weir.status();
            (s["sinks"]["stream.telemetry"]["delivered"].as_u64() >= Some(500)).then_some(())
        },
    );

    // Outage: Kinesis goes away mid-stream.
    kinesis_server.stop();
    let total = 6_000;
    let publisher = {
        let addr = weir.addr;
        std::thread::spawn(move || {
            let mqtt = Mqtt::connect(addr, "outage-fleet-2");
            let padding = "x".repeat(200);
            for seq in 500..total {
                let dev = format!("d-{}", seq % 10);
                mqtt.publish(
                    &format!("dt/meter/{dev}/telemetry"),
                    format!(
                        "{{\"seq\":{seq},\"kwh\":{}.5,\"note\":\"{padding}\"}}",
                        seq % 97
                    ),
                );
            }
            mqtt.disconnect();
        })
    };
    // Readings spool to disk; at the limit the gate closes and ingestion waits.
    let status = wait_for(
        "the spool limit to close the gate",
        Duration::from_secs(60),
        || {
            let s = weir.status();
            (s["sinks"]["gate_closed"] == Value::Bool(true)).then_some(s)
        },
    );
    let stream = &status["sinks"]["stream.telemetry"];
    assert!(
        stream["spooled_bytes"].as_u64().unwrap_or(0) >= 1024 * 1024,
        "{stream}"
    );
    let received_while_closed = status["counters"]["messages_received"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        received_while_closed < total as u64,
        "ingestion was not held back"
    );
    // The batch in flight gives up after the writer's deadline; the failure
    // is counted and reported, and ingestion stays held back meanwhile.
    let failing = wait_for(
        "the failure to be reported",
        Duration::from_secs(60),
        || {
            let s = weir.status();
            let failures = s["sinks"]["stream.telemetry"]["failures"]
                .as_u64()
                .unwrap_or(0);
            (failures > 0).then_some(s)
        },
    );
    let stream = &failing["sinks"]["stream.telemetry"];
    assert!(
        stream["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("kinesis")),
        "{stream}"
    );
    assert_eq!(failing["sinks"]["gate_closed"], Value::Bool(true));
    let drain_start = Instant::now();

    // Kinesis returns: the spool drains in order, the gate opens, the rest flows.
    kinesis_server.restart();
    publisher.join().expect("publisher");
    drop(mqtt);
    let records = wait_for("every reading in Kinesis", Duration::from_secs(120), || {
        let r = rt.block_on(read_stream(&aws.kinesis(), "outage"));
        let distinct: std::collections::BTreeSet<i64> =
            r.iter().filter_map(|(_, v)| v["seq"].as_i64()).collect();
        (distinct.len() >= total).then_some(r)
    });
    println!(
        "backlog of {} readings drained into Kinesis {:.1} s after the restart",
        total - 500,
        drain_start.elapsed().as_secs_f64()
    );
    let mut by_seq: BTreeMap<i64, usize> = BTreeMap::new();
    for (key, data) in &records {
        let seq = data["seq"].as_i64().expect("seq");
        assert_eq!(key, &format!("d-{}", seq % 10));
        assert_eq!(data["kwh"].as_f64(), Some((seq % 97) as f64 + 0.5));
        *by_seq.entry(seq).or_default() += 1;
    }
    assert_eq!(by_seq.len(), total, "every reading arrived");
    assert_eq!(by_seq.keys().next(), Some(&0));
    assert_eq!(by_seq.keys().last(), Some(&(total as i64 - 1)));
    // At-least-once: a PutRecords cut off by the kill may have been stored
    // before the connection dropped, and is then sent again.
    let duplicates: usize = by_seq.values().map(|n| n - 1).sum();
    assert!(duplicates <= 500, "{duplicates} duplicates");
    // Per device, Kinesis order follows the readings' order.
    for d in 0..10 {
        let key = format!("d-{d}");
        let seqs: Vec<i64> = records
            .iter()
            .filter(|(k, _)| *k == key)
            .filter_map(|(_, v)| v["seq"].as_i64())
            .collect();
        let mut firsts = Vec::new();
        for s in seqs {
            if !firsts.contains(&s) {
                firsts.push(s);
            }
        }
        assert!(
            firsts.windows(2).all(|w| w[0] < w[1]),
            "device {key} out of order"
        );
    }
    let s = weir.status();
    assert_eq!(s["sinks"]["gate_closed"], Value::Bool(false));
    weir.stop();
}
