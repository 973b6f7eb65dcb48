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
use hostwright_adapter::{
    Adapter, AdapterError, Comparison, Difference, Marked, Resource, StepContext,
};
use serde::{Deserialize, Serialize};

use super::Engine;
use super::store::ops::NewAuditEntry;
use super::store::repairs::{NewRepair, Repair, RepairEnd, RepairState};
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
    #[error("{kind} {key} is not an orphan: {why}")]
    NotAnOrphan {
        kind: String,
        key: String,
        why: String,
    },
    #[error(transparent)]
    Adapter(AdapterError),
    #[error(transparent)]
    Plan(super::JobPlanError),
    #[error("no adapter {0} is configured")]
    NoAdapter(String),
}

/// One resource a contract wants, as a scan compares it.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub contract_id: String,
    pub revision: u32,
    pub adapter: String,
    pub resource: Resource,
}

/// What the contracts want now ([`Engine::wanted`]).
pub struct WantedNow {
    /// The contracts to compare, each with what it wants.
    pub contracts: Vec<(Contract, Vec<Wanted>)>,
    /// Contracts not compared: their latest revision still has work.
    pub pending: Vec<Pending>,
    /// What the pending contracts want (owned, never orphans).
    pub busy: BTreeSet<(String, String)>,
    pub errors: Vec<ScanError>,
}

/// Resources of one adapter instance.
struct Group {
    adapter: Arc<dyn Adapter>,
    name: String,
    items: Vec<Wanted>,
}

impl Engine {
    /// The adapter instance that manages `adapter`'s resources of
    /// `contract`. With a fleet the planner already names the contract's
    /// host in the adapter (`webhost@web2`, from its placement), so this is
    /// a look-up; drift, repair and `plan --observe` all come through here.
    pub fn adapter_for(&self, _contract: &Contract, adapter: &str) -> Option<Arc<dyn Adapter>> {
        self.adapters.get(adapter).cloned()
    }

