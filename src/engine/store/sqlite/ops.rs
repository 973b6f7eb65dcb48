//! [`OpsStore`] on SQLite: tokens and the audit log.

use rusqlite::{Row, params};

use super::super::ops::{
    AuditEntry, AuditFilter, ContractsPage, JobsPage, LatestReport, NewAuditEntry, NewToken,
    OpsStore, TokenRecord, scopes_parse, scopes_text,
};
use super::{SqliteStore, exec, get, ms_to_time, parse_json, rows, stored_revision, summary};
use crate::engine::store::queries as q;
use crate::engine::store::{JobSummary, Rejection, StoredRevision};
use crate::engine::store::{Result, StoreError};

fn token_row(r: &Row<'_>) -> Result<(TokenRecord, String)> {
    Ok((
        TokenRecord {
            id: get(r, 0)?,
            name: get(r, 1)?,
            scopes: scopes_parse(&get::<String>(r, 2)?),
            created_at: ms_to_time(get(r, 4)?),
            created_by: get(r, 5)?,
            expires_at: get::<Option<i64>>(r, 6)?.map(ms_to_time),
            revoked_at: get::<Option<i64>>(r, 7)?.map(ms_to_time),
        },
        get(r, 3)?,
    ))
}

#[async_trait::async_trait]
impl OpsStore for SqliteStore {
    async fn jobs_page(&self, p: &JobsPage) -> Result<Vec<JobSummary>> {
        let state = p.state.map(|s| s.as_str().to_string()).unwrap_or_default();
        let contract = p.contract_id.clone().unwrap_or_default();
        let (has, at, id) = match &p.after {
            Some((at, id)) => (1i64, *at, id.clone()),
            None => (0, 0, String::new()),
        };
        let limit = i64::from(p.limit);
        let ids = p.ids.join(",");
        self.read(move |conn| {
            rows(
                conn,
                &q::jobs_page(),
                params![state, contract, has, at, id, limit, ids],
                summary,
            )
        })
        .await
    }

    async fn rejections_page(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, Rejection)>> {
        self.read(move |conn| {
            rows(
                conn,
                q::REJECTIONS_PAGE,
                params![before.unwrap_or(0), i64::from(limit)],
                |r| {
                    Ok((
                        get(r, 0)?,
                        Rejection {
                            contract_id: get(r, 1)?,
                            revision: get::<Option<i64>>(r, 2)?.map(|v| v as u32),
                            kind: get(r, 3)?,
                            reasons: parse_json("reasons", &get::<String>(r, 4)?)?,
                            received_at: ms_to_time(get(r, 5)?),
                            received: get(r, 6)?,
                            received_sha256: get(r, 7)?,
                            received_size: get::<Option<i64>>(r, 8)?.map(|n| n as u64),
                        },
                    ))
                },
            )
        })
        .await
    }

    async fn contracts_page(&self, p: &ContractsPage) -> Result<Vec<StoredRevision>> {
        let (cust, domain, after) = (
            p.customer_id.clone().unwrap_or_default(),
            p.domain.clone().unwrap_or_default(),
            p.after.clone().unwrap_or_default(),
        );
        let limit = i64::from(p.limit);
        self.read(move |conn| {
            rows(
                conn,
                q::CONTRACTS_PAGE,
                params![cust, domain, after, limit],
                stored_revision,
            )
        })
        .await
    }

    async fn latest_report(&self, contract_id: &str) -> Result<Option<LatestReport>> {
        let cid = contract_id.to_string();
        self.read(move |conn| {
            Ok(rows(conn, q::LATEST_REPORT, [&cid], |r| {
                let body: Vec<u8> = get(r, 0)?;
                Ok(LatestReport {
                    report: serde_json::from_slice(&body)
                        .map_err(|e| StoreError::Corrupt(format!("outbox body: {e}")))?,
                    created_at: ms_to_time(get(r, 1)?),
                    delivered_at: get::<Option<i64>>(r, 2)?.map(ms_to_time),
                })
            })?
            .into_iter()
            .next())
        })
        .await
    }

    async fn create_token(&self, t: NewToken) -> Result<TokenRecord> {
        let id = t.id.clone();
        self.write(move |conn| {
            let taken: i64 = rows(conn, q::TOKEN_NAME_TAKEN, [&t.name], |r| get(r, 0))?
                .into_iter()
                .next()
                .unwrap_or(0);
            if taken > 0 {
                return Err(StoreError::TokenNameTaken(t.name));
            }
            exec(
                conn,
                q::INSERT_TOKEN,
                params![
                    t.id,
                    t.name,
                    scopes_text(&t.scopes),
                    t.hash,
                    t.created_by,
                    t.expires_at.map(|e| e.timestamp_millis())
                ],
            )?;
            Ok(())
        })
        .await?;
        self.token(&id)
            .await?
            .map(|(t, _)| t)
            .ok_or_else(|| StoreError::Corrupt(format!("token {id} vanished after insert")))
    }

    async fn token(&self, id: &str) -> Result<Option<(TokenRecord, String)>> {
        let id = id.to_string();
        self.read(move |conn| {
            Ok(rows(conn, &q::token_by_id(), [&id], token_row)?
                .into_iter()
                .next())
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.read(|conn| {
            Ok(rows(conn, &q::all_tokens(), [], token_row)?
                .into_iter()
                .map(|(t, _)| t)
                .collect())
        })
        .await
    }

    async fn revoke_token(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.write(move |conn| Ok(exec(conn, q::REVOKE_TOKEN, [&name])? == 1))
            .await
    }

    async fn record_audit(&self, e: NewAuditEntry) -> Result<()> {
        self.write(move |conn| {
            exec(
                conn,
                q::INSERT_AUDIT,
                params![e.actor, e.action, e.target, e.address, e.outcome, e.detail],
            )
            .map(drop)
        })
        .await
    }

    async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let sql = q::audit(f.actor.is_some(), f.target.is_some(), f.before.is_some());
        let (actor, target) = (
            f.actor.clone().unwrap_or_default(),
            f.target.clone().unwrap_or_default(),
        );
        let (before, limit) = (f.before.unwrap_or(0), i64::from(f.limit));
        self.read(move |conn| {
            rows(conn, &sql, params![actor, target, before, limit], |r| {
                Ok(AuditEntry {
                    id: get(r, 0)?,
                    at: ms_to_time(get(r, 1)?),
                    actor: get(r, 2)?,
                    action: get(r, 3)?,
                    target: get(r, 4)?,
                    address: get(r, 5)?,
                    outcome: get(r, 6)?,
                    detail: get(r, 7)?,
                })
            })
        })
        .await
    }
}
