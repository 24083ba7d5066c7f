//! The [`Outbox`] handle: pushing, stats, flush, shutdown, and the state it
//! shares with the delivery task.
//!
//! Ordering: everything waiting is, oldest first, the batch in flight, then
//! the memory queue, then the spool. A push goes to memory only while the
//! spool has nothing unread and memory has room; otherwise it is appended
//! to the spool. The delivery task takes from memory first, then from the
//! spool, so items are delivered in push order.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions, TryLockError};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::rejected::RejectedLog;
use crate::spool::Spool;
use crate::stats::{Counters, OutboxStats};
use crate::{now_ms, task, Deliver, OutboxConfig, OutboxError};

/// One item waiting in memory.
pub(crate) struct Entry<T> {
    pub item: T,
    pub ts_ms: u64,
}

/// Everything behind the outbox lock.
pub(crate) struct State<T> {
    pub memory: VecDeque<Entry<T>>,
    pub spool: Spool,
    /// Items accepted since start (counting what the spool held at start).
    pub pushed: u64,
    pub counters: Counters,
    pub in_flight: usize,
    pub in_flight_ts: Option<u64>,
    /// Items of the batch taken while the one in flight is delivered.
    pub prefetched: usize,
    /// Set when the delivery task has ended; pushes are refused.
    pub closed: bool,
    /// Holds the directory lock until the delivery task ends.
    pub dir_lock: Option<File>,
}

/// Shared between the handles and the delivery task.
pub(crate) struct Shared<T> {
    pub config: OutboxConfig,
    pub state: Mutex<State<T>>,
    /// New items, a flush, or a shutdown: the delivery task should look.
    pub wake: Notify,
    /// Spooled bytes went down (or the outbox ended).
    pub unsaturated: Notify,
    /// Mirror of the spool's unacknowledged bytes, for `is_saturated`.
    pub spooled_bytes: AtomicU64,
    /// Items settled (delivered or rejected), in push order.
    pub settled: watch::Sender<u64>,
    /// Shutdown deadline, once requested.
    pub shutdown: watch::Sender<Option<Instant>>,
    /// The delivery task has ended.
    pub finished: watch::Sender<bool>,
    /// Flush calls waiting: deliver without lingering.
    pub hurry: AtomicUsize,
    /// Live `Outbox` handles.
    pub handles: AtomicUsize,
}

impl<T> Shared<T> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic elsewhere while holding the lock leaves consistent-enough
        // counters; keep serving rather than propagating the poison.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refreshes the saturation mirror from the spool.
    pub(crate) fn sync_spooled(&self, st: &State<T>) {
        self.spooled_bytes
            .store(st.spool.unacked_bytes(), Ordering::Release);
    }

    pub(crate) fn request_shutdown(&self, deadline: Instant) {
        self.shutdown.send_if_modified(|d| match d {
            Some(current) if *current <= deadline => false,
            _ => {
                *d = Some(deadline);
                true
            }
        });
        self.wake.notify_one();
    }
}

/// Starts an outbox for `backend`; see the [crate docs](crate).
///
/// Must be called from within a tokio runtime: the delivery task is spawned
/// on it. Whatever a previous run left in `config.dir`'s spool is replayed
/// first; damage found there (a torn last record) is repaired, logged and
/// reported in [`OutboxStats::last_error`] and
/// [`OutboxStats::spool_corrupt_bytes`].
pub fn spawn<D: Deliver>(config: OutboxConfig, backend: D) -> Result<Outbox<D::Item>, OutboxError> {
    spawn_with_segment_size(config, backend, crate::spool::SEGMENT_BYTES)
}

