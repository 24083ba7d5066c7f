//! The embedded backends: a key-value store (plugin state, shadows, presence
//! counters) and append-only journals (alerts, dead letters).

pub mod journal;
pub mod kv;

pub use journal::Journals;
pub use kv::KvStore;

/// Errors of the embedded store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("store database: {0}")]
    Db(String),
    #[error(
        "the data directory {0} is in use by a running weir (ask it through its admin socket)"
    )]
    Locked(std::path::PathBuf),
}

macro_rules! db_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
db_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
