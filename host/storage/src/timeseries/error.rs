//! Errors of the time-series store.

use thiserror::Error;

/// Anything that can go wrong opening, writing or querying the store.
#[derive(Debug, Error)]
pub enum TsError {
    /// The redb file failed (I/O, corruption, a transaction error).
    #[error("time-series database: {0}")]
    Db(#[from] Box<redb::Error>),
    /// The write-ahead log (`<file>.wal/`) failed.
    #[error("time-series write-ahead log: {0}")]
    Wal(#[from] std::io::Error),
    /// The query cannot be answered as asked.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A stored key or value is not what this version writes.
    #[error("corrupt entry in table {table}")]
    Corrupt { table: String },
    /// Retention must be positive and representable in milliseconds.
    #[error("invalid retention: {0}")]
    InvalidRetention(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for TsError {
            fn from(e: $t) -> Self {
                TsError::Db(Box::new(redb::Error::from(e)))
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
