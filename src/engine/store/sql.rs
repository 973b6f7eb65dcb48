//! The job store on PostgreSQL (sqlx), for several workers on several
//! machines. The SQL text is shared with the SQLite store (`queries.rs`);
//! what is PostgreSQL's own: claims lock their row with
//! `FOR UPDATE SKIP LOCKED`, intake serialises per contract with an advisory
//! lock, and migrations run under an advisory lock. Timestamps are unix
//! milliseconds from the *database* clock, so leases mean the same to every
//! worker whatever its own clock says.
//!
//! Round trips are what a job costs here (the server is a network hop away):
//! the lease check is folded into each write's first UPDATE, the plan's steps
//! are one INSERT, resources and secrets are upserts, and a claim returns
//! what the worker needs.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row};

use super::queries::{self as q, Dialect};
use super::*;
use crate::engine::claims::{Space, overlaps};

const D: Dialect = Dialect::Postgres;

/// A shared query in PostgreSQL's spelling. The texts are our constants
/// (never input): values always travel as bind parameters.
fn pg(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(D.render(sql).into_owned())
}

pub struct SqlStore {
    pool: PgPool,
    keys: SecretKeys,
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Postgres(e)
}

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("store values serialize")
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

type Conn = sqlx::PgConnection;

/// `LeaseLost` or `JobNotFound` for a write the lease check refused.
async fn lease_error(conn: &mut Conn, job_id: &str) -> StoreError {
    match sqlx::query(pg(q::JOB_EXISTS))
        .bind(job_id)
        .fetch_optional(conn)
        .await
    {
        Ok(Some(_)) => StoreError::LeaseLost(job_id.to_string()),
        Ok(None) => StoreError::JobNotFound(job_id.to_string()),
        Err(e) => db(e),
    }
}

/// The worker's lease check, folded into a write of the job row (which it
/// locks until commit); returns the job's contract.
async fn touch_leased(conn: &mut Conn, job_id: &str, worker: &str) -> Result<String> {
    let row = sqlx::query(pg(q::TOUCH_LEASED))
        .bind(job_id)
        .bind(worker)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    match row {
        Some(r) => Ok(r.get(0)),
        None => Err(lease_error(conn, job_id).await),
    }
}

async fn job_state(conn: &mut Conn, job_id: &str) -> Result<JobState> {
    let r = sqlx::query(pg(q::JOB_STATE))
        .bind(job_id)
        .fetch_optional(conn)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::JobNotFound(job_id.to_string()))?;
    JobState::parse(&r.get::<String, _>(0)).ok_or_else(|| StoreError::Corrupt("job state".into()))
}

async fn steps_of(conn: &mut Conn, job_id: &str) -> Result<Vec<StepRecord>> {
    let rows = sqlx::query(pg(q::STEPS_OF))
        .bind(job_id)
        .fetch_all(conn)
        .await
        .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(StepRecord {
                index: r.get::<i64, _>(0) as u32,
                step: parse_json("step", &r.get::<String, _>(1))?,
                state: StepState::parse(&r.get::<String, _>(2))
                    .ok_or_else(|| StoreError::Corrupt("step state".into()))?,
                attempts: r.get::<i64, _>(3) as u32,
                last_error: r.get(4),
                facts: r
                    .get::<Option<String>, _>(5)
                    .map(|f| parse_json("facts", &f))
                    .transpose()?,
            })
        })
        .collect()
}

fn summary(r: &PgRow) -> Result<JobSummary> {
    Ok(JobSummary {
        job_id: r.get(0),
        contract_id: r.get(1),
        revision: r.get::<i64, _>(2) as u32,
        state: JobState::parse(&r.get::<String, _>(3))
            .ok_or_else(|| StoreError::Corrupt("job state".into()))?,
        created_at: ms_to_time(r.get(4)),
        updated_at: ms_to_time(r.get(5)),
        error: r.get(6),
        steps_total: r.get::<i64, _>(7) as u32,
        steps_done: r.get::<i64, _>(8) as u32,
        move_to: r.get(9),
    })
}

fn stored_revision(r: &PgRow) -> StoredRevision {
    StoredRevision {
        contract_id: r.get(0),
        revision: r.get::<i64, _>(1) as u32,
        payload: r.get(2),
        received_at: ms_to_time(r.get(3)),
    }
}

