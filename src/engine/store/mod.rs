//! The durable job store: one trait, two back ends (SQLite, PostgreSQL).
//!
//! Everything the engine must not lose lives here: accepted and rejected
//! contract revisions, jobs with their plans, every step attempt (the
//! journal), the recorded state of each contract's resources, secrets waiting
//! to be handed back once, the ops log, and the billing outbox.
//!
//! Architecture invariants:
//! - A job's end and its outbox entry are written in one transaction.
//! - A step's success and the resource state it produced are written in one
//!   transaction, so a crash never leaves a recorded step without its state.
//! - A job is run by at most one worker at a time: claims take a lease that the
//!   worker renews; an expired lease makes the job claimable again, and a worker
//!   that lost its lease cannot record anything for that job.
//! - Jobs of one contract run one at a time in revision order: a job is only
//!   claimable when no job of the same contract with a lower revision is
//!   queued, running or failed (a failed job blocks its successors until it is
//!   rerun to success or cancelled).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod admin;
pub mod fleet;
pub mod migrate;
pub mod ops;
pub mod queries;
pub mod repairs;
pub mod sealed;
pub mod sql;
pub mod sqlite;

pub use sealed::SecretKeys;

use super::claims::{Claim, Claims};
use hostwright_adapter::Secret;

/// Errors of the store. A driver's own error keeps its type (a caller can
/// tell a constraint from a lost connection); `Database` is the store
/// itself failing (its writer stopped, a commit failed, a file that cannot
/// be opened).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Database(String),
    #[error("migration failed: {0}")]
    Migration(String),
    /// The store records a migration this build does not ship: it was
    /// written by a newer hostwright (refused before anything is written).
    #[error(
        "the store has schema migration {version}, which this build does not know \
         (it knows up to {known}): it was written by a newer hostwright; run that \
         version (or newer) on it, or restore a backup taken before the upgrade"
    )]
    SchemaNewer { version: i64, known: i64 },
    /// An applied migration's recorded checksum differs from this build's
    /// text of it: the schema is not the one this code was written for.
    #[error(
        "schema migration {version} applied to this store differs from this build's \
         (checksum {recorded}, this build {ours}): the store was written by another build; \
         refusing to start on it"
    )]
    MigrationChanged {
        version: i64,
        recorded: String,
        ours: String,
    },
    #[error("job {0} not found")]
    JobNotFound(String),
    #[error("job {job} is {state}, so it cannot be {action}")]
    InvalidTransition {
        job: String,
        state: JobState,
        action: &'static str,
    },
    #[error("lease on job {0} was lost")]
    LeaseLost(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A step of a contract would touch a backend name another contract
    /// owns (or nobody does): refused before the adapter is called.
    #[error("contract {contract} does not own the {claim}: refusing to touch it")]
    NotOwner { contract: String, claim: Claim },
    #[error(transparent)]
    Sealed(#[from] sealed::SealError),
    #[error("a token named `{0}` exists already (names are never reused, even once revoked)")]
    TokenNameTaken(String),
}

pub use ops::OpsStore;
pub use repairs::RepairStore;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// State of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }
    /// Whether the job has ended (ops may still rerun a failed one).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// State of one step of a job's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<StepState> {
        Some(match s {
            "pending" => StepState::Pending,
            "running" => StepState::Running,
            "succeeded" => StepState::Succeeded,
            "failed" => StepState::Failed,
            _ => return None,
        })
    }
}

/// What a step does to its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Suspend,
    Resume,
    Delete,
    /// Takes the resource over on another instance of its adapter (another
    /// web host: `PlannedStep::from` names the one it is on now): what the
    /// old one exports (a home's files, an FTP password hash) is imported
    /// on the new one, which then holds the recorded resource.
    Relocate,
    /// Removes a relocated resource from the instance it left; the
    /// recorded resource (on the new one) stays.
    Retire,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Suspend => "suspend",
            Action::Resume => "resume",
            Action::Delete => "delete",
            Action::Relocate => "relocate",
            Action::Retire => "retire",
        }
    }

    /// Whether the step removes something from a backend: such a step
    /// journals its own start, in the transaction that checks its contract
    /// still owns what it removes.
    pub fn removes(self) -> bool {
        matches!(self, Action::Delete | Action::Retire)
    }
}

