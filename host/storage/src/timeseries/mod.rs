//! The embedded time-series tier (the 90-day store): multi-measure readings
//! written to a write-ahead log and in-memory heads, checkpointed into a
//! redb file as compressed chunks, one table per UTC day so that retention
//! drops whole tables; queried per (device, metric) as raw points or
//! epoch-aligned buckets.
//!
//! Modules: `store` (the `TsStore` API), `catalog` (series and heads in
//! memory), `wal` (the log), `seal` (checkpoints into redb), `query`
//! (reading), `chunk` (the compressed encoding), `merge` (last-write-wins
//! ordering), `migrate` (the previous file format), `tables`, `key`,
//! `codec`, `buckets`, `types`, `error`.

mod buckets;
mod catalog;
mod chunk;
mod codec;
mod error;
mod key;
mod merge;
mod migrate;
mod query;
mod seal;
mod store;
mod tables;
mod types;
mod wal;

pub use buckets::bucket_start;
pub use chunk::CHUNK_POINTS;
pub use error::TsError;
pub use store::{now_ms, TsStore, CHECKPOINT_INTERVAL, CHECKPOINT_WAL_BYTES};
pub use types::{Bucket, RetentionReport, Sample, TsQuery, TsRecord, TsRows, TsStats, WriteReport};
