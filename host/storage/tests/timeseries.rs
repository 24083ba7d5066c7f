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

#[test]
fn reader_sees_consistent_snapshots_while_a_writer_writes() {
    const BATCHES: i64 = 200;
    const PER_BATCH: i64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let ts = Arc::new(open(&dir, CENTURY));
    let writer = {
        let ts = Arc::clone(&ts);
        std::thread::spawn(move || {
            for b in 0..BATCHES {
                let recs: Vec<TsRecord> = (0..PER_BATCH)
                    .map(|i| {
                        let n = b * PER_BATCH + i;
                        rec("w", BASE + n * 1_000, &[("n", n as f64)])
                    })
                    .collect();
                ts.write_buffered(&recs).unwrap();
            }
        })
    };
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
