//! Answering one query: the series' chunks in redb, day by day, merged with
//! its sealing and head points (newer source wins equal times) and fed to
//! the raw or bucketed output until its limit.

use redb::{ReadTransaction, TableError};

use super::buckets::Bucketer;
use super::chunk;
use super::error::TsError;
use super::merge::merge_with;
use super::tables::{chunk_table, chunk_table_name, DAY_SPANS};
use super::types::{Sample, TsRows};
use crate::date::{Day, DAY_MS};

/// Where query results go: raw samples up to a limit, or buckets.
pub struct Output {
    raw: Vec<Sample>,
    bucketer: Option<Bucketer>,
    limit: usize,
}

impl Output {
    pub fn new(every_ms: Option<i64>, limit: usize) -> Self {
        Output {
            raw: Vec::new(),
            bucketer: every_ms.map(|every| Bucketer::new(every, limit)),
            limit,
        }
    }

    /// Takes the next point in time order; false once no more can matter.
    pub fn push(&mut self, time_ms: i64, value: f64) -> bool {
        let s = Sample { time_ms, value };
        match &mut self.bucketer {
            Some(b) => {
                b.push(s);
                !b.full()
            }
            None => {
                self.raw.push(s);
                self.raw.len() < self.limit
            }
        }
    }

    pub fn finish(self) -> TsRows {
        match self.bucketer {
            Some(b) => TsRows::Buckets(b.finish()),
            None => TsRows::Raw(self.raw),
        }
    }
}

/// Feeds series `id`'s points in `[from, to)` to `out`: chunks from `txn`
/// merged with `mem` (the sealing and head points in that range, sorted,
/// unique times), `mem` winning equal times.
pub fn run(
    txn: &ReadTransaction,
    id: u64,
    from: i64,
    to: i64,
    mem: &[(i64, f64)],
    out: &mut Output,
) -> Result<(), TsError> {
    let first = from.div_euclid(DAY_MS);
    let last = (to - 1).div_euclid(DAY_MS);
    let days: Vec<i64> = txn
        .open_table(DAY_SPANS)?
        .range(first..=last)?
        .map(|e| e.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    let mut stored = Vec::new();
    let mut rest = mem;
    for day in days {
        stored.clear();
        read_day(txn, Day(day), id, from, to, &mut stored)?;
        let n = rest.partition_point(|p| p.0 < Day(day).end_ms());
        let (now, later) = rest.split_at(n);
        rest = later;
        if !merge_with(&stored, now, |t, v| out.push(t, v)) {
            return Ok(());
        }
    }
    rest.iter().all(|&(t, v)| out.push(t, v));
    Ok(())
}

/// Fills `out` (empty) with series `id`'s stored points of `day` within
/// `[from, to)`.
fn read_day(
    txn: &ReadTransaction,
    day: Day,
    id: u64,
    from: i64,
    to: i64,
    out: &mut Vec<(i64, f64)>,
) -> Result<(), TsError> {
    let name = chunk_table_name(day);
    let table = match txn.open_table(chunk_table(&name)) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    // The chunk holding `from` starts at or before it.
    let start = match table.range((id, i64::MIN)..=(id, from))?.next_back() {
        Some(item) => item?.0.value().1,
        None => from,
    };
    for item in table.range((id, start)..(id, to))? {
        let (_, v) = item?;
        chunk::decode(v.value(), out).ok_or_else(|| TsError::Corrupt {
            table: name.clone(),
        })?;
    }
    // Only the first and last chunk can stick out of the range.
    out.retain(|p| p.0 >= from && p.0 < to);
    Ok(())
}
