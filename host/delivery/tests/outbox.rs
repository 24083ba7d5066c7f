//! Outbox behaviour against a scripted fake backend. Timing is under tokio's
//! paused clock (backoff and linger advance virtually), except for the test
//! that pushes from plain threads.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use weir_delivery::{spawn, Deliver, Delivery, OutboxError};

fn flat<T: Clone>(calls: &[Vec<T>]) -> Vec<T> {
    calls.iter().flatten().cloned().collect()
}

#[tokio::test(start_paused = true)]
async fn happy_path_delivers_in_push_order() {
    let dir = test_dir("happy");
    let (backend, log) = working::<u64>();
    let outbox = spawn(config("happy", &dir).with_max_batch(4), backend).expect("spawn");
    for chunk in (0..30u64).collect::<Vec<_>>().chunks(3) {
        outbox.push(chunk.to_vec()).expect("push");
    }
    assert!(outbox.flush(LONG).await);
    let calls = log.calls();
    let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![4, 4, 4, 4, 4, 4, 4, 2]);
    assert_eq!(flat(&calls), (0..30).collect::<Vec<_>>());
    let s = outbox.stats();
    assert_eq!(
        (s.delivered, s.batches, s.retries, s.failures, s.rejected),
        (30, 8, 0, 0, 0)
    );
    assert_eq!(
        (s.queued, s.in_flight, s.spooled_items, s.spooled_bytes),
        (0, 0, 0, 0)
    );
    assert_eq!(s.last_error, None);
    assert_eq!(s.backlog_oldest_age, None);
    assert!(
        segments(&dir).is_empty(),
        "memory path never touches the spool"
    );
    outbox.shutdown(LONG).await;
}

#[tokio::test(start_paused = true)]
async fn linger_waits_to_fill_a_batch() {
    let dir = test_dir("linger");
    let (backend, log) = working::<u64>();
    let mut cfg = config("linger", &dir).with_max_batch(4);
    cfg.linger = Duration::from_millis(50);
    let outbox = spawn(cfg, backend).expect("spawn");
    outbox.push(vec![1, 2, 3]).expect("push");
    tokio::time::sleep(Duration::from_millis(49)).await;
    assert!(log.calls().is_empty(), "still lingering");
    outbox.push(vec![4, 5]).expect("push");
    tokio::task::yield_now().await;
    assert_eq!(
        log.calls(),
        vec![vec![1, 2, 3, 4]],
        "a full batch goes at once"
    );
    tokio::time::sleep(Duration::from_millis(49)).await;
    assert_eq!(log.calls().len(), 1);
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(log.calls(), vec![vec![1, 2, 3, 4], vec![5]]);
    outbox.shutdown(LONG).await;
}

#[tokio::test(start_paused = true)]
async fn backend_down_then_up_delivers_each_item_once_in_order() {
    let dir = test_dir("down-up");
    let (backend, log) = fake(|call, items: Vec<u64>| {
        if call < 5 {
            Delivery::Retry {
                items,
                reason: format!("503 on call {call}"),
            }
        } else {
            Delivery::Done
        }
    });
    let outbox = spawn(config("down-up", &dir).with_max_batch(10), backend).expect("spawn");
    outbox.push((0..25).collect()).expect("push");
    assert!(outbox.flush(LONG).await);
    let calls = log.calls();
    let first: Vec<u64> = (0..10).collect();
    assert_eq!(
        &calls[..6],
        &vec![first.clone(); 6][..],
        "the same batch resent"
    );
    assert_eq!(calls[6], (10..20).collect::<Vec<_>>());
    assert_eq!(calls[7], (20..25).collect::<Vec<_>>());
    assert_eq!(calls.len(), 8);
    assert_eq!(log.delivered(), (0..25).collect::<Vec<_>>());
    let s = outbox.stats();
    assert_eq!(
        (
            s.delivered,
            s.batches,
            s.retries,
            s.failures,
            s.consecutive_failures
        ),
        (25, 8, 5, 5, 0)
    );
    assert_eq!(s.last_error.as_deref(), Some("503 on call 4"));
    outbox.shutdown(LONG).await;
}

