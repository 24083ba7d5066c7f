//! The redb half of a checkpoint: merging a sealing set's points into the
//! day tables' chunks and storing the catalog changes, in one durable
//! write transaction.

use std::collections::BTreeMap;

use redb::{Database, ReadableTable, Table};

use super::catalog::Sealing;
use super::chunk::{self, CHUNK_POINTS};
use super::error::TsError;
use super::merge::{merge, normalize};
use super::tables::{
    chunk_table, chunk_table_name, ChunkKey, DAY_SPANS, META, NEXT_ID_KEY, SERIES,
};
use crate::date::{Day, DAY_MS};

/// Writes `sealing` into the file and commits durably. Points on days that
/// end at or before `horizon_ms` (dropped by retention) are skipped.
///
/// Works day by day, copying one series' points of one day at a time, so
/// memory stays near the size of the sealing set itself.
pub fn seal(db: &Database, sealing: &Sealing, horizon_ms: i64) -> Result<(), TsError> {
    // day → indexes of the heads with points on it.
    let mut by_day: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    let mut days = Vec::new();
    for (i, head) in sealing.heads.iter().enumerate() {
        days.clear();
        let mut last = None;
        for p in &head.points {
            let day = p.0.div_euclid(DAY_MS);
            if last != Some(day) && !days.contains(&day) {
                days.push(day);
            }
            last = Some(day);
        }
        for &day in &days {
            if Day(day).end_ms() > horizon_ms {
                by_day.entry(day).or_default().push(i);
            }
        }
    }

    let txn = db.begin_write()?;
    {
        let mut spans = txn.open_table(DAY_SPANS)?;
        let mut scratch = Merger::default();
        for (day, series) in by_day {
            let name = chunk_table_name(Day(day));
            let mut table = txn.open_table(chunk_table(&name))?;
            let (mut oldest, mut newest, mut added) = (i64::MAX, i64::MIN, 0i64);
            let (start, end) = (Day(day).start_ms(), Day(day).end_ms());
            for i in series {
                let head = &sealing.heads[i];
                let mut run = std::mem::take(&mut scratch.run);
                run.clear();
                run.extend(head.points.iter().filter(|p| p.0 >= start && p.0 < end));
                normalize(&mut run, head.sorted);
                if let (Some(first), Some(last)) = (run.first(), run.last()) {
                    oldest = oldest.min(first.0);
                    newest = newest.max(last.0);
                }
                added += scratch.merge_into(&mut table, &name, head.id, &run)?;
                scratch.run = run;
            }
            let (o, n, count) = spans.get(day)?.map_or((oldest, newest, 0), |v| v.value());
            let count = u64::try_from((count as i64).saturating_add(added)).unwrap_or(0);
            spans.insert(day, (o.min(oldest), n.max(newest), count))?;
        }
        let mut series = txn.open_table(SERIES)?;
        for row in &sealing.rows {
            series.insert(
                row.key.as_slice(),
                (row.device_type.as_str(), row.last_day, row.id),
            )?;
        }
        let next = i64::try_from(sealing.next_id).unwrap_or(i64::MAX);
        txn.open_table(META)?.insert(NEXT_ID_KEY, next)?;
    }
    txn.commit()?;
    Ok(())
}

/// Reusable buffers for merging one series' points into one day table.
#[derive(Default)]
struct Merger {
    /// The new points of the series and day being merged.
    run: Vec<(i64, f64)>,
    old: Vec<(i64, f64)>,
    encoded: Vec<u8>,
}

