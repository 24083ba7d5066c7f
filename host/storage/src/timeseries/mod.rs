//! The embedded time-series tier (the 90-day store): multi-measure readings
//! kept in a redb file, one table per UTC day so that retention drops whole
//! tables, queried per (device, metric) as raw points or epoch-aligned
//! buckets.

mod buckets;
mod error;
mod key;
mod store;
mod types;

pub use buckets::bucket_start;
pub use error::TsError;
pub use store::{now_ms, TsStore};
pub use types::{Bucket, RetentionReport, Sample, TsQuery, TsRecord, TsRows, TsStats, WriteReport};
