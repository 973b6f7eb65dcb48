//! [`FleetStore`] on PostgreSQL. A guarded placement takes one advisory
//! transaction lock first: under READ COMMITTED two placements could both
//! see a host's last room; with the lock they run one after the other.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::super::fleet::{
    FleetStore, HostUsage, MoveQueued, Placement, limit_params, parse_state,
};
use super::{SqlStore, db, ms_to_time, pg};
use crate::engine::fleet::HostState;
use crate::engine::store::Result;
use crate::engine::store::queries as q;

fn placement(r: &PgRow) -> Placement {
    Placement {
        contract_id: r.get(0),
        host: r.get(1),
        disk_mb: r.get::<i64, _>(2) as u64,
        placed_at: ms_to_time(r.get(3)),
    }
}

impl SqlStore {
    /// Runs a placement change under the placement lock, in one
    /// transaction; whether it changed a row.
    async fn under_placement_lock(
        &self,
        change: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(pg(q::PLACEMENT_LOCK))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let done = change.execute(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait::async_trait]
impl FleetStore for SqlStore {
    async fn placement(&self, contract_id: &str) -> Result<Option<Placement>> {
        let row = sqlx::query(pg(q::PLACEMENT))
            .bind(contract_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(row.as_ref().map(placement))
    }

    async fn placements_on(&self, host: &str) -> Result<Vec<Placement>> {
        let rows = sqlx::query(pg(q::PLACEMENTS_ON))
            .bind(host)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows.iter().map(placement).collect())
    }

    async fn host_usage(&self) -> Result<BTreeMap<String, HostUsage>> {
        let rows = sqlx::query(pg(&q::host_usage()))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<String, _>(0),
                    HostUsage {
                        accounts: r.get::<i64, _>(1) as u64,
                        disk_mb: r.get::<i64, _>(2) as u64,
                    },
                )
            })
            .collect())
    }

    async fn place(
        &self,
        contract_id: &str,
        host: &str,
        disk_mb: u64,
        limit: Option<(u32, u64)>,
    ) -> Result<bool> {
        let (guarded, accounts, mb) = limit_params(limit);
        self.under_placement_lock(
            sqlx::query(pg(&q::place()))
                .bind(contract_id)
                .bind(host)
                .bind(disk_mb as i64)
                .bind(guarded)
                .bind(accounts)
                .bind(mb),
        )
        .await
    }

    async fn resize_placement(
        &self,
        contract_id: &str,
        disk_mb: u64,
        capacity_mb: u64,
    ) -> Result<bool> {
        self.under_placement_lock(
            sqlx::query(pg(&q::resize_placement()))
                .bind(contract_id)
                .bind(disk_mb as i64)
                .bind(capacity_mb as i64),
        )
        .await
    }

    async fn move_placement(
        &self,
        contract_id: &str,
        host: &str,
        disk_mb: u64,
        limit: (u32, u64),
    ) -> Result<bool> {
        self.under_placement_lock(
            sqlx::query(pg(&q::move_placement()))
                .bind(contract_id)
                .bind(host)
                .bind(disk_mb as i64)
                .bind(i64::from(limit.0))
                .bind(limit.1 as i64),
        )
        .await
    }

    async fn queue_move(&self, contract_id: &str, host: &str, actor: &str) -> Result<MoveQueued> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The contract's head row, locked: a second move asked at the same
        // moment waits here and then sees this one open.
        let head = sqlx::query(pg(&format!("{} FOR UPDATE", q::CONTRACT_HEAD)))
            .bind(contract_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(head) = head else {
            return Ok(MoveQueued::NoContract);
        };
        let (revision, active): (i64, i64) = (head.get(0), head.get(3));
        if active == 0 {
            return Ok(MoveQueued::NotInForce);
        }
        if let Some(open) = sqlx::query(pg(q::OPEN_MOVE))
            .bind(contract_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        {
            return Ok(MoveQueued::AlreadyOpen(open.get(0)));
        }
        let job_id = uuid::Uuid::new_v4().to_string();
        sqlx::query(pg(q::INSERT_MOVE_JOB))
            .bind(&job_id)
            .bind(contract_id)
            .bind(revision)
            .bind(host)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(pg(q::LOG_OP))
            .bind(&job_id)
            .bind("move")
            .bind(actor)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(MoveQueued::Queued(job_id))
    }

    async fn host_states(&self) -> Result<BTreeMap<String, HostState>> {
        let rows = sqlx::query(pg(q::HOST_STATES))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                let name: String = r.get(0);
                let state = parse_state(&name, &r.get::<String, _>(1))?;
                Ok((name, state))
            })
            .collect()
    }

    async fn set_host_state(&self, host: &str, state: HostState, actor: &str) -> Result<()> {
        sqlx::query(pg(q::SET_HOST_STATE))
            .bind(host)
            .bind(state.as_str())
            .bind(actor)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}
