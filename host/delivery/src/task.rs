//! The delivery task: takes batches in order, calls the backend, retries
//! what it returns with backoff, writes rejections, commits the spool
//! cursor, and at the end puts what it still holds back in the spool.
//!
//! While the backend works on a batch, the task takes and decodes the next
//! one (when a whole batch is waiting), so reading the spool overlaps the
//! writes: a backlog drains at the backend's pace, not at the backend's
//! plus the decoder's. The next batch is only prepared, never sent before
//! the current one is settled, so order and retries are as without it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, Instant};

use crate::outbox::{Shared, State};
use crate::record;
use crate::rejected::RejectedLog;
use crate::retry::Backoff;
use crate::spool::{Position, ReadBatch};
use crate::{Deliver, Delivery, OutboxError};

/// The batch being delivered.
struct Batch<T> {
    /// Items still to deliver (empty while an attempt holds them).
    pending: Vec<T>,
    /// Push time of the oldest item.
    oldest_ts: u64,
    /// Items this batch settles when done (including spool records
    /// rejected or lost while reading).
    total: u64,
    /// Spool position to commit when done, and what it acknowledges.
    spool_end: Option<Position>,
    spool_items: u64,
    spool_bytes: u64,
    /// The items of the current attempt as spool records (and how many),
    /// so an attempt cut short by shutdown loses nothing.
    encoded: Option<(Vec<u8>, u64)>,
    attempts: u32,
    /// The last attempt was abandoned at the shutdown deadline.
    cancelled: bool,
}

/// Runs until shutdown (or until the last handle is dropped).
pub(crate) async fn run<D: Deliver>(
    shared: Arc<Shared<D::Item>>,
    mut backend: D,
    mut rejected: RejectedLog,
) {
    let mut guard = FinishGuard {
        shared: Arc::clone(&shared),
        armed: true,
    };
    let mut shutdown = shared.shutdown.subscribe();
    let mut backoff = Backoff::new(shared.config.retry);
    let mut batch: Option<Batch<D::Item>> = None;
    // The batch after it, taken while the backend worked.
    let mut next: Option<Batch<D::Item>> = None;
    // A copy of each attempt for the spool, unless the backend finishes
    // an abandoned attempt by itself.
    let keep_copy = !backend.completes_when_abandoned();
    loop {
        if batch.is_none() {
            if let Some(n) = next.take() {
                promote(&shared, &n);
                batch = Some(n);
            }
        }
        let b = match batch.as_mut() {
            Some(b) => b,
            None => match next_batch(
                &shared,
                &mut shutdown,
                &mut rejected,
                &mut backoff,
                keep_copy,
            )
            .await
            {
                Some(b) => batch.insert(b),
                None => break,
            },
        };
        if b.pending.is_empty() {
            settle(&shared, b);
            batch = None;
            continue;
        }
        if deadline_passed(&shutdown) {
            break;
        }
        if keep_copy && b.encoded.is_none() {
            b.encoded = encode_all(&shared.config.name, &b.pending, b.oldest_ts);
        }
        let items = std::mem::take(&mut b.pending);
        let sent = items.len();
        {
            let mut st = shared.lock();
            st.counters.batches += 1;
            if b.attempts > 0 {
                st.counters.retries += 1;
            }
        }
        b.attempts += 1;
        // The delivery is polled first (so the backend starts), then the
        // next batch is prepared while it runs.
        let prefetch = async {
            if next.is_none() {
                next = prefetch_batch(&shared, &mut rejected, keep_copy);
            }
        };
        let outcome = tokio::select! {
            biased;
            (outcome, ()) = async { tokio::join!(backend.deliver(items), prefetch) } => Some(outcome),
            () = wait_deadline(&mut shutdown) => None,
        };
        let Some(outcome) = outcome else {
            b.cancelled = true;
            break;
        };
        let (retry, reject, reason) = match outcome {
            Delivery::Done => (Vec::new(), Vec::new(), String::new()),
            Delivery::Retry { items, reason } => (items, Vec::new(), reason),
            Delivery::Reject { items, reason } => (Vec::new(), items, reason),
            Delivery::Partial {
                retry,
                reject,
                reason,
            } => (retry, reject, reason),
        };
        if !reject.is_empty() {
            write_rejected(&shared, &mut rejected, &reject, &reason);
        }
        let delivered = sent.saturating_sub(retry.len() + reject.len()) as u64;
        if retry.is_empty() {
            {
                let mut st = shared.lock();
                st.counters.delivered += delivered;
                st.counters.consecutive_failures = 0;
            }
            settle(&shared, b);
            batch = None;
            backoff.reset();
            continue;
        }
        let delay = backoff.next_delay();
        {
            let mut st = shared.lock();
            st.counters.delivered += delivered;
            st.counters.failures += 1;
            st.counters.consecutive_failures += 1;
            st.counters.last_error = Some(reason.clone());
            st.in_flight = retry.len();
            tracing::warn!(outbox = %shared.config.name, pending = retry.len(), attempt = b.attempts,
                consecutive = st.counters.consecutive_failures, retry_in = ?delay, reason = %reason,
                "delivery failed; will retry");
        }
        b.pending = retry;
        b.encoded = None;
        tokio::select! {
            () = sleep(delay) => {}
            () = wait_deadline(&mut shutdown) => break,
        }
    }
    finish(&shared, batch, next, keep_copy);
    guard.armed = false;
}

