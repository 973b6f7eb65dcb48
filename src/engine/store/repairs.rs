//! The store's part for drift repairs (issue #14): a job kind of its own,
//! one row per resource to bring back to its contract's desired spec, with
//! who asked and the journal of every attempt. Both back ends implement
//! [`RepairStore`]; every [`super::Store`] is one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Result;

/// State of a repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairState {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl RepairState {
    pub fn as_str(self) -> &'static str {
        match self {
            RepairState::Queued => "queued",
            RepairState::Running => "running",
            RepairState::Succeeded => "succeeded",
            RepairState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<RepairState> {
        Some(match s {
            "queued" => RepairState::Queued,
            "running" => RepairState::Running,
            "succeeded" => RepairState::Succeeded,
            "failed" => RepairState::Failed,
            _ => return None,
        })
    }
}

/// A repair to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRepair {
    pub id: String,
    pub contract_id: String,
    pub revision: u32,
    pub kind: String,
    pub key: String,
    pub adapter: String,
    /// The desired spec (never secret: specs never are).
    pub spec: serde_json::Value,
    /// The finding it repairs, in words.
    pub reason: String,
    /// The actor who asked (the credential's name).
    pub requested_by: String,
}

/// A recorded repair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repair {
    pub id: String,
    pub contract_id: String,
    pub revision: u32,
    pub kind: String,
    pub key: String,
    pub adapter: String,
    pub spec: serde_json::Value,
    pub reason: String,
    pub requested_by: String,
    pub state: RepairState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub facts: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairEnd {
    pub id: String,
    pub attempt: u32,
    pub worker: String,
    pub started_at: DateTime<Utc>,
    /// `Ok(facts)` or `Err(error)`.
    pub outcome: std::result::Result<serde_json::Value, String>,
    /// Credentials the repair made (an FTP login re-created with a new
    /// password), by name: sealed and kept under the repair's id until ops
    /// take them once (`jobs secrets REPAIR_ID`), as a job's are.
    pub secrets: std::collections::BTreeMap<String, hostwright_adapter::Secret>,
}

#[async_trait::async_trait]
pub trait RepairStore: Send + Sync {
    /// Queues a repair; `false` when one of the same resource is already
    /// queued or running (nothing recorded then).
    async fn queue_repair(&self, repair: NewRepair) -> Result<bool>;
    /// Repairs in `state` (any when `None`) of `contract` (any when
    /// `None`), oldest first.
    async fn repairs(
        &self,
        state: Option<RepairState>,
        contract: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Repair>>;
    async fn repair(&self, id: &str) -> Result<Option<Repair>>;
    /// Starts the next attempt of a queued repair: its number, or `None`
    /// when another runner took it first.
    async fn start_repair(&self, id: &str) -> Result<Option<u32>>;
    /// Ends the running attempt and journals it, in one transaction.
    async fn end_repair(&self, end: RepairEnd) -> Result<()>;
    /// Queues a failed repair (or one whose runner died) again; `false`
    /// when it is neither.
    async fn rerun_repair(&self, id: &str) -> Result<bool>;
}