#[tokio::test(start_paused = true)]
async fn memory_full_spills_to_spool_and_drains_in_order() {
    let dir = test_dir("spill");
    let (backend, log) = working::<u64>();
    let mut cfg = config("spill", &dir).with_max_batch(4);
    cfg.memory_capacity = 10;
    let outbox = spawn(cfg, backend).expect("spawn");
    for start in (0..100u64).step_by(10) {
        outbox.push((start..start + 10).collect()).expect("push");
    }
    // The delivery task has not run yet: 10 in memory, 90 on disk.
    let s = outbox.stats();
    assert_eq!((s.queued, s.spooled_items), (10, 90));
    assert_eq!(s.spooled_bytes, (10..100).map(frame_len).sum::<u64>());
    assert_eq!(segments(&dir).len(), 1);
    assert!(s.backlog_oldest_age.is_some());

    assert!(outbox.flush(LONG).await);
    let calls = log.calls();
    assert_eq!(flat(&calls), (0..100).collect::<Vec<_>>());
    assert!(calls.iter().all(|c| c.len() <= 4));
    let s = outbox.stats();
    assert_eq!(
        (s.delivered, s.queued, s.spooled_items, s.spooled_bytes),
        (100, 0, 0, 0)
    );

    // Drained: new pushes use memory again.
    outbox.push(vec![100, 101]).expect("push");
    assert_eq!(outbox.stats().queued, 2);
    assert!(outbox.flush(LONG).await);
    assert_eq!(log.delivered(), (0..102).collect::<Vec<_>>());
    outbox.shutdown(LONG).await;
}

#[tokio::test(start_paused = true)]
async fn partial_failure_resends_exactly_the_returned_items() {
    let dir = test_dir("partial");
    let (backend, log) = fake(|call, items: Vec<u64>| {
        if call % 2 == 0 {
            Delivery::Retry {
                items: items.into_iter().filter(|i| i % 2 == 1).collect(),
                reason: "ProvisionedThroughputExceeded".to_owned(),
            }
        } else {
            Delivery::Done
        }
    });
    let outbox = spawn(config("partial", &dir).with_max_batch(8), backend).expect("spawn");
    outbox.push((0..16).collect()).expect("push");
    assert!(outbox.flush(LONG).await);
    assert_eq!(
        log.calls(),
        vec![
            (0..8).collect::<Vec<u64>>(),
            vec![1, 3, 5, 7],
            (8..16).collect(),
            vec![9, 11, 13, 15],
        ]
    );
    let s = outbox.stats();
    assert_eq!(
        (s.delivered, s.batches, s.retries, s.failures),
        (16, 4, 2, 2)
    );
    let mut delivered = log.delivered();
    delivered.sort_unstable();
    assert_eq!(delivered, (0..16).collect::<Vec<_>>(), "each exactly once");
    outbox.shutdown(LONG).await;
}

#[tokio::test(start_paused = true)]
async fn rejected_items_are_written_to_rejected_jsonl() {
    let dir = test_dir("reject");
    let (backend, log) = fake(|call, items: Vec<u64>| match call {
        0 => Delivery::Reject {
            items: items.into_iter().filter(|i| i % 3 == 0).collect(),
            reason: "ValidationException: bad item".to_owned(),
        },
        1 => Delivery::Partial {
            retry: vec![11],
            reject: vec![12],
            reason: "mixed".to_owned(),
        },
        _ => Delivery::Done,
    });
    let outbox = spawn(config("reject", &dir).with_max_batch(10), backend).expect("spawn");
    outbox.push((0..13).collect()).expect("push");
    assert!(outbox.flush(LONG).await);
    assert_eq!(
        log.calls(),
        vec![(0..10).collect::<Vec<u64>>(), vec![10, 11, 12], vec![11]]
    );
    let text = std::fs::read_to_string(dir.join("rejected.jsonl")).expect("rejected.jsonl");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let got: Vec<(u64, &str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["item"].as_u64().expect("item"),
                l["reason"].as_str().expect("reason"),
                l["outbox"].as_str().expect("outbox"),
            )
        })
        .collect();
    let bad = "ValidationException: bad item";
    assert_eq!(
        got,
        vec![
            (0, bad, "reject"),
            (3, bad, "reject"),
            (6, bad, "reject"),
            (9, bad, "reject"),
            (12, "mixed", "reject"),
        ]
    );
    assert!(lines
        .iter()
        .all(|l| l["ts_ms"].as_u64().is_some_and(|t| t > 0)));
    let s = outbox.stats();
    assert_eq!(
        (s.delivered, s.rejected, s.failures, s.retries),
        (8, 5, 1, 1)
    );
    assert_eq!(s.last_error.as_deref(), Some("mixed"));
    outbox.shutdown(LONG).await;
}

