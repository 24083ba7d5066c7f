//! Throughput of the embedded storage tiers on this machine.
//!
//! `cargo run --release -p weir-storage --example storage_bench`
//!
//! - time-series store: sustained records/s (3 measures each, batches of
//!   256, 10,000 devices reporting round-robin) with durable `write` (fsync
//!   per batch) and with `write_buffered` + `sync` every 16 batches
//!   (records/s include generating the records, "store alone" excludes it;
//!   sizes are the redb file plus its WAL after a final checkpoint);
//! - reopening: replaying 3 million points of WAL;
//! - query latency for one device-day (8,640 points, raw and 5-min
//!   buckets), with the points in memory (head) and sealed into chunks;
//! - archive: rows/s and Parquet bytes per reading with a ~150-byte payload,
//!   zstd vs snappy.
//!
//! Each phase runs for a fixed wall time (about a minute in all). An
//! argument runs only the phases whose name contains it: `ts-write`,
//! `ts-replay`, `ts-query`, `archive`.

use std::time::{Duration, Instant, SystemTime};

use weir_storage::archive::{
    ArchiveCompression, ArchiveOutput, ArchiveRow, ArchiveWriter, RollPolicy,
};
use weir_storage::timeseries::{now_ms, TsQuery, TsRecord, TsRows, TsStore};

const DEVICES: u64 = 10_000;
const BATCH: u64 = 256;
const PHASE: Duration = Duration::from_secs(8);
/// Batches between `sync` calls in the buffered time-series run.
const SYNC_EVERY: u64 = 16;

/// xorshift64*: deterministic noise without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The i-th reading of the fleet: device i % DEVICES, every 10 s per device.
fn reading(i: u64, start_ms: i64, rng: &mut Rng) -> (String, i64, [f64; 3]) {
    let device = format!("dev-{:05}", i % DEVICES);
    let time = start_ms + (i / DEVICES) as i64 * 10_000 + (i % DEVICES) as i64 % 10_000;
    let d = (i % DEVICES) as f64;
    let values = [
        round2(20.0 + (d % 50.0) / 10.0 + rng.next() * 0.2),
        round2(35.0 + (d % 30.0) / 2.0 + rng.next()),
        round2(3.6 + (d % 10.0) / 100.0 + rng.next() * 0.01),
    ];
    (device, time, values)
}

fn ts_batch(from: u64, n: u64, start_ms: i64, rng: &mut Rng) -> Vec<TsRecord> {
    (from..from + n)
        .map(|i| {
            let (device, time_ms, v) = reading(i, start_ms, rng);
            TsRecord {
                device,
                device_type: "thermostat".into(),
                time_ms,
                measures: vec![
                    ("temperature".into(), v[0]),
                    ("humidity".into(), v[1]),
                    ("battery".into(), v[2]),
                ],
            }
        })
        .collect()
}

#[cfg(unix)]
fn allocated(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks() * 512
}

#[cfg(not(unix))]
fn allocated(meta: &std::fs::Metadata) -> u64 {
    meta.len()
}

/// Bytes of every file under `dir` (the redb file and its WAL directory):
/// (length, allocated on disk — redb grows its file sparsely).
fn disk_bytes(dir: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let (mut len, mut allocated_bytes) = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let (l, a) = if meta.is_dir() {
            disk_bytes(&entry.path())?
        } else {
            (meta.len(), allocated(&meta))
        };
        len += l;
        allocated_bytes += a;
    }
    Ok((len, allocated_bytes))
}

