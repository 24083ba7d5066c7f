//! Converting a file of the previous format (one redb key per point in
//! `points_YYYYMMDD`, spans in `days`) into chunks, inside the open's write
//! transaction so that it happens wholly or not at all.

use std::collections::BTreeMap;

use redb::{ReadableTable, TableHandle, WriteTransaction};

use super::chunk::{self, CHUNK_POINTS};
use super::error::TsError;
use super::tables::{
    chunk_table, chunk_table_name, legacy_points_table, DAY_SPANS, LEGACY_DAYS,
    LEGACY_POINTS_PREFIX,
};
use crate::date::Day;

/// What a migration converted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    pub days: usize,
    pub points: u64,
    pub chunks: u64,
}

/// Converts every legacy table found in `txn`'s file; `None` if there was
/// none.
pub fn migrate(txn: &WriteTransaction) -> Result<Option<Migrated>, TsError> {
    let mut legacy = Vec::new();
    let mut has_days = false;
    for handle in txn.list_tables()? {
        let name = handle.name();
        if name == LEGACY_DAYS.name() {
            has_days = true;
        } else if let Some(day) = name
            .strip_prefix(LEGACY_POINTS_PREFIX)
            .and_then(Day::parse_compact)
        {
            legacy.push((day, name.to_string()));
        }
    }
    if legacy.is_empty() && !has_days {
        return Ok(None);
    }
    let mut spans_of: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    if has_days {
        for entry in txn.open_table(LEGACY_DAYS)?.iter()? {
            let (day, span) = entry?;
            spans_of.insert(day.value(), span.value());
        }
    }
    let mut out = Migrated::default();
    let mut spans = txn.open_table(DAY_SPANS)?;
    let mut points: Vec<(i64, f64)> = Vec::with_capacity(CHUNK_POINTS);
    let mut encoded = Vec::new();
    for (day, name) in legacy {
        let new_name = chunk_table_name(day);
        let (mut count, mut oldest, mut newest) = (0u64, i64::MAX, i64::MIN);
        {
            let mut chunks = txn.open_table(chunk_table(&new_name))?;
            let old = txn.open_table(legacy_points_table(&name))?;
            let mut current = None;
            let mut flush = |id: u64, points: &mut Vec<(i64, f64)>| -> Result<(), TsError> {
                if let Some(&(start, _)) = points.first() {
                    encoded.clear();
                    chunk::encode(points, &mut encoded);
                    chunks.insert((id, start), encoded.as_slice())?;
                    out.chunks += 1;
                    points.clear();
                }
                Ok(())
            };
            for entry in old.iter()? {
                let (k, v) = entry?;
                let (id, time) = k.value();
                if current != Some(id) || points.len() == CHUNK_POINTS {
                    if let Some(prev) = current {
                        flush(prev, &mut points)?;
                    }
                    current = Some(id);
                }
                points.push((time, v.value()));
                count += 1;
                oldest = oldest.min(time);
                newest = newest.max(time);
            }
            if let Some(prev) = current {
                flush(prev, &mut points)?;
            }
        }
        txn.delete_table(legacy_points_table(&name))?;
        if count == 0 {
            txn.delete_table(chunk_table(&new_name))?;
        } else {
            let (o, n) = spans_of.get(&day.0).copied().unwrap_or((oldest, newest));
            spans.insert(day.0, (o.min(oldest), n.max(newest), count))?;
            out.days += 1;
            out.points += count;
        }
    }
    if has_days {
        txn.delete_table(LEGACY_DAYS)?;
    }
    Ok(Some(out))
}
