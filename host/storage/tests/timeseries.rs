//! Integration tests of the time-series store: exact query results, raw and
//! bucketed, last-write-wins, day boundaries, retention, discovery, reopen,
//! and a reader running while a writer writes.

use std::sync::Arc;
use std::time::Duration;

use weir_storage::date::{Day, DAY_MS};
use weir_storage::timeseries::{
    Bucket, Sample, TsError, TsQuery, TsRecord, TsRows, TsStats, TsStore, WriteReport,
};

/// 2023-11-14T22:13:20Z, 20 s past a minute boundary.
const BASE: i64 = 1_700_000_000_000;
const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);

fn rec(device: &str, time_ms: i64, measures: &[(&str, f64)]) -> TsRecord {
    TsRecord {
        device: device.into(),
        device_type: "thermostat".into(),
        time_ms,
        measures: measures.iter().map(|(m, v)| (m.to_string(), *v)).collect(),
    }
}

fn q(device: &str, metric: &str, from_ms: i64, to_ms: i64) -> TsQuery {
    TsQuery {
        device: device.into(),
        metric: metric.into(),
        from_ms,
        to_ms,
        every_ms: None,
        limit: None,
    }
}

fn raw(rows: TsRows) -> Vec<(i64, f64)> {
    match rows {
        TsRows::Raw(v) => v.into_iter().map(|s| (s.time_ms, s.value)).collect(),
        TsRows::Buckets(b) => panic!("expected raw rows, got {b:?}"),
    }
}

fn open(dir: &tempfile::TempDir, retention: Duration) -> TsStore {
    TsStore::open(&dir.path().join("ts.redb"), retention).unwrap()
}

#[test]
fn raw_and_bucketed_queries_return_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    let ts = open(&dir, CENTURY);
    let report = ts
        .write_at(
            &[
                rec("dev-1", BASE, &[("temperature", 20.0), ("humidity", 40.0)]),
                rec(
                    "dev-1",
                    BASE + 15_000,
                    &[("temperature", 22.0), ("humidity", 41.0)],
                ),
                rec("dev-1", BASE + 30_000, &[("temperature", 21.0)]),
                rec("dev-1", BASE + 65_000, &[("temperature", 25.0)]),
                rec("dev-2", BASE, &[("temperature", 99.0)]),
            ],
            BASE,
        )
        .unwrap();
    assert_eq!(
        report,
        WriteReport {
            points: 7,
            expired: 0,
            invalid: 0
        }
    );

    let all = raw(ts
        .query(&q("dev-1", "temperature", BASE, BASE + 120_000))
        .unwrap());
    assert_eq!(
        all,
        vec![
            (BASE, 20.0),
            (BASE + 15_000, 22.0),
            (BASE + 30_000, 21.0),
            (BASE + 65_000, 25.0)
        ]
    );
    // to_ms is exclusive, from_ms inclusive.
    let window = raw(ts
        .query(&q("dev-1", "temperature", BASE + 15_000, BASE + 30_000))
        .unwrap());
    assert_eq!(window, vec![(BASE + 15_000, 22.0)]);
    let limited = ts
        .query(&TsQuery {
            limit: Some(2),
            ..q("dev-1", "temperature", BASE, BASE + 120_000)
        })
        .unwrap();
    assert_eq!(raw(limited), vec![(BASE, 20.0), (BASE + 15_000, 22.0)]);
    let humidity = raw(ts.query(&q("dev-1", "humidity", 0, i64::MAX)).unwrap());
    assert_eq!(humidity, vec![(BASE, 40.0), (BASE + 15_000, 41.0)]);
    assert_eq!(
        raw(ts.query(&q("dev-1", "pressure", 0, i64::MAX)).unwrap()),
        vec![]
    );

    // Minute buckets align to the epoch: BASE is 20 s into its minute.
    let minute = BASE - 20_000;
    let buckets = ts
        .query(&TsQuery {
            every_ms: Some(60_000),
            ..q("dev-1", "temperature", BASE, BASE + 120_000)
        })
        .unwrap();
    assert_eq!(
        buckets,
        TsRows::Buckets(vec![
            Bucket {
                start_ms: minute,
                count: 3,
                min: 20.0,
                max: 22.0,
                mean: 21.0,
                first: 20.0,
                last: 21.0
            },
            Bucket {
                start_ms: minute + 60_000,
                count: 1,
                min: 25.0,
                max: 25.0,
                mean: 25.0,
                first: 25.0,
                last: 25.0
            },
        ])
    );
    let one = ts
        .query(&TsQuery {
            every_ms: Some(60_000),
            limit: Some(1),
            ..q("dev-1", "temperature", BASE, BASE + 120_000)
        })
        .unwrap();
    assert!(matches!(one, TsRows::Buckets(ref b) if b.len() == 1 && b[0].count == 3));

    let bad = ts.query(&TsQuery {
        every_ms: Some(0),
        ..q("dev-1", "temperature", 0, 1)
    });
    assert!(matches!(bad, Err(TsError::InvalidQuery(_))));
}

