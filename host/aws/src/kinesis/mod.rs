//! Kinesis Data Streams writer.
//!
//! [`KinesisStream::put`] routes each record to its shard (MD5 of the
//! partition key, see [`shards`]), paces every shard with its own token
//! buckets ([`budget`]) so a burst is spread over time rather than thrown at
//! AWS, sends `PutRecords` batches of at most 500 records and 5 MiB, and
//! resends exactly the records that failed (per-record
//! `ProvisionedThroughputExceededException` / `InternalFailure`, or a whole
//! call that was throttled or hit a 5xx) with exponential backoff and full
//! jitter on the shards concerned, until the deadline. Whatever still fails is
//! handed back in [`PutReport::failed`] for the outbox to spool.
//!
//! A record goes into a batch only if its shard has budget now; a shard that
//! has none (or is backing off) is skipped for the rest of that batch, so the
//! records of one shard keep their order. When nothing fits, the writer sleeps
//! until the first shard has budget again, but at least [`LINGER`] so that
//! batches stay reasonably large while paced.
//!
//! The shard map is loaded on first use, refreshed by
//! [`KinesisStream::refresh_shards`], and again when Kinesis reports the
//! stream missing or puts a record on another shard than predicted (reshard).

pub mod budget;
pub mod shards;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use bytes::Bytes;
use tokio::time::Instant;

pub use budget::{ShardBudget, TokenBuckets};
pub use shards::{hash_key, ShardMap, ShardRange};

use crate::error::{classify, error_code, is_retryable_code, AwsError};

/// Records per `PutRecords` call (service limit).
pub const MAX_BATCH_RECORDS: usize = 500;
/// Bytes (data + partition keys) per `PutRecords` call (service limit).
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Largest data blob of one record.
pub const MAX_RECORD_DATA: usize = 1024 * 1024;
/// Shortest sleep when no shard has budget.
pub const LINGER: Duration = Duration::from_millis(50);

const THROTTLED: &str = "ProvisionedThroughputExceededException";

/// One record to put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    pub partition_key: String,
    pub data: Bytes,
}

impl StreamRecord {
    /// What the record costs against the shard's and the call's byte limits.
    pub fn cost(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// Outcome of [`KinesisStream::put`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutReport {
    /// Records Kinesis accepted.
    pub sent: usize,
    /// Records not accepted by the deadline (or refused for good), with the
    /// last error code seen for each.
    pub failed: Vec<(StreamRecord, String)>,
    /// Record-level throttles seen (per-record and whole-call).
    pub throttled: u64,
    /// `PutRecords` calls made.
    pub attempts: u32,
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(50),
            cap: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// A delay for the `failures`-th consecutive failure (1-based): uniform
    /// in `[0, min(cap, base * 2^(failures-1))]`.
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(self.cap);
        let nanos = u64::try_from(exp.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(if nanos == 0 {
            0
        } else {
            random_u64() % (nanos + 1)
        })
    }
}

fn random_u64() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut seed = STATE.load(Ordering::Relaxed);
    if seed == 0 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        let _ = STATE.compare_exchange(0, t | 1, Ordering::Relaxed, Ordering::Relaxed);
    }
    // splitmix64
    seed = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug)]
struct ShardState {
    buckets: TokenBuckets,
    backoff_until: Instant,
    failures: u32,
}

#[derive(Debug, Default)]
struct Inner {
    map: ShardMap,
    shards: HashMap<String, ShardState>,
}

/// Result of one `PutRecords` call, as the pacing loop needs it.
#[derive(Debug)]
enum CallOutcome {
    /// Per-record results, in request order: `(shard id, error code)`.
    Results(Vec<(Option<String>, Option<String>)>),
    /// The whole call failed.
    Failed { code: String, error: AwsError },
}

struct Pending {
    record: StreamRecord,
    last_error: Option<String>,
}

/// A Kinesis data stream to write to.
#[derive(Debug, Clone)]
pub struct KinesisStream {
    client: aws_sdk_kinesis::Client,
    stream: Arc<str>,
    budget: ShardBudget,
    backoff: Backoff,
    inner: Arc<Mutex<Inner>>,
}

