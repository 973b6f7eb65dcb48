//! [`RepairStore`] on SQLite.

use rusqlite::{OptionalExtension, Row, params};

use super::super::repairs::{NewRepair, Repair, RepairEnd, RepairState, RepairStore};
use super::{SqliteStore, db, exec, get, json_text, ms_to_time, parse_json, rows, stmt};
use crate::engine::store::Result;
use crate::engine::store::StoreError;
use crate::engine::store::queries as q;

fn repair_row(r: &Row<'_>) -> Result<Repair> {
    let state: String = get(r, 9)?;
    Ok(Repair {
        id: get(r, 0)?,
        contract_id: get(r, 1)?,
        revision: get::<i64>(r, 2)? as u32,
        kind: get(r, 3)?,
        key: get(r, 4)?,
        adapter: get(r, 5)?,
        spec: parse_json("repair spec", &get::<String>(r, 6)?)?,
        reason: get(r, 7)?,
        requested_by: get(r, 8)?,
        state: RepairState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("repair state {state:?}")))?,
        attempts: get::<i64>(r, 10)? as u32,
        last_error: get(r, 11)?,
        facts: get::<Option<String>>(r, 12)?
            .map(|f| parse_json("repair facts", &f))
            .transpose()?,
        created_at: ms_to_time(get(r, 13)?),
        updated_at: ms_to_time(get(r, 14)?),
    })
}

#[async_trait::async_trait]
impl RepairStore for SqliteStore {
    async fn queue_repair(&self, n: NewRepair) -> Result<bool> {
        self.write(move |conn| {
            stmt(conn, q::QUEUE_REPAIR)?
                .query_row(
                    params![
                        n.id,
                        n.contract_id,
                        i64::from(n.revision),
                        n.kind,
                        n.key,
                        n.adapter,
                        json_text(&n.spec),
                        n.reason,
                        n.requested_by
                    ],
                    |_| Ok(()),
                )
                .optional()
                .map_err(db)
                .map(|r| r.is_some())
        })
        .await
    }

    async fn repairs(
        &self,
        state: Option<RepairState>,
        contract: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Repair>> {
        let state = state.map(|s| s.as_str().to_string()).unwrap_or_default();
        let contract = contract.unwrap_or_default().to_string();
        self.read(move |conn| {
            rows(
                conn,
                &q::repairs_list(),
                params![state, contract, i64::from(limit)],
                repair_row,
            )
        })
        .await
    }

    async fn repair(&self, id: &str) -> Result<Option<Repair>> {
        let id = id.to_string();
        self.read(move |conn| {
            Ok(rows(conn, &q::repair_by_id(), [&id], repair_row)?
                .into_iter()
                .next())
        })
        .await
    }

    async fn start_repair(&self, id: &str) -> Result<Option<u32>> {
        let id = id.to_string();
        self.write(move |conn| {
            stmt(conn, q::START_REPAIR)?
                .query_row([&id], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(db)
                .map(|a| a.map(|a| a as u32))
        })
        .await
    }

    async fn end_repair(&self, e: RepairEnd) -> Result<()> {
        let sealed: Vec<(String, String, Vec<u8>)> = e
            .secrets
            .iter()
            .map(|(name, secret)| {
                let (key_id, sealed) = self.keys.seal(&e.id, name, secret);
                (name.clone(), key_id, sealed)
            })
            .collect();
        self.write(move |conn| {
            for (name, key_id, value) in &sealed {
                exec(conn, q::UPSERT_SECRET, params![e.id, name, key_id, value])?;
            }
            let (state, error, facts) = match &e.outcome {
                Ok(f) => (RepairState::Succeeded, None, Some(json_text(f))),
                Err(m) => (RepairState::Failed, Some(m.clone()), None),
            };
            exec(
                conn,
                q::END_REPAIR,
                params![e.id, state.as_str(), error, facts],
            )?;
            exec(
                conn,
                q::INSERT_REPAIR_ATTEMPT,
                params![
                    e.id,
                    i64::from(e.attempt),
                    e.worker,
                    e.started_at.timestamp_millis(),
                    state.as_str(),
                    error
                ],
            )
            .map(drop)
        })
        .await
    }

    async fn rerun_repair(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.write(move |conn| Ok(exec(conn, q::RERUN_REPAIR, [&id])? == 1))
            .await
    }
}