#[test]
fn last_write_wins_across_and_within_batches() {
    let dir = tempfile::tempdir().unwrap();
    let ts = open(&dir, CENTURY);
    ts.write_at(&[rec("d", BASE, &[("t", 1.0)])], BASE).unwrap();
    ts.write_at(&[rec("d", BASE, &[("t", 2.0)])], BASE).unwrap();
    assert_eq!(
        raw(ts.query(&q("d", "t", 0, i64::MAX)).unwrap()),
        vec![(BASE, 2.0)]
    );
    let r = ts
        .write_at(
            &[
                rec("d", BASE, &[("t", 3.0), ("t", 4.0)]),
                rec("d", BASE, &[("t", 5.0)]),
            ],
            BASE,
        )
        .unwrap();
    assert_eq!(r.points, 3);
    assert_eq!(
        raw(ts.query(&q("d", "t", 0, i64::MAX)).unwrap()),
        vec![(BASE, 5.0)]
    );
    assert_eq!(ts.stats().unwrap().points, 1);
}

#[test]
fn queries_span_day_tables() {
    let dir = tempfile::tempdir().unwrap();
    let ts = open(&dir, CENTURY);
    let midnight = Day::of_ms(BASE).unwrap().end_ms(); // 2023-11-15T00:00:00Z
    ts.write_at(
        &[
            rec("d", midnight, &[("t", 2.0)]),
            rec("d", midnight - 1, &[("t", 1.0)]),
            rec("d", midnight + DAY_MS + 5, &[("t", 3.0)]),
        ],
        BASE,
    )
    .unwrap();
    let got = raw(ts
        .query(&q("d", "t", midnight - 10, midnight + 2 * DAY_MS))
        .unwrap());
    assert_eq!(
        got,
        vec![
            (midnight - 1, 1.0),
            (midnight, 2.0),
            (midnight + DAY_MS + 5, 3.0)
        ]
    );
    let day2 = raw(ts.query(&q("d", "t", midnight, midnight + DAY_MS)).unwrap());
    assert_eq!(day2, vec![(midnight, 2.0)]);
    // Hour buckets straddling midnight.
    let b = ts
        .query(&TsQuery {
            every_ms: Some(3_600_000),
            ..q("d", "t", 0, i64::MAX)
        })
        .unwrap();
    let starts: Vec<i64> = match b {
        TsRows::Buckets(b) => b.iter().map(|b| b.start_ms).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        starts,
        vec![midnight - 3_600_000, midnight, midnight + DAY_MS]
    );
    assert_eq!(
        ts.stats().unwrap(),
        TsStats {
            points: 3,
            days: 3,
            series: 1,
            oldest_ms: Some(midnight - 1),
            newest_ms: Some(midnight + DAY_MS + 5),
            horizon_ms: None,
        }
    );
}

