//! The embedded storage tiers end to end: readings published over MQTT
//! reach the time-series store (queried with `weir ts query` while `weir
//! run` serves, and after it stopped) and the Parquet archive (read back by
//! DuckDB with hive partitioning).

mod support;

use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{now_ms, repo_root, Mqtt, TempDir, Weir};

const DEVICES: [(&str, &str); 3] = [
    ("thermostat", "t-1"),
    ("thermostat", "t-2"),
    ("pump", "p-1"),
];
const READINGS: i64 = 30;

fn temperature(device_index: usize, i: i64) -> f64 {
    20.0 + device_index as f64 + (i % 7) as f64 * 0.25
}

fn publish_fleet(weir: &Weir, base: i64) {
    let mqtt = Mqtt::connect(weir.addr, "storage-fleet");
    for i in 0..READINGS {
        for (d, (ty, dev)) in DEVICES.iter().enumerate() {
            let payload = format!(
                "{{\"ts\":{},\"temperature\":{},\"humidity\":{},\"site\":\"north\"}}",
                base + i * 1000,
                temperature(d, i),
                40.0 + d as f64
            );
            mqtt.publish(&format!("dt/{ty}/{dev}/telemetry"), payload);
        }
    }
    mqtt.disconnect();
}

/// `weir ts query` arguments for one series over [from, to), plus `extra`.
fn ts_query<'a>(
    device: &'a str,
    metric: &'a str,
    from: &'a str,
    to: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "ts", "query", "--device", device, "--metric", metric, "--from", from, "--to", to,
    ];
    args.extend_from_slice(extra);
    args
}

fn json_out(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn duckdb(sql: &str) -> Vec<Vec<Value>> {
    let script = format!(
        "import duckdb, json\nrows = duckdb.sql({sql:?}).fetchall()\nprint(json.dumps([[v if isinstance(v, (int, float, str)) or v is None else str(v) for v in r] for r in rows]))"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "DuckDB query failed (is it installed? `python3 -m pip install duckdb`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("DuckDB rows as JSON")
}

#[test]
fn readings_reach_the_time_series_store_and_the_parquet_archive() {
    let tmp = TempDir::new("storage");
    let weir = Weir::start_with_rules(
        &tmp.0,
        &repo_root().join("rules"),
        "[storage.archive]\nroll_secs = 2\n",
    );
    // Two minutes ago, on a 10 s boundary, one reading a second: well
    // inside the 90-day retention.
    let base = (now_ms() / 10_000 - 12) * 10_000;
    publish_fleet(&weir, base);

    // temperature and humidity per reading (ts is the time, not a measure).
    let points = (READINGS as u64) * DEVICES.len() as u64 * 2;
    weir.wait_counter("timeseries.points", points);

    // Queried while weir serves: exact raw values, in time order.
    let from = base.to_string();
    let to = (base + READINGS * 1000).to_string();
    let raw = json_out(weir.cli(&ts_query("t-2", "temperature", &from, &to, &["--json"])));
    let samples = raw["Raw"].as_array().expect("raw samples");
    assert_eq!(samples.len(), READINGS as usize, "{raw}");
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(s["time_ms"], base + i as i64 * 1000);
        assert_eq!(s["value"].as_f64(), Some(temperature(1, i as i64)));
    }

    // Ten-second buckets: 10 readings each, i % 7 pattern known.
    let buckets = json_out(weir.cli(&ts_query(
        "p-1",
        "humidity",
        &from,
        &to,
        &["--every", "10s", "--json"],
    )));
    let buckets = buckets["Buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 3, "{buckets:?}");
    for b in buckets {
        assert_eq!(b["count"], 10);
        assert_eq!(b["mean"].as_f64(), Some(42.0));
    }

    // The table form prints one line per sample after the header.
    let table = weir.cli(&ts_query("t-1", "temperature", &from, &to, &[]));
    assert!(table.status.success());
    assert_eq!(
        String::from_utf8_lossy(&table.stdout).lines().count(),
        READINGS as usize + 1
    );

    // Files roll after 2 s; stopping closes whatever is still open.
    let archive = weir.data_dir.join("archive");
    weir.stop();

    // Offline: the same query answers from the data directory.
    let offline = Command::new(support::weir_bin())
        .args(ts_query(
            "t-2",
            "temperature",
            &from,
            &to,
            &["--json", "--data-dir"],
        ))
        .arg(tmp.0.join("data"))
        .output()
        .expect("weir ts query");
    assert_eq!(
        json_out(offline)["Raw"].as_array().map(|a| a.len()),
        Some(READINGS as usize)
    );

    // No half-written file is visible to a glob.
    let mut stack = vec![archive.clone()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("archive dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                assert!(
                    name.ends_with(".parquet") && !name.starts_with('.'),
                    "stray file {p:?}"
                );
                files += 1;
            }
        }
    }
    assert!(files >= 2, "one file per partition at least, found {files}");

    let glob = format!("{}/**/*.parquet", archive.display());
    let per_partition = duckdb(&format!(
        "SELECT device_type, date, count(*), count(DISTINCT device_id), round(sum(temperature), 4) \
         FROM read_parquet('{glob}', hive_partitioning = true) GROUP BY ALL ORDER BY device_type"
    ));
    let date = chrono_date(base);
    let sum = |d: usize| -> f64 { (0..READINGS).map(|i| temperature(d, i)).sum() };
    assert_eq!(per_partition.len(), 2, "{per_partition:?}");
    assert_eq!(per_partition[0][0], "pump");
    assert_eq!(per_partition[0][1], Value::String(date.clone()));
    assert_eq!(per_partition[0][2], READINGS);
    assert_eq!(per_partition[0][3], 1);
    assert_eq!(
        per_partition[0][4].as_f64(),
        Some((sum(2) * 1e4).round() / 1e4)
    );
    assert_eq!(per_partition[1][0], "thermostat");
    assert_eq!(per_partition[1][2], READINGS * 2);
    assert_eq!(
        per_partition[1][4].as_f64(),
        Some(((sum(0) + sum(1)) * 1e4).round() / 1e4)
    );

    // Columns: UTC timestamps, ids, topic, metrics, raw payload.
    let row = duckdb(&format!(
        "SELECT epoch_ms(received_at) >= {base}, epoch_ms(device_time), device_id, topic, humidity, \
         json_extract_string(payload, '$.site') FROM read_parquet('{glob}', hive_partitioning = true) \
         WHERE device_id = 't-1' ORDER BY device_time LIMIT 1"
    ));
    assert_eq!(row[0][0], Value::Bool(true));
    assert_eq!(row[0][1], base);
    assert_eq!(row[0][2], "t-1");
    assert_eq!(row[0][3], "dt/thermostat/t-1/telemetry");
    assert_eq!(row[0][4].as_f64(), Some(40.0));
    assert_eq!(row[0][5], "north");

    // The Athena table for it.
    let ddl = Command::new(support::weir_bin())
        .args([
            "archive",
            "ddl",
            "--location",
            "s3://fleet-archive/weir/",
            "--dir",
        ])
        .arg(&archive)
        .output()
        .expect("weir archive ddl");
    assert!(
        ddl.status.success(),
        "{}",
        String::from_utf8_lossy(&ddl.stderr)
    );
    let ddl = String::from_utf8_lossy(&ddl.stdout);
    for needle in [
        "CREATE EXTERNAL TABLE",
        "`temperature` double",
        "`humidity` double",
        "PARTITIONED BY",
        "STORED AS PARQUET",
        "LOCATION 's3://fleet-archive/weir/'",
        "'projection.enabled'",
    ] {
        assert!(ddl.contains(needle), "DDL lacks {needle:?}:\n{ddl}");
    }
}

