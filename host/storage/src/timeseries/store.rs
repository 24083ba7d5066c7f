//! `TsStore`: the store itself — the write path (validation, write-ahead
//! log, in-memory heads), checkpoints that seal heads into redb chunks,
//! queries, retention, discovery and statistics.
//!
//! A write appends its points to the WAL (`<file>.wal/`) and to the heads
//! of its series; no redb transaction is involved. A checkpoint (every
//! [`CHECKPOINT_INTERVAL`], when the active WAL segment passes
//! [`CHECKPOINT_WAL_BYTES`], or on demand) takes the heads into a sealing
//! set, starts a new WAL segment, merges the set into the day tables in one
//! durable transaction, then deletes the older segments. Queries read
//! chunks, sealing set and heads, in that increasing priority.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableTable};

use super::catalog::{Catalog, Stage};
use super::error::TsError;
use super::key;
use super::merge::{merge, normalize};
use super::migrate;
use super::query::{self, Output};
use super::seal;
use super::tables::{
    chunk_table, chunk_table_name, DAY_SPANS, HORIZON_KEY, META, NEXT_ID_KEY, SERIES,
};
use super::types::{RetentionReport, TsQuery, TsRecord, TsRows, TsStats, WriteReport};
use super::wal::{self, Wal};
use crate::date::{Day, DAY_MS};

/// Longest time between checkpoints while writes arrive.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);
/// Size of the active WAL segment that triggers a checkpoint.
pub const CHECKPOINT_WAL_BYTES: u64 = 64 << 20;

const NO_HORIZON: i64 = i64::MIN;

/// An embedded time-series store with day-granular retention.
///
/// Share one `TsStore` across threads through an `Arc`: writers serialize
/// on a short in-memory critical section (WAL append and head push),
/// queries read redb snapshots plus a copy of the in-memory points and
/// never wait for a checkpoint's redb transaction.
pub struct TsStore {
    db: Database,
    retention_ms: i64,
    /// Last retention horizon enforced (`NO_HORIZON` if never). Stored
    /// under the state lock, and read there by writers.
    horizon_ms: AtomicI64,
    state: Mutex<State>,
    /// Held by a checkpoint or retention run (taken before `state`).
    sealer: Mutex<()>,
}

/// Everything the writers' lock guards.
struct State {
    catalog: Catalog,
    wal: Wal,
    stage: Stage,
    last_checkpoint: Instant,
}

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The WAL directory of the store at `path`: `<path>.wal`.
fn wal_dir(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".wal");
    PathBuf::from(s)
}

/// Start of the day holding `horizon_ms`: every point before it lies on a
/// day that retention drops whole.
fn dropped_before(horizon_ms: i64) -> i64 {
    horizon_ms.div_euclid(DAY_MS).saturating_mul(DAY_MS)
}