pub(crate) fn spawn_with_segment_size<D: Deliver>(
    config: OutboxConfig,
    backend: D,
    segment_bytes: u64,
) -> Result<Outbox<D::Item>, OutboxError> {
    config.validate()?;
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| OutboxError::NoRuntime {
        name: config.name.clone(),
    })?;
    let io = |op: &'static str, path: &std::path::Path, source: std::io::Error| OutboxError::Io {
        name: config.name.clone(),
        op,
        path: path.to_owned(),
        accepted: 0,
        source,
    };
    std::fs::create_dir_all(&config.dir).map_err(|e| io("create directory", &config.dir, e))?;
    let lock_path = config.dir.join("lock");
    let dir_lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io("open lock file", &lock_path, e))?;
    match dir_lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(OutboxError::Locked {
                name: config.name.clone(),
                dir: config.dir.clone(),
            })
        }
        Err(TryLockError::Error(e)) => return Err(io("lock", &lock_path, e)),
    }

    let (spool, damage) = Spool::open(&config.name, &config.dir, segment_bytes)?;
    let spooled = spool.unacked_items();
    if spooled > 0 {
        tracing::info!(outbox = %config.name, items = spooled, bytes = spool.unacked_bytes(),
            "replaying the spool left by a previous run");
    }
    let counters = Counters {
        last_error: damage.map(|d| format!("spool recovered: {d}")),
        ..Counters::default()
    };
    let rejected = RejectedLog::new(&config.name, config.dir.join("rejected.jsonl"));
    let shared = Arc::new(Shared {
        spooled_bytes: AtomicU64::new(spool.unacked_bytes()),
        state: Mutex::new(State {
            memory: VecDeque::new(),
            spool,
            pushed: spooled,
            counters,
            in_flight: 0,
            in_flight_ts: None,
            prefetched: 0,
            closed: false,
            dir_lock: Some(dir_lock),
        }),
        config,
        wake: Notify::new(),
        unsaturated: Notify::new(),
        settled: watch::Sender::new(0),
        shutdown: watch::Sender::new(None),
        finished: watch::Sender::new(false),
        hurry: AtomicUsize::new(0),
        handles: AtomicUsize::new(1),
    });
    runtime.spawn(task::run(Arc::clone(&shared), backend, rejected));
    Ok(Outbox { shared })
}

/// A handle to one sink's outbox. Cheap to clone; all clones feed the same
/// queue. When the last handle is dropped without [`Outbox::shutdown`], the
/// delivery task persists what it holds in memory to the spool and ends.
pub struct Outbox<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Outbox {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Outbox<T> {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.request_shutdown(Instant::now());
        }
    }
}

impl<T> std::fmt::Debug for Outbox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("name", &self.shared.config.name)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize> Outbox<T> {
    /// Queues `items` behind everything pushed before. Synchronous and
    /// never waits for the network; callable from any thread.
    ///
    /// Items go to memory while there is room and nothing is waiting in
    /// the spool; otherwise they are appended to the spool and flushed to
    /// the OS before this returns. Saturation does not refuse items (check
    /// [`is_saturated`](Self::is_saturated) and stop reading input).
    ///
    /// Errors: the spool could not be written (or an item could not be
    /// serialized for it), in which case the error says how many of the
    /// call's items were queued and the rest are counted in
    /// [`OutboxStats::refused`]; or the outbox has shut down
    /// ([`OutboxError::Closed`], nothing queued).
    pub fn push(&self, items: Vec<T>) -> Result<(), OutboxError> {
        if items.is_empty() {
            return Ok(());
        }
        let ts_ms = now_ms();
        let total = items.len();
        let shared = &*self.shared;
        let mut st = shared.lock();
        if st.closed {
            return Err(OutboxError::Closed {
                name: shared.config.name.clone(),
            });
        }
        let room = if st.spool.unread_items() == 0 {
            shared
                .config
                .memory_capacity
                .saturating_sub(st.memory.len())
        } else {
            0
        };
        let to_memory = room.min(total);
        let mut items = items.into_iter();
        st.memory.extend(
            items
                .by_ref()
                .take(to_memory)
                .map(|item| Entry { item, ts_ms }),
        );
        st.pushed += to_memory as u64;
        let mut result = Ok(());
        if to_memory < total {
            let rest: Vec<T> = items.collect();
            let unread_before = st.spool.unread_items();
            let appended = st.spool.append(&rest, ts_ms);
            let spooled = st.spool.unread_items().saturating_sub(unread_before);
            st.pushed += spooled;
            if let Err(e) = appended {
                let refused = rest.len() as u64 - spooled.min(rest.len() as u64);
                st.counters.refused += refused;
                st.counters.last_error = Some(e.to_string());
                tracing::error!(outbox = %shared.config.name, refused, error = %e, "push could not spool items");
                result = Err(
                    e.with_accepted(to_memory + usize::try_from(spooled).unwrap_or(usize::MAX))
                );
            }
            shared.sync_spooled(&st);
        }
        drop(st);
        shared.wake.notify_one();
        result
    }
}

