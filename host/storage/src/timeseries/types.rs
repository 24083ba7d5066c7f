//! The data types the time-series store takes and returns.

use serde::{Deserialize, Serialize};

/// One multi-measure reading of one device at one time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TsRecord {
    pub device: String,
    pub device_type: String,
    pub time_ms: i64,
    pub measures: Vec<(String, f64)>,
}

/// A query over one series: `from_ms` inclusive, `to_ms` exclusive.
///
/// With `every_ms`, points are aggregated into buckets starting at multiples
/// of `every_ms` since the epoch; `limit` caps the number of samples (raw) or
/// buckets (bucketed) returned, earliest first.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TsQuery {
    pub device: String,
    pub metric: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub every_ms: Option<i64>,
    pub limit: Option<usize>,
}

/// One stored point.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub time_ms: i64,
    pub value: f64,
}

/// Aggregate of the points in `[start_ms, start_ms + every_ms)`. Only buckets
/// holding at least one point are returned.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub start_ms: i64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Value of the earliest point in the bucket.
    pub first: f64,
    /// Value of the latest point in the bucket.
    pub last: f64,
}

/// What a query returns: raw points, or buckets when `every_ms` was set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum TsRows {
    Raw(Vec<Sample>),
    Buckets(Vec<Bucket>),
}

/// Outcome of one `write`: every measure of every record lands in exactly one
/// of the three counts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Points stored (an overwrite of an existing point counts).
    pub points: usize,
    /// Points refused because they were older than the retention horizon.
    pub expired: usize,
    /// Points refused because the value was NaN/infinite or the time was
    /// outside the years 0000..=9999.
    pub invalid: usize,
}

/// Outcome of one `enforce_retention`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Points older than this are gone (or, on the day that straddles it,
    /// hidden from queries until that day's table is dropped).
    pub horizon_ms: i64,
    /// Day tables dropped, as `YYYYMMDD`, oldest first.
    pub days_dropped: Vec<String>,
    /// Points in the dropped tables.
    pub points_dropped: u64,
    /// Series forgotten because none of their points remain.
    pub series_dropped: usize,
}

/// Size and span of the store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct TsStats {
    pub points: u64,
    pub days: usize,
    pub series: usize,
    pub oldest_ms: Option<i64>,
    pub newest_ms: Option<i64>,
    /// Queries never return points older than this (set by retention).
    pub horizon_ms: Option<i64>,
}
