//! [`FleetStore`] on SQLite. Its one writer runs the guarded placement
//! alone, so the capacity check and the insert cannot interleave.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Row, params};

use super::super::fleet::{
    FleetStore, HostUsage, MoveQueued, Placement, limit_params, parse_state,
};
use super::{SqliteStore, db, exec, get, ms_to_time, rows, stmt};
use crate::engine::fleet::HostState;
use crate::engine::store::Result;
use crate::engine::store::queries as q;

fn placement(r: &Row<'_>) -> Result<Placement> {
    Ok(Placement {
        contract_id: get(r, 0)?,
        host: get(r, 1)?,
        disk_mb: get::<i64>(r, 2)? as u64,
        placed_at: ms_to_time(get(r, 3)?),
    })
}

#[async_trait::async_trait]
impl FleetStore for SqliteStore {
    async fn placement(&self, contract_id: &str) -> Result<Option<Placement>> {
        let id = contract_id.to_string();
        self.read(move |conn| {
            stmt(conn, q::PLACEMENT)?
                .query_row([&id], |r| Ok(placement(r)))
                .optional()
                .map_err(db)?
                .transpose()
        })
        .await
    }

    async fn placements_on(&self, host: &str) -> Result<Vec<Placement>> {
        let host = host.to_string();
        self.read(move |conn| rows(conn, q::PLACEMENTS_ON, [&host], placement))
            .await
    }

    async fn host_usage(&self) -> Result<BTreeMap<String, HostUsage>> {
        let list = self
            .read(|conn| {
                rows(conn, &q::host_usage(), [], |r| {
                    Ok((
                        get::<String>(r, 0)?,
                        HostUsage {
                            accounts: get::<i64>(r, 1)? as u64,
                            disk_mb: get::<i64>(r, 2)? as u64,
                        },
                    ))
                })
            })
            .await?;
        Ok(list.into_iter().collect())
    }

    async fn place(
        &self,
        contract_id: &str,
        host: &str,
        disk_mb: u64,
        limit: Option<(u32, u64)>,
    ) -> Result<bool> {
        let (id, host) = (contract_id.to_string(), host.to_string());
        let (guarded, accounts, mb) = limit_params(limit);
        self.write(move |conn| {
            exec(
                conn,
                &q::place(),
                params![id, host, disk_mb as i64, guarded, accounts, mb],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn resize_placement(
        &self,
        contract_id: &str,
        disk_mb: u64,
        capacity_mb: u64,
    ) -> Result<bool> {
        let id = contract_id.to_string();
        self.write(move |conn| {
            exec(
                conn,
                &q::resize_placement(),
                params![id, disk_mb as i64, capacity_mb as i64],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn move_placement(
        &self,
        contract_id: &str,
        host: &str,
        disk_mb: u64,
        limit: (u32, u64),
    ) -> Result<bool> {
        let (id, host) = (contract_id.to_string(), host.to_string());
        self.write(move |conn| {
            exec(
                conn,
                &q::move_placement(),
                params![id, host, disk_mb as i64, limit.0, limit.1 as i64],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn queue_move(&self, contract_id: &str, host: &str, actor: &str) -> Result<MoveQueued> {
        let (id, host, actor) = (contract_id.to_string(), host.to_string(), actor.to_string());
        self.write(move |conn| {
            let head: Option<(i64, i64)> = stmt(conn, q::CONTRACT_HEAD)?
                .query_row([&id], |r| Ok((r.get(0)?, r.get(3)?)))
                .optional()
                .map_err(db)?;
            let Some((revision, active)) = head else {
                return Ok(MoveQueued::NoContract);
            };
            if active == 0 {
                return Ok(MoveQueued::NotInForce);
            }
            let open: Option<String> = stmt(conn, q::OPEN_MOVE)?
                .query_row([&id], |r| r.get(0))
                .optional()
                .map_err(db)?;
            if let Some(job) = open {
                return Ok(MoveQueued::AlreadyOpen(job));
            }
            let job_id = uuid::Uuid::new_v4().to_string();
            exec(
                conn,
                q::INSERT_MOVE_JOB,
                params![job_id, id, revision, host],
            )?;
            exec(conn, q::LOG_OP, params![job_id, "move", actor])?;
            Ok(MoveQueued::Queued(job_id))
        })
        .await
    }

    async fn host_states(&self) -> Result<BTreeMap<String, HostState>> {
        let list = self
            .read(|conn| {
                rows(conn, q::HOST_STATES, [], |r| {
                    let name: String = get(r, 0)?;
                    let state = parse_state(&name, &get::<String>(r, 1)?)?;
                    Ok((name, state))
                })
            })
            .await?;
        Ok(list.into_iter().collect())
    }

    async fn set_host_state(&self, host: &str, state: HostState, actor: &str) -> Result<()> {
        let (host, actor) = (host.to_string(), actor.to_string());
        self.write(move |conn| {
            exec(
                conn,
                q::SET_HOST_STATE,
                params![host, state.as_str(), actor],
            )
            .map(drop)
        })
        .await
    }
}