/// Runs an ops transition of one job (`sql`: an UPDATE guarded by the states
/// it may leave, `$1` the job id); when it matches no row, the refusal names
/// the job's state.
async fn transition(
    conn: &mut Conn,
    sql: &'static str,
    job_id: &str,
    action: &'static str,
) -> Result<()> {
    let res = sqlx::query(pg(sql))
        .bind(job_id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    if res.rows_affected() != 1 {
        return Err(StoreError::InvalidTransition {
            job: job_id.to_string(),
            state: job_state(conn, job_id).await?,
            action,
        });
    }
    Ok(())
}

async fn rerun_in(conn: &mut Conn, job_id: &str, actor: &str) -> Result<()> {
    transition(conn, q::RERUN, job_id, "rerun (only failed jobs are)").await?;
    // The failed step gets a fresh retry budget; finished steps stay finished.
    sqlx::query(pg(q::FAILED_STEPS_PENDING))
        .bind(job_id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    log_op(conn, job_id, "rerun", actor).await
}

async fn log_op(conn: &mut Conn, job_id: &str, action: &str, actor: &str) -> Result<()> {
    sqlx::query(pg(q::LOG_OP))
        .bind(job_id)
        .bind(action)
        .bind(actor)
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Why a recording transaction stopped short.
enum Conflict {
    /// A concurrent transaction got there first (a guard matched nothing, a
    /// deadlock, a unique key taken meanwhile): nothing was recorded, and
    /// intake judges the revision again.
    Retry,
    Store(StoreError),
}

impl From<sqlx::Error> for Conflict {
    fn from(e: sqlx::Error) -> Self {
        if retryable(&e) {
            Conflict::Retry
        } else {
            Conflict::Store(db(e))
        }
    }
}

/// Deadlock, serialization failure or a unique key another transaction
/// took while this one ran.
fn retryable(e: &sqlx::Error) -> bool {
    matches!(
        e.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("40P01" | "40001" | "23505")
    )
}

/// Intake's recording step on PostgreSQL (see [`Store::record_revision`]):
/// every check ends in a guarded write or a row lock held to commit, so a
/// concurrent intake either waits for this one or finds its guard moved.
async fn record_pg(
    conn: &mut Conn,
    rev: &NewRevision,
) -> std::result::Result<IntakeOutcome, Conflict> {
    let r = sqlx::query(pg(q::PG_EXISTING_AND_HEAD))
        .bind(&rev.contract_id)
        .bind(i64::from(rev.revision))
        .bind(&rev.payload)
        .fetch_one(&mut *conn)
        .await?;
    if let Some(job_id) = r.get::<Option<String>, _>(0) {
        if r.get::<Option<i32>, _>(5) == Some(1) {
            return Ok(IntakeOutcome::Existing { job_id });
        }
        // The same revision with other content: immutable.
        return Ok(IntakeOutcome::Stale {
            latest: rev.revision,
        });
    }
    let head = r.get::<Option<i64>, _>(1).map(|revision| Head {
        revision: revision as u32,
        customer_id: r.get(2),
        service: r.get(3),
        active: r.get::<i64, _>(4) != 0,
    });
    let latest = head.as_ref().map(|h| h.revision);
    if let Some(l) = latest
        && l >= rev.revision
    {
        return Ok(IntakeOutcome::Stale { latest: l });
    }
    if latest != rev.judged.latest {
        return Ok(IntakeOutcome::Changed);
    }
    // The head first: a concurrent revision of this contract waits here.
    let sql = if head.is_some() {
        q::MOVE_HEAD
    } else {
        q::INSERT_HEAD
    };
    let mut write_head = sqlx::query(pg(sql))
        .bind(&rev.contract_id)
        .bind(&rev.customer_id)
        .bind(i64::from(rev.revision))
        .bind(&rev.service)
        .bind(rev.active as i64);
    if let Some(h) = &head {
        write_head = write_head.bind(i64::from(h.revision));
    }
    let moved = write_head.fetch_optional(&mut *conn).await?;
    if moved.is_none() {
        return Err(Conflict::Retry);
    }
    let moves = rev.moves_customers(head.as_ref());
    let own = if moves.contains(&rev.customer_id.as_str()) {
        if rev.judged.customer_version == 0 {
            sqlx::query(pg(q::PG_NEW_CUSTOMER)).bind(&rev.customer_id)
        } else {
            sqlx::query(pg(q::PG_MOVE_CUSTOMER))
                .bind(&rev.customer_id)
                .bind(rev.judged.customer_version)
        }
    } else {
        sqlx::query(pg(q::PG_HOLD_CUSTOMER))
            .bind(&rev.customer_id)
            .bind(rev.judged.customer_version)
    }
    .fetch_optional(&mut *conn)
    .await?;
    if own.is_none() {
        return Err(Conflict::Retry);
    }
    for other in moves.iter().filter(|c| **c != rev.customer_id) {
        sqlx::query(pg(q::BUMP_CUSTOMER))
            .bind(*other)
            .execute(&mut *conn)
            .await?;
    }
    if head
        .as_ref()
        .is_some_and(|h| h.customer_id != rev.customer_id)
    {
        sqlx::query(pg(q::DOMAINS_TO_CUSTOMER))
            .bind(&rev.contract_id)
            .bind(&rev.customer_id)
            .execute(&mut *conn)
            .await?;
    }
    let (names, domains) = claim_pg(
        conn,
        &rev.contract_id,
        &rev.customer_id,
        rev.revision,
        &rev.claims,
        false,
    )
    .await?;
    if !names.is_empty() || !domains.is_empty() {
        return Ok(IntakeOutcome::Taken { names, domains });
    }
    let job_id = uuid::Uuid::new_v4().to_string();
    sqlx::query(pg(q::PG_INSERT_REVISION))
        .bind(&rev.contract_id)
        .bind(i64::from(rev.revision))
        .bind(&rev.customer_id)
        .bind(&rev.service)
        .bind(rev.active as i64)
        .bind(&rev.envelope)
        .bind(&rev.payload)
        .bind(rev.received_at.timestamp_millis())
        .bind(&job_id)
        .execute(&mut *conn)
        .await?;
    Ok(IntakeOutcome::Created { job_id })
}

/// Claims `claims` for the contract at `revision`; answers what others
/// hold. Domains are judged under a lock per registrable domain (held to
/// commit); names by their unique key. Unless `adopt`, nothing is claimed
/// when anything is taken (and the caller rolls back what this wrote);
/// with `adopt`, the free ones are.
async fn claim_pg(
    conn: &mut Conn,
    contract_id: &str,
    customer_id: &str,
    revision: u32,
    claims: &Claims,
    adopt: bool,
) -> std::result::Result<(Vec<Claim>, Vec<String>), Conflict> {
    if !claims.domains.is_empty() {
        let bases: Vec<&str> = claims.domains.iter().map(|d| base_of(d)).collect();
        sqlx::query(pg(q::PG_LOCK_BASES))
            .bind(&bases)
            .execute(&mut *conn)
            .await?;
    }
    let taken_domains = domains_held_by_others(conn, contract_id, customer_id, claims).await?;
    let (spaces, names): (Vec<&str>, Vec<&str>) = claims
        .names
        .iter()
        .map(|c| (c.space.as_str(), c.name.as_str()))
        .unzip();
    let claimed: Vec<(String, String)> = if names.is_empty() {
        Vec::new()
    } else {
        sqlx::query(pg(q::PG_CLAIM_NAMES))
            .bind(&spaces)
            .bind(&names)
            .bind(contract_id)
            .bind(i64::from(revision))
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let taken_names: Vec<Claim> = claims
        .names
        .iter()
        .filter(|c| {
            !claimed
                .iter()
                .any(|(s, n)| s == c.space.as_str() && *n == c.name)
        })
        .cloned()
        .collect();
    if !adopt && (!taken_names.is_empty() || !taken_domains.is_empty()) {
        return Ok((taken_names, taken_domains));
    }
    let (free, bases): (Vec<&str>, Vec<&str>) = claims
        .domains
        .iter()
        .filter(|d| !taken_domains.contains(d))
        .map(|d| (d.as_str(), base_of(d)))
        .unzip();
    if !free.is_empty() {
        sqlx::query(pg(q::PG_CLAIM_DOMAINS))
            .bind(&free)
            .bind(&bases)
            .bind(contract_id)
            .bind(customer_id)
            .bind(i64::from(revision))
            .execute(&mut *conn)
            .await?;
    }
    Ok((taken_names, taken_domains))
}

/// The domains of `claims` other customers hold (same name, above or
/// below it).
async fn domains_held_by_others(
    conn: &mut Conn,
    contract_id: &str,
    customer_id: &str,
    claims: &Claims,
) -> std::result::Result<Vec<String>, sqlx::Error> {
    if claims.domains.is_empty() {
        return Ok(Vec::new());
    }
    let bases: Vec<&str> = claims.domains.iter().map(|d| base_of(d)).collect();
    let held: Vec<String> = sqlx::query(pg(q::PG_DOMAINS_UNDER))
        .bind(&bases)
        .bind(customer_id)
        .bind(contract_id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(claims
        .domains
        .iter()
        .filter(|d| held.iter().any(|h| overlaps(h, d)))
        .cloned()
        .collect())
}

/// `Err(NotOwner)` unless `contract_id` owns every name of `owned`.
async fn owned_pg(conn: &mut Conn, contract_id: &str, owned: &[Claim]) -> Result<()> {
    if owned.is_empty() {
        return Ok(());
    }
    let (spaces, names): (Vec<&str>, Vec<&str>) = owned
        .iter()
        .map(|c| (c.space.as_str(), c.name.as_str()))
        .unzip();
    let not_owned = sqlx::query(pg(q::PG_NOT_OWNED))
        .bind(&spaces)
        .bind(&names)
        .bind(contract_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    match not_owned {
        None => Ok(()),
        Some(r) => {
            let space: String = r.get(0);
            Err(StoreError::NotOwner {
                contract: contract_id.to_string(),
                claim: Claim::new(
                    Space::parse(&space)
                        .ok_or_else(|| StoreError::Corrupt("claim space".into()))?,
                    r.get::<String, _>(1),
                ),
            })
        }
    }
}

impl SqlStore {
    /// Connects to PostgreSQL and migrates the database.
    pub async fn connect_postgres(
        url: &str,
        max_connections: u32,
        keys: SecretKeys,
    ) -> Result<SqlStore> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(db)?;
        let store = SqlStore { pool, keys };
        store.migrate().await?;
        store.seal_at_rest().await?;
        Ok(store)
    }

    /// Seals the clear-text secrets a store older than migration 0003
    /// holds, and re-seals under the current key what older keys sealed
    /// (rotation), in one transaction.
    async fn seal_at_rest(&self) -> Result<()> {
        let mut tx = self.begin().await?;
        let unsealed: Option<String> = sqlx::query("SELECT to_regclass('secrets_unsealed')::text")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?
            .get(0);
        let mut rows: Vec<(String, String, Secret)> = Vec::new();
        if unsealed.is_some() {
            for r in sqlx::query(q::UNSEALED_SECRETS)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?
            {
                rows.push((r.get(0), r.get(1), Secret::new(r.get::<String, _>(2))));
            }
            sqlx::query(q::DROP_UNSEALED_SECRETS)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        for r in sqlx::query(pg(q::SECRETS_UNDER_OLD_KEYS))
            .bind(self.keys.current_id())
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
        {
            let (job, name, key_id): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            let secret = self
                .keys
                .open(&key_id, &job, &name, &r.get::<Vec<u8>, _>(3))?;
            rows.push((job, name, secret));
        }
        for (job, name, secret) in rows {
            let (key_id, sealed) = self.keys.seal(&job, &name, &secret);
            sqlx::query(pg(q::UPSERT_SECRET))
                .bind(job)
                .bind(name)
                .bind(key_id)
                .bind(sealed)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    /// Applies the migrations this build ships that the database lacks,
    /// under an advisory lock so concurrent starts are safe.
    async fn migrate(&self) -> Result<()> {
        let mig = |e: sqlx::Error| StoreError::Migration(e.to_string());
        let mut conn = self.pool.acquire().await.map_err(mig)?;
        sqlx::query("SELECT pg_advisory_lock(7242024)")
            .execute(&mut *conn)
            .await
            .map_err(mig)?;
        let res = async {
            sqlx::query(q::MIGRATIONS_TABLE)
                .execute(&mut *conn)
                .await
                .map_err(mig)?;
            sqlx::query(q::ADD_CHECKSUM_COLUMN_POSTGRES)
                .execute(&mut *conn)
                .await
                .map_err(mig)?;
            let recorded: Vec<(i64, Option<String>)> = sqlx::query(q::APPLIED_MIGRATIONS)
                .fetch_all(&mut *conn)
                .await
                .map_err(mig)?
                .iter()
                .map(|r| (r.get::<i64, _>(0), r.get::<Option<String>, _>(1)))
                .collect();
            // A newer or changed schema is refused before anything is applied.
            for (version, sum) in super::migrate::check_applied(q::MIGRATIONS_POSTGRES, &recorded)?
            {
                sqlx::query(pg(q::BACKFILL_CHECKSUM))
                    .bind(version)
                    .bind(sum)
                    .execute(&mut *conn)
                    .await
                    .map_err(mig)?;
            }
            let applied: Vec<i64> = recorded.iter().map(|(v, _)| *v).collect();
            for (version, sql) in q::MIGRATIONS_POSTGRES {
                if applied.contains(version) {
                    continue;
                }
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(mig)?;
                let step = async {
                    sqlx::raw_sql(*sql).execute(&mut *tx).await?;
                    sqlx::query(pg(q::RECORD_MIGRATION))
                        .bind(*version)
                        .bind(super::migrate::checksum(sql))
                        .execute(&mut *tx)
                        .await?;
                    Ok::<_, sqlx::Error>(())
                }
                .await;
                match step {
                    Ok(()) => tx.commit().await.map_err(mig)?,
                    Err(e) => {
                        let _ = tx.rollback().await;
                        return Err(StoreError::Migration(format!("migration {version}: {e}")));
                    }
                }
            }
            Ok(())
        }
        .await;
        let _ = sqlx::query("SELECT pg_advisory_unlock(7242024)")
            .execute(&mut *conn)
            .await;
        res
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(db)
    }
}

#[async_trait::async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn record_revision(&self, rev: NewRevision) -> Result<IntakeOutcome> {
        let mut tx = self.begin().await?;
        match record_pg(&mut tx, &rev).await {
            Ok(created @ IntakeOutcome::Created { .. }) => match tx.commit().await {
                Ok(()) => Ok(created),
                Err(e) if retryable(&e) => Ok(IntakeOutcome::Changed),
                Err(e) => Err(db(e)),
            },
            // Whatever else was answered recorded nothing.
            Ok(other) => {
                tx.rollback().await.map_err(db)?;
                Ok(other)
            }
            Err(Conflict::Retry) => {
                let _ = tx.rollback().await;
                Ok(IntakeOutcome::Changed)
            }
            Err(Conflict::Store(e)) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn record_rejection(&self, rej: Rejection) -> Result<()> {
        sqlx::query(pg(q::INSERT_REJECTION))
            .bind(rej.contract_id)
            .bind(rej.revision.map(i64::from))
            .bind(rej.kind)
            .bind(json_text(&rej.reasons))
            .bind(rej.received)
            .bind(rej.received_at.timestamp_millis())
            .bind(rej.received_sha256)
            .bind(rej.received_size.map(|n| n as i64))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn intake_view(
        &self,
        contract_id: &str,
        customer_id: &str,
        claims: &Claims,
    ) -> Result<IntakeView> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let r = sqlx::query(pg(q::PG_INTAKE_VIEW))
            .bind(contract_id)
            .bind(customer_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        let customer_version: i64 = r.get::<Option<i64>, _>(0).unwrap_or(0);
        let latest = r
            .get::<Option<String>, _>(1)
            .map(|contract_id| StoredRevision {
                contract_id,
                revision: r.get::<i64, _>(2) as u32,
                payload: r.get(3),
                received_at: ms_to_time(r.get(4)),
            });
        // Read after the version: a change of the customer's contracts in
        // between moved the version on, and recording will say so.
        let others = sqlx::query(pg(q::CUSTOMER_CONTRACTS))
            .bind(customer_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?
            .iter()
            .map(|r| CustomerContract {
                contract_id: r.get(0),
                service: r.get(1),
                active: r.get::<i64, _>(2) != 0,
            })
            .collect();
        let (spaces, names): (Vec<&str>, Vec<&str>) = claims
            .names
            .iter()
            .map(|c| (c.space.as_str(), c.name.as_str()))
            .unzip();
        let mut taken_names = Vec::new();
        if !names.is_empty() {
            for r in sqlx::query(pg(q::PG_OWNED_BY_OTHERS))
                .bind(&spaces)
                .bind(&names)
                .bind(contract_id)
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?
            {
                let space: String = r.get(0);
                if let Some(space) = Space::parse(&space) {
                    taken_names.push(Claim::new(space, r.get::<String, _>(1)));
                }
            }
        }
        let taken_domains = domains_held_by_others(&mut conn, contract_id, customer_id, claims)
            .await
            .map_err(db)?;
        Ok(IntakeView {
            latest,
            others,
            customer_version,
            taken_names,
            taken_domains,
        })
    }

    async fn revisions(&self, contract_id: &str) -> Result<Vec<StoredRevision>> {
        let rows = sqlx::query(pg(q::REVISIONS))
            .bind(contract_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows.iter().map(stored_revision).collect())
    }

    async fn latest_revisions(&self) -> Result<Vec<StoredRevision>> {
        let rows = sqlx::query(pg(q::LATEST_REVISIONS))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows.iter().map(stored_revision).collect())
    }

    async fn adopt_claims(
        &self,
        contract_id: &str,
        customer_id: &str,
        revision: u32,
        claims: &Claims,
    ) -> Result<(Vec<Claim>, Vec<String>)> {
        let mut tx = self.begin().await?;
        let taken = claim_pg(&mut tx, contract_id, customer_id, revision, claims, true).await;
        match taken {
            Ok(t) => {
                tx.commit().await.map_err(db)?;
                Ok(t)
            }
            Err(Conflict::Store(e)) => Err(e),
            Err(Conflict::Retry) => Err(StoreError::Database(
                "adopting claims collided with an intake; start again".into(),
            )),
        }
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query(pg(q::META))
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .map(|r| r.get(0)))
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(pg(q::SET_META))
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn prune_rejections(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        let done = sqlx::query(pg(q::PRUNE_REJECTIONS))
            .bind(before.timestamp_millis())
            .bind(i64::from(batch))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn prune_attempts(
        &self,
        before: DateTime<Utc>,
        after: &str,
        batch: u32,
    ) -> Result<(u64, Option<String>)> {
        let (cutoff, batch) = (before.timestamp_millis(), i64::from(batch));
        let mut tx = self.begin().await?;
        let r = sqlx::query(pg(&q::prune_attempts_batch()))
            .bind(cutoff)
            .bind(batch)
            .bind(after)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let (last, n): (Option<String>, i64) = (r.get(0), r.get(1));
        let done = sqlx::query(pg(&q::prune_attempts()))
            .bind(cutoff)
            .bind(batch)
            .bind(after)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok((done.rows_affected(), last.filter(|_| n == batch)))
    }

    async fn prune_delivered_reports(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        let done = sqlx::query(pg(q::PRUNE_DELIVERED_REPORTS))
            .bind(before.timestamp_millis())
            .bind(i64::from(batch))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<ClaimedJob>> {
        let Some(r) = sqlx::query(pg(&q::pg_claim()))
            .bind(worker)
            .bind(lease.as_millis() as i64)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let (id, contract_id, revision, planned, payload): (String, String, i64, i64, Vec<u8>) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let move_to: Option<String> = r.get(5);
        // Only a job planned before can have attempts a dead worker left
        // open, or steps left running: tidied as the new lease holder, in a
        // transaction that only commits while that lease holds.
        let plan = if planned != 0 {
            let mut tx = self.begin().await?;
            touch_leased(&mut tx, &id, worker).await?;
            let abandoned = json_text(&AttemptOutcome::Abandoned {
                error: "worker lost its lease mid-attempt".into(),
            });
            sqlx::query(pg(q::ABANDON_OPEN_ATTEMPTS))
                .bind(abandoned)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query(pg(q::RUNNING_STEPS_PENDING))
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let steps = steps_of(&mut tx, &id).await?;
            tx.commit().await.map_err(db)?;
            Some(steps)
        } else {
            None
        };
        Ok(Some(ClaimedJob {
            job_id: id,
            contract_id,
            revision: revision as u32,
            payload,
            plan,
            move_to,
        }))
    }

    async fn heartbeat(&self, job_id: &str, worker: &str, lease: Duration) -> Result<()> {
        let res = sqlx::query(pg(q::HEARTBEAT))
            .bind(job_id)
            .bind(worker)
            .bind(lease.as_millis() as i64)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if res.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost(job_id.to_string()))
        }
    }

    async fn set_plan(
        &self,
        job_id: &str,
        worker: &str,
        steps: &[PlannedStep],
        start: &[u32],
        owned: &[Claim],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let res = sqlx::query(pg(q::MARK_PLANNED))
            .bind(job_id)
            .bind(worker)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if res.rows_affected() != 1 {
            let held = sqlx::query(pg(q::LEASE_HELD))
                .bind(job_id)
                .bind(worker)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            return Err(match held {
                Some(_) => StoreError::InvalidTransition {
                    job: job_id.to_string(),
                    state: JobState::Running,
                    action: "planned twice",
                },
                None => lease_error(&mut tx, job_id).await,
            });
        }
        let contract_id: String = sqlx::query(pg(q::CONTRACT_OF_JOB))
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?
            .get(0);
        owned_pg(&mut tx, &contract_id, owned).await?;
        if !steps.is_empty() {
            let sql = q::insert_steps(steps.len());
            let mut insert = sqlx::query(pg(&sql)).bind(job_id);
            for (i, s) in steps.iter().enumerate() {
                insert = insert.bind(i as i64).bind(json_text(s));
            }
            insert.execute(&mut *tx).await.map_err(db)?;
            if !start.is_empty() {
                let start: Vec<i64> = start.iter().map(|&i| i64::from(i)).collect();
                sqlx::query(pg(q::PG_START_FIRST_ATTEMPTS))
                    .bind(job_id)
                    .bind(worker)
                    .bind(start)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn attempt_started(
        &self,
        job_id: &str,
        worker: &str,
        step_index: u32,
        attempt: u32,
        owned: &[Claim],
    ) -> Result<()> {
        if !owned.is_empty() {
            // A removal: the ownership check and the journal entry in one
            // transaction (the job row stays locked from the lease check on).
            let mut tx = self.begin().await?;
            let contract_id = touch_leased(&mut tx, job_id, worker).await?;
            owned_pg(&mut tx, &contract_id, owned).await?;
            sqlx::query(pg(q::INSERT_ATTEMPT))
                .bind(job_id)
                .bind(i64::from(step_index))
                .bind(i64::from(attempt))
                .bind(worker)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query(pg(q::STEP_RUNNING))
                .bind(i64::from(attempt))
                .bind(job_id)
                .bind(i64::from(step_index))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            return tx.commit().await.map_err(db);
        }
        let matched: i64 = sqlx::query(pg(q::PG_ATTEMPT_STARTED))
            .bind(job_id)
            .bind(worker)
            .bind(i64::from(step_index))
            .bind(i64::from(attempt))
            .fetch_one(&self.pool)
            .await
            .map_err(db)?
            .get(0);
        if matched != 1 {
            let mut conn = self.pool.acquire().await.map_err(db)?;
            return Err(lease_error(&mut conn, job_id).await);
        }
        Ok(())
    }

    async fn attempt_failed(
        &self,
        job_id: &str,
        worker: &str,
        step_index: u32,
        attempt: u32,
        outcome: AttemptOutcome,
        duration: Duration,
    ) -> Result<()> {
        let (error, step_state) = outcome.step_after();
        let step_state = step_state.as_str();
        let mut tx = self.begin().await?;
        touch_leased(&mut tx, job_id, worker).await?;
        sqlx::query(pg(q::END_ATTEMPT))
            .bind(json_text(&outcome))
            .bind(duration.as_millis() as i64)
            .bind(job_id)
            .bind(i64::from(step_index))
            .bind(i64::from(attempt))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(pg(q::STEP_NOT_DONE))
            .bind(step_state)
            .bind(error)
            .bind(job_id)
            .bind(i64::from(step_index))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn step_succeeded(
        &self,
        job_id: &str,
        worker: &str,
        step_index: u32,
        attempt: u32,
        success: StepSuccess,
    ) -> Result<()> {
        let StepSuccess {
            duration,
            facts,
            change,
            secrets,
            then_start,
        } = success;
        let (kind, key, upsert, adapter, spec, rfacts) = match change {
            ResourceChange::Upsert(r) => (
                r.kind,
                r.key,
                true,
                r.adapter,
                json_text(&r.spec),
                json_text(&r.facts),
            ),
            ResourceChange::Delete { kind, key } => (
                kind,
                key,
                false,
                String::new(),
                String::new(),
                String::new(),
            ),
            // A deletion of kind "" matches nothing: no playbook kind is
            // empty.
            ResourceChange::Keep => (
                String::new(),
                String::new(),
                false,
                String::new(),
                String::new(),
                String::new(),
            ),
        };
        let mut names = Vec::with_capacity(secrets.len());
        let mut key_ids = Vec::with_capacity(secrets.len());
        let mut values = Vec::with_capacity(secrets.len());
        for (name, secret) in &secrets {
            let (key_id, sealed) = self.keys.seal(job_id, name, secret);
            names.push(name.clone());
            key_ids.push(key_id);
            values.push(sealed);
        }
        let matched: i64 = sqlx::query(pg(q::PG_STEP_SUCCEEDED))
            .bind(job_id)
            .bind(worker)
            .bind(i64::from(step_index))
            .bind(i64::from(attempt))
            .bind(json_text(&AttemptOutcome::Succeeded))
            .bind(duration.as_millis() as i64)
            .bind(json_text(&facts))
            .bind(kind)
            .bind(key)
            .bind(upsert)
            .bind(adapter)
            .bind(spec)
            .bind(rfacts)
            .bind(names)
            .bind(values)
            .bind(
                then_start
                    .iter()
                    .map(|&(i, _)| i64::from(i))
                    .collect::<Vec<_>>(),
            )
            .bind(
                then_start
                    .iter()
                    .map(|&(_, a)| i64::from(a))
                    .collect::<Vec<_>>(),
            )
            .bind(key_ids)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?
            .get(0);
        if matched != 1 {
            let mut conn = self.pool.acquire().await.map_err(db)?;
            return Err(lease_error(&mut conn, job_id).await);
        }
        Ok(())
    }

    async fn finish_job(&self, job_id: &str, worker: &str, end: JobEnd) -> Result<()> {
        let (step_index, error, notify) = match end {
            JobEnd::Succeeded {
                result,
                outbox,
                keep,
                notify,
            } => {
                let keep_names: Vec<String> = keep
                    .names
                    .iter()
                    .map(|c| format!("{} {}", c.space.as_str(), c.name))
                    .collect();
                let keep_domains: Vec<&str> = keep.domains.iter().map(String::as_str).collect();
                let query = sqlx::query(pg(q::PG_JOB_SUCCEEDED))
                    .bind(json_text(&result))
                    .bind(job_id)
                    .bind(worker)
                    .bind(&outbox.idempotency_key)
                    .bind(&outbox.contract_id)
                    .bind(&outbox.body)
                    .bind(keep_names)
                    .bind(keep_domains);
                if notify.is_empty() {
                    // The common case stays one statement.
                    let matched: i64 = query.fetch_one(&self.pool).await.map_err(db)?.get(0);
                    if matched != 1 {
                        let mut conn = self.pool.acquire().await.map_err(db)?;
                        return Err(lease_error(&mut conn, job_id).await);
                    }
                    return Ok(());
                }
                let mut tx = self.begin().await?;
                let matched: i64 = query.fetch_one(&mut *tx).await.map_err(db)?.get(0);
                if matched != 1 {
                    return Err(lease_error(&mut tx, job_id).await);
                }
                insert_notifications(&mut tx, &notify).await?;
                tx.commit().await.map_err(db)?;
                return Ok(());
            }
            JobEnd::Failed {
                step_index,
                error,
                notify,
            } => (step_index, error, notify),
        };
        let mut tx = self.begin().await?;
        insert_notifications(&mut tx, &notify).await?;
        let res = sqlx::query(pg(q::JOB_FAILED))
            .bind(error)
            .bind(step_index.map(i64::from))
            .bind(job_id)
            .bind(worker)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if res.rows_affected() != 1 {
            return Err(lease_error(&mut tx, job_id).await);
        }
        // A step that ran out of its retry budget ends failed, not pending:
        // it is where a rerun will resume.
        if let Some(idx) = step_index {
            sqlx::query(pg(q::STEP_FAILED))
                .bind(job_id)
                .bind(i64::from(idx))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn release_job(&self, job_id: &str, worker: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let res = sqlx::query(pg(q::RELEASE))
            .bind(job_id)
            .bind(worker)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if res.rows_affected() != 1 {
            return Err(StoreError::LeaseLost(job_id.to_string()));
        }
        sqlx::query(pg(q::RUNNING_STEPS_PENDING))
            .bind(job_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn resources(&self, contract_id: &str) -> Result<Vec<RecordedResource>> {
        let rows = sqlx::query(pg(q::RESOURCES_OF))
            .bind(contract_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(RecordedResource {
                    kind: r.get(0),
                    key: r.get(1),
                    adapter: r.get(2),
                    spec: parse_json("spec", &r.get::<String, _>(3))?,
                    facts: parse_json("facts", &r.get::<String, _>(4))?,
                })
            })
            .collect()
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobSummary>> {
        let sql = q::list_jobs(filter.state.is_some(), filter.contract_id.is_some());
        let rows = sqlx::query(pg(&sql))
            .bind(filter.state.map(|s| s.as_str()).unwrap_or(""))
            .bind(filter.contract_id.clone().unwrap_or_default())
            .bind(i64::from(filter.limit.unwrap_or(100).min(MAX_LIST_JOBS)))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(summary).collect()
    }

    async fn job(&self, job_id: &str) -> Result<Option<JobDetail>> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let Some(r) = sqlx::query(pg(&q::job_summary()))
            .bind(job_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let summary = summary(&r)?;
        let extra = sqlx::query(pg(q::JOB_EXTRA))
            .bind(job_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        let steps = steps_of(&mut conn, job_id).await?;
        let attempts = sqlx::query(pg(q::ATTEMPTS_OF))
            .bind(job_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?
            .iter()
            .map(|a| {
                Ok(AttemptRecord {
                    step_index: a.get::<i64, _>(0) as u32,
                    attempt: a.get::<i64, _>(1) as u32,
                    worker: a.get(2),
                    started_at: ms_to_time(a.get(3)),
                    finished_at: a.get::<Option<i64>, _>(4).map(ms_to_time),
                    outcome: a
                        .get::<Option<String>, _>(5)
                        .map(|o| parse_json("outcome", &o))
                        .transpose()?,
                    duration_ms: a.get::<Option<i64>, _>(6).map(|d| d as u64),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ops = sqlx::query(pg(q::OPS_OF))
            .bind(job_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?
            .iter()
            .map(|o| OpsEvent {
                action: o.get(0),
                actor: o.get(1),
                at: ms_to_time(o.get(2)),
            })
            .collect();
        Ok(Some(JobDetail {
            summary,
            lease_owner: extra.get(0),
            steps,
            attempts,
            ops,
            result: extra
                .get::<Option<String>, _>(1)
                .map(|r| parse_json("result", &r))
                .transpose()?,
        }))
    }

    async fn rerun(&self, job_id: &str, actor: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        rerun_in(&mut tx, job_id, actor).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn rerun_failed(&self, actor: &str) -> Result<Vec<String>> {
        let ids: Vec<String> = sqlx::query(q::FAILED_JOBS)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut done = Vec::new();
        for id in ids {
            match self.rerun(&id, actor).await {
                Ok(()) => done.push(id),
                // Someone else reran or cancelled it meanwhile.
                Err(StoreError::InvalidTransition { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    async fn cancel(&self, job_id: &str, actor: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        transition(&mut tx, q::CANCEL, job_id, "cancelled").await?;
        log_op(&mut tx, job_id, "cancel", actor).await?;
        // Nobody will take them now.
        sqlx::query(pg(q::DELETE_SECRETS))
            .bind(job_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn take_secrets(&self, job_id: &str, actor: &str) -> Result<BTreeMap<String, Secret>> {
        let mut tx = self.begin().await?;
        if sqlx::query(pg(q::SECRETS_OWNER))
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .is_none()
        {
            return Err(StoreError::JobNotFound(job_id.to_string()));
        }
        let rows = sqlx::query(pg(q::SECRETS_OF))
            .bind(job_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        // Opened before they are deleted: a secret that cannot be opened
        // (its key is gone) fails the take and stays.
        let secrets = rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                let secret = self.keys.open(
                    &r.get::<String, _>(1),
                    job_id,
                    &name,
                    &r.get::<Vec<u8>, _>(2),
                )?;
                Ok((name, secret))
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        sqlx::query(pg(q::DELETE_SECRETS))
            .bind(job_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        log_op(&mut tx, job_id, &secrets_taken(secrets.len()), actor).await?;
        tx.commit().await.map_err(db)?;
        Ok(secrets)
    }

    async fn stats(&self) -> Result<StoreStats> {
        let rows = sqlx::query(q::JOBS_BY_STATE)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let backlog: i64 = sqlx::query(q::OUTBOX_BACKLOG)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?
            .get(0);
        let notify: i64 = sqlx::query(q::NOTIFICATIONS_BACKLOG)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?
            .get(0);
        let oldest = sqlx::query(q::OLDEST_WAITING)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let mut stats = StoreStats {
            jobs_by_state: rows
                .iter()
                .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1) as u64))
                .collect(),
            outbox_backlog: backlog as u64,
            notify_backlog: notify as u64,
            ..StoreStats::default()
        };
        stats.set_oldest(oldest.iter().map(|r| {
            (
                r.get::<String, _>(0),
                r.get::<i64, _>(1),
                r.get::<i64, _>(2),
            )
        }));
        Ok(stats)
    }

    async fn outbox_due(&self, limit: u32) -> Result<Vec<OutboxItem>> {
        let rows = sqlx::query(pg(q::OUTBOX_DUE))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| OutboxItem {
                id: r.get(0),
                idempotency_key: r.get(1),
                contract_id: r.get(2),
                body: r.get(3),
                attempts: r.get::<i64, _>(4) as u32,
            })
            .collect())
    }

    async fn outbox_delivered(&self, id: i64) -> Result<()> {
        sqlx::query(pg(q::OUTBOX_DELIVERED))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn outbox_retry_later(&self, id: i64, error: &str, after: Duration) -> Result<()> {
        sqlx::query(pg(q::OUTBOX_RETRY_LATER))
            .bind(error)
            .bind(after.as_millis() as i64)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn enqueue_notification(&self, n: NewNotification) -> Result<()> {
        sqlx::query(pg(q::INSERT_NOTIFICATION))
            .bind(&n.idempotency_key)
            .bind(&n.event)
            .bind(&n.body)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn notifications_due(&self, limit: u32) -> Result<Vec<NotificationItem>> {
        let rows = sqlx::query(pg(q::NOTIFICATIONS_DUE))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| NotificationItem {
                id: r.get(0),
                idempotency_key: r.get(1),
                event: r.get(2),
                body: r.get(3),
                attempts: r.get::<i64, _>(4) as u32,
            })
            .collect())
    }

    async fn notification_delivered(&self, id: i64) -> Result<()> {
        sqlx::query(pg(q::NOTIFICATION_DELIVERED))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn notification_retry_later(&self, id: i64, error: &str, after: Duration) -> Result<()> {
        sqlx::query(pg(q::NOTIFICATION_RETRY_LATER))
            .bind(error)
            .bind(after.as_millis() as i64)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn contract_ids(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(pg(q::CONTRACT_IDS))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn latest_statement(
        &self,
        contract_id: &str,
        month: &str,
    ) -> Result<Option<ClosedStatement>> {
        sqlx::query(pg(&q::latest_statement()))
            .bind(contract_id)
            .bind(month)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(closed_statement)
            .transpose()
    }

    async fn statements_of_month(&self, month: &str) -> Result<Vec<ClosedStatement>> {
        let rows = sqlx::query(pg(&q::statements_of_month()))
            .bind(month)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(closed_statement).collect()
    }

    async fn insert_statement(&self, st: ClosedStatement, report: NewOutboxItem) -> Result<bool> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(pg(q::INSERT_STATEMENT))
            .bind(&st.contract_id)
            .bind(&st.month)
            .bind(i64::from(st.version))
            .bind(st.replaces.map(i64::from))
            .bind(&st.customer_id)
            .bind(i64::from(st.based_on_revision))
            .bind(&st.content)
            .bind(json_text(&st.statement))
            .bind(&st.total)
            .bind(&st.idempotency_key)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected()
            == 1;
        if inserted {
            sqlx::query(pg(q::INSERT_OUTBOX))
                .bind(&report.idempotency_key)
                .bind(&report.contract_id)
                .bind(&report.body)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(inserted)
    }
}

fn closed_statement(r: &PgRow) -> Result<ClosedStatement> {
    Ok(ClosedStatement {
        contract_id: r.get(0),
        month: r.get(1),
        version: r.get::<i64, _>(2) as u32,
        replaces: r.get::<Option<i64>, _>(3).map(|v| v as u32),
        customer_id: r.get(4),
        based_on_revision: r.get::<i64, _>(5) as u32,
        content: r.get(6),
        statement: parse_json("statement", &r.get::<String, _>(7))?,
        total: r.get(8),
        idempotency_key: r.get(9),
        closed_at: ms_to_time(r.get(10)),
    })
}

mod fleet;
mod ops;

/// Queues notifications in the transaction of what they announce.
async fn insert_notifications(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    notify: &[NewNotification],
) -> Result<()> {
    for n in notify {
        sqlx::query(pg(q::INSERT_NOTIFICATION))
            .bind(&n.idempotency_key)
            .bind(&n.event)
            .bind(&n.body)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    }
    Ok(())
}

mod repairs;
