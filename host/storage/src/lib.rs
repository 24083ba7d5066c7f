//! Weir's embedded storage tiers, the defaults that let `weir` run with no
//! cloud account:
//!
//! - [`timeseries`]: readings for the retention window (90 days by default):
//!   a write-ahead log and in-memory heads, checkpointed into compressed
//!   chunks in a redb file, one table per UTC day — the stand-in for
//!   Timestream.
//! - [`archive`]: raw history as Parquet files under
//!   `device_type=…/date=…/`, written to a local directory or to an outgoing
//!   directory an S3 uploader drains — readable by Athena and DuckDB.
//!
//! Neither tier knows about the async runtime or the cloud SDKs: both are
//! plain blocking APIs the host calls from its own threads.

pub mod archive;
pub mod date;
pub mod timeseries;

/// The maps on the write paths, looked up for every point or row: hashed
/// with foldhash rather than SipHash.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