#[tokio::test(start_paused = true)]
async fn saturation_is_signalled_and_clears_when_the_backend_recovers() {
    let dir = test_dir("saturate");
    let up = Arc::new(AtomicBool::new(false));
    let up_in_backend = Arc::clone(&up);
    let (backend, log) = fake(move |_, items: Vec<u64>| {
        if up_in_backend.load(Ordering::SeqCst) {
            Delivery::Done
        } else {
            Delivery::Retry {
                items,
                reason: "connection refused".to_owned(),
            }
        }
    });
    let mut cfg = config("saturate", &dir).with_max_batch(4);
    cfg.memory_capacity = 0;
    cfg.spool_limit_bytes = 100;
    let outbox = spawn(cfg, backend).expect("spawn");

    outbox.push((10..15).collect()).expect("push");
    assert_eq!(outbox.stats().spooled_bytes, 90);
    assert!(!outbox.is_saturated());
    outbox.push(vec![15]).expect("push");
    assert!(outbox.is_saturated(), "108 bytes >= 100");
    outbox
        .push(vec![16, 17])
        .expect("still accepted past the limit");

    let woke = Arc::new(AtomicBool::new(false));
    let waiter = {
        let outbox = outbox.clone();
        let woke = Arc::clone(&woke);
        tokio::spawn(async move {
            outbox.wait_unsaturated().await;
            woke.store(true, Ordering::SeqCst);
        })
    };
    // A minute of failing retries: still saturated, waiter still waiting.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let s = outbox.stats();
    assert!(s.saturated && outbox.is_saturated());
    assert!(!woke.load(Ordering::SeqCst));
    assert_eq!(s.spooled_bytes, 8 * 18);
    assert_eq!(s.spooled_items, 8);
    // The batch being retried, and the next one, taken while it was tried.
    assert_eq!(s.in_flight, 8);
    assert_eq!(s.delivered, 0);
    assert!(s.failures >= 2 && s.consecutive_failures == s.failures);
    assert_eq!(s.batches, s.failures, "every attempt failed");
    assert_eq!(
        s.retries + 1,
        s.failures,
        "all but the first attempt were retries"
    );
    assert_eq!(s.last_error.as_deref(), Some("connection refused"));

    up.store(true, Ordering::SeqCst);
    tokio::time::timeout(LONG, waiter)
        .await
        .expect("waiter wakes")
        .expect("waiter task");
    assert!(woke.load(Ordering::SeqCst));
    assert!(!outbox.is_saturated());
    assert!(outbox.flush(LONG).await);
    assert_eq!(log.delivered(), (10..18).collect::<Vec<_>>());
    let s = outbox.stats();
    assert_eq!(
        (s.spooled_bytes, s.saturated, s.consecutive_failures),
        (0, false, 0)
    );
    outbox.shutdown(LONG).await;
}

