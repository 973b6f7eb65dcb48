//! The store's part for ops credentials and the audit log (issue #16): named
//! per-person tokens (only their hash is kept) and an append-only log of
//! every ops action and every refused attempt. Both back ends implement
//! [`OpsStore`]; every [`super::Store`] is one.
//!
//! The audit log does not reference jobs: it is kept when jobs are cleaned up.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Result;

/// A token to record. `hash` is the hex SHA-256 of the whole token.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub hash: String,
    pub created_by: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A recorded token, without its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    /// Who holds it: the actor of everything done with it.
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Increasing; the paging cursor.
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The credential's name (`token:NAME`, `intake`, `local:user@host`), or
    /// `anonymous` for a request without a valid credential.
    pub actor: String,
    /// What was asked, e.g. `POST /v1/jobs/{id}/rerun` or `tokens create`.
    pub action: String,
    /// The job, contract or token it concerned.
    pub target: Option<String>,
    /// The client's address.
    pub address: Option<String>,
    /// `ok`, `refused`, `failed`, with the HTTP status where there is one
    /// (`refused 403`).
    pub outcome: String,
    /// Why, for refusals and failures.
    pub detail: Option<String>,
}

/// An entry to append (`id` and `at` come from the store).
#[derive(Debug, Clone, Default)]
pub struct NewAuditEntry {
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub address: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub target: Option<String>,
    /// Only entries older than this id (the previous page's last id).
    pub before: Option<i64>,
    pub limit: u32,
}

/// A page of jobs: the filter's state and contract, newest first, after
/// the cursor `(created_at ms, job id)` of the previous page's last job.
#[derive(Debug, Clone, Default)]
pub struct JobsPage {
    pub state: Option<super::JobState>,
    pub contract_id: Option<String>,
    pub after: Option<(i64, String)>,
    pub limit: u32,
    /// Only these jobs (none: any). `jobs rerun --wait` polls its jobs
    /// with one request.
    pub ids: Vec<String>,
}

/// A page of the latest revisions of contracts, by contract id.
#[derive(Debug, Clone, Default)]
pub struct ContractsPage {
    pub customer_id: Option<String>,
    /// A domain one of the contract's recorded resources carries.
    pub domain: Option<String>,
    pub after: Option<String>,
    pub limit: u32,
}

/// The newest billable-state report of a contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LatestReport {
    pub report: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// When billing acknowledged it; `None` while it waits in the outbox.
    pub delivered_at: Option<DateTime<Utc>>,
}

#[async_trait::async_trait]
pub trait OpsStore: Send + Sync {
    async fn jobs_page(&self, page: &JobsPage) -> Result<Vec<super::JobSummary>>;
    /// Rejections newest first, older than the id `before`; with their ids.
    async fn rejections_page(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, super::Rejection)>>;
    async fn contracts_page(&self, page: &ContractsPage) -> Result<Vec<super::StoredRevision>>;
    async fn latest_report(&self, contract_id: &str) -> Result<Option<LatestReport>>;
    /// Records a new token; a name already used (even revoked) is refused.
    async fn create_token(&self, token: NewToken) -> Result<TokenRecord>;
    /// A token and its hash, by id.
    async fn token(&self, id: &str) -> Result<Option<(TokenRecord, String)>>;
    /// Every token, revoked ones included, oldest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Revokes the live token named `name`; false when there is none.
    async fn revoke_token(&self, name: &str) -> Result<bool>;
    async fn record_audit(&self, entry: NewAuditEntry) -> Result<()>;
    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;
}

/// Scopes are kept as one comma-separated column.
pub(crate) fn scopes_text(scopes: &[String]) -> String {
    scopes.join(",")
}

pub(crate) fn scopes_parse(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
