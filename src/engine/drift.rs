//! Drift: the real backends compared with what the contracts want.
//!
//! A scan builds each contract's desired resources from its latest revision
//! with the planner's own construction ([`Engine::derive_with`]), hands them
//! to their adapters' [`Adapter::compare`] grouped per adapter instance (each
//! adapter reads its backend in batches: one SSH command per few hundred web
//! spaces and vhosts, one read of the FTP passwd file, a bounded number of
//! DNS and API requests at a time), and reports what is **missing** and
//! what **changed**. A full scan (no contract named) also asks every
//! backend that can list them for what carries hostwright's marker, and
//! reports those no contract owns as **orphans**.
//!
//! A scan only reads. Contracts whose latest revision still has work
//! (a queued, running or failed job) are listed as pending and not
//! compared: their backends are on the way to a state the scan would call
//! drift.
//!
//! The report's JSON shape ([`DriftReport`]) is stable: `hostwright drift
//! --json` prints it and `GET /v1/drift` answers it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use hostwright_adapter::{Adapter, Comparison, Difference, Marked, Resource};
use serde::{Deserialize, Serialize};

use super::Engine;
use super::store::{JobFilter, JobState, MAX_LIST_JOBS, StoreError};
use crate::contract::Contract;

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub scanned_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// Every contract was scanned, and orphans were looked for.
    pub full: bool,
    /// Contracts compared (pending ones not counted).
    pub contracts: usize,
    /// Resources compared.
    pub resources: usize,
    /// Resources compared, by kind.
    pub by_kind: BTreeMap<String, KindCount>,
    pub findings: Vec<Finding>,
    pub orphans: Vec<Orphan>,
    /// Contracts not compared because their latest revision still has work.
    pub pending: Vec<Pending>,
    /// Adapters whose backends cannot list what they hold (their orphans
    /// cannot be found).
    pub unlisted: Vec<String>,
    /// Resources or backends that could not be read.
    pub errors: Vec<ScanError>,
}

/// Per kind: how many resources were compared and how many drifted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCount {
    pub in_sync: usize,
    pub missing: usize,
    pub changed: usize,
    pub orphan: usize,
    pub unknown: usize,
}

impl DriftReport {
    /// Whether the backends match the contracts (no finding, no orphan).
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.orphans.is_empty()
    }
}

/// How a resource a contract wants has drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftState {
    /// Should exist, does not.
    Missing,
    /// Exists, differs from the desired spec.
    Changed,
}

impl DriftState {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftState::Missing => "missing",
            DriftState::Changed => "changed",
        }
    }
}

/// One drifted resource of one contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub contract_id: String,
    pub revision: u32,
    pub kind: String,
    pub key: String,
    pub adapter: String,
    /// Where the resource lives ([`Adapter::location`]).
    pub host: String,
    pub state: DriftState,
    /// What differs (empty when missing).
    pub differences: Vec<Difference>,
    /// The finding in words.
    pub says: String,
}

impl Finding {
    /// What identifies a finding across scans (serve logs each new one once).
    pub fn identity(&self) -> String {
        let fields: Vec<&str> = self.differences.iter().map(|d| d.field.as_str()).collect();
        format!(
            "{} {} {} {} {}",
            self.contract_id,
            self.kind,
            self.key,
            self.state.as_str(),
            fields.join(",")
        )
    }
}

/// A resource carrying hostwright's marker that no contract owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Orphan {
    pub kind: String,
    pub key: String,
    pub adapter: String,
    pub host: String,
    /// The contract the marker names.
    pub marker: String,
    pub says: String,
}

/// A contract whose latest revision still has work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub contract_id: String,
    pub job_id: String,
    pub state: JobState,
}

/// Something a scan could not read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanError {
    pub contract_id: Option<String>,
    pub kind: Option<String>,
    pub key: Option<String>,
    pub adapter: String,
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no contract {0} is recorded")]
    UnknownContract(String),
}

/// One resource a contract wants, as a scan compares it.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub contract_id: String,
    pub revision: u32,
    pub adapter: String,
    pub resource: Resource,
}

/// Resources of one adapter instance.
struct Group {
    adapter: Arc<dyn Adapter>,
    name: String,
    items: Vec<Wanted>,
}

