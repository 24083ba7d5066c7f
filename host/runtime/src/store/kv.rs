//! Key-value store backing the `wasi:keyvalue` capability.
//!
//! Keys live in buckets. Writes go to an in-memory overlay and reach disk
//! (one redb transaction) on `flush`, which the host calls every checkpoint
//! interval and at shutdown; reads see the overlay first. A crash loses at
//! most one interval of writes, never a torn value.

use super::StoreError;
use redb::{Database, TableDefinition};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

const TABLE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");

/// `None` in the overlay is a pending delete.
type Overlay = HashMap<(String, String), Option<Vec<u8>>>;

/// Told, after each flush, of the keys of one bucket that reached disk
/// (`None` for a delete): how a bucket is replicated elsewhere (the shadow
/// bucket to DynamoDB). Writes of one key within a flush interval are
/// coalesced by the overlay, so the observer sees the last value only.
pub type Observer = Box<dyn Fn(Vec<(String, Option<Vec<u8>>)>) + Send + Sync>;

/// One page of `keys` (sorted): the entries after `after` that `keep`
/// turns into a value, at most `max` of them, and the page's last key when
/// more such entries follow (the next page's `after`).
pub fn page<T>(
    keys: impl IntoIterator<Item = String>,
    after: Option<&str>,
    max: usize,
    mut keep: impl FnMut(&str) -> Option<T>,
) -> (Vec<(String, T)>, Option<String>) {
    let mut out: Vec<(String, T)> = Vec::new();
    for key in keys {
        if after.is_some_and(|a| key.as_str() <= a) {
            continue;
        }
        let Some(value) = keep(&key) else {
            continue;
        };
        if out.len() == max {
            let last = out.last().map(|(k, _)| k.clone());
            return (out, last);
        }
        out.push((key, value));
    }
    (out, None)
}

pub struct KvStore {
    db: Database,
    pending: Mutex<Overlay>,
    observers: Mutex<Vec<(String, Observer)>>,
}

impl KvStore {
    /// Open (or create) the store at `path`.
    pub fn open(path: &Path) -> Result<KvStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let db = match Database::create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::Locked(path.to_path_buf()))
            }
            Err(e) => return Err(e.into()),
        };
        let txn = db.begin_write()?;
        txn.open_table(TABLE)?;
        txn.commit()?;
        Ok(KvStore {
            db,
            pending: Mutex::new(HashMap::new()),
            observers: Mutex::new(Vec::new()),
        })
    }

    /// Call `observer` after each flush with the flushed keys of `bucket`.
    pub fn observe(&self, bucket: &str, observer: Observer) {
        self.observers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((bucket.to_string(), observer));
    }

    fn overlay(&self) -> std::sync::MutexGuard<'_, Overlay> {
        // A panic while holding the lock cannot leave the map half-written
        // (each operation is one insert), so a poisoned lock is still usable.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.overlay().get(&(bucket.to_string(), key.to_string())) {
            return Ok(v.clone());
        }
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        Ok(table.get((bucket, key))?.map(|v| v.value().to_vec()))
    }

    pub fn set(&self, bucket: &str, key: &str, value: Vec<u8>) {
        self.overlay()
            .insert((bucket.to_string(), key.to_string()), Some(value));
    }

    pub fn delete(&self, bucket: &str, key: &str) {
        self.overlay()
            .insert((bucket.to_string(), key.to_string()), None);
    }

    /// Keys of a bucket, sorted.
    pub fn keys(&self, bucket: &str) -> Result<Vec<String>, StoreError> {
        self.keys_with_prefix(bucket, "")
    }

    /// Keys of a bucket that start with `prefix`, sorted.
    pub fn keys_with_prefix(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(TABLE)?;
            for row in table.range((bucket, prefix)..)? {
                let (k, _) = row?;
                let (b, key) = k.value();
                if b != bucket || !key.starts_with(prefix) {
                    break;
                }
                keys.insert(key.to_string());
            }
        }
        for ((b, k), v) in self.overlay().iter() {
            if b == bucket && k.starts_with(prefix) {
                if v.is_some() {
                    keys.insert(k.clone());
                } else {
                    keys.remove(k);
                }
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// Write every pending change to disk in one transaction. Returns how
    /// many keys were written.
    pub fn flush(&self) -> Result<usize, StoreError> {
        let pending = std::mem::take(&mut *self.overlay());
        if pending.is_empty() {
            return Ok(0);
        }
        let n = pending.len();
        let result = (|| -> Result<(), StoreError> {
            let txn = self.db.begin_write()?;
            {
                let mut table = txn.open_table(TABLE)?;
                for ((b, k), v) in &pending {
                    match v {
                        Some(v) => {
                            table.insert((b.as_str(), k.as_str()), v.as_slice())?;
                        }
                        None => {
                            table.remove((b.as_str(), k.as_str()))?;
                        }
                    }
                }
            }
            txn.commit()?;
            Ok(())
        })();
        if let Err(e) = result {
            // Put the writes back (newer writes made meanwhile win) so the
            // next flush retries them.
            let mut overlay = self.overlay();
            for (k, v) in pending {
                overlay.entry(k).or_insert(v);
            }
            return Err(e);
        }
        let observers = self.observers.lock().unwrap_or_else(|p| p.into_inner());
        if !observers.is_empty() {
            let mut flushed: Vec<_> = pending.into_iter().collect();
            flushed.sort_by(|a, b| a.0.cmp(&b.0));
            for (bucket, observer) in observers.iter() {
                let changes: Vec<(String, Option<Vec<u8>>)> = flushed
                    .iter()
                    .filter(|((b, _), _)| b == bucket)
                    .map(|((_, k), v)| (k.clone(), v.clone()))
                    .collect();
                if !changes.is_empty() {
                    observer(changes);
                }
            }
        }
        Ok(n)
    }
}

/// `get_thing_shadow(thing, role)` in rules reads the shadow the `shadow`
/// plugin keeps (as of its last flush); a named shadow is kept under
/// `<thing>/<shadow>`. A deleted shadow reads as absent.
impl weir_sql::Lookup for KvStore {
    fn thing_shadow(&self, thing: &str, shadow_name: Option<&str>) -> Option<serde_json::Value> {
        let key = match shadow_name {
            Some(name) => format!("{thing}/{name}"),
            None => thing.to_string(),
        };
        let bytes = self.get(crate::admin::SHADOW_BUCKET, &key).ok()??;
        serde_json::from_slice(&crate::admin::live_shadow(bytes)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_then_flush_then_reopen() {
        let dir = std::env::temp_dir().join(format!("weir-kv-{}", uuid::Uuid::new_v4()));
        let path = dir.join("state.redb");
        {
            let kv = KvStore::open(&path).unwrap();
            kv.set("b", "k1", b"one".to_vec());
            kv.set("b", "k2", b"two".to_vec());
            kv.set("other", "k1", b"x".to_vec());
            assert_eq!(kv.get("b", "k1").unwrap(), Some(b"one".to_vec()));
            assert_eq!(kv.flush().unwrap(), 3);
            kv.delete("b", "k2");
            assert_eq!(kv.get("b", "k2").unwrap(), None);
            assert_eq!(kv.keys("b").unwrap(), vec!["k1".to_string()]);
            kv.flush().unwrap();
        }
        let kv = KvStore::open(&path).unwrap();
        assert_eq!(kv.get("b", "k1").unwrap(), Some(b"one".to_vec()));
        assert_eq!(kv.get("b", "k2").unwrap(), None);
        std::fs::remove_dir_all(dir).ok();
    }
}
