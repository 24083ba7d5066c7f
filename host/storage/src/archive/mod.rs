//! The Parquet archive tier: raw history as Parquet files under
//! `device_type=<t>/date=<YYYY-MM-DD>/`, one open file per partition, rolled
//! by size and age, crash-safe through staging row logs, published by atomic
//! rename into a local archive directory or an outgoing directory for an S3
//! uploader. Also the Athena DDL for that layout.

mod athena;
mod columns;
mod error;
mod part_file;
mod partition;
mod rowlog;
mod types;
mod writer;

pub use athena::{athena_ddl, metrics_in};
pub use columns::{metric_column, FIXED_COLUMNS};
pub use error::ArchiveError;
pub use partition::{partition_of, sanitize_device_type};
pub use types::{
    ArchiveCompression, ArchiveOutput, ArchiveRow, ArchiveStats, ClosedFile, RollPolicy,
};
pub use writer::{ArchiveWriter, MAX_METRIC_COLUMNS};
