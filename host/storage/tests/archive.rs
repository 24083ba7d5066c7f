//! Integration tests of the Parquet archive writer: partitioning, schema and
//! nulls, rolling by size, schema and age, temp-file naming, crash recovery
//! (exactly once), locking, and `metrics_in`. Files are read back with the
//! parquet crate's Arrow reader.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use weir_storage::archive::{
    metrics_in, ArchiveError, ArchiveOutput, ArchiveRow, ArchiveWriter, ClosedFile, RollPolicy,
};

/// 2023-11-14T22:13:20Z.
const BASE: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

fn row(
    device: &str,
    device_type: &str,
    received_at_ms: i64,
    metrics: &[(&str, f64)],
) -> ArchiveRow {
    ArchiveRow {
        device: device.into(),
        device_type: device_type.into(),
        topic: format!("dt/{device_type}/{device}/telemetry"),
        received_at_ms,
        device_time_ms: Some(received_at_ms - 7),
        metrics: metrics.iter().map(|(m, v)| (m.to_string(), *v)).collect(),
        payload: format!("{{\"ts\":{},\"n\":{}}}", received_at_ms - 7, metrics.len()),
    }
}

fn big_policy() -> RollPolicy {
    RollPolicy {
        max_bytes: 1 << 40,
        max_age: Duration::from_secs(3600),
    }
}

struct Dirs {
    _tmp: tempfile::TempDir,
    staging: PathBuf,
    root: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    Dirs {
        staging: tmp.path().join("staging"),
        root: tmp.path().join("archive"),
        _tmp: tmp,
    }
}

fn open(d: &Dirs, policy: RollPolicy) -> ArchiveWriter {
    ArchiveWriter::open(&d.staging, ArchiveOutput::Directory(d.root.clone()), policy).unwrap()
}

fn read(path: &Path) -> RecordBatch {
    let file = fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    arrow_select_concat(&batches)
}

fn arrow_select_concat(batches: &[RecordBatch]) -> RecordBatch {
    assert!(!batches.is_empty());
    let schema = batches[0].schema();
    // Files over one reader batch: concatenate column by column.
    if batches.len() == 1 {
        return batches[0].clone();
    }
    let cols = (0..schema.fields().len())
        .map(|i| {
            let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
            arrow_select::concat::concat(&parts).unwrap()
        })
        .collect();
    RecordBatch::try_new(schema, cols).unwrap()
}