impl KinesisStream {
    pub fn new(
        client: aws_sdk_kinesis::Client,
        stream_name: impl Into<String>,
        budget: ShardBudget,
    ) -> Self {
        Self {
            client,
            stream: Arc::from(stream_name.into()),
            budget,
            backoff: Backoff::default(),
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent even if a holder panicked (plain data).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current shard map (empty before the first refresh).
    pub fn shard_map(&self) -> ShardMap {
        self.lock().map.clone()
    }

    /// Replace the shard map (tests, or a map obtained elsewhere).
    pub fn set_shard_map(&self, map: ShardMap) {
        let mut inner = self.lock();
        let now = Instant::now();
        let budget = self.budget;
        let keep: HashSet<&str> = map.shards().iter().map(|s| s.shard_id.as_str()).collect();
        inner.shards.retain(|id, _| keep.contains(id.as_str()));
        for s in map.shards() {
            inner
                .shards
                .entry(s.shard_id.clone())
                .or_insert_with(|| ShardState {
                    buckets: TokenBuckets::new(budget, now),
                    backoff_until: now,
                    failures: 0,
                });
        }
        inner.map = map;
    }

    /// Reload the open shards' hash-key ranges (`ListShards`, paginated).
    pub async fn refresh_shards(&self) -> Result<(), AwsError> {
        let mut ranges = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = self.client.list_shards();
            let req = match &token {
                Some(t) => req.next_token(t),
                None => req.stream_name(&*self.stream),
            };
            let out = req.send().await.map_err(|e| classify(&e))?;
            for shard in out.shards() {
                let open = shard
                    .sequence_number_range()
                    .is_none_or(|r| r.ending_sequence_number().is_none());
                let Some(range) = shard.hash_key_range() else {
                    continue;
                };
                if !open {
                    continue;
                }
                ranges.push(ShardRange {
                    shard_id: shard.shard_id().to_string(),
                    start: shards::parse_hash_key(range.starting_hash_key())
                        .map_err(AwsError::Permanent)?,
                    end: shards::parse_hash_key(range.ending_hash_key())
                        .map_err(AwsError::Permanent)?,
                });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        tracing::debug!(stream = %self.stream, shards = ranges.len(), "kinesis shard map loaded");
        self.set_shard_map(ShardMap::new(ranges));
        Ok(())
    }

    /// Create the stream with `shards` shards if missing; wait until ACTIVE;
    /// load the shard map.
    pub async fn ensure_stream(&self, shards: i32) -> Result<(), AwsError> {
        let described = self
            .client
            .describe_stream_summary()
            .stream_name(&*self.stream)
            .send()
            .await;
        match described {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                match self
                    .client
                    .create_stream()
                    .stream_name(&*self.stream)
                    .shard_count(shards)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_resource_in_use_exception()) => {}
                    Err(e) => return Err(classify(&e)),
                }
            }
            Err(e) => return Err(classify(&e)),
        }
        let what = format!("stream {}", self.stream);
        crate::error::poll_until_active(&what, || async {
            let out = self
                .client
                .describe_stream_summary()
                .stream_name(&*self.stream)
                .send()
                .await
                .map_err(|e| classify(&e))?;
            Ok(out
                .stream_description_summary()
                .is_some_and(|s| s.stream_status() == &StreamStatus::Active))
        })
        .await?;
        self.refresh_shards().await
    }

    /// Put the records (see the module docs); gives up on what is still
    /// failing when `deadline` has passed.
    pub async fn put(&self, records: Vec<StreamRecord>, deadline: Duration) -> PutReport {
        if self.lock().map.is_empty() {
            if let Err(e) = self.refresh_shards().await {
                tracing::warn!(stream = %self.stream, error = %e, "kinesis shard map unavailable; sending unpaced");
            }
        }
        let this = self.clone();
        self.run(records, deadline, move |entries| {
            let this = this.clone();
            async move { this.send(entries).await }
        })
        .await
    }

    async fn send(&self, entries: Vec<PutRecordsRequestEntry>) -> CallOutcome {
        let out = self
            .client
            .put_records()
            .stream_name(&*self.stream)
            .set_records(Some(entries))
            .send()
            .await;
        match out {
            Ok(out) => CallOutcome::Results(
                out.records()
                    .iter()
                    .map(|r| {
                        (
                            r.shard_id().map(str::to_string),
                            r.error_code().map(str::to_string),
                        )
                    })
                    .collect(),
            ),
            Err(e) => {
                let error = classify(&e);
                let code = error_code(&e).unwrap_or_else(|| {
                    if error.is_retryable() {
                        "TransportError"
                    } else {
                        "RequestError"
                    }
                    .to_string()
                });
                CallOutcome::Failed { code, error }
            }
        }
    }