/// The next batch, taken and decoded now if a whole one is waiting (or a
/// flush or shutdown hurries); `None` leaves it to [`next_batch`].
fn prefetch_batch<T: Serialize + DeserializeOwned>(
    shared: &Shared<T>,
    rejected: &mut RejectedLog,
    keep_copy: bool,
) -> Option<Batch<T>> {
    let max = shared.config.max_batch;
    let hurry = shared.hurry.load(Ordering::Acquire) > 0;
    let (items, oldest, read) = {
        let mut st = shared.lock();
        let available = st.memory.len() as u64 + st.spool.unread_items();
        if available == 0 || (available < max as u64 && !hurry) {
            return None;
        }
        let taken = take(shared, &mut st, max).ok()?;
        st.prefetched = taken.0.len() + taken.2.records.len();
        taken
    };
    Some(decode(
        shared, rejected, items, oldest, read, keep_copy, true,
    ))
}

/// `next` becomes the batch in flight.
fn promote<T>(shared: &Shared<T>, next: &Batch<T>) {
    let mut st = shared.lock();
    st.in_flight = next.pending.len();
    st.in_flight_ts = Some(next.oldest_ts);
    st.prefetched = 0;
}

/// Waits for the next batch. `None` once shutdown is requested and nothing is left.
async fn next_batch<T: Serialize + DeserializeOwned>(
    shared: &Shared<T>,
    shutdown: &mut watch::Receiver<Option<Instant>>,
    rejected: &mut RejectedLog,
    backoff: &mut Backoff,
    keep_copy: bool,
) -> Option<Batch<T>> {
    let max = shared.config.max_batch;
    let linger = shared.config.linger;
    let mut linger_until: Option<Instant> = None;
    loop {
        let stopping = shutdown.borrow_and_update().is_some();
        let hurry = stopping || shared.hurry.load(Ordering::Acquire) > 0;
        let taken = {
            let mut st = shared.lock();
            let available = st.memory.len() as u64 + st.spool.unread_items();
            if available == 0 {
                if stopping {
                    return None;
                }
                linger_until = None;
                None
            } else if hurry
                || available >= max as u64
                || linger.is_zero()
                || linger_until.is_some_and(|t| Instant::now() >= t)
            {
                let taken = take(shared, &mut st, max);
                if let Ok((items, oldest, read)) = &taken {
                    st.in_flight = items.len() + read.records.len();
                    st.in_flight_ts = *oldest;
                }
                Some(taken)
            } else {
                linger_until.get_or_insert_with(|| Instant::now() + linger);
                None
            }
        };
        match taken {
            Some(Ok((items, oldest, read))) => {
                return Some(decode(
                    shared, rejected, items, oldest, read, keep_copy, false,
                ))
            }
            Some(Err(e)) => {
                let delay = backoff.next_delay();
                tracing::error!(outbox = %shared.config.name, error = %e, retry_in = ?delay, "cannot read the spool");
                shared.lock().counters.last_error = Some(e.to_string());
                tokio::select! {
                    () = sleep(delay) => {}
                    () = wait_deadline(shutdown) => return None,
                }
                continue;
            }
            None => {}
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            () = sleep_until(linger_until.unwrap_or_else(Instant::now)), if linger_until.is_some() => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
        }
    }
}

type Taken<T> = (Vec<T>, Option<u64>, ReadBatch);

