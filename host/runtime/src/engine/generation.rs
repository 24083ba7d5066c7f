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
}

impl Current {
    pub fn new(generation: Generation) -> Current {
        Current {
            version: AtomicU64::new(generation.number),
            generation: Mutex::new(Arc::new(generation)),
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

    pub fn publish(&self, generation: Generation) {
        let number = generation.number;
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(generation);
        self.version.store(number, Ordering::Release);
    }
}