    /// The pacing/retry loop, with the call itself abstracted (tests drive it
    /// with a fake under paused time).
    async fn run<F, Fut>(
        &self,
        records: Vec<StreamRecord>,
        deadline: Duration,
        mut call: F,
    ) -> PutReport
    where
        F: FnMut(Vec<PutRecordsRequestEntry>) -> Fut,
        Fut: std::future::Future<Output = CallOutcome>,
    {
        let end = Instant::now() + deadline;
        let mut report = PutReport::default();
        let mut pending: VecDeque<Pending> = VecDeque::with_capacity(records.len());
        for record in records {
            match validate(&record) {
                Ok(()) => pending.push_back(Pending {
                    record,
                    last_error: None,
                }),
                Err(code) => report.failed.push((record, code.to_string())),
            }
        }
        // When the last batch was cut short by a shard's budget, the next
        // one waits LINGER after it, so paced batches carry LINGER's worth
        // of budget instead of the few tokens that refill during one call.
        let mut paced_at: Option<Instant> = None;
        while !pending.is_empty() {
            if let Some(t) = paced_at {
                let at = (t + LINGER).min(end);
                if Instant::now() < at {
                    tokio::time::sleep_until(at).await;
                }
            }
            let now = Instant::now();
            if now >= end {
                break;
            }
            let (batch, wait) = self.assemble(&mut pending, now);
            paced_at = wait.map(|_| now);
            let wait = wait.unwrap_or(LINGER);
            if batch.is_empty() {
                tokio::time::sleep_until((now + wait.max(LINGER)).min(end)).await;
                continue;
            }
            let mut entries = Vec::with_capacity(batch.len());
            for (p, _) in &batch {
                let entry = PutRecordsRequestEntry::builder()
                    .partition_key(&p.record.partition_key)
                    .data(Blob::new(p.record.data.to_vec()))
                    .build();
                match entry {
                    Ok(e) => entries.push(e),
                    // validate() checked the required fields; unreachable.
                    Err(e) => unreachable!("PutRecordsRequestEntry: {e}"),
                }
            }
            report.attempts += 1;
            let outcome = call(entries).await;
            let refresh = self.settle(batch, outcome, &mut pending, &mut report);
            match refresh {
                Refresh::No => {}
                Refresh::Map => {
                    if let Err(e) = self.refresh_shards().await {
                        tracing::warn!(stream = %self.stream, error = %e, "kinesis shard map refresh failed");
                    }
                }
                Refresh::StreamMissing(code) => match self.refresh_shards().await {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!(stream = %self.stream, error = %e, "kinesis stream unavailable");
                        if !e.is_retryable() {
                            report
                                .failed
                                .extend(pending.drain(..).map(|p| (p.record, code.clone())));
                        }
                    }
                },
            }
        }
        report.failed.extend(pending.into_iter().map(|p| {
            let code = p.last_error.unwrap_or_else(|| "DeadlineExceeded".into());
            (p.record, code)
        }));
        report
    }

    /// Take the records that fit now out of `pending`, in order; a shard
    /// without budget (or backing off) is skipped for the rest of the pass.
    /// Returns the batch (with each record's predicted shard) and, when
    /// something was held back by budget or backoff (not by the batch being
    /// full), the shortest wait until it could go.
    fn assemble(
        &self,
        pending: &mut VecDeque<Pending>,
        now: Instant,
    ) -> (Vec<(Pending, Option<String>)>, Option<Duration>) {
        let mut inner = self.lock();
        let Inner { map, shards } = &mut *inner;
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        let mut wait = Duration::MAX;
        let mut blocked: HashSet<usize> = HashSet::new();
        let mut kept = VecDeque::with_capacity(pending.len());
        let mut full = false;
        while let Some(p) = pending.pop_front() {
            let cost = p.record.cost();
            if full || batch.len() == MAX_BATCH_RECORDS || bytes + cost > MAX_BATCH_BYTES {
                full = true;
                kept.push_back(p);
                continue;
            }
            let idx = map.index_for_hash(hash_key(&p.record.partition_key));
            let Some(idx) = idx else {
                // Not in any known open shard (map missing or mid-reshard): unpaced.
                bytes += cost;
                batch.push((p, None));
                continue;
            };
            if blocked.contains(&idx) {
                kept.push_back(p);
                continue;
            }
            let shard_id = &map.shards()[idx].shard_id;
            let Some(state) = shards.get_mut(shard_id) else {
                bytes += cost;
                batch.push((p, Some(shard_id.clone())));
                continue;
            };
            if state.backoff_until > now {
                wait = wait.min(state.backoff_until - now);
                blocked.insert(idx);
                kept.push_back(p);
                continue;
            }
            match state.buckets.try_take(cost, now) {
                Ok(()) => {
                    bytes += cost;
                    batch.push((p, Some(shard_id.clone())));
                }
                Err(w) => {
                    wait = wait.min(w);
                    blocked.insert(idx);
                    kept.push_back(p);
                }
            }
        }
        *pending = kept;
        (batch, (wait != Duration::MAX).then_some(wait))
    }

    /// Book the outcome of one call: count what went through, queue what is
    /// worth resending (in front, in its order), fail the rest.
    fn settle(
        &self,
        batch: Vec<(Pending, Option<String>)>,
        outcome: CallOutcome,
        pending: &mut VecDeque<Pending>,
        report: &mut PutReport,
    ) -> Refresh {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut retry: Vec<Pending> = Vec::new();
        let mut refresh = Refresh::No;
        match outcome {
            CallOutcome::Results(results) => {
                let mut results = results.into_iter();
                let mut penalized: HashSet<String> = HashSet::new();
                let mut succeeded: HashSet<String> = HashSet::new();
                for (mut p, predicted) in batch {
                    match results.next() {
                        Some((actual, None)) => {
                            report.sent += 1;
                            if actual.is_some() && predicted.is_some() && actual != predicted {
                                refresh = Refresh::Map;
                            }
                            if let Some(s) = predicted {
                                succeeded.insert(s);
                            }
                        }
                        Some((_, Some(code))) => {
                            if code == THROTTLED {
                                report.throttled += 1;
                            }
                            if is_retryable_code(&code) {
                                if let Some(s) = predicted {
                                    penalized.insert(s);
                                }
                                p.last_error = Some(code);
                                retry.push(p);
                            } else {
                                report.failed.push((p.record, code));
                            }
                        }
                        None => {
                            p.last_error = Some("MissingResult".into());
                            retry.push(p);
                        }
                    }
                }
                for s in succeeded.difference(&penalized) {
                    if let Some(st) = inner.shards.get_mut(s) {
                        st.failures = 0;
                    }
                }
                for s in penalized {
                    self.penalize(&mut inner, &s, now);
                }
            }
            CallOutcome::Failed { code, error } => {
                if code == "ResourceNotFoundException" {
                    refresh = Refresh::StreamMissing(code.clone());
                }
                if error.is_retryable() || code == "ResourceNotFoundException" {
                    if is_retryable_code(&code) && code != "InternalFailure" {
                        report.throttled += batch.len() as u64;
                    }
                    let mut shards: HashSet<String> = HashSet::new();
                    for (mut p, predicted) in batch {
                        shards.extend(predicted);
                        p.last_error = Some(code.clone());
                        retry.push(p);
                    }
                    for s in shards {
                        self.penalize(&mut inner, &s, now);
                    }
                } else {
                    report
                        .failed
                        .extend(batch.into_iter().map(|(p, _)| (p.record, code.clone())));
                }
            }
        }
        for p in retry.into_iter().rev() {
            pending.push_front(p);
        }
        refresh
    }

    fn penalize(&self, inner: &mut Inner, shard: &str, now: Instant) {
        if let Some(st) = inner.shards.get_mut(shard) {
            st.failures = st.failures.saturating_add(1);
            st.backoff_until = now + self.backoff.delay(st.failures);
        }
    }
}