/// Takes up to `max` items: memory first, then the spool. The caller
/// counts them in flight (or prefetched).
fn take<T>(shared: &Shared<T>, st: &mut State<T>, max: usize) -> Result<Taken<T>, OutboxError> {
    let n = st.memory.len().min(max);
    let mut items = Vec::with_capacity(n);
    let mut oldest = None;
    for e in st.memory.drain(..n) {
        oldest.get_or_insert(e.ts_ms);
        items.push(e.item);
    }
    let mut read = ReadBatch::default();
    if items.len() < max && st.spool.unread_items() > 0 {
        match st.spool.read_batch(max - items.len()) {
            Ok(r) => read = r,
            Err(e) if items.is_empty() => return Err(e),
            Err(e) => {
                tracing::error!(outbox = %shared.config.name, error = %e, "cannot read the spool");
                st.counters.last_error = Some(e.to_string());
            }
        }
    }
    if let Some(first) = read.records.first() {
        oldest.get_or_insert(first.ts_ms);
    }
    if let Some(problem) = &read.problem {
        st.counters.last_error = Some(problem.clone());
    }
    shared.sync_spooled(st);
    Ok((items, oldest, read))
}

/// Turns taken items and spool records into a batch; records that no
/// longer deserialize go to `rejected.jsonl`. `keep_copy`: the batch keeps
/// its records for the spool (see [`run`]); `prefetched`: it is the batch
/// after the one in flight.
fn decode<T: Serialize + DeserializeOwned>(
    shared: &Shared<T>,
    rejected: &mut RejectedLog,
    mut items: Vec<T>,
    oldest: Option<u64>,
    read: ReadBatch,
    keep_copy: bool,
    prefetched: bool,
) -> Batch<T> {
    let total = (items.len() + read.records.len()) as u64 + read.lost;
    let spool_items = read.records.len() as u64;
    let mut unreadable = 0u64;
    let mut last_reason = None;
    // A batch wholly from the spool keeps its records as they are, ready
    // to be put back should shutdown cut its delivery short (unless the
    // backend finishes an abandoned attempt by itself).
    let mut encoded = (keep_copy && items.is_empty() && !read.records.is_empty()).then(Vec::new);
    items.reserve(read.records.len());
    for rec in read.records {
        match crate::codec::decode::<T>(&rec.payload) {
            Ok(item) => {
                items.push(item);
                if let Some(buf) = encoded.as_mut() {
                    record::encode_raw(buf, rec.ts_ms, &rec.payload);
                }
            }
            Err(e) => {
                let reason = format!("spool record does not deserialize: {e}");
                if let Err(we) = rejected.write_raw(&rec.payload, &reason) {
                    tracing::error!(outbox = %shared.config.name, path = %rejected.path().display(), error = %we,
                        item = %String::from_utf8_lossy(&rec.payload), reason = %reason,
                        "cannot write rejected.jsonl; the rejected item is in this log line");
                }
                unreadable += 1;
                last_reason = Some(reason);
            }
        }
    }
    if let Some(reason) = last_reason {
        tracing::warn!(outbox = %shared.config.name, items = unreadable, reason = %reason, "rejected unreadable spool records");
        let mut st = shared.lock();
        st.counters.rejected += unreadable;
        st.counters.last_error = Some(reason);
        if prefetched {
            st.prefetched = items.len();
        } else {
            st.in_flight = items.len();
        }
    }
    Batch {
        pending: items,
        oldest_ts: oldest.unwrap_or_else(crate::now_ms),
        total,
        spool_end: read.end,
        spool_items,
        spool_bytes: read.bytes,
        encoded: encoded.map(|buf| (buf, spool_items - unreadable)),
        attempts: 0,
        cancelled: false,
    }
}

/// The batch is done: commit the spool cursor, count it settled.
fn settle<T>(shared: &Shared<T>, b: &Batch<T>) {
    let mut st = shared.lock();
    if let Some(end) = b.spool_end {
        if let Err(e) = st.spool.commit(end, b.spool_items, b.spool_bytes) {
            tracing::error!(outbox = %shared.config.name, error = %e,
                "cannot commit the spool cursor; a restart would redeliver");
            st.counters.last_error = Some(e.to_string());
        }
    }
    st.in_flight = 0;
    st.in_flight_ts = None;
    shared.settled.send_modify(|s| *s += b.total);
    shared.sync_spooled(&st);
    drop(st);
    shared.unsaturated.notify_waiters();
}

fn write_rejected<T: Serialize>(
    shared: &Shared<T>,
    rejected: &mut RejectedLog,
    items: &[T],
    reason: &str,
) {
    if let Err(e) = rejected.write_items(items, reason) {
        let dump =
            serde_json::to_string(items).unwrap_or_else(|e| format!("<not serializable: {e}>"));
        tracing::error!(outbox = %shared.config.name, path = %rejected.path().display(), error = %e,
            items = %dump, reason = %reason, "cannot write rejected.jsonl; the rejected items are in this log line");
    }
    tracing::warn!(outbox = %shared.config.name, items = items.len(), reason = %reason, "backend rejected items");
    let mut st = shared.lock();
    st.counters.rejected += items.len() as u64;
    st.counters.last_error = Some(format!("rejected {} items: {reason}", items.len()));
}