impl<T> Outbox<T> {
    /// The outbox's name.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// Whether unacknowledged spooled bytes have reached
    /// `spool_limit_bytes`: the caller should stop taking new input until
    /// [`wait_unsaturated`](Self::wait_unsaturated) returns.
    pub fn is_saturated(&self) -> bool {
        self.shared.spooled_bytes.load(Ordering::Acquire) >= self.shared.config.spool_limit_bytes
    }

    /// Returns once the outbox is not saturated (at once if it is not), or
    /// once the outbox has ended.
    pub async fn wait_unsaturated(&self) {
        loop {
            let notified = self.shared.unsaturated.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_saturated() || *self.shared.finished.borrow() {
                return;
            }
            notified.await;
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> OutboxStats {
        let st = self.shared.lock();
        let now = now_ms();
        let oldest = st
            .in_flight_ts
            .or_else(|| st.memory.front().map(|e| e.ts_ms))
            .or_else(|| st.spool.head_ts());
        let c = &st.counters;
        OutboxStats {
            name: self.shared.config.name.clone(),
            queued: st.memory.len(),
            in_flight: st.in_flight + st.prefetched,
            spooled_bytes: st.spool.unacked_bytes(),
            spooled_items: st.spool.unacked_items(),
            delivered: c.delivered,
            batches: c.batches,
            retries: c.retries,
            rejected: c.rejected,
            failures: c.failures,
            consecutive_failures: c.consecutive_failures,
            last_error: c.last_error.clone(),
            backlog_oldest_age: oldest.map(|ts| Duration::from_millis(now.saturating_sub(ts))),
            spool_corrupt_bytes: st.spool.corrupt_bytes(),
            refused: c.refused,
            saturated: st.spool.unacked_bytes() >= self.shared.config.spool_limit_bytes,
        }
    }

    /// Waits until everything pushed before this call has been delivered or
    /// rejected (including what a previous run left in the spool). Skips
    /// the linger while waiting. Returns `false` if that did not happen
    /// within `timeout` or the outbox ended first.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let target = self.shared.lock().pushed;
        let mut settled = self.shared.settled.subscribe();
        if *settled.borrow() >= target {
            return true;
        }
        let _hurry = Hurry::new(&self.shared);
        let mut finished = self.shared.finished.subscribe();
        let wait = async {
            tokio::select! {
                r = settled.wait_for(|&s| s >= target) => r.is_ok(),
                _ = finished.wait_for(|&f| f) => false,
            }
        };
        let done = tokio::time::timeout(timeout, wait).await.unwrap_or(false);
        done || *self.shared.settled.borrow() >= target
    }

    /// Delivers for up to `timeout` (returning sooner once everything is
    /// delivered), then writes what is still in memory or in flight to the
    /// front of the spool so the next [`spawn`] on the same directory
    /// replays it first, releases the directory and returns the final
    /// stats. Ends the outbox for every clone of this handle: later pushes
    /// fail with [`OutboxError::Closed`].
    pub async fn shutdown(self, timeout: Duration) -> OutboxStats {
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
        self.shared.request_shutdown(deadline);
        let mut finished = self.shared.finished.subscribe();
        let _ = finished.wait_for(|&f| f).await;
        self.stats()
    }
}

/// Marks a flush in progress for as long as it lives.
struct Hurry<'a, T>(&'a Shared<T>);

impl<'a, T> Hurry<'a, T> {
    fn new(shared: &'a Shared<T>) -> Self {
        shared.hurry.fetch_add(1, Ordering::AcqRel);
        shared.wake.notify_one();
        Hurry(shared)
    }
}

impl<T> Drop for Hurry<'_, T> {
    fn drop(&mut self) {
        self.0.hurry.fetch_sub(1, Ordering::AcqRel);
    }
}