#[test]
fn retention_drops_old_days_and_refuses_expired_points() {
    let dir = tempfile::tempdir().unwrap();
    let ts = open(&dir, Duration::from_secs(10 * 86_400));
    let day = Day::of_ms(BASE).unwrap(); // 2023-11-14
    let now = day.start_ms() + 12 * 3_600_000; // 2023-11-14T12:00Z
    let report = ts
        .write_at(
            &[
                rec("a", now - 9 * DAY_MS, &[("t", 9.0)]), // 2023-11-05
                rec("a", now - 5 * DAY_MS, &[("t", 5.0)]), // 2023-11-09
                rec("a", now - 4 * DAY_MS - 3_600_000, &[("t", 4.5)]), // 2023-11-10T11:00
                rec("a", now - DAY_MS, &[("t", 1.0), ("u", 1.5)]), // 2023-11-13
                rec("b", now - 9 * DAY_MS, &[("t", 7.0)]),
                rec("a", now - 11 * DAY_MS, &[("t", 11.0), ("u", 11.5)]), // past the horizon
            ],
            now,
        )
        .unwrap();
    assert_eq!(
        report,
        WriteReport {
            points: 6,
            expired: 2,
            invalid: 0
        }
    );
    assert_eq!(ts.series(None).unwrap().len(), 3);

    let r = ts.enforce_retention(now + 6 * DAY_MS).unwrap();
    // Horizon 2023-11-10T12:00Z: days wholly before it go.
    assert_eq!(r.horizon_ms, now - 4 * DAY_MS);
    assert_eq!(
        r.days_dropped,
        vec!["20231105".to_string(), "20231109".to_string()]
    );
    assert_eq!(r.points_dropped, 3);
    assert_eq!(r.series_dropped, 1); // b/t had only 2023-11-05
    assert_eq!(
        ts.series(None).unwrap(),
        vec![
            ("a".to_string(), "t".to_string()),
            ("a".to_string(), "u".to_string())
        ]
    );
    // The straddling day's older point is hidden although its table stays.
    assert_eq!(
        raw(ts.query(&q("a", "t", 0, i64::MAX)).unwrap()),
        vec![(now - DAY_MS, 1.0)]
    );
    let stats = ts.stats().unwrap();
    assert_eq!((stats.points, stats.days), (3, 2));
    assert_eq!(stats.horizon_ms, Some(now - 4 * DAY_MS));
    // Points behind the enforced horizon are refused even with an old clock.
    let late = ts
        .write_at(&[rec("a", now - 5 * DAY_MS, &[("t", 5.0)])], now)
        .unwrap();
    assert_eq!(
        late,
        WriteReport {
            points: 0,
            expired: 1,
            invalid: 0
        }
    );
    // Retention never moves backwards.
    assert_eq!(
        ts.enforce_retention(now).unwrap().horizon_ms,
        now - 4 * DAY_MS
    );

    // The horizon survives a reopen.
    drop(ts);
    let ts = open(&dir, Duration::from_secs(10 * 86_400));
    assert_eq!(
        raw(ts.query(&q("a", "t", 0, i64::MAX)).unwrap()),
        vec![(now - DAY_MS, 1.0)]
    );
}

#[test]
fn wall_clock_write_refuses_points_older_than_retention() {
    let dir = tempfile::tempdir().unwrap();
    let ts = open(&dir, Duration::from_secs(86_400));
    let now = weir_storage::timeseries::now_ms();
    let r = ts
        .write(&[
            rec("d", now - 2 * DAY_MS, &[("t", 1.0)]),
            rec("d", now - 3_600_000, &[("t", 2.0)]),
        ])
        .unwrap();
    assert_eq!(
        r,
        WriteReport {
            points: 1,
            expired: 1,
            invalid: 0
        }
    );
}

#[test]
fn invalid_points_are_counted_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let ts = open(&dir, CENTURY);
    let r = ts
        .write_at(
            &[
                rec(
                    "d",
                    BASE,
                    &[("t", f64::NAN), ("u", f64::INFINITY), ("v", 1.0)],
                ),
                rec("d", i64::MAX, &[("t", 1.0)]),
            ],
            BASE,
        )
        .unwrap();
    assert_eq!(
        r,
        WriteReport {
            points: 1,
            expired: 0,
            invalid: 3
        }
    );
}

