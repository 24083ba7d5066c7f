//! Errors of the archive writer.

use std::path::PathBuf;

use thiserror::Error;

/// Anything that can go wrong writing or reading the archive.
#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("row log {path}: {reason}")]
    RowLog { path: PathBuf, reason: String },
    #[error("invalid row: {0}")]
    InvalidRow(String),
    #[error("staging directory {0} is in use by another archive writer")]
    Locked(PathBuf),
    #[error("invalid compression: {0}")]
    InvalidCompression(String),
}

/// Attaches the operation and path to an I/O error.
pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> ArchiveError + 'a {
    move |source| ArchiveError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
