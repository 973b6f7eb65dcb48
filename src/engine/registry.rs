//! The adapters a running engine can drive, by the names playbooks use.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hostwright_adapter::Adapter;

#[derive(Clone, Default)]
pub struct Registry {
    adapters: BTreeMap<String, Arc<dyn Adapter>>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers an adapter under its own name (a later one with the same
    /// name replaces the earlier: tests swap real adapters for scripted ones).
    pub fn register(&mut self, adapter: Arc<dyn Adapter>) -> &mut Self {
        self.adapters.insert(adapter.name().to_string(), adapter);
        self
    }

    /// Registers an adapter under another name than its own: a fleet
    /// host's adapters are `webhost@HOST`, `ftp@HOST`.
    pub fn register_as(&mut self, name: String, adapter: Arc<dyn Adapter>) -> &mut Self {
        self.adapters.insert(name, adapter);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Adapter>> {
        self.adapters.get(name)
    }

    /// Adapter name -> kinds, for playbook validation.
    pub fn kinds(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.adapters
            .iter()
            .map(|(n, a)| (n.clone(), a.kinds().iter().map(|k| k.to_string()).collect()))
            .collect()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.adapters.keys()).finish()
    }
}
