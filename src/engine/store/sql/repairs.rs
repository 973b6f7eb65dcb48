//! [`RepairStore`] on PostgreSQL.

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::super::repairs::{NewRepair, Repair, RepairEnd, RepairState, RepairStore};
use super::{SqlStore, db, json_text, ms_to_time, parse_json, pg};
use crate::engine::store::queries as q;
use crate::engine::store::{Result, StoreError};

fn repair_row(r: &PgRow) -> Result<Repair> {
    let state: String = r.get(9);
    Ok(Repair {
        id: r.get(0),
        contract_id: r.get(1),
        revision: r.get::<i64, _>(2) as u32,
        kind: r.get(3),
        key: r.get(4),
        adapter: r.get(5),
        spec: parse_json("repair spec", &r.get::<String, _>(6))?,
        reason: r.get(7),
        requested_by: r.get(8),
        state: RepairState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("repair state {state:?}")))?,
        attempts: r.get::<i64, _>(10) as u32,
        last_error: r.get(11),
        facts: r
            .get::<Option<String>, _>(12)
            .map(|f| parse_json("repair facts", &f))
            .transpose()?,
        created_at: ms_to_time(r.get(13)),
        updated_at: ms_to_time(r.get(14)),
    })
}

#[async_trait::async_trait]
impl RepairStore for SqlStore {
    async fn queue_repair(&self, n: NewRepair) -> Result<bool> {
        let row = sqlx::query(pg(q::QUEUE_REPAIR))
            .bind(n.id)
            .bind(n.contract_id)
            .bind(i64::from(n.revision))
            .bind(n.kind)
            .bind(n.key)
            .bind(n.adapter)
            .bind(json_text(&n.spec))
            .bind(n.reason)
            .bind(n.requested_by)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(row.is_some())
    }

    async fn repairs(
        &self,
        state: Option<RepairState>,
        contract: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Repair>> {
        let rows = sqlx::query(pg(&q::repairs_list()))
            .bind(state.map(|s| s.as_str()).unwrap_or_default())
            .bind(contract.unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(repair_row).collect()
    }

    async fn repair(&self, id: &str) -> Result<Option<Repair>> {
        let row = sqlx::query(pg(&q::repair_by_id()))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(repair_row).transpose()
    }

    async fn start_repair(&self, id: &str) -> Result<Option<u32>> {
        let row = sqlx::query(pg(q::START_REPAIR))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u32))
    }

    async fn end_repair(&self, e: RepairEnd) -> Result<()> {
        let (state, error, facts) = match &e.outcome {
            Ok(f) => (RepairState::Succeeded, None, Some(json_text(f))),
            Err(m) => (RepairState::Failed, Some(m.clone()), None),
        };
        let mut tx = self.pool.begin().await.map_err(db)?;
        for (name, secret) in &e.secrets {
            let (key_id, sealed) = self.keys.seal(&e.id, name, secret);
            sqlx::query(pg(q::UPSERT_SECRET))
                .bind(&e.id)
                .bind(name)
                .bind(key_id)
                .bind(sealed)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        sqlx::query(pg(q::END_REPAIR))
            .bind(&e.id)
            .bind(state.as_str())
            .bind(&error)
            .bind(facts)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(pg(q::INSERT_REPAIR_ATTEMPT))
            .bind(&e.id)
            .bind(i64::from(e.attempt))
            .bind(&e.worker)
            .bind(e.started_at.timestamp_millis())
            .bind(state.as_str())
            .bind(&error)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn rerun_repair(&self, id: &str) -> Result<bool> {
        let r = sqlx::query(pg(q::RERUN_REPAIR))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(r.rows_affected() == 1)
    }
}