/// One step of a plan, as stored with the job. `resource.spec` is the desired
/// spec for create/update/suspend/resume and the last recorded spec for delete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlannedStep {
    /// Stable id within the job, e.g. `create:vhost:example.jp`.
    pub id: String,
    pub adapter: String,
    pub action: Action,
    /// The resource (`kind`, `key`, `spec`) as its adapter's typed spec.
    #[schema(value_type = Object)]
    pub resource: hostwright_adapter::Resource,
    /// Ids of the steps of this plan that must succeed before this one starts
    /// (the playbook's `after`, reversed for deletions; every deletion before
    /// any other step). Steps whose dependencies succeeded run concurrently.
    /// `None` in plans stored before dependencies were recorded: such a step
    /// runs after the previous one, the sequential order those plans had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<String>>,
    /// A relocation's source: the adapter instance (`webhost@web1`) the
    /// resource is taken over from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// What intake reads to judge a revision (see [`Store::intake_view`]).
#[derive(Debug, Clone, PartialEq)]
pub struct IntakeView {
    /// The contract's latest accepted revision.
    pub latest: Option<StoredRevision>,
    /// The customer's contracts, latest revision each (the rules of 第11条).
    pub others: Vec<CustomerContract>,
    /// The customer's version when read (0: no contract yet).
    pub customer_version: i64,
    /// The names of the revision's claims other contracts own, and its
    /// domains other customers hold, when read (recording checks again).
    pub taken_names: Vec<Claim>,
    pub taken_domains: Vec<String>,
}

/// The state a revision was judged against. [`Store::record_revision`]
/// records it only if this still holds, so the rules are always judged
/// against exactly the state the revision is recorded onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judged {
    pub latest: Option<u32>,
    pub customer_version: i64,
}

/// A signed contract revision that passed verification and the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRevision {
    pub contract_id: String,
    pub revision: u32,
    pub customer_id: String,
    pub service: String,
    /// Whether the contract is still in force after this revision (not terminated).
    pub active: bool,
    /// The signed envelope exactly as received.
    pub envelope: Vec<u8>,
    /// The verified contract JSON (the envelope's payload).
    pub payload: Vec<u8>,
    pub received_at: DateTime<Utc>,
    /// What the rules saw.
    pub judged: Judged,
    /// The backend names and domains the revision needs.
    pub claims: Claims,
}

/// A contract's head as the store keeps it (migration 0003).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub revision: u32,
    pub customer_id: String,
    pub service: String,
    pub active: bool,
}

impl NewRevision {
    /// The customers whose version this revision moves on: those whose
    /// contracts, as the rules of their other contracts read them (which
    /// exist, their service type, whether in force), it changes.
    pub fn moves_customers<'a>(&'a self, head: Option<&'a Head>) -> Vec<&'a str> {
        match head {
            None => vec![self.customer_id.as_str()],
            Some(h) if h.customer_id != self.customer_id => {
                vec![h.customer_id.as_str(), self.customer_id.as_str()]
            }
            Some(h) if h.service != self.service || h.active != self.active => {
                vec![self.customer_id.as_str()]
            }
            Some(_) => Vec::new(),
        }
    }
}

/// The ops-log action of a secrets hand-out: what and how many, never a value.
pub fn secrets_taken(n: usize) -> String {
    format!("secrets taken ({n})")
}

/// The registrable domain a domain claim is filed (and, on PostgreSQL,
/// locked) under; a name the Public Suffix List does not place is its own.
pub fn base_of(domain: &str) -> &str {
    super::claims::registrable(domain).unwrap_or(domain)
}

/// What intake of a revision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeOutcome {
    /// New revision recorded and a job queued for it.
    Created { job_id: String },
    /// This (contract, revision) was already recorded: the existing job.
    Existing { job_id: String },
    /// An older (or equal but different) revision than the latest recorded.
    Stale { latest: u32 },
    /// What the revision was judged against changed before it could be
    /// recorded (a concurrent revision of the contract or the customer):
    /// nothing was recorded; judge it again.
    Changed,
    /// Names other contracts own, or domains other customers hold: nothing
    /// was recorded.
    Taken {
        names: Vec<Claim>,
        domains: Vec<String>,
    },
}

