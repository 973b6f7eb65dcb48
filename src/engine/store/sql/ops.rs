//! [`OpsStore`] on PostgreSQL: tokens and the audit log.

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::super::ops::{
    AuditEntry, AuditFilter, ContractsPage, JobsPage, LatestReport, NewAuditEntry, NewToken,
    OpsStore, TokenRecord, scopes_parse, scopes_text,
};
use super::{SqlStore, db, ms_to_time, parse_json, pg, stored_revision, summary};
use crate::engine::store::queries as q;
use crate::engine::store::{JobSummary, Rejection, StoredRevision};
use crate::engine::store::{Result, StoreError};

fn token_row(r: &PgRow) -> (TokenRecord, String) {
    (
        TokenRecord {
            id: r.get(0),
            name: r.get(1),
            scopes: scopes_parse(&r.get::<String, _>(2)),
            created_at: ms_to_time(r.get(4)),
            created_by: r.get(5),
            expires_at: r.get::<Option<i64>, _>(6).map(ms_to_time),
            revoked_at: r.get::<Option<i64>, _>(7).map(ms_to_time),
        },
        r.get(3),
    )
}

#[async_trait::async_trait]
impl OpsStore for SqlStore {
    async fn jobs_page(&self, p: &JobsPage) -> Result<Vec<JobSummary>> {
        let (has, at, id) = match &p.after {
            Some((at, id)) => (1i64, *at, id.clone()),
            None => (0, 0, String::new()),
        };
        let rows = sqlx::query(pg(&q::jobs_page()))
            .bind(p.state.map(|s| s.as_str()).unwrap_or_default())
            .bind(p.contract_id.clone().unwrap_or_default())
            .bind(has)
            .bind(at)
            .bind(id)
            .bind(i64::from(p.limit))
            .bind(p.ids.join(","))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(summary).collect()
    }

    async fn rejections_page(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, Rejection)>> {
        let rows = sqlx::query(pg(q::REJECTIONS_PAGE))
            .bind(before.unwrap_or(0))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.get(0),
                    Rejection {
                        contract_id: r.get(1),
                        revision: r.get::<Option<i64>, _>(2).map(|v| v as u32),
                        kind: r.get(3),
                        reasons: parse_json("reasons", &r.get::<String, _>(4))?,
                        received_at: ms_to_time(r.get(5)),
                        received: r.get(6),
                        received_sha256: r.get(7),
                        received_size: r.get::<Option<i64>, _>(8).map(|n| n as u64),
                    },
                ))
            })
            .collect()
    }

    async fn contracts_page(&self, p: &ContractsPage) -> Result<Vec<StoredRevision>> {
        let rows = sqlx::query(pg(q::CONTRACTS_PAGE))
            .bind(p.customer_id.clone().unwrap_or_default())
            .bind(p.domain.clone().unwrap_or_default())
            .bind(p.after.clone().unwrap_or_default())
            .bind(i64::from(p.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows.iter().map(stored_revision).collect())
    }

    async fn latest_report(&self, contract_id: &str) -> Result<Option<LatestReport>> {
        let r = sqlx::query(pg(q::LATEST_REPORT))
            .bind(contract_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        r.map(|r| {
            let body: Vec<u8> = r.get(0);
            Ok(LatestReport {
                report: serde_json::from_slice(&body)
                    .map_err(|e| StoreError::Corrupt(format!("outbox body: {e}")))?,
                created_at: ms_to_time(r.get(1)),
                delivered_at: r.get::<Option<i64>, _>(2).map(ms_to_time),
            })
        })
        .transpose()
    }

    async fn create_token(&self, t: NewToken) -> Result<TokenRecord> {
        let r = sqlx::query(pg(q::INSERT_TOKEN))
            .bind(&t.id)
            .bind(&t.name)
            .bind(scopes_text(&t.scopes))
            .bind(&t.hash)
            .bind(&t.created_by)
            .bind(t.expires_at.map(|e| e.timestamp_millis()))
            .execute(&self.pool)
            .await;
        match r {
            Ok(_) => {}
            // The name's UNIQUE constraint: someone has (or had) it.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::TokenNameTaken(t.name));
            }
            Err(e) => return Err(db(e)),
        }
        self.token(&t.id)
            .await?
            .map(|(t, _)| t)
            .ok_or_else(|| StoreError::Corrupt(format!("token {} vanished after insert", t.id)))
    }

    async fn token(&self, id: &str) -> Result<Option<(TokenRecord, String)>> {
        let r = sqlx::query(pg(&q::token_by_id()))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(r.as_ref().map(token_row))
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(pg(&q::all_tokens()))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| token_row(r).0).collect())
    }

    async fn revoke_token(&self, name: &str) -> Result<bool> {
        let r = sqlx::query(pg(q::REVOKE_TOKEN))
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(r.rows_affected() == 1)
    }

    async fn record_audit(&self, e: NewAuditEntry) -> Result<()> {
        sqlx::query(pg(q::INSERT_AUDIT))
            .bind(e.actor)
            .bind(e.action)
            .bind(e.target)
            .bind(e.address)
            .bind(e.outcome)
            .bind(e.detail)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let sql = q::audit(f.actor.is_some(), f.target.is_some(), f.before.is_some());
        let rows = sqlx::query(pg(&sql))
            .bind(f.actor.clone().unwrap_or_default())
            .bind(f.target.clone().unwrap_or_default())
            .bind(f.before.unwrap_or(0))
            .bind(i64::from(f.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                at: ms_to_time(r.get(1)),
                actor: r.get(2),
                action: r.get(3),
                target: r.get(4),
                address: r.get(5),
                outcome: r.get(6),
                detail: r.get(7),
            })
            .collect())
    }
}