#[test]
fn series_discovery_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ts = open(&dir, CENTURY);
        ts.write_at(
            &[
                rec("dev-10", BASE, &[("t", 1.0)]),
                rec("dev-1", BASE, &[("t", 1.0), ("h", 2.0)]),
                rec("dev-1", BASE + DAY_MS, &[("t", 3.0)]),
            ],
            BASE,
        )
        .unwrap();
        assert_eq!(
            ts.device_type("dev-1", "t").unwrap().as_deref(),
            Some("thermostat")
        );
    }
    let ts = open(&dir, CENTURY);
    let s = |d: &str, m: &str| (d.to_string(), m.to_string());
    assert_eq!(
        ts.series(None).unwrap(),
        vec![s("dev-1", "h"), s("dev-1", "t"), s("dev-10", "t")]
    );
    assert_eq!(
        ts.series(Some("dev-1")).unwrap(),
        vec![s("dev-1", "h"), s("dev-1", "t")]
    );
    assert_eq!(ts.series(Some("dev-")).unwrap(), vec![]);
    // Series created after a reopen get fresh ids: no mixing with old ones.
    ts.write_at(&[rec("dev-2", BASE, &[("t", 9.0)])], BASE)
        .unwrap();
    assert_eq!(
        raw(ts.query(&q("dev-2", "t", 0, i64::MAX)).unwrap()),
        vec![(BASE, 9.0)]
    );
    assert_eq!(
        raw(ts.query(&q("dev-10", "t", 0, i64::MAX)).unwrap()),
        vec![(BASE, 1.0)]
    );
    assert_eq!(
        raw(ts.query(&q("dev-1", "t", 0, i64::MAX)).unwrap()),
        vec![(BASE, 1.0), (BASE + DAY_MS, 3.0)]
    );
}

#[test]
fn buffered_writes_are_visible_and_sync_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let ts = open(&dir, CENTURY);
    let now = weir_storage::timeseries::now_ms();
    let r = ts.write_buffered(&[rec("d", now, &[("t", 1.0)])]).unwrap();
    assert_eq!(r.points, 1);
    ts.sync().unwrap();
    drop(ts);
    let ts = open(&dir, CENTURY);
    assert_eq!(
        raw(ts.query(&q("d", "t", 0, i64::MAX)).unwrap()),
        vec![(now, 1.0)]
    );
}

/// A thread writing `batches` buffered batches of `per_batch` points
/// (series w/n, value n at `BASE + n` seconds), checkpointing after batch
/// `b` when `checkpoint_after(b)`.
fn spawn_writer(
    ts: &Arc<TsStore>,
    batches: i64,
    per_batch: i64,
    checkpoint_after: fn(i64) -> bool,
) -> std::thread::JoinHandle<()> {
    let ts = Arc::clone(ts);
    std::thread::spawn(move || {
        for b in 0..batches {
            let recs: Vec<TsRecord> = (0..per_batch)
                .map(|i| {
                    let n = b * per_batch + i;
                    rec("w", BASE + n * 1_000, &[("n", n as f64)])
                })
                .collect();
            ts.write_buffered(&recs).unwrap();
            if checkpoint_after(b) {
                ts.checkpoint().unwrap();
            }
        }
    })
}

#[test]
fn reader_sees_consistent_snapshots_while_a_writer_writes() {
    const BATCHES: i64 = 200;
    const PER_BATCH: i64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let ts = Arc::new(open(&dir, CENTURY));
    let writer = spawn_writer(&ts, BATCHES, PER_BATCH, |_| false);
    let mut reads = 0;
    let mut last_len = 0;
    loop {
        let done = writer.is_finished();
        let got = match ts.query(&q("w", "n", 0, i64::MAX)).unwrap() {
            TsRows::Raw(v) => v,
            other => panic!("{other:?}"),
        };
        // Every snapshot is a whole number of batches, in order, values intact.
        assert_eq!(got.len() as i64 % PER_BATCH, 0);
        assert!(got.len() >= last_len);
        for (i, s) in got.iter().enumerate() {
            assert_eq!(
                *s,
                Sample {
                    time_ms: BASE + i as i64 * 1_000,
                    value: i as f64
                }
            );
        }
        last_len = got.len();
        reads += 1;
        if done {
            break;
        }
    }
    writer.join().unwrap();
    assert!(reads >= 1);
    assert_eq!(last_len as i64, BATCHES * PER_BATCH);
}

