//! `TsStore`: the redb-backed store itself — writing, querying, retention,
//! discovery and statistics.
//!
//! Layout of the redb file:
//! - `series`: series key (`key::series_prefix`, sorted by device then
//!   metric) → (device type, last day written, series id); the catalog
//!   behind `series()`, pruned by retention.
//! - `points_YYYYMMDD` (one per UTC day): (series id, time) → value. Keys are
//!   fixed-width and sort by series then time, so one series' points in a
//!   day are one range scan, and redb's leaves need no per-key offsets (an
//!   insert costs about half what a variable-length device/metric key did).
//! - `days`: day number → (oldest, newest) time written that day; the index
//!   of which day tables exist.
//! - `meta`: `horizon_ms` → the last retention horizon enforced;
//!   `next_series_id` → the next id to hand out (ids are never reused).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{
    Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition, TableError,
    WriteTransaction,
};

use super::buckets::Bucketer;
use super::error::TsError;
use super::key;
use super::types::{RetentionReport, Sample, TsQuery, TsRecord, TsRows, TsStats, WriteReport};
use crate::date::Day;

const DAYS: TableDefinition<i64, (i64, i64)> = TableDefinition::new("days");
const SERIES: TableDefinition<&[u8], (&str, i64, u64)> = TableDefinition::new("series");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const HORIZON_KEY: &str = "horizon_ms";
const NEXT_ID_KEY: &str = "next_series_id";

/// A day table: (series id, time ms) → value.
type PointKey = (u64, i64);

fn day_table(name: &str) -> TableDefinition<'_, PointKey, f64> {
    TableDefinition::new(name)
}

/// What the writer side knows about the series: key → (id, last day
/// recorded in the `series` table), and the next id to hand out.
struct Catalog {
    series: HashMap<Vec<u8>, (u64, i64)>,
    next_id: u64,
}
const NO_HORIZON: i64 = i64::MIN;

fn day_table_name(day: Day) -> String {
    format!("points_{}", day.compact())
}

