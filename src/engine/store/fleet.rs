//! The store's part for fleets (issue #13, `engine::fleet`): where each
//! contract's web space is placed and what it commits there, and the state
//! ops gave each host. Both back ends implement [`FleetStore`]; every
//! [`super::Store`] is one.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Result;
use crate::engine::fleet::HostState;

/// A contract's web host and the disk it commits there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Placement {
    pub contract_id: String,
    pub host: String,
    pub disk_mb: u64,
    pub placed_at: DateTime<Utc>,
}

/// What the contracts in force placed on one host hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostUsage {
    pub accounts: u64,
    pub disk_mb: u64,
}

#[async_trait::async_trait]
pub trait FleetStore: Send + Sync {
    async fn placement(&self, contract_id: &str) -> Result<Option<Placement>>;
    /// The placements on `host`, by contract id.
    async fn placements_on(&self, host: &str) -> Result<Vec<Placement>>;
    /// Per host, what its contracts in force hold.
    async fn host_usage(&self) -> Result<BTreeMap<String, HostUsage>>;
    /// Places `contract_id` on `host` committing `disk_mb`. With `limit`
    /// (accounts, disk MB), only while the host has room, checked in the
    /// same statement; false when it has not (or the contract has a
    /// placement already). Without, records what already is (adoption).
    async fn place(
        &self,
        contract_id: &str,
        host: &str,
        disk_mb: u64,
        limit: Option<(u32, u64)>,
    ) -> Result<bool>;
    /// Changes the disk `contract_id` commits on its host to `disk_mb` when
    /// the host's other contracts leave room under `capacity_mb`.
    async fn resize_placement(
        &self,
        contract_id: &str,
        disk_mb: u64,
        capacity_mb: u64,
    ) -> Result<bool>;
    /// Moves `contract_id`'s placement to `host` committing `disk_mb`,
    /// only while `host` has room under `limit` (accounts, disk MB),
    /// checked in the same statement; false when it has not (or the
    /// contract is not placed, or is there already).
    async fn move_placement(
        &self,
        contract_id: &str,
        host: &str,
        disk_mb: u64,
        limit: (u32, u64),
    ) -> Result<bool>;
    /// Queues a move of `contract_id`'s web space to `host`: a job of kind
    /// `move` at the contract's head revision, with `move` by `actor` in its
    /// ops log, in one transaction with the checks it answers.
    async fn queue_move(&self, contract_id: &str, host: &str, actor: &str) -> Result<MoveQueued>;
    /// The states ops set, by host (the config's state for the others).
    async fn host_states(&self) -> Result<BTreeMap<String, HostState>>;
    async fn set_host_state(&self, host: &str, state: HostState, actor: &str) -> Result<()>;
}

/// What asking for a move came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveQueued {
    /// Queued as this job.
    Queued(String),
    /// No contract has this id.
    NoContract,
    /// The contract is terminated: nothing to move.
    NotInForce,
    /// A move of this contract is queued, running or failed already (rerun
    /// or cancel that one).
    AlreadyOpen(String),
}

/// The limit's bind values: (guarded, accounts, disk MB).
pub(crate) fn limit_params(limit: Option<(u32, u64)>) -> (i64, i64, i64) {
    match limit {
        Some((accounts, mb)) => (1, i64::from(accounts), mb as i64),
        None => (0, 0, 0),
    }
}

pub(crate) fn parse_state(name: &str, state: &str) -> Result<HostState> {
    HostState::parse(state)
        .ok_or_else(|| super::StoreError::Corrupt(format!("host {name}: unknown state {state:?}")))
}