// --- WAL, checkpoints, chunks and migration ---------------------------------

fn wal_segments(dir: &tempfile::TempDir) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.path().join("ts.redb.wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn all(ts: &TsStore, device: &str, metric: &str) -> Vec<(i64, f64)> {
    raw(ts.query(&q(device, metric, i64::MIN, i64::MAX)).unwrap())
}

/// A fleet of `devices` devices, two metrics, `per_device` readings each
/// 10 s apart starting `start`, straddling midnight.
fn fleet(devices: usize, per_device: i64, start: i64) -> Vec<TsRecord> {
    let mut out = Vec::new();
    for k in 0..per_device {
        for d in 0..devices {
            let t = start + k * 10_000;
            out.push(rec(
                &format!("dev-{d}"),
                t,
                &[("t", (d as i64 * 1_000 + k) as f64), ("h", k as f64 / 3.0)],
            ));
        }
    }
    out
}

#[test]
fn buffered_writes_survive_sync_drop_and_reopen_without_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let midnight = Day::of_ms(BASE).unwrap().end_ms();
    let start = midnight - 600_000;
    let records = fleet(5, 200, start);
    {
        let ts = open(&dir, CENTURY);
        for batch in records.chunks(37) {
            assert_eq!(ts.write_buffered(batch).unwrap().points, batch.len() * 2);
        }
        // Overwrites in a later call win.
        ts.write_buffered(&[rec("dev-3", start, &[("t", -1.0)])])
            .unwrap();
        ts.sync().unwrap();
    }
    let ts = open(&dir, CENTURY);
    let expected: Vec<(i64, f64)> = (0..200)
        .map(|k| {
            (
                start + k * 10_000,
                if k == 0 { -1.0 } else { (3_000 + k) as f64 },
            )
        })
        .collect();
    assert_eq!(all(&ts, "dev-3", "t"), expected);
    assert_eq!(all(&ts, "dev-0", "h").len(), 200);
    assert_eq!(ts.series(None).unwrap().len(), 10);
    assert_eq!(
        ts.device_type("dev-4", "h").unwrap().as_deref(),
        Some("thermostat")
    );
    assert_eq!(
        ts.stats().unwrap(),
        TsStats {
            points: 2_000,
            days: 2,
            series: 10,
            oldest_ms: Some(start),
            newest_ms: Some(start + 199 * 10_000),
            horizon_ms: None,
        }
    );
    // The checkpoint `stats` ran sealed everything: one (empty) segment left.
    assert_eq!(wal_segments(&dir).len(), 1);
    drop(ts);
    let ts = open(&dir, CENTURY);
    assert_eq!(all(&ts, "dev-3", "t"), expected);
    assert_eq!(ts.stats().unwrap().points, 2_000);
}

#[test]
fn torn_wal_tails_are_cut_and_later_writes_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ts = open(&dir, CENTURY);
        for i in 0..3 {
            ts.write_at(&[rec("d", BASE + i, &[("t", i as f64)])], BASE)
                .unwrap();
        }
    }
    // Garbage after the last whole frame: everything written survives.
    let last = wal_segments(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(&[0x17, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]);
    std::fs::write(&last, &bytes).unwrap();
    {
        let ts = open(&dir, CENTURY);
        assert_eq!(
            all(&ts, "d", "t"),
            vec![(BASE, 0.0), (BASE + 1, 1.0), (BASE + 2, 2.0)]
        );
        assert_eq!(std::fs::metadata(&last).unwrap().len(), whole as u64);
        ts.write_at(&[rec("d", BASE + 3, &[("t", 3.0)])], BASE)
            .unwrap();
    }
    // A frame cut short: that write is lost, the earlier ones are not.
    let last = wal_segments(&dir).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 4)
        .unwrap();
    {
        let ts = open(&dir, CENTURY);
        assert_eq!(
            all(&ts, "d", "t"),
            vec![(BASE, 0.0), (BASE + 1, 1.0), (BASE + 2, 2.0)]
        );
        ts.write_at(
            &[
                rec("d", BASE + 4, &[("t", 4.0)]),
                rec("e", BASE, &[("u", 9.0)]),
            ],
            BASE,
        )
        .unwrap();
    }
    let ts = open(&dir, CENTURY);
    assert_eq!(
        all(&ts, "d", "t"),
        vec![
            (BASE, 0.0),
            (BASE + 1, 1.0),
            (BASE + 2, 2.0),
            (BASE + 4, 4.0)
        ]
    );
    assert_eq!(all(&ts, "e", "u"), vec![(BASE, 9.0)]);
    assert_eq!(ts.stats().unwrap().points, 5);
}