    /// The resources each contract's latest revision wants, and the
    /// contracts not to compare now. `only`: these contracts (all when
    /// empty; an unknown one is an error).
    pub async fn wanted(&self, only: &[String]) -> Result<WantedNow, DriftError> {
        let latest = self.store.latest_revisions().await?;
        let known: BTreeSet<&str> = latest.iter().map(|r| r.contract_id.as_str()).collect();
        if let Some(missing) = only.iter().find(|c| !known.contains(c.as_str())) {
            return Err(DriftError::UnknownContract(missing.clone()));
        }
        let pending = self.pending_jobs().await?;
        let mut out = Vec::new();
        let mut waiting = Vec::new();
        let mut errors = Vec::new();
        let mut busy = BTreeSet::new();
        for rev in latest {
            if !only.is_empty() && !only.contains(&rev.contract_id) {
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
            let desired = match self.derive_current(&contract, &recorded).await {
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
            if let Some(p) = pending.get(&rev.contract_id) {
                // Not compared; what it wants is still its own (a running
                // job's new account is no orphan).
                waiting.push(p.clone());
                busy.extend(desired.into_iter().map(|d| (d.kind, d.key)));
                continue;
            }
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
        Ok(WantedNow {
            contracts: out,
            pending: waiting,
            busy,
            errors,
        })
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
        let WantedNow {
            contracts,
            pending,
            busy,
            mut errors,
        } = self.wanted(only).await?;

        // Group per adapter instance (its name and where it points).
        let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
        let mut owned: BTreeSet<(String, String)> = busy;
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
            // One inventory per backend instance: a fleet host's adapters
            // are registered as `webhost@HOST` and the first host's under
            // the plain name too, so instances are told apart by the
            // adapter's base name and its location.
            let base = |n: &str| n.split('@').next().unwrap_or(n).to_string();
            let mut instances: BTreeMap<(String, String), Arc<dyn Adapter>> = BTreeMap::new();
            for ((name, loc), g) in &groups {
                instances.insert((base(name), loc.clone()), g.adapter.clone());
            }
            for name in self.adapters.kinds().keys() {
                if let Some(a) = self.adapters.get(name) {
                    instances
                        .entry((base(name), a.location()))
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

/// What `drift --repair` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairRun {
    /// Repairs queued now.
    pub queued: Vec<String>,
    /// Findings whose resource already had a repair queued or running.
    pub already_queued: Vec<String>,
    /// The repairs run now, as they ended.
    pub ran: Vec<Repair>,
    /// Repairs left queued because their contract has a job with work
    /// (the job moves the backends itself).
    pub deferred: Vec<String>,
}

impl Engine {
    /// Queues a repair (its own job kind, `repairs` in the store) for each
    /// finding, with the desired spec of its contract's latest revision,
    /// and audits each with `actor`. Returns the queued ids and the
    /// findings that already had one.
    pub async fn queue_repairs(
        &self,
        findings: &[Finding],
        actor: &str,
    ) -> Result<(Vec<String>, Vec<String>), DriftError> {
        let mut contracts: Vec<String> = findings.iter().map(|f| f.contract_id.clone()).collect();
        contracts.sort();
        contracts.dedup();
        let wanted = self.wanted(&contracts).await?.contracts;
        let spec_of: BTreeMap<(&str, &str, &str), &Wanted> = wanted
            .iter()
            .flat_map(|(_, w)| w.iter())
            .map(|w| {
                (
                    (
                        w.contract_id.as_str(),
                        w.resource.kind.as_str(),
                        w.resource.key.as_str(),
                    ),
                    w,
                )
            })
            .collect();
        let (mut queued, mut already) = (Vec::new(), Vec::new());
        for f in findings {
            let target = format!("{} {} {}", f.contract_id, f.kind, f.key);
            // The contract moved on (a job is pending) or no longer wants
            // it: nothing to repair to.
            let Some(w) = spec_of.get(&(f.contract_id.as_str(), f.kind.as_str(), f.key.as_str()))
            else {
                already.push(target);
                continue;
            };
            let id = format!("rep-{}", uuid::Uuid::new_v4().simple());
            let fresh = self
                .store
                .queue_repair(NewRepair {
                    id: id.clone(),
                    contract_id: f.contract_id.clone(),
                    revision: w.revision,
                    kind: f.kind.clone(),
                    key: f.key.clone(),
                    adapter: w.adapter.clone(),
                    spec: w.resource.spec.clone(),
                    reason: f.says.clone(),
                    requested_by: actor.to_string(),
                })
                .await?;
            self.store
                .record_audit(NewAuditEntry {
                    actor: actor.to_string(),
                    action: "drift repair".into(),
                    target: Some(target.clone()),
                    address: None,
                    outcome: if fresh { "ok" } else { "already queued" }.into(),
                    detail: Some(if fresh { id.clone() } else { f.says.clone() }),
                })
                .await?;
            if fresh {
                queued.push(id);
            } else {
                already.push(target);
            }
        }
        Ok((queued, already))
    }

    /// `POST /v1/drift/repair`: a scan now (of `contracts`, or of every
    /// contract), a repair queued for each finding as `actor` (audited as
    /// `drift queue_repairs` does), and every queued repair run in the
    /// background (as `drift --repair` runs them; one whose contract has a
    /// job with work stays queued for the next run). Answers at once with
    /// what was queued.
    pub async fn repair_findings(
        self: &Arc<Self>,
        contracts: &[String],
        actor: &str,
    ) -> Result<RepairsQueued, DriftError> {
        let report = self.drift(contracts).await?;
        let (ids, already_queued) = self.queue_repairs(&report.findings, actor).await?;
        let mut queued = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(r) = self.store.repair(id).await? {
                queued.push(QueuedRepair {
                    id: r.id,
                    contract_id: r.contract_id,
                    revision: r.revision,
                    kind: r.kind,
                    key: r.key,
                    adapter: r.adapter,
                    reason: r.reason,
                });
            }
        }
        let engine = self.clone();
        tokio::spawn(async move {
            match engine.run_repairs("api").await {
                Ok((ran, deferred)) => {
                    for r in ran {
                        tracing::info!(repair = %r.id, contract_id = %r.contract_id, kind = %r.kind, key = %r.key, state = r.state.as_str(), "drift repair");
                    }
                    for id in deferred {
                        tracing::info!(repair = %id, "drift repair stays queued: its contract has a job with work");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "running drift repairs failed"),
            }
        });
        Ok(RepairsQueued {
            scanned_at: report.scanned_at,
            findings: report.findings.len(),
            queued,
            already_queued,
        })
    }

    /// Runs every queued repair through its adapter's `ensure`, attempts
    /// spaced by the one retry policy, each attempt journaled. A repair of a
    /// contract with a queued, running or failed job stays queued.
    pub async fn run_repairs(
        &self,
        worker: &str,
    ) -> Result<(Vec<Repair>, Vec<String>), DriftError> {
        let queued = self
            .store
            .repairs(Some(RepairState::Queued), None, MAX_LIST_JOBS)
            .await?;
        let busy = self.pending_jobs().await?;
        let mut deferred = Vec::new();
        let runs = queued.into_iter().filter_map(|r| {
            if busy.contains_key(&r.contract_id) {
                deferred.push(r.id);
                None
            } else {
                Some(async move { self.run_repair(r, worker).await })
            }
        });
        let runs: Vec<_> = runs.collect();
        let mut ran = Vec::new();
        for r in futures_util::future::join_all(runs).await {
            if let Some(r) = r? {
                ran.push(r);
            }
        }
        Ok((ran, deferred))
    }

    async fn run_repair(&self, r: Repair, worker: &str) -> Result<Option<Repair>, DriftError> {
        let resource = Resource {
            kind: r.kind.clone(),
            key: r.key.clone(),
            contract_id: r.contract_id.clone(),
            spec: r.spec.clone(),
        };
        let contract = match self.store.revisions(&r.contract_id).await?.pop() {
            Some(rev) => Contract::from_json(&rev.payload).ok(),
            None => None,
        };
        let mut backoff = self.settings.retry.backoff();
        loop {
            let Some(attempt) = self.store.start_repair(&r.id).await? else {
                // Another runner took it.
                return Ok(None);
            };
            let started_at = Utc::now();
            let adapter = contract
                .as_ref()
                .and_then(|c| self.adapter_for(c, &r.adapter));
            let result = match adapter {
                None => Err(AdapterError::permanent(format!(
                    "no adapter {} for contract {}",
                    r.adapter, r.contract_id
                ))),
                Some(a) => {
                    let ctx = StepContext {
                        job_id: r.id.clone(),
                        step_id: format!("repair:{}:{}", r.kind, r.key),
                        attempt,
                    };
                    match tokio::time::timeout(
                        self.settings.step_timeout(),
                        a.ensure(&ctx, &resource),
                    )
                    .await
                    {
                        Ok(res) => res,
                        Err(_) => Err(AdapterError::transient("the repair timed out")),
                    }
                }
            };
            let retry = match &result {
                Err(e) if e.is_transient() => match e {
                    AdapterError::Transient { retry_after, .. } => backoff.next(*retry_after),
                    _ => None,
                },
                _ => None,
            };
            // Credentials a re-created resource got (an FTP login's new
            // password) are sealed under the repair's id for ops to hand
            // out once (`jobs secrets REPAIR_ID`); the facts name them.
            let mut secrets = std::collections::BTreeMap::new();
            let outcome = result
                .map(|o| {
                    let mut facts = o.facts;
                    if !o.secrets.is_empty()
                        && let Some(obj) = facts.as_object_mut()
                    {
                        obj.insert(
                            "new_secrets".into(),
                            serde_json::json!(o.secrets.keys().collect::<Vec<_>>()),
                        );
                    }
                    secrets = o
                        .secrets
                        .into_iter()
                        .map(|(name, s)| (format!("{}/{}/{name}", r.kind, r.key), s))
                        .collect();
                    facts
                })
                .map_err(|e| e.to_string());
            self.store
                .end_repair(RepairEnd {
                    id: r.id.clone(),
                    attempt,
                    worker: worker.to_string(),
                    started_at,
                    outcome,
                    secrets,
                })
                .await?;
            match retry {
                Some(wait) => {
                    tokio::time::sleep(wait).await;
                    self.store.rerun_repair(&r.id).await?;
                }
                None => return Ok(self.store.repair(&r.id).await?),
            }
        }
    }

    /// Removes one orphan (a resource with hostwright's marker no contract
    /// owns) through its adapter's `remove`, after checking, on the backend
    /// and in the store, that it is one now. Audited with `actor`.
    pub async fn delete_orphan(
        &self,
        kind: &str,
        key: &str,
        actor: &str,
    ) -> Result<Orphan, DriftError> {
        let target = format!("{kind} {key}");
        let found = self.find_orphan(kind, key).await;
        let audit = |outcome: &str, detail: String| NewAuditEntry {
            actor: actor.to_string(),
            action: "drift delete-orphan".into(),
            target: Some(target.clone()),
            address: None,
            outcome: outcome.into(),
            detail: Some(detail),
        };
        let (orphan, adapter) = match found {
            Ok(f) => f,
            Err(e) => {
                self.store
                    .record_audit(audit("refused", e.to_string()))
                    .await?;
                return Err(e);
            }
        };
        let resource = Resource {
            kind: orphan.kind.clone(),
            key: orphan.key.clone(),
            // The contract its marker names: the adapters remove only what
            // carries that marker.
            contract_id: orphan.marker.clone(),
            spec: serde_json::Value::Null,
        };
        let ctx = StepContext {
            job_id: format!("orphan-{}", uuid::Uuid::new_v4().simple()),
            step_id: format!("delete:{kind}:{key}"),
            attempt: 1,
        };
        match adapter.remove(&ctx, &resource).await {
            Ok(o) => {
                self.store
                    .record_audit(audit("ok", o.facts.to_string()))
                    .await?;
                Ok(orphan)
            }
            Err(e) => {
                self.store
                    .record_audit(audit("failed", e.to_string()))
                    .await?;
                Err(DriftError::Adapter(e))
            }
        }
    }

    async fn find_orphan(
        &self,
        kind: &str,
        key: &str,
    ) -> Result<(Orphan, Arc<dyn Adapter>), DriftError> {
        let not = |why: &str| DriftError::NotAnOrphan {
            kind: kind.to_string(),
            key: key.to_string(),
            why: why.to_string(),
        };
        // Owned by a contract (wanted or recorded): never an orphan.
        for rev in self.store.latest_revisions().await? {
            if self
                .store
                .resources(&rev.contract_id)
                .await?
                .iter()
                .any(|r| r.kind == kind && r.key == key)
            {
                return Err(not(&format!("contract {} has it", rev.contract_id)));
            }
        }
        let now = self.wanted(&[]).await?;
        let (wanted, pending) = (now.contracts, now.pending);
        if let Some(w) = wanted
            .iter()
            .flat_map(|(_, w)| w.iter())
            .find(|w| w.resource.kind == kind && w.resource.key == key)
        {
            return Err(not(&format!("contract {} wants it", w.contract_id)));
        }
        if let Some(p) = pending.first() {
            // A pending job may be about to create it under its own name.
            return Err(not(&format!(
                "contract {}'s job {} has work; try when no job is pending",
                p.contract_id, p.job_id
            )));
        }
        for name in self.adapters.kinds().keys() {
            let Some(a) = self.adapters.get(name) else {
                continue;
            };
            if !a.kinds().contains(&kind) {
                continue;
            }
            if let Some(marked) = a.inventory().await.map_err(DriftError::Adapter)?
                && let Some(m) = marked.into_iter().find(|m| m.kind == kind && m.key == key)
            {
                return Ok((
                    Orphan {
                        says: format!(
                            "{kind} {key} on {} (marker: contract {})",
                            a.location(),
                            m.owner
                        ),
                        kind: m.kind,
                        key: m.key,
                        adapter: name.clone(),
                        host: a.location(),
                        marker: m.owner,
                    },
                    a.clone(),
                ));
            }
        }
        Err(not("no backend holds it with hostwright's marker"))
    }
}

/// What `POST /v1/drift/repair` queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RepairsQueued {
    /// When the scan the repairs come from ran.
    pub scanned_at: DateTime<Utc>,
    /// Its findings (orphans are never repaired).
    pub findings: usize,
    /// A repair per finding that had none queued or running; they run now.
    pub queued: Vec<QueuedRepair>,
    /// `CONTRACT KIND KEY` of findings not queued: a repair of it is queued
    /// or running already, or its contract has a job with work.
    pub already_queued: Vec<String>,
}

/// One queued repair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueuedRepair {
    /// `rep-...`: its journal and audit entries name it.
    pub id: String,
    pub contract_id: String,
    pub revision: u32,
    pub kind: String,
    pub key: String,
    pub adapter: String,
    /// The finding, in words.
    pub reason: String,
}

/// What `serve` keeps between scans: the last full report (`GET
/// /v1/drift`), the findings already logged (each new one is logged once,
/// not on every scan), and a lock so that one scan runs at a time.
#[derive(Default)]
pub struct Reconciler {
    last: std::sync::Mutex<Option<Arc<DriftReport>>>,
    logged: std::sync::Mutex<BTreeSet<String>>,
    scanning: tokio::sync::Mutex<()>,
}

impl Engine {
    /// One full scan as `serve` runs it: metrics updated, each new finding
    /// and orphan logged once (and its end logged when it is gone), repairs
    /// queued and run when `repair` (actor `reconcile`). The report is kept
    /// for `GET /v1/drift`.
    pub async fn reconcile(&self, repair: bool) -> Result<Arc<DriftReport>, DriftError> {
        let _one = self.reconciler.scanning.lock().await;
        let report = self.drift(&[]).await?;
        self.metrics.drift_scanned(&report);
        let now: BTreeSet<String> = report
            .findings
            .iter()
            .map(Finding::identity)
            .chain(
                report
                    .orphans
                    .iter()
                    .map(|o| format!("orphan {} {} {}", o.host, o.kind, o.key)),
            )
            .collect();
        let mut announce = Vec::new();
        {
            let mut logged = self.reconciler.logged.lock().expect("drift log lock");
            for f in &report.findings {
                if !logged.contains(&f.identity()) {
                    announce.push(f);
                    tracing::warn!(
                        contract_id = %f.contract_id,
                        kind = %f.kind,
                        key = %f.key,
                        host = %f.host,
                        state = f.state.as_str(),
                        "drift: {}",
                        f.says
                    );
                }
            }
            for o in &report.orphans {
                if !logged.contains(&format!("orphan {} {} {}", o.host, o.kind, o.key)) {
                    tracing::warn!(kind = %o.kind, key = %o.key, host = %o.host, "drift: orphan: {}", o.says);
                }
            }
            for gone in logged.difference(&now) {
                tracing::info!("drift: no longer found: {gone}");
            }
            *logged = now;
        }
        for f in announce {
            self.notify(drift_found(&self.notifier, f, report.scanned_at))
                .await;
        }
        for e in &report.errors {
            tracing::warn!(adapter = %e.adapter, error = %e.error, "drift: could not read");
        }
        tracing::info!(
            resources = report.resources,
            contracts = report.contracts,
            findings = report.findings.len(),
            orphans = report.orphans.len(),
            duration_ms = report.duration_ms,
            "drift scan"
        );
        if repair && !report.findings.is_empty() {
            self.queue_repairs(&report.findings, "reconcile").await?;
        }
        if repair {
            let (ran, _) = self.run_repairs("reconcile").await?;
            for r in ran {
                tracing::info!(repair = %r.id, contract_id = %r.contract_id, kind = %r.kind, key = %r.key, state = r.state.as_str(), "drift repair");
            }
        }
        let report = Arc::new(report);
        *self.reconciler.last.lock().expect("drift report lock") = Some(report.clone());
        Ok(report)
    }

    /// The last full scan's report; a report-only scan now when there has
    /// been none.
    pub async fn last_drift(&self) -> Result<Arc<DriftReport>, DriftError> {
        if let Some(r) = self
            .reconciler
            .last
            .lock()
            .expect("drift report lock")
            .clone()
        {
            return Ok(r);
        }
        self.reconcile(false).await
    }
}

/// The `drift_found` event of a finding first seen by the scan of
/// `scanned_at`: its idempotency key is the finding's identity and that
/// scan's time, so each appearance of a finding is announced once (one
/// that goes and comes back is new again; after a restart of `serve`,
/// whose memory of what it logged starts empty, the findings then present
/// are announced once more, as they are logged once more).
pub fn drift_found(
    notifier: &super::notify::Notifier,
    f: &Finding,
    scanned_at: DateTime<Utc>,
) -> Option<super::store::NewNotification> {
    use sha2::Digest;
    let identity = hex::encode(sha2::Sha256::digest(f.identity().as_bytes()));
    let mut data = serde_json::to_value(f).expect("a finding serializes");
    if let Some(o) = data.as_object_mut() {
        o.insert("scanned_at".into(), serde_json::json!(scanned_at));
    }
    notifier.event(
        super::notify::Event::DriftFound,
        &format!("{}:{}", &identity[..16], scanned_at.timestamp_millis()),
        data,
    )
}

/// `serve`'s schedule: a full scan every `interval_minutes` (the first
/// `first_scan_after_seconds` after start) until shutdown.
pub async fn run_schedule(
    engine: Arc<Engine>,
    cfg: super::config::DriftConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut wait = std::time::Duration::from_secs(cfg.first_scan_after_seconds);
    let every = std::time::Duration::from_secs(cfg.interval_minutes.max(1) * 60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        if let Err(e) = engine.reconcile(cfg.repair).await {
            tracing::warn!(error = %e, "drift scan failed; the next one retries");
        }
        wait = every;
    }
}

/// What a resource compared equal to, for [`Engine::plan_observed`]: a
/// spec no planner writes, so the diff plans an update.
const OBSERVED_DIFFERENT: &str = "observed on the backend, different";

impl Engine {
    /// `plan --observe`: the steps that take the real backends (not the
    /// recorded state) to `contract`. Each resource it wants is compared on
    /// its backend: missing ones are created, changed ones updated, equal
    /// ones left; recorded resources it no longer wants are deleted, as in
    /// the recorded plan. Reads only.
    pub async fn plan_observed(
        &self,
        contract: &Contract,
    ) -> Result<Vec<super::store::PlannedStep>, DriftError> {
        let cid = contract.contract_id.as_str();
        let playbook = self
            .playbook_of(contract)
            .map_err(|e| DriftError::Plan(e.into()))?;
        let recorded = self.store.resources(cid).await?;
        let desired = self
            .derive_current(contract, &recorded)
            .await
            .map_err(DriftError::Plan)?;
        let mut observed: Vec<super::store::RecordedResource> = recorded
            .iter()
            .filter(|r| !desired.iter().any(|d| d.kind == r.kind && d.key == r.key))
            .cloned()
            .collect();
        for d in &desired {
            let adapter = self
                .adapter_for(contract, &d.adapter)
                .ok_or_else(|| DriftError::NoAdapter(d.adapter.clone()))?;
            let resource = Resource {
                kind: d.kind.clone(),
                key: d.key.clone(),
                contract_id: cid.to_string(),
                spec: d.spec.clone(),
            };
            let answer = adapter
                .compare(std::slice::from_ref(&resource))
                .await
                .pop()
                .unwrap_or_else(|| Err(AdapterError::transient("the adapter answered nothing")))
                .map_err(DriftError::Adapter)?;
            let spec = match answer {
                Comparison::Missing => continue,
                Comparison::Matches => d.spec.clone(),
                Comparison::Differs(_) => serde_json::json!({ "_": OBSERVED_DIFFERENT }),
            };
            observed.push(super::store::RecordedResource {
                kind: d.kind.clone(),
                key: d.key.clone(),
                adapter: d.adapter.clone(),
                spec,
                facts: serde_json::Value::Null,
            });
        }
        Ok(super::plan::diff(cid, playbook, &desired, &observed))
    }
}
