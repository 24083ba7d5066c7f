//! A generation: one consistent set of rules and the plugin versions they
//! route to. Workers swap to a new generation between batches, so messages
//! in flight finish on the version they started on and a change never
//! half-applies.

use crate::plugin::{LoadedPlugin, PluginRuntime};
use crate::rules::{RuleProblem, RuleSet};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub struct Generation {
    pub number: u64,
    pub rules: RuleSet,
    pub plugins: BTreeMap<String, Arc<LoadedPlugin>>,
}

impl Generation {
    /// Load the rules directory and every plugin it declares. Plugins whose
    /// declaration and component are unchanged are reused from `previous`.
    pub fn load(
        rules_dir: &Path,
        rt: &PluginRuntime,
        previous: Option<&Generation>,
        number: u64,
    ) -> Result<Generation, Vec<RuleProblem>> {
        let rules = crate::rules::load_dir(rules_dir)?;
        let mut plugins = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, decl) in &rules.plugins.decls {
            if let Some(prev) = previous.and_then(|g| g.plugins.get(name)) {
                let same_bytes = crate::plugin::loader::component_bytes(name, decl, rules_dir)
                    .map(|b| crate::plugin::loader::digest(&b) == prev.digest)
                    .unwrap_or(false);
                if prev.decl == *decl && same_bytes {
                    plugins.insert(name.clone(), prev.clone());
                    continue;
                }
            }
            match crate::plugin::loader::load(rt, name, decl, rules_dir) {
                Ok(p) => {
                    plugins.insert(name.clone(), Arc::new(p));
                }
                Err(e) => problems.push(RuleProblem {
                    file: rules_dir.join(crate::rules::PLUGINS_FILE),
                    report: format!(
                        "{}: {e}",
                        rules_dir.join(crate::rules::PLUGINS_FILE).display()
                    ),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Generation {
            number,
            rules,
            plugins,
        })
    }
}

/// The current generation, shared by all workers.
pub struct Current {
    version: AtomicU64,
    generation: Mutex<Arc<Generation>>,
    /// State resets asked for by operators: workers save and drop the
    /// instances that hold the bucket, so the reset is not overwritten by
    /// an instance's in-memory copy.
    reset_requests: AtomicU64,
    reset_buckets: Mutex<Vec<(u64, String)>>,
    reset_acks: AtomicU64,
}

impl Current {
    pub fn new(generation: Generation) -> Current {
        Current {
            version: AtomicU64::new(generation.number),
            generation: Mutex::new(Arc::new(generation)),
            reset_requests: AtomicU64::new(0),
            reset_buckets: Mutex::new(Vec::new()),
            reset_acks: AtomicU64::new(0),
        }
    }

    /// Cheap check for workers: has a new generation been published?
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn get(&self) -> Arc<Generation> {
        self.generation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Ask every worker to release the instances holding `bucket`; returns
    /// the request number to wait for with [`Current::released`].
    pub fn request_release(&self, bucket: &str) -> u64 {
        let mut buckets = self.reset_buckets.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.reset_requests.load(Ordering::Acquire) + 1;
        buckets.push((n, bucket.to_string()));
        self.reset_requests.store(n, Ordering::Release);
        n
    }

    /// Latest release request number (cheap check for workers).
    pub fn release_requests(&self) -> u64 {
        self.reset_requests.load(Ordering::Acquire)
    }

    /// Buckets to release with request numbers above `seen`.
    pub fn releases_since(&self, seen: u64) -> Vec<String> {
        let buckets = self.reset_buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .iter()
            .filter(|(n, _)| *n > seen)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// A worker has handled requests up to `n`.
    pub fn ack_release(&self) {
        self.reset_acks.fetch_add(1, Ordering::AcqRel);
    }

    /// Acknowledgements so far (one per worker per handled round).
    pub fn release_acks(&self) -> u64 {
        self.reset_acks.load(Ordering::Acquire)
    }

    pub fn publish(&self, generation: Generation) {
        let number = generation.number;
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(generation);
        self.version.store(number, Ordering::Release);
    }
}