fn column_names(b: &RecordBatch) -> Vec<String> {
    b.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

fn strings(b: &RecordBatch, name: &str) -> Vec<String> {
    let c = b.column_by_name(name).unwrap().as_string::<i32>();
    (0..c.len()).map(|i| c.value(i).to_string()).collect()
}

fn floats(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let c = b
        .column_by_name(name)
        .unwrap()
        .as_primitive::<Float64Type>();
    (0..c.len())
        .map(|i| (!c.is_null(i)).then(|| c.value(i)))
        .collect()
}

fn times(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    let c = b
        .column_by_name(name)
        .unwrap()
        .as_primitive::<TimestampMillisecondType>();
    (0..c.len())
        .map(|i| (!c.is_null(i)).then(|| c.value(i)))
        .collect()
}

/// Every regular file under `dir`, relative, sorted.
fn all_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn parquet_files(dir: &Path) -> Vec<String> {
    all_files(dir)
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .collect()
}

fn keys(files: &[ClosedFile]) -> Vec<String> {
    files
        .iter()
        .map(|f| f.key.rsplit_once('/').unwrap().0.to_string())
        .collect()
}

#[test]
fn partitions_by_device_type_and_utc_date_with_exact_schema() {
    let d = dirs();
    let mut w = open(&d, big_policy());
    let midnight = BASE - BASE.rem_euclid(DAY) + DAY; // 2023-11-15T00:00Z
    w.append(&[
        row(
            "d1",
            "thermostat",
            BASE,
            &[("temperature", 21.5), ("humidity", 40.0)],
        ),
        row("d2", "thermostat", midnight - 1, &[("temperature", 22.5)]),
        row("d1", "thermostat", midnight, &[("humidity", 41.0)]),
        row("m1", "meter/v2 x", BASE, &[("kwh", 3.25)]),
        row("z1", "", BASE, &[]),
    ])
    .unwrap();
    let s = w.stats();
    assert_eq!(
        (s.open_partitions, s.buffered_rows, s.files_written),
        (4, 5, 0)
    );
    assert!(s.buffered_bytes > 0);
    let closed = w.close_all().unwrap();
    assert_eq!(
        keys(&closed),
        vec![
            "device_type=meter_v2_x/date=2023-11-14",
            "device_type=thermostat/date=2023-11-14",
            "device_type=thermostat/date=2023-11-15",
            "device_type=unknown/date=2023-11-14",
        ]
    );
    for f in &closed {
        assert_eq!(f.path, d.root.join(&f.key));
        assert_eq!(f.bytes, fs::metadata(&f.path).unwrap().len());
        let name = f.key.rsplit('/').next().unwrap();
        assert!(
            name.starts_with("part-") && name.ends_with(".parquet"),
            "{name}"
        );
    }
    assert_eq!(
        closed.iter().map(|f| f.rows).collect::<Vec<_>>(),
        vec![1, 2, 1, 1]
    );
    let s = w.stats();
    assert_eq!(
        (
            s.open_partitions,
            s.buffered_rows,
            s.files_written,
            s.rows_written
        ),
        (0, 0, 4, 5)
    );
    assert_eq!(s.bytes_written, closed.iter().map(|f| f.bytes).sum::<u64>());

    let b = read(&closed[1].path);
    assert_eq!(
        column_names(&b),
        [
            "received_at",
            "device_time",
            "device_id",
            "device_type",
            "topic",
            "temperature",
            "humidity",
            "payload"
        ]
    );
    let schema = b.schema();
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    assert_eq!(schema.field(0).data_type(), &ts);
    assert!(!schema.field(0).is_nullable());
    assert_eq!(schema.field(1).data_type(), &ts);
    assert!(schema.field(1).is_nullable());
    assert_eq!(schema.field(5).data_type(), &DataType::Float64);
    assert_eq!(
        times(&b, "received_at"),
        vec![Some(BASE), Some(midnight - 1)]
    );
    assert_eq!(
        times(&b, "device_time"),
        vec![Some(BASE - 7), Some(midnight - 8)]
    );
    assert_eq!(strings(&b, "device_id"), vec!["d1", "d2"]);
    assert_eq!(strings(&b, "device_type"), vec!["thermostat", "thermostat"]);
    assert_eq!(
        strings(&b, "topic"),
        vec!["dt/thermostat/d1/telemetry", "dt/thermostat/d2/telemetry"]
    );
    assert_eq!(floats(&b, "temperature"), vec![Some(21.5), Some(22.5)]);
    assert_eq!(floats(&b, "humidity"), vec![Some(40.0), None]);
    assert_eq!(
        strings(&b, "payload")[0],
        format!("{{\"ts\":{},\"n\":2}}", BASE - 7)
    );

    // The raw device type stays in the column; only the path is sanitized.
    assert_eq!(
        strings(&read(&closed[0].path), "device_type"),
        vec!["meter/v2 x"]
    );
    let unknown = read(&closed[3].path);
    assert_eq!(column_names(&unknown).len(), 6); // no metric columns at all
    assert!(fs::read_dir(&d.staging).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".rowlog")));
}

#[test]
fn metric_columns_in_first_seen_order_with_nulls_and_reserved_names() {
    let d = dirs();
    let mut w = open(&d, big_policy());
    w.append(&[
        row("a", "t", BASE, &[("x", 1.0)]),
        row("b", "t", BASE + 1, &[("y", 2.0), ("x", 3.0)]),
    ])
    .unwrap();
    w.append(&[
        row("c", "t", BASE + 2, &[]),
        row("d", "t", BASE + 3, &[("payload", 4.0), ("z", 5.0)]),
        ArchiveRow {
            device_time_ms: None,
            ..row("e", "t", BASE + 4, &[("z", 6.0)])
        },
    ])
    .unwrap();
    let closed = w.close_all().unwrap();
    assert_eq!(closed.len(), 1);
    let b = read(&closed[0].path);
    assert_eq!(
        column_names(&b),
        [
            "received_at",
            "device_time",
            "device_id",
            "device_type",
            "topic",
            "x",
            "y",
            "metric_payload",
            "z",
            "payload"
        ]
    );
    assert_eq!(
        floats(&b, "x"),
        vec![Some(1.0), Some(3.0), None, None, None]
    );
    assert_eq!(floats(&b, "y"), vec![None, Some(2.0), None, None, None]);
    assert_eq!(
        floats(&b, "metric_payload"),
        vec![None, None, None, Some(4.0), None]
    );
    assert_eq!(
        floats(&b, "z"),
        vec![None, None, None, Some(5.0), Some(6.0)]
    );
    assert_eq!(times(&b, "device_time")[4], None);
    assert_eq!(
        metrics_in(&d.root).unwrap(),
        vec!["x", "y", "metric_payload", "z"]
    );
}

