//! Moving contracts' web space between the web hosts of a fleet (issue
//! #13): `hostwright contracts move CONTRACT --to HOST` and `hosts drain
//! NAME --move-all`.
//!
//! A move is a job like any other (kind `move`, at the contract's head
//! revision, after that revision's own job): journaled, leased, rerunnable.
//! Its planning moves the contract's placement to the new host (with the
//! capacity check, `Fleet::move_to`); from then on the contract *wants* its
//! web resources there, while the store still records them on the old host,
//! and the planner's diff turns each such difference into a relocation (the
//! new host takes the resource over with what the old one exports: the
//! home's files verified by manifest, FTP password hashes; vhosts wait until
//! the new host answers for the site), then the zone's switch to the new
//! host's addresses, then the retirement of each resource from the old host.
//! Because that follows from the recorded state alone, a move cut short at
//! any point — hostwright killed, a host down, the job cancelled — is
//! finished by a rerun, or by the contract's next job.

use serde::Serialize;

use super::Engine;
use super::fleet::HostView;
use super::store::StoreError;
use super::store::fleet::MoveQueued;

/// Why a move cannot be queued.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("the config has no [fleet]: there is one web host and nothing to move to")]
    NoFleet,
    #[error("no web host named `{0}`")]
    NoHost(String),
    #[error("no contract {0}")]
    NoContract(String),
    #[error("contract {0} is terminated: it has no web space to move")]
    NotInForce(String),
    #[error("contract {0} has no web space placed on a host yet (its first job places it)")]
    NotPlaced(String),
    #[error("contract {contract} is on web host `{host}` already")]
    AlreadyThere { contract: String, host: String },
    #[error("contract {contract} has a move open already: job {job} (rerun or cancel it)")]
    AlreadyOpen { contract: String, job: String },
    #[error("contract {contract} cannot move to web host `{host}`: {why}")]
    Refused {
        contract: String,
        host: String,
        why: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A move queued as a job.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueuedMove {
    pub job_id: String,
    pub contract_id: String,
    pub from: String,
    pub to: String,
}

/// A contract `hosts drain --move-all` could not queue a move for, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NotMoved {
    pub contract_id: String,
    pub reason: String,
}

/// What `hosts drain --move-all` did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Evacuation {
    pub moved: Vec<QueuedMove>,
    pub not_moved: Vec<NotMoved>,
}

impl Engine {
    /// Queues the move of `contract_id`'s web space to host `to`, asked by
    /// `actor` (in the job's ops log). Refused at once when the target
    /// cannot take it now (not active, down, no room); the job's planning
    /// checks again with the placement's guarded update.
    pub async fn queue_move(
        &self,
        contract_id: &str,
        to: &str,
        actor: &str,
    ) -> Result<QueuedMove, MoveError> {
        let fleet = self.fleet.as_ref().ok_or(MoveError::NoFleet)?;
        if fleet.host(to).is_none() {
            return Err(MoveError::NoHost(to.to_string()));
        }
        let views = fleet.views(&*self.store).await?;
        self.queue_move_with(contract_id, to, actor, &views).await
    }

    async fn queue_move_with(
        &self,
        contract_id: &str,
        to: &str,
        actor: &str,
        views: &[HostView],
    ) -> Result<QueuedMove, MoveError> {
        let placement = self
            .store
            .placement(contract_id)
            .await?
            .ok_or_else(|| MoveError::NotPlaced(contract_id.to_string()))?;
        if placement.host == to {
            return Err(MoveError::AlreadyThere {
                contract: contract_id.to_string(),
                host: to.to_string(),
            });
        }
        let view = views
            .iter()
            .find(|v| v.name == to)
            .ok_or_else(|| MoveError::NoHost(to.to_string()))?;
        if let Some(why) = view.refusal(placement.disk_mb) {
            return Err(MoveError::Refused {
                contract: contract_id.to_string(),
                host: to.to_string(),
                why: format!("{why} (the contract needs {} MB)", placement.disk_mb),
            });
        }
        let job_id = match self.store.queue_move(contract_id, to, actor).await? {
            MoveQueued::Queued(job) => job,
            MoveQueued::NoContract => return Err(MoveError::NoContract(contract_id.to_string())),
            MoveQueued::NotInForce => return Err(MoveError::NotInForce(contract_id.to_string())),
            MoveQueued::AlreadyOpen(job) => {
                return Err(MoveError::AlreadyOpen {
                    contract: contract_id.to_string(),
                    job,
                });
            }
        };
        self.wake_workers();
        tracing::info!(contract_id, from = %placement.host, to, job_id = %job_id, actor, "move queued");
        Ok(QueuedMove {
            job_id,
            contract_id: contract_id.to_string(),
            from: placement.host,
            to: to.to_string(),
        })
    }

    /// Moves every contract in force off `host` (which the caller set
    /// draining first): each to the host the fleet's policy chooses among
    /// the others, counting the moves queued before it, so one drain does
    /// not overfill a target. Contracts that cannot move now are listed
    /// with the reason; running it again moves what it could not.
    pub async fn evacuate(&self, host: &str, actor: &str) -> Result<Evacuation, MoveError> {
        let fleet = self.fleet.as_ref().ok_or(MoveError::NoFleet)?;
        if fleet.host(host).is_none() {
            return Err(MoveError::NoHost(host.to_string()));
        }
        let mut views = fleet.views(&*self.store).await?;
        let mut out = Evacuation {
            moved: Vec::new(),
            not_moved: Vec::new(),
        };
        for p in self.store.placements_on(host).await? {
            let candidates: Vec<HostView> =
                views.iter().filter(|v| v.name != host).cloned().collect();
            let to = match super::fleet::choose(fleet.config.policy, &candidates, p.disk_mb) {
                Ok(v) => v.name.clone(),
                Err(hosts) => {
                    out.not_moved.push(NotMoved {
                        contract_id: p.contract_id,
                        reason: format!(
                            "no other web host has room for {} MB and one account (hosts: {hosts})",
                            p.disk_mb
                        ),
                    });
                    continue;
                }
            };
            match self
                .queue_move_with(&p.contract_id, &to, actor, &views)
                .await
            {
                Ok(m) => {
                    if let Some(v) = views.iter_mut().find(|v| v.name == to) {
                        v.accounts += 1;
                        v.disk_committed_mb += p.disk_mb;
                    }
                    out.moved.push(m);
                }
                // A terminated contract's placement holds nothing.
                Err(MoveError::NotInForce(_)) => {}
                Err(MoveError::Store(e)) => return Err(MoveError::Store(e)),
                Err(e) => out.not_moved.push(NotMoved {
                    contract_id: p.contract_id,
                    reason: e.to_string(),
                }),
            }
        }
        Ok(out)
    }
}