/// A contract revision refused at intake, kept with its reasons.
///
/// Of the body only its size, its SHA-256 and its first
/// [`REJECTION_PREFIX_BYTES`] are kept, so that refusals cannot grow the
/// store by what a sender chooses to post (migration 0006). Rows recorded
/// before that migration have no digest or size, and up to 64 KiB of body.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub contract_id: Option<String>,
    pub revision: Option<u32>,
    /// Machine-readable reason kind, e.g. `signature`, `rules`, `stale`.
    pub kind: String,
    /// Findings or error details as JSON.
    pub reasons: serde_json::Value,
    /// The first [`REJECTION_PREFIX_BYTES`] of what was received.
    pub received: Vec<u8>,
    /// Lower-case hex SHA-256 of what was received (`None`: recorded before 0006).
    pub received_sha256: Option<String>,
    /// Bytes received (`None`: recorded before 0006). A body over the size
    /// limit is read only to the limit plus one byte: size and digest then
    /// cover what was read.
    pub received_size: Option<u64>,
    pub received_at: DateTime<Utc>,
}

/// How much of a refused body is kept.
pub const REJECTION_PREFIX_BYTES: usize = 512;

impl Rejection {
    /// A refusal of `body`: its size, digest and first bytes, not the body.
    pub fn of_body(
        contract_id: Option<String>,
        revision: Option<u32>,
        kind: impl Into<String>,
        reasons: serde_json::Value,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Rejection {
        use sha2::Digest;
        Rejection {
            contract_id,
            revision,
            kind: kind.into(),
            reasons,
            received: body[..body.len().min(REJECTION_PREFIX_BYTES)].to_vec(),
            received_sha256: Some(hex::encode(sha2::Sha256::digest(body))),
            received_size: Some(body.len() as u64),
            received_at,
        }
    }
}

/// A recorded revision of a contract.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRevision {
    pub contract_id: String,
    pub revision: u32,
    pub payload: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

/// Another contract of the same customer, for 第11条 checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerContract {
    pub contract_id: String,
    pub service: String,
    pub active: bool,
}

/// A job handed to a worker by [`Store::claim`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    pub job_id: String,
    pub contract_id: String,
    pub revision: u32,
    /// The verified contract JSON of this job's revision.
    pub payload: Vec<u8>,
    /// `None` until the worker stored a plan with [`Store::set_plan`].
    pub plan: Option<Vec<StepRecord>>,
    /// A move job's target host (`contracts move`); `None` for a
    /// revision's job.
    pub move_to: Option<String>,
}

/// A step of a stored plan with its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepRecord {
    pub index: u32,
    pub step: PlannedStep,
    pub state: StepState,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Facts recorded when the step succeeded.
    pub facts: Option<serde_json::Value>,
}

/// How one attempt of a step ended (the journal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    Transient {
        error: String,
    },
    Permanent {
        error: String,
    },
    /// The worker gave the step up (timeout, shutdown) without an answer.
    Abandoned {
        error: String,
    },
}

impl AttemptOutcome {
    /// What an attempt that ended this way leaves on its step: the error to
    /// show, and the step's state — a permanent failure ends the step, any
    /// other end leaves it pending for the next attempt (or a rerun).
    pub fn step_after(&self) -> (Option<String>, StepState) {
        match self {
            AttemptOutcome::Succeeded => (None, StepState::Succeeded),
            AttemptOutcome::Permanent { error } => (Some(error.clone()), StepState::Failed),
            AttemptOutcome::Transient { error } | AttemptOutcome::Abandoned { error } => {
                (Some(error.clone()), StepState::Pending)
            }
        }
    }
}

/// One journaled attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptRecord {
    pub step_index: u32,
    pub attempt: u32,
    pub worker: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `None` while running (or when the worker died mid-attempt).
    pub outcome: Option<AttemptOutcome>,
    pub duration_ms: Option<u64>,
}

/// The recorded state of a contract's resource, as the last successful step
/// left it. The planner diffs desired resources against these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordedResource {
    pub kind: String,
    pub key: String,
    pub adapter: String,
    pub spec: serde_json::Value,
    pub facts: serde_json::Value,
}

/// What a successful step changes in the recorded resources.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceChange {
    Upsert(RecordedResource),
    Delete {
        kind: String,
        key: String,
    },
    /// The recorded resource stays as it is (a retirement: the resource
    /// left one host for another, where it is recorded already).
    Keep,
}

