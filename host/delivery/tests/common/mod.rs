//! A scriptable fake backend and small helpers for the outbox tests.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use weir_delivery::{Deliver, Delivery, OutboxConfig, RetryPolicy};

/// What the fake saw and accepted.
#[derive(Debug)]
pub struct Seen<T> {
    /// Every call's batch, in call order.
    pub calls: Vec<Vec<T>>,
    /// Items the fake accepted (not returned for retry or rejected), in order.
    pub delivered: Vec<T>,
}

/// Shared view of a fake's history.
pub struct Log<T>(Arc<Mutex<Seen<T>>>);

impl<T> Clone for Log<T> {
    fn clone(&self) -> Self {
        Log(Arc::clone(&self.0))
    }
}

impl<T: Clone> Log<T> {
    pub fn calls(&self) -> Vec<Vec<T>> {
        self.0.lock().expect("log lock").calls.clone()
    }
    pub fn delivered(&self) -> Vec<T> {
        self.0.lock().expect("log lock").delivered.clone()
    }
}

/// A backend whose answer to call `n` with `batch` is `decide(n, batch)`.
pub struct Fake<T, F> {
    log: Log<T>,
    decide: F,
}

pub fn fake<T, F>(decide: F) -> (Fake<T, F>, Log<T>)
where
    F: FnMut(usize, Vec<T>) -> Delivery<T>,
{
    let log = Log(Arc::new(Mutex::new(Seen {
        calls: Vec::new(),
        delivered: Vec::new(),
    })));
    (
        Fake {
            log: log.clone(),
            decide,
        },
        log,
    )
}

/// A fixed script.
pub type Script<T> = fn(usize, Vec<T>) -> Delivery<T>;

/// A backend that accepts everything.
pub fn working<T: Clone + PartialEq>() -> (Fake<T, Script<T>>, Log<T>) {
    fake(|_, _| Delivery::Done)
}

/// A backend that is down: every call returns everything for retry.
pub fn down<T: Clone + PartialEq>() -> (Fake<T, Script<T>>, Log<T>) {
    fake(|_, items| Delivery::Retry {
        items,
        reason: "backend down".to_owned(),
    })
}

impl<T, F> Deliver for Fake<T, F>
where
    T: Serialize + DeserializeOwned + Clone + PartialEq + Send + 'static,
    F: FnMut(usize, Vec<T>) -> Delivery<T> + Send + 'static,
{
    type Item = T;

    fn deliver(&mut self, batch: Vec<T>) -> impl Future<Output = Delivery<T>> + Send {
        let call = {
            let mut seen = self.log.0.lock().expect("log lock");
            seen.calls.push(batch.clone());
            seen.calls.len() - 1
        };
        let outcome = (self.decide)(call, batch.clone());
        let kept: Vec<T> = match &outcome {
            Delivery::Done => Vec::new(),
            Delivery::Retry { items, .. } | Delivery::Reject { items, .. } => items.clone(),
            Delivery::Partial { retry, reject, .. } => {
                retry.iter().chain(reject).cloned().collect()
            }
        };
        {
            let mut seen = self.log.0.lock().expect("log lock");
            seen.delivered
                .extend(batch.into_iter().filter(|i| !kept.contains(i)));
        }
        async move { outcome }
    }
}

/// A fresh, empty directory for one test, removed when dropped.
pub struct TestDir(PathBuf);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn test_dir(name: &str) -> TestDir {
    let dir = std::env::temp_dir()
        .join("weir-delivery-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    TestDir(dir)
}

/// A config with small, test-friendly numbers.
pub fn config(name: &str, dir: &Path) -> OutboxConfig {
    OutboxConfig {
        name: name.to_owned(),
        dir: dir.to_owned(),
        memory_capacity: 1000,
        spool_limit_bytes: 1 << 20,
        max_batch: 100,
        linger: Duration::from_millis(10),
        retry: RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            multiplier: 2.0,
        },
    }
}

/// Size of the spool record holding `v`.
pub fn frame_len(v: u64) -> u64 {
    // Header, push time, the MessagePack tag byte, then the number.
    let encoded = rmp_serde::to_vec(&v).expect("encode");
    17 + encoded.len() as u64
}

/// Spool segment files in `dir`, sorted by id.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "spool"))
        .collect();
    v.sort();
    v
}

/// Builder-style tweaks for test configs.
pub trait ConfigExt {
    fn with_max_batch(self, n: usize) -> Self;
}

impl ConfigExt for OutboxConfig {
    fn with_max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }
}

pub const LONG: Duration = Duration::from_secs(3600);