fn bench_ts(durable: bool, batch_records: u64) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let ts = TsStore::open(
        &dir.path().join("ts.redb"),
        Duration::from_secs(90 * 86_400),
    )?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start_ms = now_ms() - 86_400_000;
    let t0 = Instant::now();
    let (mut records, mut points, mut batches) = (0u64, 0u64, 0u64);
    let mut gen = Duration::ZERO;
    while t0.elapsed() < PHASE {
        let g = Instant::now();
        let batch = ts_batch(records, batch_records, start_ms, &mut rng);
        gen += g.elapsed();
        let r = if durable {
            ts.write(&batch)?
        } else {
            ts.write_buffered(&batch)?
        };
        points += r.points as u64;
        records += batch_records;
        batches += 1;
        if !durable && batches % SYNC_EVERY == 0 {
            ts.sync()?;
        }
    }
    if !durable {
        ts.sync()?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let store_secs = secs - gen.as_secs_f64();
    // Whatever the write path has not sealed yet (it checkpoints every
    // 60 s or 64 MiB of WAL on its own, inside the timed loop above).
    let c = Instant::now();
    ts.checkpoint()?;
    let checkpoint = c.elapsed();
    let (len, alloc_bytes) = disk_bytes(dir.path())?;
    println!(
        "ts {:<34} batch {:>5} {:>9.0} records/s {:>9.0} points/s  (store alone {:.0} points/s; {} records in {:.1} s; final checkpoint {:.0} ms; files {:.1} MB, allocated {:.1} MB = {:.1} B/point)",
        if durable { "write (fsync per batch)" } else { "write_buffered + sync every 16" },
        batch_records,
        records as f64 / secs,
        points as f64 / secs,
        points as f64 / store_secs,
        records,
        secs,
        checkpoint.as_secs_f64() * 1e3,
        len as f64 / 1e6,
        alloc_bytes as f64 / 1e6,
        alloc_bytes as f64 / points as f64
    );
    Ok(())
}

/// Reopening after a crash-like stop: time to replay a WAL segment of
/// about 40 MB (3 million points, below the size that triggers a
/// checkpoint) into memory.
fn bench_replay() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ts.redb");
    let retention = Duration::from_secs(90 * 86_400);
    let mut rng = Rng(3);
    let start_ms = now_ms() - 86_400_000;
    let records = 1_000_000u64;
    {
        let ts = TsStore::open(&path, retention)?;
        for from in (0..records).step_by(BATCH as usize) {
            ts.write_buffered(&ts_batch(from, BATCH, start_ms, &mut rng))?;
        }
        ts.sync()?;
    }
    let (wal_bytes, _) = disk_bytes(&dir.path().join("ts.redb.wal"))?;
    let t = Instant::now();
    let ts = TsStore::open(&path, retention)?;
    let open = t.elapsed();
    let c = Instant::now();
    ts.checkpoint()?;
    println!(
        "ts reopen replaying {:.1} MB of WAL ({} points): {:.0} ms; then checkpoint {:.0} ms",
        wal_bytes as f64 / 1e6,
        records * 3,
        open.as_secs_f64() * 1e3,
        c.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

fn bench_query() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let ts = TsStore::open(
        &dir.path().join("ts.redb"),
        Duration::from_secs(90 * 86_400),
    )?;
    let mut rng = Rng(7);
    let day_start = now_ms() - now_ms().rem_euclid(86_400_000) - 86_400_000;
    // Background: 2,000 other devices over the same day, so the table is not tiny.
    for chunk in 0..(2_000u64 * 144 / BATCH) {
        let batch: Vec<TsRecord> = (0..BATCH)
            .map(|j| {
                let i = chunk * BATCH + j;
                TsRecord {
                    device: format!("other-{:04}", i % 2_000),
                    device_type: "thermostat".into(),
                    time_ms: day_start + (i / 2_000) as i64 * 600_000,
                    measures: vec![("temperature".into(), rng.next())],
                }
            })
            .collect();
        ts.write_buffered(&batch)?;
    }
    // The device under test: every 10 s for the whole day.
    let target: Vec<TsRecord> = (0..8_640i64)
        .map(|k| TsRecord {
            device: "dev-00042".into(),
            device_type: "thermostat".into(),
            time_ms: day_start + k * 10_000,
            measures: vec![("temperature".into(), 20.0 + rng.next())],
        })
        .collect();
    for chunk in target.chunks(BATCH as usize) {
        ts.write_buffered(chunk)?;
    }
    ts.sync()?;
    let q = TsQuery {
        device: "dev-00042".into(),
        metric: "temperature".into(),
        from_ms: day_start,
        to_ms: day_start + 86_400_000,
        every_ms: None,
        limit: None,
    };
    // First with every point still in memory (WAL + heads), then sealed
    // into redb chunks by a checkpoint.
    for sealed in [false, true] {
        if sealed {
            ts.checkpoint()?;
        }
        for (label, q) in [
            ("raw (8,640 points)", q.clone()),
            (
                "5-min buckets (288)",
                TsQuery {
                    every_ms: Some(300_000),
                    ..q.clone()
                },
            ),
        ] {
            let mut lat = Vec::new();
            let mut n = 0;
            for _ in 0..200 {
                let t = Instant::now();
                n = match ts.query(&q)? {
                    TsRows::Raw(v) => v.len(),
                    TsRows::Buckets(b) => b.len(),
                };
                lat.push(t.elapsed());
            }
            lat.sort();
            println!(
                "ts query one device-day {label:<20} {:<7} median {:>7.0} µs, p99 {:>7.0} µs ({n} rows)",
                if sealed { "chunks" } else { "head" },
                lat[lat.len() / 2].as_secs_f64() * 1e6,
                lat[lat.len() * 99 / 100].as_secs_f64() * 1e6
            );
        }
    }
    Ok(())
}