impl TsStore {
    /// Opens (creating if needed) the store at `path` — the redb file and
    /// its WAL directory `<path>.wal/`, replayed into memory — keeping
    /// points for `retention` once `enforce_retention` runs. A file in the
    /// previous one-key-per-point format is converted to chunks.
    pub fn open(path: &Path, retention: Duration) -> Result<TsStore, TsError> {
        let retention_ms = i64::try_from(retention.as_millis())
            .ok()
            .filter(|ms| *ms > 0)
            .ok_or_else(|| TsError::InvalidRetention(format!("{retention:?}")))?;
        let fresh = !path.exists();
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        let migrated = migrate::migrate(&txn)?;
        let (horizon, mut catalog) = {
            txn.open_table(DAY_SPANS)?;
            let meta = txn.open_table(META)?;
            let horizon = meta.get(HORIZON_KEY)?.map_or(NO_HORIZON, |v| v.value());
            let next_id = meta.get(NEXT_ID_KEY)?.map_or(0, |v| v.value() as u64);
            let mut catalog = Catalog::new(next_id);
            for entry in txn.open_table(SERIES)?.iter()? {
                let (k, v) = entry?;
                let (device_type, last_day, id) = v.value();
                catalog.insert_stored(k.value().to_vec(), device_type.to_string(), last_day, id);
            }
            (horizon, catalog)
        };
        txn.commit()?;
        if let Some(m) = migrated {
            tracing::info!(
                file = %path.display(),
                days = m.days,
                points = m.points,
                chunks = m.chunks,
                "time series: converted the per-point day tables into chunks"
            );
        }

        let dir = wal_dir(path);
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                wal::sync_dir(parent)?;
            }
        }
        if fresh {
            let stale = wal::remove_all(&dir)?;
            if stale > 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    segments = stale,
                    "time series: deleted a write-ahead log left without its database file"
                );
            }
        }
        let mut ids = catalog.id_slots();
        let mut orphans = 0usize;
        let replay = wal::replay(&dir, |entry| {
            if !catalog.replay(entry, &mut ids) {
                orphans += 1;
            }
        })?;
        if orphans > 0 {
            tracing::warn!(
                points = orphans,
                "time series: WAL points of unknown series skipped"
            );
        }
        if horizon != NO_HORIZON {
            catalog.drop_points_before(dropped_before(horizon));
            catalog.prune(horizon);
        }
        if replay.frames > 0 {
            tracing::info!(
                segments = replay.segments,
                frames = replay.frames,
                torn = replay.torn,
                points = catalog.head_points(),
                "time series: replayed the write-ahead log"
            );
        }
        let wal = Wal::open(&dir, replay.last)?;
        Ok(TsStore {
            db,
            retention_ms,
            horizon_ms: AtomicI64::new(horizon),
            state: Mutex::new(State {
                catalog,
                wal,
                stage: Stage::default(),
                last_checkpoint: Instant::now(),
            }),
            sealer: Mutex::new(()),
        })
    }

    /// The retention this store was opened with, in milliseconds.
    pub fn retention_ms(&self) -> i64 {
        self.retention_ms
    }

    /// The oldest time kept at `now_ms`: the retention's, or the last
    /// horizon enforced if that is later.
    fn horizon_at(&self, now_ms: i64) -> i64 {
        now_ms
            .saturating_sub(self.retention_ms)
            .max(self.horizon_ms.load(Ordering::Acquire))
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_sealer(&self) -> MutexGuard<'_, ()> {
        self.sealer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `records`; they are on disk (the WAL fsynced) when this
    /// returns. Points older than `now - retention` (wall clock) are refused
    /// and counted in `expired`.
    pub fn write(&self, records: &[TsRecord]) -> Result<WriteReport, TsError> {
        self.write_inner(records, now_ms(), true)
    }

    /// Like [`write`](Self::write) but judges expiry against `now_ms` instead
    /// of the wall clock (for replays, backfills and tests).
    pub fn write_at(&self, records: &[TsRecord], now_ms: i64) -> Result<WriteReport, TsError> {
        self.write_inner(records, now_ms, true)
    }

    /// Like [`write`](Self::write) but not durable: the points are visible
    /// to queries at once and written to the WAL (the OS page cache), but
    /// reach the disk only with the next [`sync`](Self::sync), durable
    /// `write` or checkpoint; an OS crash or power loss before that loses
    /// them (a process crash does not). Call `sync` at a bounded interval.
    pub fn write_buffered(&self, records: &[TsRecord]) -> Result<WriteReport, TsError> {
        self.write_inner(records, now_ms(), false)
    }

    /// Makes every earlier `write_buffered` durable (one fsync of the WAL).
    pub fn sync(&self) -> Result<(), TsError> {
        let file = self.lock_state().wal.active_file();
        // Older segments were fsynced before the active one was created.
        file.sync_data()?;
        Ok(())
    }

    fn write_inner(
        &self,
        records: &[TsRecord],
        now_ms: i64,
        durable: bool,
    ) -> Result<WriteReport, TsError> {
        let mut report = WriteReport::default();
        let (file, due) = {
            let mut guard = self.lock_state();
            let st = &mut *guard;
            let horizon = self.horizon_at(now_ms);
            st.stage.clear();
            for rec in records {
                let Some(day) = Day::of_ms(rec.time_ms) else {
                    report.invalid += rec.measures.len();
                    continue;
                };
                let mut device_staged = false;
                for (metric, value) in &rec.measures {
                    if !value.is_finite() {
                        report.invalid += 1;
                    } else if rec.time_ms < horizon {
                        report.expired += 1;
                    } else {
                        if !device_staged {
                            st.stage.device(&rec.device);
                            device_staged = true;
                        }
                        st.catalog.stage_point(
                            &mut st.stage,
                            metric,
                            &rec.device_type,
                            day.0,
                            rec.time_ms,
                            *value,
                        );
                    }
                }
            }
            report.points = st.stage.points();
            if report.points == 0 {
                return Ok(report);
            }
            let file = st.wal.append(st.stage.frames.finish())?;
            st.catalog.apply(&mut st.stage);
            (file, checkpoint_due(st))
        };
        if durable {
            file.sync_data()?;
        }
        if due {
            self.checkpoint_if_due();
        }
        Ok(report)
    }

    /// Seals every point written so far into redb (one durable transaction)
    /// and deletes the WAL segments that held them. Runs on its own when
    /// due; calling it is never needed for correctness.
    pub fn checkpoint(&self) -> Result<(), TsError> {
        let _sealer = self.lock_sealer();
        self.checkpoint_locked(true)
    }

    /// The write path's checkpoint: skipped if one is running already; a
    /// failure is logged (the points stay in memory and the WAL).
    fn checkpoint_if_due(&self) {
        let _sealer = match self.sealer.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        if let Err(e) = self.checkpoint_locked(false) {
            tracing::warn!(error = %e, "time series: checkpoint failed; retried when next due");
        }
    }

    /// A checkpoint; the caller holds `sealer`.
    fn checkpoint_locked(&self, force: bool) -> Result<(), TsError> {
        // Flush the bulk of the active segment before taking the writers'
        // lock, so the fsync in `rotate` under it is short.
        let file = {
            let st = self.lock_state();
            if !force && !checkpoint_due(&st) {
                return Ok(());
            }
            (st.wal.len() > 0).then(|| st.wal.active_file())
        };
        if let Some(file) = file {
            file.sync_data()?;
        }
        let (sealing, dir, active) = {
            let mut guard = self.lock_state();
            let st = &mut *guard;
            st.last_checkpoint = Instant::now();
            let sealing = st.catalog.take_for_seal();
            if let Some(sealing) = &sealing {
                if let Err(e) = st.wal.rotate() {
                    st.catalog.unseal(sealing);
                    return Err(e.into());
                }
            }
            (sealing, st.wal.dir().to_path_buf(), st.wal.active())
        };
        if let Some(sealing) = sealing {
            let started = Instant::now();
            let result = seal::seal(&self.db, &sealing, self.horizon_ms.load(Ordering::Acquire));
            tracing::debug!(
                points = sealing.points(),
                series_rows = sealing.rows.len(),
                ms = started.elapsed().as_millis() as u64,
                ok = result.is_ok(),
                "time series: checkpoint"
            );
            let mut st = self.lock_state();
            match &result {
                Ok(()) => st.catalog.sealed(&sealing),
                Err(_) => st.catalog.unseal(&sealing),
            }
            drop(st);
            result?;
        }
        // Everything before the active segment is in redb now (or was
        // dropped by retention).
        wal::remove_segments_before(&dir, active)?;
        Ok(())
    }

    /// Answers one query; runs concurrently with writers and checkpoints.
    pub fn query(&self, q: &TsQuery) -> Result<TsRows, TsError> {
        if let Some(every) = q.every_ms {
            if every <= 0 {
                return Err(TsError::InvalidQuery(format!(
                    "every_ms must be positive, got {every}"
                )));
            }
        }
        let limit = q.limit.unwrap_or(usize::MAX);
        let mut out = Output::new(q.every_ms, limit);
        let from = q.from_ms.max(self.horizon_ms.load(Ordering::Acquire));
        let to = q.to_ms;
        if from >= to || limit == 0 {
            return Ok(out.finish());
        }
        let series_key = key::series_prefix(&q.device, &q.metric);
        // Memory first, then the snapshot: a checkpoint committing in
        // between leaves its points in both, never in neither.
        let captured = self.lock_state().catalog.capture(&series_key, from, to);
        let Some(c) = captured else {
            return Ok(out.finish());
        };
        let txn = self.db.begin_read()?;
        let mut head = c.head;
        normalize(&mut head, c.head_sorted);
        let mem = match c.sealing.as_deref().and_then(|s| s.head(c.id)) {
            Some(sealed) => {
                let mut older: Vec<(i64, f64)> = sealed
                    .points
                    .iter()
                    .filter(|p| p.0 >= from && p.0 < to)
                    .copied()
                    .collect();
                normalize(&mut older, sealed.sorted);
                merge(&older, &head)
            }
            None => head,
        };
        query::run(&txn, c.id, from, to, &mem, &mut out)?;
        Ok(out.finish())
    }

    /// Drops every day table lying wholly before `now_ms - retention`, forgets
    /// series with no remaining day, and hides the rest of the older points
    /// from queries. Seals the heads first (a checkpoint). Cost is per day
    /// and per series, not per point.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<RetentionReport, TsError> {
        let _sealer = self.lock_sealer();
        let horizon = self.horizon_at(now_ms);
        let mut report = RetentionReport {
            horizon_ms: horizon,
            ..RetentionReport::default()
        };
        self.checkpoint_locked(true)?;
        let pruned: std::collections::HashSet<Vec<u8>> = {
            let mut st = self.lock_state();
            // Under the writers' lock: no write can add an older point after.
            self.horizon_ms.store(horizon, Ordering::Release);
            report.points_dropped += st.catalog.drop_points_before(dropped_before(horizon));
            st.catalog.prune(horizon).into_iter().collect()
        };
        let mut unstored = Vec::new();
        let txn = self.db.begin_write()?;
        {
            let mut spans = txn.open_table(DAY_SPANS)?;
            let mut old = Vec::new();
            for entry in spans.iter()? {
                let (day, span) = entry?;
                let day = Day(day.value());
                if day.end_ms() > horizon {
                    break;
                }
                old.push((day, span.value().2));
            }
            for (day, points) in old {
                let name = chunk_table_name(day);
                txn.delete_table(chunk_table(&name))?;
                spans.remove(day.0)?;
                report.points_dropped += points;
                report.days_dropped.push(day.compact());
            }
            let mut series = txn.open_table(SERIES)?;
            series.retain(|k, (_, last_day, _)| {
                let keep = Day(last_day).end_ms() > horizon && !pruned.contains(k);
                if !keep {
                    unstored.push(k.to_vec());
                }
                keep
            })?;
            txn.open_table(META)?.insert(HORIZON_KEY, horizon)?;
        }
        txn.commit()?;
        report.series_dropped =
            pruned.len() + unstored.iter().filter(|k| !pruned.contains(*k)).count();
        // A series written to a newer day meanwhile keeps its place in
        // memory; its row is written again at the next checkpoint.
        self.lock_state().catalog.mark_unstored(&unstored);
        Ok(report)
    }

    /// Known (device, metric) series, sorted; only `device`'s when given.
    pub fn series(&self, device: Option<&str>) -> Result<Vec<(String, String)>, TsError> {
        let prefix = device.map(key::device_prefix);
        let mut keys = self.lock_state().catalog.keys(prefix.as_deref());
        keys.sort_unstable();
        keys.iter()
            .map(|k| {
                key::decode_series(k).ok_or_else(|| TsError::Corrupt {
                    table: "series".into(),
                })
            })
            .collect()
    }

    /// Device type recorded for a series, if the series is known.
    pub fn device_type(&self, device: &str, metric: &str) -> Result<Option<String>, TsError> {
        let k = key::series_prefix(device, metric);
        Ok(self
            .lock_state()
            .catalog
            .get(&k)
            .map(|s| s.device_type.clone()))
    }

    /// Points, day tables, series and time span currently stored. Seals the
    /// heads first (a checkpoint) so that the counts are exact.
    pub fn stats(&self) -> Result<TsStats, TsError> {
        self.checkpoint()?;
        let txn = self.db.begin_read()?;
        let mut stats = TsStats {
            series: self.lock_state().catalog.len(),
            horizon_ms: Some(self.horizon_ms.load(Ordering::Acquire)).filter(|h| *h != NO_HORIZON),
            ..TsStats::default()
        };
        for entry in txn.open_table(DAY_SPANS)?.iter()? {
            let (_, span) = entry?;
            let (oldest, newest, points) = span.value();
            stats.days += 1;
            stats.points += points;
            stats.oldest_ms = Some(stats.oldest_ms.map_or(oldest, |o| o.min(oldest)));
            stats.newest_ms = Some(stats.newest_ms.map_or(newest, |n| n.max(newest)));
        }
        Ok(stats)
    }
}

/// True when the write path should run a checkpoint.
fn checkpoint_due(st: &State) -> bool {
    st.wal.len() >= CHECKPOINT_WAL_BYTES || st.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL
}
