//! The redb tables of the store, current and legacy.
//!
//! - `series`: series key (`key::series_prefix`, sorted by device then
//!   metric) → (device type, last day written, series id): the stored
//!   catalog, pruned by retention.
//! - `chunks_YYYYMMDD` (one per UTC day): (series id, chunk start time) →
//!   a compressed chunk (`chunk`) of up to 128 points of that series and
//!   day. Chunks of one series never overlap, so one series' day is one
//!   range scan.
//! - `day_spans`: day number → (oldest, newest, points) of that day's table:
//!   the index of which day tables exist, and the point count `stats` reads.
//! - `meta`: `horizon_ms` → the last retention horizon enforced;
//!   `next_series_id` → the next id to hand out (ids are never reused).
//!
//! Legacy (migrated on open): `points_YYYYMMDD` ((series id, time) → value,
//! one key per point) and `days` (day → (oldest, newest)).

use redb::TableDefinition;

use crate::date::Day;

pub const SERIES: TableDefinition<&[u8], (&str, i64, u64)> = TableDefinition::new("series");
pub const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
pub const DAY_SPANS: TableDefinition<i64, (i64, i64, u64)> = TableDefinition::new("day_spans");
pub const HORIZON_KEY: &str = "horizon_ms";
pub const NEXT_ID_KEY: &str = "next_series_id";

/// A chunk table key: (series id, time of the chunk's first point).
pub type ChunkKey = (u64, i64);

pub fn chunk_table(name: &str) -> TableDefinition<'_, ChunkKey, &'static [u8]> {
    TableDefinition::new(name)
}

pub fn chunk_table_name(day: Day) -> String {
    format!("chunks_{}", day.compact())
}

/// The legacy per-day table of single points.
pub const LEGACY_POINTS_PREFIX: &str = "points_";
pub const LEGACY_DAYS: TableDefinition<i64, (i64, i64)> = TableDefinition::new("days");

pub fn legacy_points_table(name: &str) -> TableDefinition<'_, (u64, i64), f64> {
    TableDefinition::new(name)
}