#[test]
fn sealed_points_merge_with_overwrites_and_out_of_order_writes() {
    let dir = tempfile::tempdir().unwrap();
    let ts = open(&dir, CENTURY);
    let chunk = weir_storage::timeseries::CHUNK_POINTS as i64;
    let n = 3 * chunk + 17;
    // Even seconds first, written newest first, in several calls.
    let mut expected: std::collections::BTreeMap<i64, f64> = Default::default();
    let evens: Vec<TsRecord> = (0..n)
        .rev()
        .map(|i| rec("d", BASE + i * 2_000, &[("t", i as f64)]))
        .collect();
    for batch in evens.chunks(50) {
        ts.write_at(batch, BASE).unwrap();
    }
    for i in 0..n {
        expected.insert(BASE + i * 2_000, i as f64);
    }
    ts.checkpoint().unwrap();
    assert_eq!(wal_segments(&dir).len(), 1);
    let want = |m: &std::collections::BTreeMap<i64, f64>| -> Vec<(i64, f64)> {
        m.iter().map(|(t, v)| (*t, *v)).collect()
    };
    assert_eq!(all(&ts, "d", "t"), want(&expected));

    // Overwrite a sealed point: the head wins, before and after sealing.
    ts.write_at(&[rec("d", BASE + 10 * 2_000, &[("t", -10.0)])], BASE)
        .unwrap();
    expected.insert(BASE + 10 * 2_000, -10.0);
    assert_eq!(all(&ts, "d", "t"), want(&expected));
    ts.checkpoint().unwrap();
    assert_eq!(all(&ts, "d", "t"), want(&expected));
    ts.write_at(&[rec("d", BASE + 10 * 2_000, &[("t", -11.0)])], BASE)
        .unwrap();
    expected.insert(BASE + 10 * 2_000, -11.0);
    assert_eq!(all(&ts, "d", "t"), want(&expected));

    // Odd seconds land inside existing chunks' spans, and past the end.
    let odds: Vec<TsRecord> = (0..n + 40)
        .step_by(3)
        .map(|i| rec("d", BASE + i * 2_000 + 1_000, &[("t", 0.5 + i as f64)]))
        .collect();
    ts.write_at(&odds, BASE).unwrap();
    for i in (0..n + 40).step_by(3) {
        expected.insert(BASE + i * 2_000 + 1_000, 0.5 + i as f64);
    }
    assert_eq!(all(&ts, "d", "t"), want(&expected));
    ts.checkpoint().unwrap();
    assert_eq!(all(&ts, "d", "t"), want(&expected));
    assert_eq!(ts.stats().unwrap().points, expected.len() as u64);

    // Windows, limits and buckets read across chunk boundaries.
    let (from, to) = (BASE + 200_001, BASE + 500_000);
    let window: Vec<(i64, f64)> = expected.range(from..to).map(|(t, v)| (*t, *v)).collect();
    assert_eq!(raw(ts.query(&q("d", "t", from, to)).unwrap()), window);
    let limited = ts
        .query(&TsQuery {
            limit: Some(7),
            ..q("d", "t", from, to)
        })
        .unwrap();
    assert_eq!(raw(limited), window[..7].to_vec());
    let every = 60_000;
    let buckets = match ts
        .query(&TsQuery {
            every_ms: Some(every),
            ..q("d", "t", i64::MIN, i64::MAX)
        })
        .unwrap()
    {
        TsRows::Buckets(b) => b,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        buckets.iter().map(|b| b.count).sum::<u64>(),
        expected.len() as u64
    );
    let first_bucket: Vec<f64> = expected
        .iter()
        .filter(|(t, _)| weir_storage::timeseries::bucket_start(**t, every) == buckets[0].start_ms)
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(buckets[0].first, first_bucket[0]);
    assert_eq!(buckets[0].last, *first_bucket.last().unwrap());

    drop(ts);
    let ts = open(&dir, CENTURY);
    assert_eq!(all(&ts, "d", "t"), want(&expected));
    assert_eq!(ts.stats().unwrap().points, expected.len() as u64);
}