fn payload(ts: i64, v: &[f64; 3], seq: u64) -> String {
    format!(
        "{{\"ts\":{ts},\"temperature\":{:.2},\"humidity\":{:.2},\"battery\":{:.2},\"rssi\":-{},\"seq\":{seq},\"uptime_s\":{},\"fw\":\"1.4.2\",\"unit\":\"celsius\",\"status\":\"ok\"}}",
        v[0],
        v[1],
        v[2],
        40 + seq % 50,
        86_400 + seq * 10
    )
}

fn bench_archive(compression: ArchiveCompression) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let policy = RollPolicy {
        max_bytes: 64 << 20,
        max_age: Duration::from_secs(3600),
    };
    let mut w = ArchiveWriter::open_with(
        &dir.path().join("staging"),
        ArchiveOutput::Directory(dir.path().join("archive")),
        policy,
        compression,
    )?;
    let mut rng = Rng(11);
    let start_ms = now_ms() - now_ms().rem_euclid(86_400_000) + 3_600_000;
    let t0 = Instant::now();
    let mut rows = 0u64;
    let mut payload_bytes = 0u64;
    let mut gen = Duration::ZERO;
    while t0.elapsed() < PHASE {
        let g = Instant::now();
        let batch: Vec<ArchiveRow> = (rows..rows + BATCH)
            .map(|i| {
                let (device, time, v) = reading(i, start_ms, &mut rng);
                let p = payload(time - 40, &v, i / DEVICES);
                payload_bytes += p.len() as u64;
                ArchiveRow {
                    topic: format!("dt/thermostat/{device}/telemetry"),
                    device,
                    device_type: "thermostat".into(),
                    received_at_ms: time,
                    device_time_ms: Some(time - 40),
                    metrics: vec![
                        ("temperature".into(), v[0]),
                        ("humidity".into(), v[1]),
                        ("battery".into(), v[2]),
                    ],
                    payload: p,
                }
            })
            .collect();
        gen += g.elapsed();
        w.append(&batch)?;
        rows += BATCH;
    }
    let mut closed = w.roll_due(SystemTime::now())?;
    closed.extend(w.close_all()?);
    let secs = (t0.elapsed() - gen).as_secs_f64();
    let bytes: u64 = closed.iter().map(|f| f.bytes).sum();
    println!(
        "archive {:<10} {:>9.0} rows/s  {:>6.1} Parquet bytes/reading  ({} rows, {} files, payload {:.0} B avg)",
        format!("{compression:?}"),
        rows as f64 / secs,
        bytes as f64 / rows as f64,
        rows,
        closed.len(),
        payload_bytes as f64 / rows as f64
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "weir-storage bench ({} cores; the CPU may be shared)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // Optional argument: run only the phases whose name contains it
    // (`ts`, `ts-write`, `ts-replay`, `ts-query`, `archive`).
    let only = std::env::args().nth(1).unwrap_or_default();
    let run = |phase: &str| phase.contains(only.as_str());
    if run("ts-write") {
        bench_ts(true, BATCH)?;
        bench_ts(false, BATCH)?;
        bench_ts(true, 4096)?;
    }
    if run("ts-replay") {
        bench_replay()?;
    }
    if run("ts-query") {
        bench_query()?;
    }
    if run("archive") {
        bench_archive(ArchiveCompression::Zstd(3))?;
        bench_archive(ArchiveCompression::Snappy)?;
    }
    Ok(())
}
