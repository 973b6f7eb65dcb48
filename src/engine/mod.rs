//! The orchestration engine: intake, plans, durable jobs, workers, ops.
//!
//! Flow: `intake` verifies a signed contract and checks it against the terms,
//! then records the revision and queues a job in the `store`. A `worker`
//! claims the job, asks the `plan`ner for steps (desired resources from the
//! service type's `playbook`, diffed against recorded state), drives the
//! adapters of the `registry` with the `retry` policy, and ends the job with
//! its billable-state report in the outbox, which the `outbox` reporter
//! delivers to billing. `api` serves all of it over HTTP.

pub mod adapters;
pub mod api;
pub mod auth;
pub mod claims;
pub mod close;
pub mod config;
pub mod drift;
pub mod fleet;
pub mod guard;
pub mod intake;
pub mod metrics;
pub mod moves;
pub mod notify;
pub mod openapi;
pub mod outbox;
pub mod plan;
pub mod playbook;
pub mod problem;
pub mod registry;
pub mod retention;
pub mod scripted;
pub mod server;
pub mod store;
pub mod worker;

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::Notify;

use crate::catalog::Catalog;
use crate::contract::Contract;
use crate::signing::TrustedKeys;
use config::{ProvisioningConfig, WorkerSettings};
use metrics::Metrics;
use playbook::Playbooks;
use registry::Registry;
use store::{ClaimedJob, NewOutboxItem, PlannedStep, RecordedResource, Store};

/// Everything a running engine shares between its API, workers and reporter.
pub struct Engine {
    pub store: Arc<dyn Store>,
    pub adapters: Registry,
    pub playbooks: Playbooks,
    pub catalog: Arc<Catalog>,
    pub trusted_keys: TrustedKeys,
    pub settings: WorkerSettings,
    pub provisioning: ProvisioningConfig,
    /// The web hosts and their health, when the config has `[fleet]`.
    pub fleet: Option<Arc<fleet::Fleet>>,
    pub metrics: Metrics,
    /// Refused submissions per client address (`guard`).
    pub refusals: guard::RefusalLimiter,
    /// Wakes idle workers when intake queued a job or ops reran one.
    pub wake: Notify,
    /// Wakes the outbox reporter when a job ended with a report.
    pub report_wake: Notify,
    /// The events that have a webhook (`[notify.<event>]`): only these are
    /// queued.
    pub notifier: notify::Notifier,
    /// Wakes the notifier when an event was queued.
    pub notify_wake: Notify,
    /// The last drift scan and the findings already logged.
    pub reconciler: drift::Reconciler,
}

/// Why a job could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum JobPlanError {
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Placement(#[from] fleet::PlacementError),
}

impl Engine {
    pub fn wake_workers(&self) {
        self.wake.notify_waiters();
    }

    pub fn wake_reporter(&self) {
        self.report_wake.notify_one();
    }

    /// Queues a notification outside any other write (a refused contract:
    /// the refusal is recorded just before). Never fails the caller: a
    /// notification that cannot be queued is logged and counted.
    pub(crate) async fn notify(&self, n: Option<store::NewNotification>) {
        let Some(n) = n else { return };
        let event = n.event.clone();
        match self.store.enqueue_notification(n).await {
            Ok(()) => self.notify_wake.notify_one(),
            Err(e) => {
                self.metrics.notification(&event, "lost");
                tracing::warn!(event = %event, error = %e, "queueing a notification failed");
            }
        }
    }

    /// Plans a contract revision against what is recorded for it now,
    /// recording nothing (`plan`): a contract not yet placed shows the host
    /// the policy would choose now.
    pub async fn plan_contract(
        &self,
        contract: &Contract,
    ) -> Result<Vec<PlannedStep>, JobPlanError> {
        Ok(self.plan_with(contract, false, None).await?.0)
    }

    /// The plan and the recorded resources it was diffed against (the worker
    /// keeps them up to date in memory for the job's report). Places the
    /// contract on a web host first when it needs one and has none; a move
    /// job (`move_to`) moves its placement to that host first, so the plan
    /// relocates its web resources there (see [`plan::diff`]).
    pub(crate) async fn plan_recorded(
        &self,
        contract: &Contract,
        move_to: Option<&str>,
    ) -> Result<(Vec<PlannedStep>, Vec<RecordedResource>), JobPlanError> {
        self.plan_with(contract, true, move_to).await
    }

    async fn plan_with(
        &self,
        contract: &Contract,
        place: bool,
        move_to: Option<&str>,
    ) -> Result<(Vec<PlannedStep>, Vec<RecordedResource>), JobPlanError> {
        let recorded = self.store.resources(contract.contract_id.as_str()).await?;
        if let Some(to) = move_to {
            self.move_placement(contract, to, &recorded).await?;
        }
        // A terminated contract removes everything recorded, whatever the
        // playbook of its (possibly changed) service type lists.
        let (playbook, desired) = self.desired_placed(contract, &recorded, place).await?;
        // Diffed by instance: a plain `webhost` recorded by a single-host
        // installation is the fleet's first host, not another one to
        // relocate from.
        let canonical: Vec<RecordedResource> = match &self.fleet {
            Some(f) => recorded
                .iter()
                .cloned()
                .map(|mut r| {
                    r.adapter = f.canonical_adapter(&r.adapter);
                    r
                })
                .collect(),
            None => recorded.clone(),
        };
        let steps = plan::diff(
            contract.contract_id.as_str(),
            playbook,
            &desired,
            &canonical,
        );
        Ok((steps, recorded))
    }