#[test]
fn queries_never_miss_points_while_checkpoints_run() {
    const BATCHES: i64 = 120;
    const PER_BATCH: i64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let ts = Arc::new(open(&dir, CENTURY));
    let writer = spawn_writer(&ts, BATCHES, PER_BATCH, |b| b % 7 == 3);
    let mut last_len = 0;
    loop {
        let done = writer.is_finished();
        let got = all(&ts, "w", "n");
        assert!(got.len() >= last_len, "{} < {last_len}", got.len());
        assert_eq!(got.len() as i64 % PER_BATCH, 0);
        for (i, (t, v)) in got.iter().enumerate() {
            assert_eq!((*t, *v), (BASE + i as i64 * 1_000, i as f64));
        }
        last_len = got.len();
        if done {
            break;
        }
    }
    writer.join().unwrap();
    assert_eq!(last_len as i64, BATCHES * PER_BATCH);
    assert_eq!(ts.stats().unwrap().points, (BATCHES * PER_BATCH) as u64);
}

#[test]
fn retention_drops_unsealed_heads_of_old_days() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Duration::from_secs(10 * 86_400);
    let now = Day::of_ms(BASE).unwrap().start_ms() + 12 * 3_600_000;
    {
        let ts = open(&dir, retention);
        // Sealed: one old day and one kept day.
        ts.write_at(
            &[
                rec("a", now - 9 * DAY_MS, &[("t", 9.0)]),
                rec("a", now - DAY_MS, &[("t", 1.0)]),
            ],
            now,
        )
        .unwrap();
        ts.checkpoint().unwrap();
        // Unsealed: more old points, a straddling day, and a recent one.
        ts.write_at(
            &[
                rec("a", now - 9 * DAY_MS + 5, &[("t", 9.5)]),
                rec("b", now - 8 * DAY_MS, &[("t", 8.0)]),
                rec("a", now - 4 * DAY_MS - 3_600_000, &[("t", 4.5)]),
                rec("a", now - 4 * DAY_MS + 3_600_000, &[("t", 3.5)]),
                rec("c", now, &[("t", 0.0)]),
            ],
            now,
        )
        .unwrap();
        let r = ts.enforce_retention(now + 6 * DAY_MS).unwrap();
        assert_eq!(r.horizon_ms, now - 4 * DAY_MS);
        assert_eq!(r.days_dropped, vec!["20231105", "20231106"]);
        assert_eq!(r.points_dropped, 3);
        assert_eq!(r.series_dropped, 1);
        assert_eq!(
            all(&ts, "a", "t"),
            vec![(now - 4 * DAY_MS + 3_600_000, 3.5), (now - DAY_MS, 1.0)]
        );
        assert_eq!(all(&ts, "b", "t"), vec![]);
        let s = ts.stats().unwrap();
        assert_eq!((s.points, s.days, s.series), (4, 3, 2));
    }
    let ts = open(&dir, retention);
    assert_eq!(
        all(&ts, "a", "t"),
        vec![(now - 4 * DAY_MS + 3_600_000, 3.5), (now - DAY_MS, 1.0)]
    );
    assert_eq!(all(&ts, "c", "t"), vec![(now, 0.0)]);
    assert_eq!(
        ts.series(None).unwrap(),
        vec![
            ("a".to_string(), "t".to_string()),
            ("c".to_string(), "t".to_string())
        ]
    );
    let s = ts.stats().unwrap();
    assert_eq!((s.points, s.days, s.series), (4, 3, 2));
}