impl Engine {
    /// The adapter instance that manages `adapter`'s resources of
    /// `contract`. Today there is one instance per adapter; with several
    /// hosts of a kind (fleets) this is the one place that picks the
    /// contract's host, so drift, repair and `plan --observe` follow it.
    pub fn adapter_for(&self, _contract: &Contract, adapter: &str) -> Option<Arc<dyn Adapter>> {
        self.adapters.get(adapter).cloned()
    }

    /// The resources each contract's latest revision wants, and the
    /// contracts not to compare now. `only`: these contracts (all when
    /// empty; an unknown one is an error).
    pub async fn wanted(
        &self,
        only: &[String],
    ) -> Result<(Vec<(Contract, Vec<Wanted>)>, Vec<Pending>, Vec<ScanError>), DriftError> {
        let latest = self.store.latest_revisions().await?;
        let known: BTreeSet<&str> = latest.iter().map(|r| r.contract_id.as_str()).collect();
        if let Some(missing) = only.iter().find(|c| !known.contains(c.as_str())) {
            return Err(DriftError::UnknownContract(missing.clone()));
        }
        let pending = self.pending_jobs().await?;
        let mut out = Vec::new();
        let mut waiting = Vec::new();
        let mut errors = Vec::new();
        for rev in latest {
            if !only.is_empty() && !only.contains(&rev.contract_id) {
                continue;
            }
            if let Some(p) = pending.get(&rev.contract_id) {
                waiting.push(p.clone());
                continue;
            }
            let contract = match Contract::from_json(&rev.payload) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(ScanError {
                        contract_id: Some(rev.contract_id.clone()),
                        kind: None,
                        key: None,
                        adapter: String::new(),
                        error: format!("recorded revision {}: {e}", rev.revision),
                    });
                    continue;
                }
            };
            let recorded = self.store.resources(&rev.contract_id).await?;
            let desired = match self.derive_with(&contract, &recorded) {
                Ok(d) => d,
                Err(e) => {
                    errors.push(ScanError {
                        contract_id: Some(rev.contract_id.clone()),
                        kind: None,
                        key: None,
                        adapter: String::new(),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            let wanted = desired
                .into_iter()
                .map(|d| Wanted {
                    contract_id: rev.contract_id.clone(),
                    revision: rev.revision,
                    adapter: d.adapter,
                    resource: Resource {
                        kind: d.kind,
                        key: d.key,
                        contract_id: rev.contract_id.clone(),
                        spec: d.spec,
                    },
                })
                .collect();
            out.push((contract, wanted));
        }
        Ok((out, waiting, errors))
    }

    /// Contracts with a queued, running or failed job, by contract.
    async fn pending_jobs(&self) -> Result<BTreeMap<String, Pending>, StoreError> {
        let mut out = BTreeMap::new();
        for state in [JobState::Queued, JobState::Running, JobState::Failed] {
            let jobs = self
                .store
                .list_jobs(&JobFilter {
                    state: Some(state),
                    contract_id: None,
                    limit: Some(MAX_LIST_JOBS),
                })
                .await?;
            for j in jobs {
                out.entry(j.contract_id.clone()).or_insert(Pending {
                    contract_id: j.contract_id,
                    job_id: j.job_id,
                    state,
                });
            }
        }
        Ok(out)
    }

    /// Scans the backends of `only` (every contract when empty) and
    /// reports the drift. Reads only.
    pub async fn drift(&self, only: &[String]) -> Result<DriftReport, DriftError> {
        let started = Instant::now();
        let scanned_at = Utc::now();
        let full = only.is_empty();
        let (contracts, pending, mut errors) = self.wanted(only).await?;

        // Group per adapter instance (its name and where it points).
        let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
        let mut owned: BTreeSet<(String, String)> = BTreeSet::new();
        for (contract, wanted) in &contracts {
            for w in wanted {
                owned.insert((w.resource.kind.clone(), w.resource.key.clone()));
                let Some(adapter) = self.adapter_for(contract, &w.adapter) else {
                    errors.push(ScanError {
                        contract_id: Some(w.contract_id.clone()),
                        kind: Some(w.resource.kind.clone()),
                        key: Some(w.resource.key.clone()),
                        adapter: w.adapter.clone(),
                        error: format!("no adapter {} is configured", w.adapter),
                    });
                    continue;
                };
                groups
                    .entry((w.adapter.clone(), adapter.location()))
                    .or_insert_with(|| Group {
                        adapter,
                        name: w.adapter.clone(),
                        items: Vec::new(),
                    })
                    .items
                    .push(w.clone());
            }
        }
        let resources: usize = groups.values().map(|g| g.items.len()).sum();

        // Every adapter instance at once; each batches its own backend.
        let compared = futures_util::future::join_all(groups.values().map(|g| async move {
            let rs: Vec<Resource> = g.items.iter().map(|w| w.resource.clone()).collect();
            g.adapter.compare(&rs).await
        }))
        .await;

        let mut by_kind: BTreeMap<String, KindCount> = BTreeMap::new();
        let mut findings = Vec::new();
        for (g, answers) in groups.values().zip(compared) {
            let host = g.adapter.location();
            for (w, answer) in g.items.iter().zip(answers) {
                let count = by_kind.entry(w.resource.kind.clone()).or_default();
                let (state, differences) = match answer {
                    Ok(Comparison::Matches) => {
                        count.in_sync += 1;
                        continue;
                    }
                    Ok(Comparison::Missing) => {
                        count.missing += 1;
                        (DriftState::Missing, Vec::new())
                    }
                    Ok(Comparison::Differs(d)) => {
                        count.changed += 1;
                        (DriftState::Changed, d)
                    }
                    Err(e) => {
                        count.unknown += 1;
                        errors.push(ScanError {
                            contract_id: Some(w.contract_id.clone()),
                            kind: Some(w.resource.kind.clone()),
                            key: Some(w.resource.key.clone()),
                            adapter: g.name.clone(),
                            error: e.to_string(),
                        });
                        continue;
                    }
                };
                let says = match state {
                    DriftState::Missing => format!(
                        "{} {} of {} is missing on {host}",
                        w.resource.kind, w.resource.key, w.contract_id
                    ),
                    DriftState::Changed => format!(
                        "{} {} of {} differs on {host}: {}",
                        w.resource.kind,
                        w.resource.key,
                        w.contract_id,
                        differences
                            .iter()
                            .map(|d| d.says.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                };
                findings.push(Finding {
                    contract_id: w.contract_id.clone(),
                    revision: w.revision,
                    kind: w.resource.kind.clone(),
                    key: w.resource.key.clone(),
                    adapter: g.name.clone(),
                    host: host.clone(),
                    state,
                    differences,
                    says,
                });
            }
        }

        let mut orphans = Vec::new();
        let mut unlisted = Vec::new();
        if full {
            // Resources recorded for any contract are owned too (a removal
            // may still be due), so only what nobody has is an orphan.
            for rev in self.store.latest_revisions().await? {
                for r in self.store.resources(&rev.contract_id).await? {
                    owned.insert((r.kind, r.key));
                }
            }
            let mut instances: BTreeMap<(String, String), Arc<dyn Adapter>> = BTreeMap::new();
            for ((name, loc), g) in &groups {
                instances.insert((name.clone(), loc.clone()), g.adapter.clone());
            }
            for name in self.adapters.kinds().keys() {
                if let Some(a) = self.adapters.get(name) {
                    instances
                        .entry((name.clone(), a.location()))
                        .or_insert_with(|| a.clone());
                }
            }
            let listed = futures_util::future::join_all(
                instances
                    .iter()
                    .map(|(k, a)| async move { (k.clone(), a.inventory().await) }),
            )
            .await;
            for ((name, host), answer) in listed {
                match answer {
                    Ok(None) => unlisted.push(name),
                    Ok(Some(marked)) => {
                        let mut marked: Vec<Marked> = marked;
                        marked.sort();
                        for m in marked {
                            if owned.contains(&(m.kind.clone(), m.key.clone())) {
                                continue;
                            }
                            by_kind.entry(m.kind.clone()).or_default().orphan += 1;
                            orphans.push(Orphan {
                                says: format!(
                                    "{} {} on {host} carries hostwright's marker (contract {}) but no contract owns it; left alone",
                                    m.kind, m.key, m.owner
                                ),
                                kind: m.kind,
                                key: m.key,
                                adapter: name.clone(),
                                host: host.clone(),
                                marker: m.owner,
                            });
                        }
                    }
                    Err(e) => errors.push(ScanError {
                        contract_id: None,
                        kind: None,
                        key: None,
                        adapter: name,
                        error: format!("listing what carries hostwright's marker: {e}"),
                    }),
                }
            }
            unlisted.sort();
            unlisted.dedup();
        }

        Ok(DriftReport {
            scanned_at,
            duration_ms: started.elapsed().as_millis() as u64,
            full,
            contracts: contracts.len(),
            resources,
            by_kind,
            findings,
            orphans,
            pending,
            unlisted,
            errors,
        })
    }
}