/// The end of a job, written atomically with its side records.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEnd {
    Succeeded {
        /// Non-secret summary for `jobs show`.
        result: serde_json::Value,
        /// The billable-state report to deliver to billing.
        outbox: NewOutboxItem,
        /// What the contract still needs after this job (its revision's
        /// claims and its remaining resources'): its claims of this or an
        /// older revision outside these are released.
        keep: Claims,
        /// Notifications (a job that succeeded after failing), queued in
        /// the same transaction.
        notify: Vec<NewNotification>,
    },
    Failed {
        step_index: Option<u32>,
        error: String,
        /// Notifications announcing the failure (`notify`), queued in the
        /// same transaction.
        notify: Vec<NewNotification>,
    },
}

/// A webhook event to queue (`notify.rs` builds it; the table is the
/// notifier's outbox, migration 0008).
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// Unique: an event is queued once, and sent with this key every time.
    pub idempotency_key: String,
    /// The event's name (`job_failed`, ...): picks the endpoint.
    pub event: String,
    pub body: Vec<u8>,
}

/// A notification waiting for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationItem {
    pub id: i64,
    pub idempotency_key: String,
    pub event: String,
    pub body: Vec<u8>,
    pub attempts: u32,
}

/// A report waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutboxItem {
    /// Unique: a job's report is enqueued once however often the job end is retried.
    pub idempotency_key: String,
    pub contract_id: String,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    pub idempotency_key: String,
    pub contract_id: String,
    pub body: Vec<u8>,
    pub attempts: u32,
}

/// A month's statement of one contract as the monthly close recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedStatement {
    pub contract_id: String,
    /// `YYYY-MM`.
    pub month: String,
    /// 1 for the close, n + 1 for a correction of version n.
    pub version: u32,
    pub replaces: Option<u32>,
    pub customer_id: String,
    /// The latest revision of the contract when the statement was computed.
    pub based_on_revision: u32,
    /// What a rerun compares: the statement's lines, totals and notes.
    pub content: String,
    /// The statement (`billing::Statement` as JSON).
    pub statement: serde_json::Value,
    pub total: String,
    /// The key of its outbox report.
    pub idempotency_key: String,
    pub closed_at: DateTime<Utc>,
}

/// Filter for [`Store::list_jobs`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub contract_id: Option<String>,
    /// At most [`MAX_LIST_JOBS`]; 100 when absent.
    pub limit: Option<u32>,
}

/// The most items one listing or page returns (the API refuses a larger
/// `limit`, naming this number; the stores never return more).
pub const MAX_LIST_JOBS: u32 = 1_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobSummary {
    pub job_id: String,
    pub contract_id: String,
    pub revision: u32,
    pub state: JobState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub error: Option<String>,
    pub steps_total: u32,
    pub steps_done: u32,
    /// A move job's target host (`contracts move`); absent for a
    /// revision's job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OpsEvent {
    pub action: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobDetail {
    pub summary: JobSummary,
    pub lease_owner: Option<String>,
    pub steps: Vec<StepRecord>,
    pub attempts: Vec<AttemptRecord>,
    pub ops: Vec<OpsEvent>,
    pub result: Option<serde_json::Value>,
}

/// Counts for metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    pub jobs_by_state: BTreeMap<String, u64>,
    pub outbox_backlog: u64,
    /// Notifications not yet delivered.
    pub notify_backlog: u64,
    /// When the oldest queued job was created (unix ms).
    pub oldest_queued_at: Option<i64>,
    /// When the job failed longest ago last changed (unix ms).
    pub oldest_failed_at: Option<i64>,
}

impl StoreStats {
    /// Fills the ages from [`queries::OLDEST_WAITING`]'s rows.
    pub(crate) fn set_oldest(&mut self, rows: impl IntoIterator<Item = (String, i64, i64)>) {
        for (state, created, updated) in rows {
            match state.as_str() {
                "queued" => self.oldest_queued_at = Some(created),
                "failed" => self.oldest_failed_at = Some(updated),
                _ => {}
            }
        }
    }
}

/// What a successful attempt leaves to record, all in one transaction.
#[derive(Debug, Clone)]
pub struct StepSuccess {
    pub duration: Duration,
    /// Facts the adapter reported (never secret).
    pub facts: serde_json::Value,
    pub change: ResourceChange,
    /// `kind/key/name` -> the secret, readable once by ops; sealed by the
    /// store before it is written.
    pub secrets: BTreeMap<String, Secret>,
    /// `(step index, attempt)` pairs whose start to journal in the same
    /// transaction, as [`Store::attempt_started`] would: the first attempts
    /// of the steps this success makes ready, so moving on costs no extra
    /// round trip. They are still journaled before their adapter calls.
    pub then_start: Vec<(u32, u32)>,
}