/// The items as spool records, or `None` if one does not serialize.
fn encode_all<T: Serialize>(name: &str, items: &[T], ts_ms: u64) -> Option<(Vec<u8>, u64)> {
    let mut buf = Vec::new();
    for item in items {
        if let Err(e) = record::encode_item(&mut buf, ts_ms, item) {
            tracing::warn!(outbox = %name, error = ?e, "item cannot be spooled; it would be lost if shutdown cut its delivery short");
            return None;
        }
    }
    Some((buf, items.len() as u64))
}

fn deadline_passed(shutdown: &watch::Receiver<Option<Instant>>) -> bool {
    shutdown.borrow().is_some_and(|d| Instant::now() >= d)
}

/// Completes at the shutdown deadline (never, if no shutdown is requested).
async fn wait_deadline(shutdown: &mut watch::Receiver<Option<Instant>>) {
    loop {
        let deadline = *shutdown.borrow_and_update();
        match deadline {
            Some(d) => return sleep_until(d).await,
            None => {
                if shutdown.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }
}

/// Puts what is left (the unfinished batch, then memory) in front of the
/// spool, closes the outbox and tells waiters.
///
/// An attempt cut short at the deadline is spooled from its copy; without
/// one (`keep_copy` false) the backend completes it on its own.
///
/// `next`, the batch taken after it, follows it: it was never sent.
fn finish<T: Serialize>(
    shared: &Shared<T>,
    batch: Option<Batch<T>>,
    next: Option<Batch<T>>,
    keep_copy: bool,
) {
    let mut st = shared.lock();
    let mut frames = Vec::new();
    let mut count = 0u64;
    let mut first_ts = None;
    let mut lost = 0usize;
    if let Some(b) = batch {
        first_ts = Some(b.oldest_ts);
        if b.cancelled {
            match b.encoded {
                Some((enc, n)) => {
                    frames = enc;
                    count = n;
                }
                None if !keep_copy => {
                    tracing::info!(outbox = %shared.config.name,
                        "the attempt under way at the shutdown deadline completes on its own");
                }
                None => lost += 1,
            }
        } else {
            for item in &b.pending {
                match record::encode_item(&mut frames, b.oldest_ts, item) {
                    Ok(()) => count += 1,
                    Err(_) => lost += 1,
                }
            }
        }
    }
    if let Some(n) = next {
        first_ts.get_or_insert(n.oldest_ts);
        for item in &n.pending {
            match record::encode_item(&mut frames, n.oldest_ts, item) {
                Ok(()) => count += 1,
                Err(_) => lost += 1,
            }
        }
    }
    let memory = std::mem::take(&mut st.memory);
    for e in &memory {
        first_ts.get_or_insert(e.ts_ms);
        match record::encode_item(&mut frames, e.ts_ms, &e.item) {
            Ok(()) => count += 1,
            Err(_) => lost += 1,
        }
    }
    drop(memory);
    if lost > 0 {
        tracing::error!(outbox = %shared.config.name, lost, "items that cannot be serialized were not persisted");
    }
    let persisted = if count > 0 {
        st.spool
            .persist_front(&frames, count, first_ts.unwrap_or_else(crate::now_ms))
    } else {
        st.spool.close_writer()
    };
    match persisted {
        Ok(()) if count > 0 => {
            tracing::info!(outbox = %shared.config.name, items = count, spooled = st.spool.unacked_items(),
                "outbox stopped; undelivered items kept in the spool");
        }
        Ok(()) => {}
        Err(e) => {
            tracing::error!(outbox = %shared.config.name, items = count, error = %e, "cannot persist undelivered items");
            st.counters.last_error = Some(e.to_string());
        }
    }
    st.closed = true;
    st.in_flight = 0;
    st.prefetched = 0;
    st.in_flight_ts = None;
    st.dir_lock = None;
    shared.sync_spooled(&st);
    drop(st);
    shared.finished.send_replace(true);
    shared.unsaturated.notify_waiters();
}

/// If the task ends without reaching `finish` (a backend panic, the runtime
/// dropping the task), still persist memory, close, and wake waiters.
struct FinishGuard<T: Serialize> {
    shared: Arc<Shared<T>>,
    armed: bool,
}

impl<T: Serialize> Drop for FinishGuard<T> {
    fn drop(&mut self) {
        if self.armed {
            tracing::error!(outbox = %self.shared.config.name,
                "delivery task ended abnormally; the batch in flight is not persisted (the spool still holds it if it came from there)");
            // Records in flight from the spool are still on disk: read them again.
            self.shared.lock().spool.rewind();
            finish(&self.shared, None, None, true);
        }
    }
}