enum Refresh {
    No,
    Map,
    StreamMissing(String),
}

fn validate(r: &StreamRecord) -> Result<(), &'static str> {
    let chars = r.partition_key.chars().count();
    if chars == 0 || chars > 256 {
        return Err("InvalidPartitionKey");
    }
    if r.data.len() > MAX_RECORD_DATA {
        return Err("RecordTooLarge");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(budget: ShardBudget) -> KinesisStream {
        let conf = aws_sdk_kinesis::Config::builder()
            .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
            .build();
        let s = KinesisStream::new(aws_sdk_kinesis::Client::from_conf(conf), "s", budget);
        s.set_shard_map(ShardMap::new(vec![ShardRange {
            shard_id: "shard-0".into(),
            start: 0,
            end: u128::MAX,
        }]));
        s
    }

    fn records(n: usize) -> Vec<StreamRecord> {
        (0..n)
            .map(|i| StreamRecord {
                partition_key: format!("k{i}"),
                data: Bytes::from(format!("{i}")),
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn budget_paces_a_burst() {
        let s = stream(ShardBudget {
            records_per_sec: 1000,
            bytes_per_sec: 1024 * 1024,
        });
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let seen = sizes.clone();
        let report = s
            .run(records(3000), Duration::from_secs(60), move |entries| {
                seen.lock().unwrap().push(entries.len());
                let n = entries.len();
                async move { CallOutcome::Results(vec![(Some("shard-0".into()), None); n]) }
            })
            .await;
        let elapsed = t0.elapsed();
        assert_eq!(report.sent, 3000);
        assert!(report.failed.is_empty());
        assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
        let sizes = sizes.lock().unwrap();
        assert!(sizes.iter().all(|&n| n <= MAX_BATCH_RECORDS), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 3000);
        // The first second's worth goes at once, in two full batches.
        assert_eq!(&sizes[..2], &[500, 500]);
    }

    #[tokio::test(start_paused = true)]
    async fn resends_exactly_the_failed_records() {
        let s = stream(ShardBudget::default());
        let calls = Arc::new(Mutex::new(Vec::<Vec<String>>::new()));
        let seen = calls.clone();
        let report = s
            .run(records(10), Duration::from_secs(60), move |entries| {
                let keys: Vec<String> = entries
                    .iter()
                    .map(|e| e.partition_key().unwrap_or_default().to_string())
                    .collect();
                let n = seen.lock().unwrap().len();
                seen.lock().unwrap().push(keys.clone());
                async move {
                    match n {
                        // First call: records 2 and 7 throttled, 5 internal failure.
                        0 => CallOutcome::Results(
                            (0..keys.len())
                                .map(|i| match i {
                                    2 | 7 => (None, Some(THROTTLED.to_string())),
                                    5 => (None, Some("InternalFailure".to_string())),
                                    _ => (Some("shard-0".into()), None),
                                })
                                .collect(),
                        ),
                        // Second call: the whole call throttled.
                        1 => CallOutcome::Failed {
                            code: THROTTLED.into(),
                            error: AwsError::Retryable("Rate exceeded".into()),
                        },
                        _ => CallOutcome::Results(vec![(Some("shard-0".into()), None); keys.len()]),
                    }
                }
            })
            .await;
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].len(), 10);
        assert_eq!(calls[1], vec!["k2", "k5", "k7"]);
        assert_eq!(calls[2], vec!["k2", "k5", "k7"]);
        assert_eq!(report.sent, 10);
        assert_eq!(report.throttled, 2 + 3);
        assert_eq!(report.attempts, 3);
        assert!(report.failed.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_returns_what_still_fails() {
        let s = stream(ShardBudget::default());
        let mut recs = records(3);
        recs.push(StreamRecord {
            partition_key: String::new(),
            data: Bytes::new(),
        });
        let report = s
            .run(recs, Duration::from_secs(5), |entries| {
                let n = entries.len();
                async move { CallOutcome::Results(vec![(None, Some(THROTTLED.to_string())); n]) }
            })
            .await;
        assert_eq!(report.sent, 0);
        let mut failed: Vec<(String, String)> = report
            .failed
            .into_iter()
            .map(|(r, c)| (r.partition_key, c))
            .collect();
        failed.sort();
        assert_eq!(
            failed,
            vec![
                ("".into(), "InvalidPartitionKey".into()),
                ("k0".into(), THROTTLED.into()),
                ("k1".into(), THROTTLED.into()),
                ("k2".into(), THROTTLED.into()),
            ]
        );
        assert!(report.attempts >= 2);
    }

    #[test]
    fn backoff_bounds() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        for f in 1..30 {
            let d = b.delay(f);
            let max = Duration::from_millis(100 * (1u64 << (f - 1).min(20))).min(b.cap);
            assert!(d <= max, "{f}: {d:?} > {max:?}");
        }
    }
}