impl Merger {
    /// Merges `new` (sorted, unique times, one day) into series `id`'s
    /// chunks of `table`: every chunk overlapping the new points' span, and
    /// the one just before it if not full, is decoded, merged (new points
    /// win equal times), removed and written back as full chunks. Returns
    /// the change in the table's point count.
    fn merge_into(
        &mut self,
        table: &mut Table<'_, ChunkKey, &'static [u8]>,
        name: &str,
        id: u64,
        new: &[(i64, f64)],
    ) -> Result<i64, TsError> {
        let (Some(&(lo, _)), Some(&(hi, _))) = (new.first(), new.last()) else {
            return Ok(0);
        };
        let corrupt = || TsError::Corrupt {
            table: name.to_string(),
        };
        // Newest first: (start, encoded chunk).
        let mut victims: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut removed = 0usize;
        for item in table.range((id, i64::MIN)..=(id, hi))?.rev() {
            let (k, v) = item?;
            let h = chunk::header(v.value()).ok_or_else(corrupt)?;
            let overlaps = h.last >= lo;
            if overlaps || h.count < CHUNK_POINTS {
                victims.push((k.value().1, v.value().to_vec()));
                removed += h.count;
            }
            if !overlaps {
                break;
            }
        }
        self.old.clear();
        for (_, bytes) in victims.iter().rev() {
            chunk::decode(bytes, &mut self.old).ok_or_else(corrupt)?;
        }
        for (start, _) in &victims {
            table.remove((id, *start))?;
        }
        let merged = if self.old.is_empty() {
            new.to_vec()
        } else {
            merge(&self.old, new)
        };
        for piece in merged.chunks(CHUNK_POINTS) {
            self.encoded.clear();
            chunk::encode(piece, &mut self.encoded);
            table.insert((id, piece[0].0), self.encoded.as_slice())?;
        }
        Ok(merged.len() as i64 - removed as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeseries::catalog::SealedHead;

    fn seal_points(db: &Database, id: u64, points: Vec<(i64, f64)>) {
        let sealing = Sealing {
            heads: vec![SealedHead {
                id,
                points,
                sorted: false,
            }],
            rows: Vec::new(),
            next_id: id + 1,
        };
        seal(db, &sealing, i64::MIN).unwrap();
    }

    /// (chunk start, point count) of each chunk, and the points.
    type Layout = (Vec<(i64, usize)>, Vec<(i64, f64)>);

    /// The chunks of series `id` on day 0.
    fn layout(db: &Database, id: u64) -> Layout {
        let txn = db.begin_read().unwrap();
        let name = chunk_table_name(Day(0));
        let table = txn.open_table(chunk_table(&name)).unwrap();
        let mut chunks = Vec::new();
        let mut points = Vec::new();
        for item in table.range((id, i64::MIN)..=(id, i64::MAX)).unwrap() {
            let (k, v) = item.unwrap();
            let h = chunk::decode(v.value(), &mut points).unwrap();
            chunks.push((k.value().1, h.count));
        }
        (chunks, points)
    }

    /// Points the `day_spans` row of day 0 counts.
    fn day_total(db: &Database) -> u64 {
        let txn = db.begin_read().unwrap();
        let spans = txn.open_table(DAY_SPANS).unwrap();
        spans.get(0).unwrap().map_or(0, |v| v.value().2)
    }

    #[test]
    fn appends_fill_the_last_chunk_and_overlaps_are_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("t.redb")).unwrap();
        // Three appends of 50: the partial last chunk is refilled each time.
        for k in 0..3i64 {
            seal_points(
                &db,
                7,
                (k * 50..k * 50 + 50).map(|t| (t * 10, t as f64)).collect(),
            );
        }
        let (chunks, points) = layout(&db, 7);
        assert_eq!(chunks, vec![(0, 128), (1_280, 22)]);
        assert_eq!(points.len(), 150);
        assert_eq!(day_total(&db), 150);
        // Another series in between is untouched by series 7's merges.
        seal_points(&db, 8, vec![(5, 1.0)]);
        seal_points(&db, 6, vec![(5, 1.0)]);
        // An out-of-order write into the first chunk, with an overwrite, and
        // a duplicate time within the batch (the later one wins).
        seal_points(&db, 7, vec![(15, -1.0), (20, -2.0), (15, -3.0)]);
        let (chunks, points) = layout(&db, 7);
        assert_eq!(chunks.iter().map(|c| c.1).sum::<usize>(), 151);
        assert!(chunks.iter().all(|c| c.1 <= CHUNK_POINTS));
        let want: Vec<(i64, f64)> = (0..150i64)
            .flat_map(|t| {
                let v = if t == 2 { -2.0 } else { t as f64 };
                let p = (t * 10, v);
                if t == 1 {
                    vec![p, (15, -3.0)]
                } else {
                    vec![p]
                }
            })
            .collect();
        assert_eq!(points, want);
        assert_eq!(layout(&db, 8).1, vec![(5, 1.0)]);
        assert_eq!(layout(&db, 6).1, vec![(5, 1.0)]);
        assert_eq!(day_total(&db), 153);
    }
}