    /// The playbook of `contract`'s service type.
    pub(crate) fn playbook_of(
        &self,
        contract: &Contract,
    ) -> Result<&playbook::Playbook, plan::PlanError> {
        let service = contract.service.code();
        self.playbooks
            .for_service(service)
            .ok_or_else(|| plan::PlanError::NoPlaybook(service.to_string()))
    }

    /// What `contract` wants, on the web host it is placed on (placing it
    /// first when `place`; otherwise a contract not placed yet gets the
    /// host the policy would choose), with its playbook.
    async fn desired_placed(
        &self,
        contract: &Contract,
        recorded: &[RecordedResource],
        place: bool,
    ) -> Result<(&playbook::Playbook, Vec<plan::Desired>), JobPlanError> {
        let playbook = self.playbook_of(contract)?;
        let web = self.web_target(contract, playbook, recorded, place).await?;
        let desired = plan::desired(
            contract,
            &self.catalog,
            playbook,
            &self.provisioning,
            &web,
            recorded,
        )?;
        Ok((playbook, desired))
    }

    /// The host of `contract`'s web resources (see [`fleet::Fleet::place`]);
    /// the one web host without a fleet. A contract that needs no web space
    /// (terminated, or mail only) is not placed.
    async fn web_target(
        &self,
        contract: &Contract,
        playbook: &playbook::Playbook,
        recorded: &[RecordedResource],
        place: bool,
    ) -> Result<fleet::WebTarget, JobPlanError> {
        let Some(fleet) = &self.fleet else {
            return Ok(self.judging_target());
        };
        let needs_web = !matches!(contract.status, crate::contract::Status::Terminated { .. })
            && playbook.rule("webspace").is_some();
        if !needs_web {
            return Ok(self.judging_target());
        }
        let need_mb = contract.entitlements(&self.catalog).web_disk_mb;
        Ok(fleet
            .place(
                &*self.store,
                contract.contract_id.as_str(),
                need_mb,
                recorded,
                place,
            )
            .await?)
    }

    /// Moves `contract`'s placement to host `to` for a move job.
    async fn move_placement(
        &self,
        contract: &Contract,
        to: &str,
        recorded: &[RecordedResource],
    ) -> Result<(), JobPlanError> {
        let Some(fleet) = &self.fleet else {
            return Err(fleet::PlacementError::MoveRefused {
                host: to.to_string(),
                why: "the config has no [fleet]".into(),
            }
            .into());
        };
        let need_mb = contract.entitlements(&self.catalog).web_disk_mb;
        fleet
            .move_to(
                &*self.store,
                contract.contract_id.as_str(),
                to,
                need_mb,
                recorded,
            )
            .await?;
        Ok(())
    }

    /// The resources `contract` wants now, on the host it is placed on (a
    /// contract not placed yet: the one the policy would choose), keeping
    /// the names `recorded` resources hold: what drift compares the
    /// backends with. Records nothing.
    pub async fn derive_current(
        &self,
        contract: &Contract,
        recorded: &[RecordedResource],
    ) -> Result<Vec<plan::Desired>, JobPlanError> {
        Ok(self.desired_placed(contract, recorded, false).await?.1)
    }

    /// The web target for judging a revision (intake, claims): the names it
    /// derives do not depend on the host; the addresses are the first
    /// host's.
    pub(crate) fn judging_target(&self) -> fleet::WebTarget {
        match &self.fleet {
            Some(f) => f.target(f.first()),
            None => fleet::WebTarget {
                host: None,
                ipv4: self
                    .provisioning
                    .web_ipv4
                    .expect("the config requires web_ipv4 without a fleet"),
                ipv6: None,
            },
        }
    }

    /// The job's result summary and its billable-state report for billing.
    /// `resources`: the contract's recorded resources as the job's steps left
    /// them, when the worker knows them (it planned the job and applied each
    /// step's change since); `None` reads them from the store. Knowing them
    /// is sound because a contract's jobs run one at a time and a worker that
    /// lost its lease cannot end the job.
    /// Also answers the claims the contract keeps after the job: its
    /// revision's and its remaining resources'.
    pub(crate) async fn success_report(
        &self,
        job: &ClaimedJob,
        contract: &Contract,
        resources: Option<Vec<RecordedResource>>,
    ) -> Result<(serde_json::Value, NewOutboxItem, claims::Claims), JobPlanError> {
        let mut resources = match resources {
            Some(r) => r,
            None => self.store.resources(contract.contract_id.as_str()).await?,
        };
        // One order whichever way they came (the database's collation may
        // order keys differently from byte order).
        resources.sort_by(|a, b| (&a.kind, &a.key).cmp(&(&b.kind, &b.key)));
        let today = Utc::now().date_naive();
        let report =
            outbox::billable_report(contract, &self.catalog, &job.job_id, &resources, today);
        let body = serde_json::to_vec(&report).expect("report serializes");
        let result = serde_json::json!({
            "resources": resources.iter().map(|r| format!("{}/{}", r.kind, r.key)).collect::<Vec<_>>(),
        });
        let desired = self.derive_with(contract, &resources)?;
        let mut keep = claims::of_revision(contract, &desired);
        keep.extend(claims::of_recorded(&resources));
        Ok((
            result,
            NewOutboxItem {
                idempotency_key: format!(
                    "{}:{}:{}",
                    contract.contract_id.as_str(),
                    contract.revision,
                    job.job_id
                ),
                contract_id: contract.contract_id.as_str().to_string(),
                body,
            },
            keep,
        ))
    }
}
