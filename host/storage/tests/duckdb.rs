//! The archive as DuckDB sees it: `read_parquet('root/**/*.parquet',
//! hive_partitioning=true)` over files written by `ArchiveWriter`, checking
//! row counts and a value per partition. Needs `python3` with `duckdb`.

use std::process::Command;
use std::time::Duration;

use weir_storage::archive::{ArchiveOutput, ArchiveRow, ArchiveWriter, RollPolicy};

const BASE: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z
const DAY: i64 = 86_400_000;

fn row(device: &str, device_type: &str, at: i64, temperature: Option<f64>) -> ArchiveRow {
    ArchiveRow {
        device: device.into(),
        device_type: device_type.into(),
        topic: format!("dt/{device_type}/{device}/telemetry"),
        received_at_ms: at,
        device_time_ms: Some(at - 5),
        metrics: temperature
            .map(|t| ("temperature".to_string(), t))
            .into_iter()
            .collect(),
        payload: format!("{{\"ts\":{}}}", at - 5),
    }
}

const SCRIPT: &str = r#"
import sys
try:
    import duckdb
except ImportError:
    sys.exit("duckdb is not importable: pip install duckdb")
root = sys.argv[1]
con = duckdb.connect()
rows = con.execute(f"""
    SELECT device_type, date, count(*), max(temperature), count(temperature),
           min(epoch_ms(received_at)), typeof(any_value(received_at))
    FROM read_parquet('{root}/**/*.parquet', hive_partitioning=true, union_by_name=true)
    GROUP BY ALL ORDER BY ALL
""").fetchall()
for r in rows:
    print("|".join(str(x) for x in r))
"#;

#[test]
fn duckdb_reads_the_archive_with_hive_partitions() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("archive");
    let policy = RollPolicy {
        max_bytes: 1 << 40,
        max_age: Duration::from_secs(3600),
    };
    let mut w = ArchiveWriter::open(
        &tmp.path().join("staging"),
        ArchiveOutput::Directory(root.clone()),
        policy,
    )
    .unwrap();
    let mut rows = Vec::new();
    for i in 0..100 {
        rows.push(row(
            &format!("t{}", i % 7),
            "thermostat",
            BASE + i,
            Some(20.0 + i as f64 / 10.0),
        ));
    }
    for i in 0..30 {
        rows.push(row(
            "t1",
            "thermostat",
            BASE + DAY + i,
            if i % 3 == 0 { None } else { Some(i as f64) },
        ));
    }
    rows.push(row("m1", "meter", BASE, None));
    w.append(&rows).unwrap();
    assert_eq!(w.close_all().unwrap().len(), 3);

    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&root)
        .output()
        .expect("python3 must be installed to run the DuckDB check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "DuckDB check failed (if duckdb is missing: pip install duckdb): {stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expect = format!(
        "meter|2023-11-14|1|None|0|{BASE}|TIMESTAMP WITH TIME ZONE\n\
         thermostat|2023-11-14|100|29.9|100|{BASE}|TIMESTAMP WITH TIME ZONE\n\
         thermostat|2023-11-15|30|29.0|20|{}|TIMESTAMP WITH TIME ZONE\n",
        BASE + DAY
    );
    assert_eq!(stdout, expect);
}