/// An embedded time-series store with day-granular retention.
///
/// Share one `TsStore` across threads through an `Arc`: writes serialize on
/// redb's single write transaction, queries run concurrently on snapshots and
/// never wait for a writer.
pub struct TsStore {
    db: Database,
    retention_ms: i64,
    /// Last retention horizon enforced (`NO_HORIZON` if never).
    horizon_ms: AtomicI64,
    /// Mirror of the `series` table for writers, so a write touches that
    /// table only for a new series or a new day. Locked only inside a write
    /// transaction (after `begin_write`), so it never orders against redb.
    catalog: Mutex<Catalog>,
}

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl TsStore {
    /// Opens (creating if needed) the store at `path`, keeping points for
    /// `retention` once `enforce_retention` runs.
    pub fn open(path: &Path, retention: Duration) -> Result<TsStore, TsError> {
        let retention_ms = i64::try_from(retention.as_millis())
            .ok()
            .filter(|ms| *ms > 0)
            .ok_or_else(|| TsError::InvalidRetention(format!("{retention:?}")))?;
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        let (horizon, catalog) = {
            txn.open_table(DAYS)?;
            let meta = txn.open_table(META)?;
            let horizon = meta.get(HORIZON_KEY)?.map_or(NO_HORIZON, |v| v.value());
            let next_id = meta.get(NEXT_ID_KEY)?.map_or(0, |v| v.value() as u64);
            let series = txn.open_table(SERIES)?;
            let mut map = HashMap::new();
            for entry in series.iter()? {
                let (k, v) = entry?;
                let (_, last_day, id) = v.value();
                map.insert(k.value().to_vec(), (id, last_day));
            }
            (
                horizon,
                Catalog {
                    series: map,
                    next_id,
                },
            )
        };
        txn.commit()?;
        Ok(TsStore {
            db,
            retention_ms,
            horizon_ms: AtomicI64::new(horizon),
            catalog: Mutex::new(catalog),
        })
    }

    /// The retention this store was opened with, in milliseconds.
    pub fn retention_ms(&self) -> i64 {
        self.retention_ms
    }

    /// Writes `records` in one transaction that is on disk (fsynced) when this
    /// returns. Points older than `now - retention` (wall clock) are refused
    /// and counted in `expired`.
    pub fn write(&self, records: &[TsRecord]) -> Result<WriteReport, TsError> {
        self.write_inner(records, now_ms(), Durability::Immediate)
    }

    /// Like [`write`](Self::write) but judges expiry against `now_ms` instead
    /// of the wall clock (for replays, backfills and tests).
    pub fn write_at(&self, records: &[TsRecord], now_ms: i64) -> Result<WriteReport, TsError> {
        self.write_inner(records, now_ms, Durability::Immediate)
    }

    /// Like [`write`](Self::write) but not durable: the transaction is
    /// committed in memory (visible to queries at once) and reaches the file
    /// only with the next [`sync`](Self::sync) or durable `write`; a crash
    /// before that loses it. (redb's `Eventual` level would be the middle
    /// ground, but on Linux redb 2.6 fsyncs for it too.) Call `sync` at a
    /// bounded interval: redb frees no pages until it does, so the file grows.
    pub fn write_buffered(&self, records: &[TsRecord]) -> Result<WriteReport, TsError> {
        self.write_inner(records, now_ms(), Durability::None)
    }

    /// Makes every earlier `write_buffered` durable (one commit with fsync).
    pub fn sync(&self) -> Result<(), TsError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        txn.commit()?;
        Ok(())
    }

    fn write_inner(
        &self,
        records: &[TsRecord],
        now_ms: i64,
        durability: Durability,
    ) -> Result<WriteReport, TsError> {
        let horizon = now_ms
            .saturating_sub(self.retention_ms)
            .max(self.horizon_ms.load(Ordering::Acquire));
        let mut report = WriteReport::default();
        let mut accepted: Vec<(&TsRecord, Day)> = Vec::with_capacity(records.len());
        for rec in records {
            let Some(day) = Day::of_ms(rec.time_ms) else {
                report.invalid += rec.measures.len();
                continue;
            };
            if rec.measures.iter().any(|(_, v)| v.is_finite()) {
                accepted.push((rec, day));
            }
            for (_, value) in &rec.measures {
                if !value.is_finite() {
                    report.invalid += 1;
                } else if rec.time_ms < horizon {
                    report.expired += 1;
                }
            }
        }
        accepted.retain(|(rec, _)| rec.time_ms >= horizon);
        if accepted.is_empty() {
            return Ok(report);
        }

        let mut txn = self.db.begin_write()?;
        txn.set_durability(durability);
        // Writers are serialized by the transaction; the lock is held until
        // the catalog is brought up to date after commit.
        let mut catalog = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        let mut next_id = catalog.next_id;
        // Series new to the catalog or seen on a later day: key → (device type, id, day).
        let mut updates: HashMap<Vec<u8>, (&str, u64, i64)> = HashMap::new();
        let mut points: Vec<(i64, PointKey, f64)> = Vec::with_capacity(accepted.len() * 4);
        let mut series_key = Vec::new();
        for (rec, day) in accepted {
            for (metric, value) in &rec.measures {
                if !value.is_finite() {
                    continue;
                }
                series_key.clear();
                key::push_str(&mut series_key, &rec.device);
                key::push_str(&mut series_key, metric);
                let id = match updates.get_mut(series_key.as_slice()) {
                    Some(u) => {
                        u.2 = u.2.max(day.0);
                        u.1
                    }
                    None => match catalog.series.get(series_key.as_slice()) {
                        Some(&(id, last_day)) => {
                            if last_day < day.0 {
                                updates.insert(series_key.clone(), (&rec.device_type, id, day.0));
                            }
                            id
                        }
                        None => {
                            let id = next_id;
                            next_id += 1;
                            updates.insert(series_key.clone(), (&rec.device_type, id, day.0));
                            id
                        }
                    },
                };
                points.push((day.0, (id, rec.time_ms), *value));
            }
        }
        // Stable: equal keys keep batch order, so the later write wins.
        points.sort_by_key(|p| (p.0, p.1));
        report.points = insert_points(&txn, &points)?;
        if !updates.is_empty() {
            let mut series = txn.open_table(SERIES)?;
            for (k, (device_type, id, day)) in &updates {
                series.insert(k.as_slice(), (*device_type, *day, *id))?;
            }
            if next_id != catalog.next_id {
                let next = i64::try_from(next_id).unwrap_or(i64::MAX);
                txn.open_table(META)?.insert(NEXT_ID_KEY, next)?;
            }
        }
        txn.commit()?;
        catalog.next_id = next_id;
        for (k, (_, id, day)) in updates {
            catalog.series.insert(k, (id, day));
        }
        Ok(report)
    }

    /// Answers one query from a snapshot; runs concurrently with writers.
    pub fn query(&self, q: &TsQuery) -> Result<TsRows, TsError> {
        if let Some(every) = q.every_ms {
            if every <= 0 {
                return Err(TsError::InvalidQuery(format!(
                    "every_ms must be positive, got {every}"
                )));
            }
        }
        let limit = q.limit.unwrap_or(usize::MAX);
        let mut raw = Vec::new();
        let mut bucketer = q.every_ms.map(|every| Bucketer::new(every, limit));
        let from = q.from_ms.max(self.horizon_ms.load(Ordering::Acquire));
        if from < q.to_ms && limit > 0 {
            let txn = self.db.begin_read()?;
            let series_key = key::series_prefix(&q.device, &q.metric);
            let id = txn
                .open_table(SERIES)?
                .get(series_key.as_slice())?
                .map(|v| v.value().2);
            let days = txn.open_table(DAYS)?;
            let first = from.div_euclid(crate::date::DAY_MS);
            let last = (q.to_ms - 1).div_euclid(crate::date::DAY_MS);
            let Some(id) = id else {
                return Ok(rows(raw, bucketer));
            };
            'days: for entry in days.range(first..=last)? {
                let day = Day(entry?.0.value());
                let name = day_table_name(day);
                let table = match txn.open_table(day_table(&name)) {
                    Ok(t) => t,
                    Err(TableError::TableDoesNotExist(_)) => continue,
                    Err(e) => return Err(e.into()),
                };
                for item in table.range((id, from)..(id, q.to_ms))? {
                    let (k, v) = item?;
                    let s = Sample {
                        time_ms: k.value().1,
                        value: v.value(),
                    };
                    match &mut bucketer {
                        Some(b) => {
                            b.push(s);
                            if b.full() {
                                break 'days;
                            }
                        }
                        None => {
                            raw.push(s);
                            if raw.len() >= limit {
                                break 'days;
                            }
                        }
                    }
                }
            }
        }
        Ok(rows(raw, bucketer))
    }

    /// Drops every day table lying wholly before `now_ms - retention`, forgets
    /// series with no remaining day, and hides the rest of the older points
    /// from queries. Cost is per day and per series, not per point.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<RetentionReport, TsError> {
        let horizon = now_ms
            .saturating_sub(self.retention_ms)
            .max(self.horizon_ms.load(Ordering::Acquire));
        let mut report = RetentionReport {
            horizon_ms: horizon,
            ..RetentionReport::default()
        };
        let txn = self.db.begin_write()?;
        let mut catalog = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        let mut dropped_series = Vec::new();
        {
            let mut days = txn.open_table(DAYS)?;
            let mut old = Vec::new();
            for entry in days.iter()? {
                let day = Day(entry?.0.value());
                if day.end_ms() > horizon {
                    break;
                }
                old.push(day);
            }
            for day in old {
                let name = day_table_name(day);
                let def = day_table(&name);
                match txn.open_table(def) {
                    Ok(t) => report.points_dropped += t.len()?,
                    Err(TableError::TableDoesNotExist(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                txn.delete_table(def)?;
                days.remove(day.0)?;
                report.days_dropped.push(day.compact());
            }
            let mut series = txn.open_table(SERIES)?;
            series.retain(|k, (_, last_day, _)| {
                let keep = Day(last_day).end_ms() > horizon;
                if !keep {
                    dropped_series.push(k.to_vec());
                }
                keep
            })?;
            txn.open_table(META)?.insert(HORIZON_KEY, horizon)?;
        }
        txn.commit()?;
        self.horizon_ms.store(horizon, Ordering::Release);
        for k in &dropped_series {
            catalog.series.remove(k);
        }
        report.series_dropped = dropped_series.len();
        Ok(report)
    }

    /// Known (device, metric) series, sorted; only `device`'s when given.
    pub fn series(&self, device: Option<&str>) -> Result<Vec<(String, String)>, TsError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SERIES)?;
        let mut out = Vec::new();
        let entries = match device {
            Some(d) => {
                let lo = key::device_prefix(d);
                let mut hi = lo.clone();
                // The terminator is 00 01; 00 02 sorts just past every key of d.
                if let Some(last) = hi.last_mut() {
                    *last = 0x02;
                }
                table.range::<&[u8]>(lo.as_slice()..hi.as_slice())?
            }
            None => table.range::<&[u8]>(..)?,
        };
        for entry in entries {
            let (k, _) = entry?;
            let pair = key::decode_series(k.value()).ok_or_else(|| TsError::Corrupt {
                table: "series".into(),
            })?;
            out.push(pair);
        }
        Ok(out)
    }

    /// Device type recorded for a series, if the series is known.
    pub fn device_type(&self, device: &str, metric: &str) -> Result<Option<String>, TsError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SERIES)?;
        let k = key::series_prefix(device, metric);
        Ok(table.get(k.as_slice())?.map(|v| v.value().0.to_string()))
    }

    /// Points, day tables, series and time span currently stored.
    pub fn stats(&self) -> Result<TsStats, TsError> {
        let txn = self.db.begin_read()?;
        let days = txn.open_table(DAYS)?;
        let mut stats = TsStats {
            series: usize::try_from(txn.open_table(SERIES)?.len()?).unwrap_or(usize::MAX),
            horizon_ms: Some(self.horizon_ms.load(Ordering::Acquire)).filter(|h| *h != NO_HORIZON),
            ..TsStats::default()
        };
        for entry in days.iter()? {
            let (day, span) = entry?;
            let (oldest, newest) = span.value();
            stats.days += 1;
            stats.oldest_ms = Some(stats.oldest_ms.map_or(oldest, |o| o.min(oldest)));
            stats.newest_ms = Some(stats.newest_ms.map_or(newest, |n| n.max(newest)));
            let name = day_table_name(Day(day.value()));
            match txn.open_table(day_table(&name)) {
                Ok(t) => stats.points += t.len()?,
                Err(TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(stats)
    }
}

/// The query result: buckets if bucketing, else the raw samples.
fn rows(raw: Vec<Sample>, bucketer: Option<Bucketer>) -> TsRows {
    match bucketer {
        Some(b) => TsRows::Buckets(b.finish()),
        None => TsRows::Raw(raw),
    }
}

/// Inserts day-sorted points, one table open per day, and widens each day's
/// (oldest, newest) span. Returns the number inserted.
fn insert_points(
    txn: &WriteTransaction,
    points: &[(i64, PointKey, f64)],
) -> Result<usize, TsError> {
    let mut days = txn.open_table(DAYS)?;
    let mut rest = points;
    while let Some((day, _, _)) = rest.first() {
        let day = *day;
        let n = rest.iter().take_while(|p| p.0 == day).count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        let name = day_table_name(Day(day));
        let mut table = txn.open_table(day_table(&name))?;
        let (mut oldest, mut newest) = (i64::MAX, i64::MIN);
        for (_, k, v) in group {
            table.insert(k, *v)?;
            oldest = oldest.min(k.1);
            newest = newest.max(k.1);
        }
        let span = match days.get(day)? {
            Some(v) => {
                let (o, n) = v.value();
                (o.min(oldest), n.max(newest))
            }
            None => (oldest, newest),
        };
        days.insert(day, span)?;
    }
    Ok(points.len())
}