#[tokio::test(start_paused = true)]
async fn restart_replays_what_was_not_delivered_exactly_once() {
    let dir = test_dir("restart");
    // First run: the first call succeeds, then the backend goes down.
    let (backend, log1) = fake(|call, items: Vec<u64>| {
        if call == 0 {
            Delivery::Done
        } else {
            Delivery::Retry {
                items,
                reason: "down".to_owned(),
            }
        }
    });
    let mut cfg = config("restart", &dir).with_max_batch(3);
    cfg.memory_capacity = 4;
    cfg.linger = Duration::ZERO;
    let outbox = spawn(cfg.clone(), backend).expect("spawn");
    outbox.push((0..20).collect()).expect("push");
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Memory has room again but the spool is not empty: behind it.
    outbox.push(vec![20, 21]).expect("push");
    let s = outbox.shutdown(Duration::from_secs(5)).await;
    assert_eq!(log1.delivered(), vec![0, 1, 2]);
    assert_eq!(log1.calls()[1], vec![3, 4, 5]);
    assert_eq!((s.delivered, s.queued, s.in_flight), (3, 0, 0));
    assert_eq!(s.spooled_items, 19);
    assert_eq!(s.spooled_bytes, (3..22).map(frame_len).sum::<u64>());

    // Second run, working backend: exactly what was left, in order.
    let (backend, log2) = working::<u64>();
    let outbox = spawn(cfg, backend).expect("respawn");
    let s = outbox.stats();
    assert_eq!((s.spooled_items, s.last_error), (19, None));
    outbox.push(vec![22, 23]).expect("push");
    assert!(outbox.flush(LONG).await);
    assert_eq!(log2.delivered(), (3..24).collect::<Vec<_>>());
    assert_eq!(
        flat(&log2.calls()),
        (3..24).collect::<Vec<_>>(),
        "nothing twice"
    );
    let s = outbox.shutdown(LONG).await;
    assert_eq!((s.spooled_items, s.spooled_bytes), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn shutdown_keeps_memory_and_pending_items_ahead_of_the_spool() {
    let dir = test_dir("front");
    // Forever returning the odd items for retry: evens get delivered.
    let (backend, log1) = fake(|_, items: Vec<u64>| Delivery::Retry {
        items: items.into_iter().filter(|i| i % 2 == 1).collect(),
        reason: "throttled".to_owned(),
    });
    let mut cfg = config("front", &dir).with_max_batch(4);
    cfg.memory_capacity = 6;
    cfg.linger = Duration::ZERO;
    let outbox = spawn(cfg.clone(), backend).expect("spawn");
    outbox.push((0..6).collect()).expect("push"); // memory
    tokio::task::yield_now().await; // [0..4) taken; 0, 2 delivered; 1, 3 pending
    outbox.push((6..12).collect()).expect("push"); // 2 in memory: room for 4, the rest spills
    let s = outbox.stats();
    assert_eq!((s.queued, s.spooled_items, s.in_flight), (6, 2, 2));
    let s = outbox.shutdown(Duration::ZERO).await;
    assert_eq!(log1.delivered(), vec![0, 2]);
    assert_eq!((s.queued, s.in_flight, s.spooled_items), (0, 0, 10));

    let (backend, log2) = working::<u64>();
    let outbox = spawn(cfg, backend).expect("respawn");
    assert!(outbox.flush(LONG).await);
    assert_eq!(log2.delivered(), vec![1, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    outbox.shutdown(LONG).await;
}

#[tokio::test(start_paused = true)]
async fn torn_last_record_is_truncated_and_the_rest_replayed() {
    let dir = test_dir("torn");
    let mut cfg = config("torn", &dir);
    cfg.memory_capacity = 0;
    let (backend, _) = down::<u64>();
    let outbox = spawn(cfg.clone(), backend).expect("spawn");
    outbox.push((100..110).collect()).expect("push");
    let s = outbox.shutdown(Duration::ZERO).await;
    assert_eq!(s.spooled_items, 10);

    // Simulate a crash mid-write: the last record loses its last 5 bytes.
    let last = segments(&dir).pop().expect("a segment");
    let len = std::fs::metadata(&last).expect("segment").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .and_then(|f| f.set_len(len - 5))
        .expect("truncate");

    let (backend, log) = working::<u64>();
    let outbox = spawn(cfg, backend).expect("respawn after damage");
    let s = outbox.stats();
    assert_eq!(s.spooled_items, 9);
    assert_eq!(s.spool_corrupt_bytes, frame_len(109) - 5);
    let err = s.last_error.expect("damage reported");
    assert!(
        err.starts_with("spool recovered: ") && err.contains("torn record"),
        "{err}"
    );
    assert!(outbox.flush(LONG).await);
    assert_eq!(flat(&log.calls()), (100..109).collect::<Vec<_>>());
    outbox.shutdown(LONG).await;
}

#[tokio::test(start_paused = true)]
async fn spooled_records_that_no_longer_deserialize_are_rejected() {
    let dir = test_dir("undecodable");
    let mut cfg = config("undecodable", &dir);
    cfg.memory_capacity = 0;
    let (backend, _) = down::<serde_json::Value>();
    let outbox = spawn(cfg.clone(), backend).expect("spawn");
    outbox
        .push(vec![1.into(), "not a number".into(), 2.into()])
        .expect("push");
    outbox.shutdown(Duration::ZERO).await;

    let (backend, log) = working::<u64>();
    let outbox = spawn(cfg, backend).expect("respawn with another item type");
    assert!(outbox.flush(LONG).await);
    assert_eq!(log.delivered(), vec![1, 2]);
    let s = outbox.stats();
    assert_eq!((s.delivered, s.rejected), (2, 1));
    let text = std::fs::read_to_string(dir.join("rejected.jsonl")).expect("rejected.jsonl");
    let line: serde_json::Value = serde_json::from_str(text.trim()).expect("one json line");
    assert_eq!(line["item"], "not a number");
    let reason = line["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("spool record does not deserialize"),
        "{reason}"
    );
    outbox.shutdown(LONG).await;
}

#[tokio::test(start_paused = true)]
async fn flush_times_out_while_the_backend_is_down() {
    let dir = test_dir("flush-timeout");
    let (backend, _) = down::<u64>();
    let outbox = spawn(config("flush-timeout", &dir), backend).expect("spawn");
    outbox.push(vec![1, 2, 3]).expect("push");
    assert!(!outbox.flush(Duration::from_secs(10)).await);
    let s = outbox.stats();
    assert_eq!((s.delivered, s.in_flight), (0, 3));
    assert!(s.consecutive_failures > 0);
    assert!(s.backlog_oldest_age.is_some());
    outbox.shutdown(Duration::ZERO).await;
}

#[tokio::test(start_paused = true)]
async fn directory_is_exclusive_and_closed_outboxes_refuse_pushes() {
    let dir = test_dir("exclusive");
    let cfg = config("exclusive", &dir);
    let (backend, _) = working::<u64>();
    let outbox = spawn(cfg.clone(), backend).expect("spawn");
    let (backend, _) = working::<u64>();
    assert!(matches!(
        spawn(cfg.clone(), backend),
        Err(OutboxError::Locked { .. })
    ));
    let clone = outbox.clone();
    outbox.shutdown(LONG).await;
    assert!(matches!(
        clone.push(vec![1]),
        Err(OutboxError::Closed { .. })
    ));
    let (backend, _) = working::<u64>();
    let again = spawn(cfg, backend).expect("released after shutdown");
    again.shutdown(LONG).await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_persists_memory() {
    let dir = test_dir("drop");
    let cfg = config("drop", &dir);
    let (backend, _) = down::<u64>();
    let outbox = spawn(cfg.clone(), backend).expect("spawn");
    outbox.push((0..5).collect()).expect("push");
    drop(outbox);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let (backend, log) = working::<u64>();
    let outbox = spawn(cfg, backend).expect("respawn");
    assert!(outbox.flush(LONG).await);
    assert_eq!(log.delivered(), (0..5).collect::<Vec<_>>());
    outbox.shutdown(LONG).await;
}

#[test]
fn spawn_outside_a_runtime_fails() {
    let dir = test_dir("no-runtime");
    let (backend, _) = working::<u64>();
    assert!(matches!(
        spawn(config("no-runtime", &dir), backend),
        Err(OutboxError::NoRuntime { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_from_plain_threads_keep_per_thread_order() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 2000;
    let dir = test_dir("threads");
    let (backend, log) = working::<u64>();
    let mut cfg = config("threads", &dir).with_max_batch(50);
    cfg.memory_capacity = 64;
    cfg.linger = Duration::from_millis(1);
    let outbox = spawn(cfg, backend).expect("spawn");
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let outbox = outbox.clone();
            std::thread::spawn(move || {
                let items: Vec<u64> = (0..PER_THREAD).map(|i| t * 1_000_000 + i).collect();
                for chunk in items.chunks(7) {
                    outbox.push(chunk.to_vec()).expect("push");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("pusher thread");
    }
    assert!(outbox.flush(Duration::from_secs(60)).await);
    let delivered = log.delivered();
    assert_eq!(delivered.len() as u64, THREADS * PER_THREAD);
    for t in 0..THREADS {
        let mine: Vec<u64> = delivered
            .iter()
            .filter(|&&v| v / 1_000_000 == t)
            .map(|v| v % 1_000_000)
            .collect();
        assert_eq!(mine, (0..PER_THREAD).collect::<Vec<_>>(), "thread {t}");
    }
    let s = outbox.shutdown(LONG).await;
    assert_eq!(
        (s.delivered, s.spooled_items, s.queued),
        (THREADS * PER_THREAD, 0, 0)
    );
}

/// A backend whose calls never return (a hung connection), that may say it
/// completes abandoned calls on its own.
struct Hung {
    calls: Arc<std::sync::atomic::AtomicUsize>,
    completes_when_abandoned: bool,
}

impl Deliver for Hung {
    type Item = u64;

    async fn deliver(&mut self, _batch: Vec<u64>) -> Delivery<u64> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }

    fn completes_when_abandoned(&self) -> bool {
        self.completes_when_abandoned
    }
}

#[tokio::test(start_paused = true)]
async fn an_attempt_cut_short_at_the_deadline_is_spooled_unless_the_backend_completes_it() {
    for completes in [false, true] {
        let dir = test_dir(if completes { "cut-completes" } else { "cut" });
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let backend = Hung {
            calls: calls.clone(),
            completes_when_abandoned: completes,
        };
        let mut cfg = config("cut", &dir).with_max_batch(3);
        cfg.linger = Duration::ZERO;
        let outbox = spawn(cfg, backend).expect("spawn");
        outbox.push((0..5).collect()).expect("push");
        tokio::task::yield_now().await; // [0, 1, 2] in an attempt that never returns
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let s = outbox.shutdown(Duration::from_millis(100)).await;
        // Memory (3, 4) is always kept; the attempt's items only when the
        // backend does not finish them itself.
        let expected = if completes { 2 } else { 5 };
        assert_eq!(
            s.spooled_items, expected,
            "completes_when_abandoned = {completes}"
        );
    }
}