#[test]
fn rolls_by_size_once_per_append_at_tiny_max_bytes() {
    let d = dirs();
    let mut w = open(
        &d,
        RollPolicy {
            max_bytes: 1,
            max_age: Duration::from_secs(3600),
        },
    );
    for i in 0..3 {
        w.append(&[
            row("a", "t", BASE + i, &[("x", i as f64)]),
            row("b", "t", BASE + i, &[("x", 0.5)]),
        ])
        .unwrap();
        assert_eq!(w.stats().open_partitions, 0);
    }
    let closed = w.roll_due(SystemTime::now()).unwrap();
    assert_eq!(closed.len(), 3);
    assert!(closed.iter().all(|f| f.rows == 2));
    let firsts: Vec<Option<f64>> = closed
        .iter()
        .map(|f| floats(&read(&f.path), "x")[0])
        .collect();
    assert_eq!(firsts, vec![Some(0.0), Some(1.0), Some(2.0)]);
    assert_eq!(parquet_files(&d.root).len(), 3);
    assert_eq!(w.close_all().unwrap(), vec![]);
}

#[test]
fn rolls_by_size_with_a_realistic_budget() {
    let d = dirs();
    let mut w = open(
        &d,
        RollPolicy {
            max_bytes: 200_000,
            max_age: Duration::from_secs(3600),
        },
    );
    let total = 60_000;
    for chunk in 0..(total / 256 + 1) {
        let rows: Vec<ArchiveRow> = (chunk * 256..((chunk + 1) * 256).min(total))
            .map(|i| {
                row(
                    &format!("dev-{}", i % 1000),
                    "t",
                    BASE + i as i64,
                    &[("x", i as f64)],
                )
            })
            .collect();
        w.append(&rows).unwrap();
    }
    let mut closed = w.roll_due(SystemTime::now()).unwrap();
    assert!(
        closed.len() >= 2,
        "expected size rolls, got {}",
        closed.len()
    );
    closed.extend(w.close_all().unwrap());
    assert_eq!(closed.iter().map(|f| f.rows).sum::<u64>(), total as u64);
    // The first file is sized by a conservative guess of the Parquet/log
    // ratio; later ones by the ratio observed, so they land near the budget.
    let sizes: Vec<u64> = closed.iter().map(|f| f.bytes).collect();
    assert!(sizes[0] <= 200_000, "{sizes:?}");
    for &size in &sizes[1..sizes.len() - 1] {
        assert!((180_000..=230_000).contains(&size), "{sizes:?}");
    }
    let mut seen: Vec<f64> = closed
        .iter()
        .flat_map(|f| floats(&read(&f.path), "x"))
        .flatten()
        .collect();
    seen.sort_by(f64::total_cmp);
    assert_eq!(seen, (0..total).map(|i| i as f64).collect::<Vec<_>>());
}

#[test]
fn a_new_metric_after_the_schema_is_fixed_rolls_the_file() {
    let d = dirs();
    let mut w = open(&d, big_policy());
    let first: Vec<ArchiveRow> = (0..8192)
        .map(|i| row("a", "t", BASE + i, &[("x", 1.0)]))
        .collect();
    w.append(&first).unwrap();
    w.append(&[row("a", "t", BASE + 9000, &[("x", 2.0), ("y", 3.0)])])
        .unwrap();
    let closed = w.roll_due(SystemTime::now()).unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].rows, 8192);
    let closed2 = w.close_all().unwrap();
    assert_eq!(closed2.len(), 1);
    let b = read(&closed2[0].path);
    assert_eq!(
        (floats(&b, "x"), floats(&b, "y")),
        (vec![Some(2.0)], vec![Some(3.0)])
    );
    assert_eq!(column_names(&read(&closed[0].path))[5..], ["x", "payload"]);
}

#[test]
fn rolls_by_age() {
    let d = dirs();
    let mut w = open(
        &d,
        RollPolicy {
            max_bytes: 1 << 40,
            max_age: Duration::from_secs(60),
        },
    );
    w.append(&[row("a", "t", BASE, &[("x", 1.0)])]).unwrap();
    let now = SystemTime::now();
    assert_eq!(w.roll_due(now).unwrap(), vec![]);
    assert_eq!(w.stats().open_partitions, 1);
    let closed = w.roll_due(now + Duration::from_secs(61)).unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(w.stats().open_partitions, 0);
}

#[test]
fn in_progress_files_are_hidden_and_never_match_parquet_glob() {
    let d = dirs();
    let mut w = open(&d, big_policy());
    // Enough rows that the temp Parquet file has started.
    let rows: Vec<ArchiveRow> = (0..10_000)
        .map(|i| row("a", "t", BASE + i, &[("x", 1.0)]))
        .collect();
    w.append(&rows).unwrap();
    let files = all_files(&d.root);
    assert_eq!(parquet_files(&d.root), Vec::<String>::new());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].rsplit('/').next().unwrap();
    assert!(
        name.starts_with(".part-") && name.ends_with(".parquet.tmp"),
        "{name}"
    );
    let closed = w.close_all().unwrap();
    assert_eq!(all_files(&d.root), vec![closed[0].key.clone()]);
}