/// The series key of the previous format (and this one): each string with
/// NUL escaped as 00 FF and terminated by 00 01.
fn legacy_key(device: &str, metric: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for s in [device, metric] {
        for &b in s.as_bytes() {
            if b == 0 {
                out.extend_from_slice(&[0, 0xFF]);
            } else {
                out.push(b);
            }
        }
        out.extend_from_slice(&[0, 1]);
    }
    out
}

#[test]
fn files_of_the_per_point_format_are_migrated_on_open() {
    use redb::{TableDefinition, TableHandle};
    const SERIES: TableDefinition<&[u8], (&str, i64, u64)> = TableDefinition::new("series");
    const DAYS: TableDefinition<i64, (i64, i64)> = TableDefinition::new("days");
    const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ts.redb");
    let day = Day::of_ms(BASE).unwrap();
    let next = Day(day.0 + 1);
    let name = |d: Day| format!("points_{}", d.compact());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut series = txn.open_table(SERIES).unwrap();
            series
                .insert(legacy_key("a", "t").as_slice(), ("meter", next.0, 0))
                .unwrap();
            series
                .insert(legacy_key("b\0", "u").as_slice(), ("valve", day.0, 1))
                .unwrap();
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("next_series_id", 2).unwrap();
            let mut days = txn.open_table(DAYS).unwrap();
            let n1 = name(day);
            let mut p1 = txn
                .open_table(TableDefinition::<(u64, i64), f64>::new(&n1))
                .unwrap();
            for i in 0..300i64 {
                p1.insert((0, BASE + i * 1_000), i as f64 * 0.5).unwrap();
            }
            p1.insert((1, BASE), -7.25).unwrap();
            days.insert(day.0, (BASE, BASE + 299_000)).unwrap();
            let n2 = name(next);
            let mut p2 = txn
                .open_table(TableDefinition::<(u64, i64), f64>::new(&n2))
                .unwrap();
            p2.insert((0, next.start_ms() + 1), 1e9).unwrap();
            days.insert(next.0, (next.start_ms() + 1, next.start_ms() + 1))
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let expected_a: Vec<(i64, f64)> = (0..300i64)
        .map(|i| (BASE + i * 1_000, i as f64 * 0.5))
        .chain([(next.start_ms() + 1, 1e9)])
        .collect();
    {
        let ts = TsStore::open(&path, CENTURY).unwrap();
        assert_eq!(all(&ts, "a", "t"), expected_a);
        assert_eq!(all(&ts, "b\0", "u"), vec![(BASE, -7.25)]);
        assert_eq!(
            raw(ts
                .query(&q("a", "t", BASE + 100_000, BASE + 103_000))
                .unwrap()),
            vec![
                (BASE + 100_000, 50.0),
                (BASE + 101_000, 50.5),
                (BASE + 102_000, 51.0)
            ]
        );
        assert_eq!(
            ts.device_type("b\0", "u").unwrap().as_deref(),
            Some("valve")
        );
        assert_eq!(
            ts.stats().unwrap(),
            TsStats {
                points: 302,
                days: 2,
                series: 2,
                oldest_ms: Some(BASE),
                newest_ms: Some(next.start_ms() + 1),
                horizon_ms: None,
            }
        );
        // New series get ids after the migrated ones.
        ts.write_at(&[rec("c", BASE, &[("t", 3.0)])], BASE).unwrap();
        ts.write_at(&[rec("a", BASE, &[("t", 0.75)])], BASE)
            .unwrap();
        ts.checkpoint().unwrap();
        assert_eq!(all(&ts, "c", "t"), vec![(BASE, 3.0)]);
        assert_eq!(all(&ts, "a", "t")[0], (BASE, 0.75));
    }
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let names: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("points_") || n == "days"),
            "{names:?}"
        );
        assert!(
            names.contains(&format!("chunks_{}", day.compact())),
            "{names:?}"
        );
        let meta = txn.open_table(META).unwrap();
        assert_eq!(meta.get("next_series_id").unwrap().unwrap().value(), 3);
    }
    let ts = TsStore::open(&path, CENTURY).unwrap();
    assert_eq!(all(&ts, "a", "t").len(), 301);
    assert_eq!(all(&ts, "b\0", "u"), vec![(BASE, -7.25)]);
    assert_eq!(ts.stats().unwrap().points, 303);
}