/// The job store. Both back ends ([`sqlite::SqliteStore`] and
/// [`sql::SqlStore`] on PostgreSQL) pass the same test suites
/// (`tests/engine_suite.rs`) and run the same SQL text (`queries.rs`).
#[async_trait::async_trait]
pub trait Store: OpsStore + fleet::FleetStore + RepairStore + Send + Sync + 'static {
    /// Which back end this is, for logs (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    // --- intake -----------------------------------------------------------

    /// Records an accepted revision and queues its job, atomically and
    /// idempotently (see [`IntakeOutcome`]).
    async fn record_revision(&self, rev: NewRevision) -> Result<IntakeOutcome>;
    async fn record_rejection(&self, rej: Rejection) -> Result<()>;
    /// What the rules read for a revision of `contract_id` by `customer_id`:
    /// the contract's latest revision, the customer's contracts, which of
    /// `claims` others hold, and the version [`Store::record_revision`]
    /// checks (read first, so a change after it is always caught).
    async fn intake_view(
        &self,
        contract_id: &str,
        customer_id: &str,
        claims: &Claims,
    ) -> Result<IntakeView>;
    /// All accepted revisions of a contract, oldest first (for billing).
    async fn revisions(&self, contract_id: &str) -> Result<Vec<StoredRevision>>;
    /// The latest revision of every contract, the oldest contract first (the
    /// one-time adoption of claims for stores written before them).
    async fn latest_revisions(&self) -> Result<Vec<StoredRevision>>;
    /// Records claims for resources provisioned before claims existed: the
    /// free ones become `contract_id`'s; those another contract (customer)
    /// holds are answered, not taken.
    async fn adopt_claims(
        &self,
        contract_id: &str,
        customer_id: &str,
        revision: u32,
        claims: &Claims,
    ) -> Result<(Vec<Claim>, Vec<String>)>;
    /// A one-time conversion's mark (`hw_meta`).
    async fn meta(&self, key: &str) -> Result<Option<String>>;
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;
    /// Rejections, newest first (the first page of
    /// [`OpsStore::rejections_page`]).
    async fn rejections(&self, limit: u32) -> Result<Vec<Rejection>> {
        Ok(self
            .rejections_page(None, limit)
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }
    /// Deletes at most `batch` rejections received before `before`, oldest
    /// first; returns how many (fewer than `batch`: none older are left).
    /// Batches keep each write short (SQLite has one writer).
    async fn prune_rejections(&self, before: DateTime<Utc>, batch: u32) -> Result<u64>;
    /// Deletes the attempts of at most `batch` succeeded jobs that ended
    /// before `before`, taking jobs in id order after `after` (`""` to
    /// start). Returns the attempts deleted and the cursor of the next batch
    /// (`None` when this one was the last).
    async fn prune_attempts(
        &self,
        before: DateTime<Utc>,
        after: &str,
        batch: u32,
    ) -> Result<(u64, Option<String>)>;
    /// Deletes at most `batch` reports billing acknowledged before `before`,
    /// never a contract's newest; returns how many.
    async fn prune_delivered_reports(&self, before: DateTime<Utc>, batch: u32) -> Result<u64>;

    // --- workers ----------------------------------------------------------

    /// Claims one runnable job for `worker` with a lease of `lease`: a queued
    /// job, or a running one whose lease expired, respecting per-contract
    /// revision order. Concurrent claims never hand out the same job.
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<ClaimedJob>>;
    /// Renews the lease; `Err(LeaseLost)` if another worker owns the job now
    /// or it is no longer running.
    async fn heartbeat(&self, job_id: &str, worker: &str, lease: Duration) -> Result<()>;
    /// Stores the plan of a claimed job (once; a second call is an error).
    /// Also journals the start of the first attempt of each step index in
    /// `start` (the steps that can start at once) in the same transaction,
    /// as [`Store::attempt_started`] would. `owned`: every name the plan's
    /// steps touch; unless the job's contract owns each, nothing is stored
    /// and the answer is [`StoreError::NotOwner`].
    async fn set_plan(
        &self,
        job_id: &str,
        worker: &str,
        steps: &[PlannedStep],
        start: &[u32],
        owned: &[Claim],
    ) -> Result<()>;
    /// Journals the start of an attempt and marks the step running. `owned`:
    /// the names a removal is about to delete; unless the job's contract
    /// owns each, nothing is journaled and the answer is
    /// [`StoreError::NotOwner`] (the check and the journal entry that
    /// precedes the adapter call are one transaction).
    async fn attempt_started(
        &self,
        job_id: &str,
        worker: &str,
        step_index: u32,
        attempt: u32,
        owned: &[Claim],
    ) -> Result<()>;
    /// Journals the end of an attempt that did not succeed.
    async fn attempt_failed(
        &self,
        job_id: &str,
        worker: &str,
        step_index: u32,
        attempt: u32,
        outcome: AttemptOutcome,
        duration: Duration,
    ) -> Result<()>;
    /// Records a step's success: attempt journal, step state and facts, the
    /// resource change and any secrets, and the start of
    /// [`StepSuccess::then_start`], in one transaction.
    async fn step_succeeded(
        &self,
        job_id: &str,
        worker: &str,
        step_index: u32,
        attempt: u32,
        success: StepSuccess,
    ) -> Result<()>;
    /// Ends a job (and enqueues its report on success) in one transaction.
    async fn finish_job(&self, job_id: &str, worker: &str, end: JobEnd) -> Result<()>;
    /// Gives a running job back (graceful shutdown): it becomes claimable at
    /// once, keeping its plan and progress.
    async fn release_job(&self, job_id: &str, worker: &str) -> Result<()>;
    /// The recorded resources of a contract.
    async fn resources(&self, contract_id: &str) -> Result<Vec<RecordedResource>>;

    // --- ops ----------------------------------------------------------------

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobSummary>>;
    async fn job(&self, job_id: &str) -> Result<Option<JobDetail>>;
    /// Puts a failed job back in the queue; finished steps stay finished.
    async fn rerun(&self, job_id: &str, actor: &str) -> Result<()>;
    /// Reruns every failed job; returns their ids.
    async fn rerun_failed(&self, actor: &str) -> Result<Vec<String>>;
    /// Cancels a queued or failed job (a running job is cancelled by its
    /// worker at the next step boundary). The job's secrets are wiped.
    async fn cancel(&self, job_id: &str, actor: &str) -> Result<()>;
    /// Hands back a job's secrets once: returns and wipes them, and records
    /// the hand-out (who, when; never the values) in the ops log.
    /// [`StoreError::JobNotFound`] for an unknown job.
    async fn take_secrets(&self, job_id: &str, actor: &str) -> Result<BTreeMap<String, Secret>>;
    async fn stats(&self) -> Result<StoreStats>;

    // --- outbox ---------------------------------------------------------------

    /// Items due for delivery (not delivered, next attempt time passed).
    async fn outbox_due(&self, limit: u32) -> Result<Vec<OutboxItem>>;
    async fn outbox_delivered(&self, id: i64) -> Result<()>;
    async fn outbox_retry_later(&self, id: i64, error: &str, after: Duration) -> Result<()>;

    // --- notifications --------------------------------------------------------

    /// Queues a notification; a key queued before is left as it is.
    async fn enqueue_notification(&self, n: NewNotification) -> Result<()>;
    /// Notifications due for delivery, oldest first.
    async fn notifications_due(&self, limit: u32) -> Result<Vec<NotificationItem>>;
    async fn notification_delivered(&self, id: i64) -> Result<()>;
    async fn notification_retry_later(&self, id: i64, error: &str, after: Duration) -> Result<()>;

    // --- the monthly close --------------------------------------------------

    /// Every contract with a recorded revision.
    async fn contract_ids(&self) -> Result<Vec<String>>;
    /// The latest version of a contract's statement for a month.
    async fn latest_statement(
        &self,
        contract_id: &str,
        month: &str,
    ) -> Result<Option<ClosedStatement>>;
    /// Every version of every statement of a month, by contract and version.
    async fn statements_of_month(&self, month: &str) -> Result<Vec<ClosedStatement>>;
    /// Records a statement version and enqueues its report, in one
    /// transaction; `false` (and nothing written) when that version of the
    /// contract's month exists already, so a version is sent exactly once
    /// however many closes run. `closed_at` is taken from the database clock.
    async fn insert_statement(
        &self,
        statement: ClosedStatement,
        report: NewOutboxItem,
    ) -> Result<bool>;
}