#[test]
fn crash_before_close_recovers_every_row_exactly_once() {
    let d = dirs();
    let mut expected = Vec::new();
    {
        let mut w = open(&d, big_policy());
        // Partition 1 has a started temp file; partition 2 only a log.
        for chunk in 0..40 {
            let rows: Vec<ArchiveRow> = (0..256)
                .map(|i| {
                    row(
                        "a",
                        "t",
                        BASE + chunk * 256 + i,
                        &[("x", (chunk * 256 + i) as f64)],
                    )
                })
                .collect();
            expected.extend(rows.iter().map(|r| r.received_at_ms));
            w.append(&rows).unwrap();
        }
        w.append(&[row("b", "u", BASE, &[("y", 7.0)])]).unwrap();
        assert_eq!(w.stats().buffered_rows, 40 * 256 + 1);
        // Dropped without close_all: the process "crashes".
    }
    // A torn final append on top of the crash.
    let log = fs::read_dir(&d.staging)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "rowlog"))
        .unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all_torn();

    let mut w = open(&d, big_policy());
    let recovered = w.take_recovered();
    assert_eq!(recovered.len(), 2);
    assert_eq!(recovered.iter().map(|f| f.rows).sum::<u64>(), 40 * 256 + 1);
    assert_eq!(w.stats().files_written, 2);
    let t = recovered
        .iter()
        .find(|f| f.key.starts_with("device_type=t/"))
        .unwrap();
    let mut got: Vec<i64> = times(&read(&t.path), "received_at")
        .into_iter()
        .flatten()
        .collect();
    got.sort();
    assert_eq!(got, expected);
    let u = recovered
        .iter()
        .find(|f| f.key.starts_with("device_type=u/"))
        .unwrap();
    assert_eq!(floats(&read(&u.path), "y"), vec![Some(7.0)]);
    // No logs, no temp files left; the writer goes on working.
    assert_eq!(all_files(&d.staging), vec![".lock".to_string()]);
    assert_eq!(all_files(&d.root), parquet_files(&d.root));
    w.append(&[row("c", "t", BASE, &[("x", 1.0)])]).unwrap();
    assert_eq!(w.close_all().unwrap().len(), 1);
    drop(w);
    // Reopening again recovers nothing more.
    let mut w = open(&d, big_policy());
    assert_eq!(w.take_recovered(), vec![]);
    assert_eq!(parquet_files(&d.root).len(), 3);
}

#[test]
fn crash_after_rename_before_log_removal_does_not_duplicate() {
    let d = dirs();
    let mut w = open(&d, big_policy());
    w.append(&[
        row("a", "t", BASE, &[("x", 1.0)]),
        row("b", "t", BASE, &[("x", 2.0)]),
    ])
    .unwrap();
    let log = fs::read_dir(&d.staging)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "rowlog"))
        .unwrap();
    let saved = fs::read(&log).unwrap();
    let closed = w.close_all().unwrap();
    drop(w);
    fs::write(&log, saved).unwrap(); // as if the removal never reached disk
    let mut w = open(&d, big_policy());
    let recovered = w.take_recovered();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].key, closed[0].key);
    assert_eq!(parquet_files(&d.root), vec![closed[0].key.clone()]);
    assert_eq!(
        floats(&read(&closed[0].path), "x"),
        vec![Some(1.0), Some(2.0)]
    );
}

#[test]
fn outgoing_output_and_locking_and_invalid_rows() {
    let d = dirs();
    let out = d.root.join("outgoing");
    let mut w = ArchiveWriter::open(
        &d.staging,
        ArchiveOutput::Outgoing(out.clone()),
        big_policy(),
    )
    .unwrap();
    let second = ArchiveWriter::open(
        &d.staging,
        ArchiveOutput::Outgoing(out.clone()),
        big_policy(),
    );
    assert!(matches!(second, Err(ArchiveError::Locked(_))));
    let bad = w.append(&[row("a", "t", BASE, &[]), row("b", "t", i64::MAX, &[])]);
    assert!(matches!(bad, Err(ArchiveError::InvalidRow(_))));
    assert_eq!(w.stats().buffered_rows, 0);
    w.append(&[row("a", "t", BASE, &[("x", 1.0)])]).unwrap();
    let closed = w.close_all().unwrap();
    assert_eq!(closed[0].path, out.join(&closed[0].key));
    assert_eq!(parquet_files(&out), vec![closed[0].key.clone()]);
}

trait WriteTorn {
    fn write_all_torn(self);
}

impl WriteTorn for fs::File {
    fn write_all_torn(mut self) {
        use std::io::Write;
        self.write_all(b"{\"device\":\"torn\",\"device_type\":\"t\",\"topi")
            .unwrap();
    }
}