/// `YYYY-MM-DD` (UTC) of a time in ms.
fn chrono_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a time in range")
        .format("%Y-%m-%d")
        .to_string()
}

#[allow(dead_code)]
fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The AWS example (examples/aws) is a valid config with checked rules.
#[test]
fn the_aws_example_config_and_rules_check() {
    let example = repo_root().join("examples/aws");
    let config = weir_runtime::Config::from_file(&example.join("weir.toml"))
        .expect("examples/aws/weir.toml is valid");
    assert_eq!(
        config.storage.timeseries.backend,
        weir_runtime::config::TimeseriesBackend::Timestream
    );
    assert!(config.notify.contains_key("ops") && config.stream.contains_key("telemetry"));
    let out = Command::new(support::weir_bin())
        .args(["rules", "check"])
        .arg(example.join("rules"))
        .output()
        .expect("weir rules check");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A plugin granted a notify target that weir.toml does not configure is
/// refused when it loads, naming the target, instead of failing on its
/// first alert.
#[test]
fn a_grant_naming_an_unconfigured_target_is_refused_at_load() {
    let tmp = TempDir::new("unconfigured-target");
    let rules = tmp.0.join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(
        rules.join("plugins.toml"),
        "[notify]\ncomponent = \"builtin:notify\"\nsettings = { target = \"ops\" }\ngrants = { notify = [\"ops\"] }\n",
    )
    .expect("plugins.toml");
    std::fs::write(
        rules.join("alerts-to-sns.toml"),
        "sql = \"SELECT * FROM '$weir/alerts/+'\"\n[[actions]]\nplugin = \"notify\"\n",
    )
    .expect("rule");
    let config = tmp.0.join("weir.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nrules_dir = {:?}\n",
            tmp.0.join("data"),
            rules
        ),
    )
    .expect("weir.toml");
    let out = Command::new(support::weir_bin())
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("weir run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("grants notify target \"ops\"") && stderr.contains("[notify.ops]"),
        "{stderr}"
    );
}
