//! Errors returned by [`spawn`](crate::spawn) and [`Outbox::push`](crate::Outbox::push).

use std::path::PathBuf;

/// Why an outbox could not be started or could not take items.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The [`OutboxConfig`](crate::OutboxConfig) is unusable.
    #[error("outbox {name}: invalid configuration: {reason}")]
    Config {
        /// Outbox name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// [`spawn`](crate::spawn) was called outside a tokio runtime.
    #[error("outbox {name}: spawn must be called from within a tokio runtime")]
    NoRuntime {
        /// Outbox name.
        name: String,
    },
    /// Another outbox (in this or another process) owns the directory.
    #[error("outbox {name}: directory {} is in use by another outbox", dir.display())]
    Locked {
        /// Outbox name.
        name: String,
        /// The contested directory.
        dir: PathBuf,
    },
    /// A file operation on the spool failed.
    ///
    /// From [`push`](crate::Outbox::push): the first `accepted` items of the
    /// call are queued (in memory or on disk); the rest were not taken and are
    /// counted in [`OutboxStats::refused`](crate::OutboxStats::refused).
    #[error("outbox {name}: {op} {}: {source} ({accepted} of the call's items accepted)", path.display())]
    Io {
        /// Outbox name.
        name: String,
        /// What was being done.
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// Items of the failing `push` call that were nevertheless queued.
        accepted: usize,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An item could not be serialized for the spool; none of the call's
    /// items that were bound for the spool were taken.
    #[error("outbox {name}: cannot serialize an item for the spool: {source} ({accepted} of the call's items accepted)")]
    Serialize {
        /// Outbox name.
        name: String,
        /// Items of the failing `push` call that were nevertheless queued.
        accepted: usize,
        /// The underlying error.
        #[source]
        source: rmp_serde::encode::Error,
    },
    /// One serialized item is larger than a spool record may be.
    #[error("outbox {name}: an item of {size} bytes exceeds the spool record limit of {limit} bytes ({accepted} of the call's items accepted)")]
    TooLarge {
        /// Outbox name.
        name: String,
        /// Serialized size of the item.
        size: usize,
        /// The limit.
        limit: usize,
        /// Items of the failing `push` call that were nevertheless queued.
        accepted: usize,
    },
    /// The outbox has shut down (or its delivery task ended); nothing more is taken.
    #[error("outbox {name}: closed")]
    Closed {
        /// Outbox name.
        name: String,
    },
}

impl OutboxError {
    /// Sets how many items of the failing push call were queued anyway.
    pub(crate) fn with_accepted(mut self, n: usize) -> Self {
        match &mut self {
            OutboxError::Io { accepted, .. }
            | OutboxError::Serialize { accepted, .. }
            | OutboxError::TooLarge { accepted, .. } => *accepted = n,
            _ => {}
        }
        self
    }
}
