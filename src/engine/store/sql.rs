//! The job store on SQL: one implementation, two dialects.
//!
//! SQLite is the embedded default (a file in the data directory, WAL);
//! PostgreSQL serves several workers on several machines. Queries are written
//! once, through sqlx's `Any` driver, with the few dialect differences kept in
//! [`Dialect`]: the clock expression, and how a claim is made exclusive
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` — one writer at
//! a time — on SQLite). Timestamps are unix milliseconds from the *database*
//! clock, so leases mean the same to every worker whatever its own clock says.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::*;

/// Builds SQL text from our own constants (dialect fragments, never input):
/// values always travel as bind parameters.
macro_rules! safe {
    ($($t:tt)*) => { sqlx::AssertSqlSafe(format!($($t)*)) };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The database clock in unix milliseconds.
    fn now(self) -> &'static str {
        match self {
            Dialect::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Dialect::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }
}

const MIGRATIONS_SQLITE: &[(i64, &str)] =
    &[(1, include_str!("../../../migrations/sqlite/0001_init.sql"))];
const MIGRATIONS_POSTGRES: &[(i64, &str)] = &[(
    1,
    include_str!("../../../migrations/postgres/0001_init.sql"),
)];

pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite allows one writer at a time; serialising claims inside the
    /// process avoids needless SQLITE_BUSY between our own workers.
    claim_lock: tokio::sync::Mutex<()>,
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
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

impl SqlStore {
    /// Opens (creating if needed) a SQLite store at `path`.
    pub async fn open_sqlite(path: &std::path::Path) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let opts = AnyConnectOptions::from_str(&url).map_err(db)?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::raw_sql(
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                         PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
                    )
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(db)?;
        let store = SqlStore {
            pool,
            dialect: Dialect::Sqlite,
            claim_lock: tokio::sync::Mutex::new(()),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to PostgreSQL.
    /// Opens a write transaction. On SQLite it must be `BEGIN IMMEDIATE`: a
    /// deferred transaction that reads and then writes fails at once with
    /// SQLITE_BUSY when another writer committed in between (WAL snapshots
    /// cannot be upgraded), and the busy timeout does not help; taking the
    /// write lock up front makes writers queue on the busy timeout instead.
    async fn begin(
        &self,
    ) -> std::result::Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.pool.begin().await,
        }
    }

    pub async fn connect_postgres(url: &str, max_connections: u32) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(db)?;
        let store = SqlStore {
            pool,
            dialect: Dialect::Postgres,
            claim_lock: tokio::sync::Mutex::new(()),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations this build ships that the database lacks.
    /// On PostgreSQL an advisory lock makes concurrent starts safe.
    async fn migrate(&self) -> Result<()> {
        let mig = |e: sqlx::Error| StoreError::Migration(e.to_string());
        let mut conn = self.pool.acquire().await.map_err(mig)?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_lock(7242024)")
                .execute(&mut *conn)
                .await
                .map_err(mig)?;
        }
        let res = async {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS hw_schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .execute(&mut *conn)
            .await
            .map_err(mig)?;
            let applied: Vec<i64> = sqlx::query("SELECT version FROM hw_schema_migrations")
                .fetch_all(&mut *conn)
                .await
                .map_err(mig)?
                .iter()
                .map(|r| r.get::<i64, _>(0))
                .collect();
            let list = match self.dialect {
                Dialect::Sqlite => MIGRATIONS_SQLITE,
                Dialect::Postgres => MIGRATIONS_POSTGRES,
            };
            for (version, sql) in list {
                if applied.contains(version) {
                    continue;
                }
                sqlx::raw_sql("BEGIN").execute(&mut *conn).await.map_err(mig)?;
                let step = async {
                    sqlx::raw_sql(*sql).execute(&mut *conn).await?;
                    sqlx::query(safe!(
                        "INSERT INTO hw_schema_migrations (version, applied_at) VALUES ($1, {})",
                        self.dialect.now()
                    ))
                    .bind(*version)
                    .execute(&mut *conn)
                    .await?;
                    Ok::<_, sqlx::Error>(())
                }
                .await;
                match step {
                    Ok(()) => {
                        sqlx::raw_sql("COMMIT").execute(&mut *conn).await.map_err(mig)?;
                    }
                    Err(e) => {
                        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                        return Err(StoreError::Migration(format!("migration {version}: {e}")));
                    }
                }
            }
            Ok(())
        }
        .await;
        if self.dialect == Dialect::Postgres {
            let _ = sqlx::query("SELECT pg_advisory_unlock(7242024)")
                .execute(&mut *conn)
                .await;
        }
        res
    }

    fn now(&self) -> &'static str {
        self.dialect.now()
    }

    /// Fails with `LeaseLost` unless `worker` holds a live lease on the job.
    async fn check_lease<'c, E>(&self, ex: E, job_id: &str, worker: &str) -> Result<()>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        let row = sqlx::query("SELECT state, lease_owner FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(ex)
            .await
            .map_err(db)?;
        match row {
            Some(r)
                if r.get::<String, _>(0) == "running"
                    && r.get::<Option<String>, _>(1).as_deref() == Some(worker) =>
            {
                Ok(())
            }
            Some(_) => Err(StoreError::LeaseLost(job_id.to_string())),
            None => Err(StoreError::JobNotFound(job_id.to_string())),
        }
    }

    /// The rows `sql` selects for one key (its only parameter, `$1`), each
    /// made a record by `record`: the shape of most of the store's reads.
    async fn records_by<T>(
        &self,
        sql: &'static str,
        key: &str,
        record: impl Fn(&AnyRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        let rows = sqlx::query(sql)
            .bind(key)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(record).collect()
    }

    async fn steps_of(&self, job_id: &str) -> Result<Vec<StepRecord>> {
        self.records_by(
            "SELECT idx, step, state, attempts, last_error, facts FROM steps WHERE job_id = $1 ORDER BY idx",
            job_id,
            |r| {
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
            },
        )
        .await
    }

    fn summary(r: &AnyRow) -> Result<JobSummary> {
        Ok(JobSummary {
            job_id: r.get("id"),
            contract_id: r.get("contract_id"),
            revision: r.get::<i64, _>("revision") as u32,
            state: JobState::parse(&r.get::<String, _>("state"))
                .ok_or_else(|| StoreError::Corrupt("job state".into()))?,
            created_at: ms_to_time(r.get("created_at")),
            updated_at: ms_to_time(r.get("updated_at")),
            error: r.get("error"),
            steps_total: r.get::<i64, _>("steps_total") as u32,
            steps_done: r.get::<i64, _>("steps_done") as u32,
        })
    }

    const SUMMARY_SELECT: &'static str = "SELECT j.id, j.contract_id, j.revision, j.state, j.created_at, j.updated_at, j.error, \
         (SELECT COUNT(*) FROM steps s WHERE s.job_id = j.id) AS steps_total, \
         (SELECT COUNT(*) FROM steps s WHERE s.job_id = j.id AND s.state = 'succeeded') AS steps_done \
         FROM jobs j";

    async fn log_op(
        &self,
        tx: &mut sqlx::AnyConnection,
        job_id: &str,
        action: &str,
        actor: &str,
    ) -> Result<()> {
        sqlx::query(safe!(
            "INSERT INTO ops_log (job_id, action, actor, at) VALUES ($1, $2, $3, {})",
            self.now()
        ))
        .bind(job_id)
        .bind(action)
        .bind(actor)
        .execute(tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn job_state(&self, job_id: &str) -> Result<JobState> {
        let r = sqlx::query("SELECT state FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::JobNotFound(job_id.to_string()))?;
        JobState::parse(&r.get::<String, _>(0))
            .ok_or_else(|| StoreError::Corrupt("job state".into()))
    }

    async fn claim_inner(
        &self,
        conn: &mut sqlx::AnyConnection,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<String>> {
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE OF j SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let now = self.now();
        let row = sqlx::query(safe!(
            "SELECT j.id FROM jobs j \
             WHERE (j.state = 'queued' OR (j.state = 'running' AND j.lease_expires_at < {now})) \
               AND NOT EXISTS (SELECT 1 FROM jobs p WHERE p.contract_id = j.contract_id \
                   AND p.revision < j.revision AND p.state IN ('queued', 'running', 'failed')) \
             ORDER BY j.created_at, j.revision LIMIT 1{lock}"
        ))
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.get(0);
        sqlx::query(safe!(
            "UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires_at = {now} + $2, updated_at = {now} WHERE id = $3"
        ))
        .bind(worker)
        .bind(lease.as_millis() as i64)
        .bind(&id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        // Attempts a dead worker left open are abandoned, and their steps pending again.
        let abandoned = json_text(&AttemptOutcome::Abandoned {
            error: "worker lost its lease mid-attempt".into(),
        });
        sqlx::query(safe!(
            "UPDATE attempts SET outcome = $1, finished_at = {now} WHERE job_id = $2 AND outcome IS NULL"
        ))
        .bind(abandoned)
        .bind(&id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        sqlx::query("UPDATE steps SET state = 'pending' WHERE job_id = $1 AND state = 'running'")
            .bind(&id)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(Some(id))
    }
}

#[async_trait::async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    async fn record_revision(&self, rev: NewRevision) -> Result<IntakeOutcome> {
        let mut tx = self.begin().await.map_err(db)?;
        if self.dialect == Dialect::Postgres {
            // Serialise intake per contract so two posts of one revision race safely.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(&rev.contract_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let existing = sqlx::query("SELECT id FROM jobs WHERE contract_id = $1 AND revision = $2")
            .bind(&rev.contract_id)
            .bind(rev.revision as i64)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if let Some(r) = existing {
            return Ok(IntakeOutcome::Existing { job_id: r.get(0) });
        }
        let latest: Option<i64> =
            sqlx::query("SELECT MAX(revision) FROM revisions WHERE contract_id = $1")
                .bind(&rev.contract_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?
                .get(0);
        if let Some(l) = latest
            && l >= rev.revision as i64
        {
            return Ok(IntakeOutcome::Stale { latest: l as u32 });
        }
        let now = self.now();
        sqlx::query(
            "INSERT INTO revisions (contract_id, revision, customer_id, service, active, envelope, payload, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&rev.contract_id)
        .bind(rev.revision as i64)
        .bind(&rev.customer_id)
        .bind(&rev.service)
        .bind(rev.active as i64)
        .bind(&rev.envelope)
        .bind(&rev.payload)
        .bind(rev.received_at.timestamp_millis())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let job_id = uuid::Uuid::new_v4().to_string();
        sqlx::query(safe!(
            "INSERT INTO jobs (id, contract_id, revision, state, created_at, updated_at) VALUES ($1, $2, $3, 'queued', {now}, {now})"
        ))
        .bind(&job_id)
        .bind(&rev.contract_id)
        .bind(rev.revision as i64)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(IntakeOutcome::Created { job_id })
    }

    async fn record_rejection(&self, rej: Rejection) -> Result<()> {
        sqlx::query(
            "INSERT INTO rejections (contract_id, revision, kind, reasons, received, received_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(rej.contract_id)
        .bind(rej.revision.map(i64::from))
        .bind(rej.kind)
        .bind(json_text(&rej.reasons))
        .bind(rej.received)
        .bind(rej.received_at.timestamp_millis())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn latest_revision(&self, contract_id: &str) -> Result<Option<StoredRevision>> {
        let r = sqlx::query(
            "SELECT contract_id, revision, payload, received_at FROM revisions WHERE contract_id = $1 ORDER BY revision DESC LIMIT 1",
        )
        .bind(contract_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(r.map(|r| StoredRevision {
            contract_id: r.get(0),
            revision: r.get::<i64, _>(1) as u32,
            payload: r.get(2),
            received_at: ms_to_time(r.get(3)),
        }))
    }

    async fn revisions(&self, contract_id: &str) -> Result<Vec<StoredRevision>> {
        self.records_by(
            "SELECT contract_id, revision, payload, received_at FROM revisions WHERE contract_id = $1 ORDER BY revision",
            contract_id,
            |r| {
                Ok(StoredRevision {
                    contract_id: r.get(0),
                    revision: r.get::<i64, _>(1) as u32,
                    payload: r.get(2),
                    received_at: ms_to_time(r.get(3)),
                })
            },
        )
        .await
    }

    async fn customer_contracts(&self, customer_id: &str) -> Result<Vec<CustomerContract>> {
        self.records_by(
            "SELECT r.contract_id, r.service, r.active FROM revisions r \
             WHERE r.customer_id = $1 AND r.revision = (SELECT MAX(x.revision) FROM revisions x WHERE x.contract_id = r.contract_id) \
             ORDER BY r.contract_id",
            customer_id,
            |r| {
                Ok(CustomerContract {
                    contract_id: r.get(0),
                    service: r.get(1),
                    active: r.get::<i64, _>(2) != 0,
                })
            },
        )
        .await
    }

    async fn rejections(&self, limit: u32) -> Result<Vec<Rejection>> {
        let rows = sqlx::query(
            "SELECT contract_id, revision, kind, reasons, received, received_at FROM rejections ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(Rejection {
                    contract_id: r.get(0),
                    revision: r.get::<Option<i64>, _>(1).map(|v| v as u32),
                    kind: r.get(2),
                    reasons: parse_json("reasons", &r.get::<String, _>(3))?,
                    received: r.get(4),
                    received_at: ms_to_time(r.get(5)),
                })
            })
            .collect()
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<ClaimedJob>> {
        // SQLite has one writer at a time anyway: queue this process's
        // claimers here rather than all of them on the database lock.
        let guard = match self.dialect {
            Dialect::Sqlite => Some(self.claim_lock.lock().await),
            Dialect::Postgres => None,
        };
        let mut tx = self.begin().await.map_err(db)?;
        let id = self.claim_inner(&mut tx, worker, lease).await?;
        tx.commit().await.map_err(db)?;
        drop(guard);
        let Some(id) = id else { return Ok(None) };
        let r = sqlx::query(
            "SELECT j.contract_id, j.revision, j.planned, r.payload FROM jobs j \
             JOIN revisions r ON r.contract_id = j.contract_id AND r.revision = j.revision WHERE j.id = $1",
        )
        .bind(&id)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        let planned = r.get::<i64, _>(2) != 0;
        let plan = if planned {
            Some(self.steps_of(&id).await?)
        } else {
            None
        };
        Ok(Some(ClaimedJob {
            job_id: id,
            contract_id: r.get(0),
            revision: r.get::<i64, _>(1) as u32,
            payload: r.get(3),
            plan,
        }))
    }

    async fn heartbeat(&self, job_id: &str, worker: &str, lease: Duration) -> Result<()> {
        let now = self.now();
        let res = sqlx::query(safe!(
            "UPDATE jobs SET lease_expires_at = {now} + $1 WHERE id = $2 AND state = 'running' AND lease_owner = $3"
        ))
        .bind(lease.as_millis() as i64)
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if res.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost(job_id.to_string()))
        }
    }

    async fn set_plan(&self, job_id: &str, worker: &str, steps: &[PlannedStep]) -> Result<()> {
        let mut tx = self.begin().await.map_err(db)?;
        self.check_lease(&mut *tx, job_id, worker).await?;
        let res = sqlx::query("UPDATE jobs SET planned = 1 WHERE id = $1 AND planned = 0")
            .bind(job_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if res.rows_affected() != 1 {
            return Err(StoreError::InvalidTransition {
                job: job_id.to_string(),
                state: JobState::Running,
                action: "planned twice",
            });
        }
        for (i, s) in steps.iter().enumerate() {
            sqlx::query(
                "INSERT INTO steps (job_id, idx, step, state) VALUES ($1, $2, $3, 'pending')",
            )
            .bind(job_id)
            .bind(i as i64)
            .bind(json_text(s))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
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
    ) -> Result<()> {
        let mut tx = self.begin().await.map_err(db)?;
        self.check_lease(&mut *tx, job_id, worker).await?;
        let now = self.now();
        sqlx::query(safe!(
            "INSERT INTO attempts (job_id, idx, attempt, worker, started_at) VALUES ($1, $2, $3, $4, {now})"
        ))
        .bind(job_id)
        .bind(i64::from(step_index))
        .bind(i64::from(attempt))
        .bind(worker)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "UPDATE steps SET state = 'running', attempts = $1 WHERE job_id = $2 AND idx = $3",
        )
        .bind(i64::from(attempt))
        .bind(job_id)
        .bind(i64::from(step_index))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
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
        let error = match &outcome {
            AttemptOutcome::Succeeded => None,
            AttemptOutcome::Transient { error }
            | AttemptOutcome::Permanent { error }
            | AttemptOutcome::Abandoned { error } => Some(error.clone()),
        };
        let step_state = match outcome {
            AttemptOutcome::Permanent { .. } => "failed",
            _ => "pending",
        };
        let mut tx = self.begin().await.map_err(db)?;
        self.check_lease(&mut *tx, job_id, worker).await?;
        let now = self.now();
        sqlx::query(safe!(
            "UPDATE attempts SET outcome = $1, finished_at = {now}, duration_ms = $2 WHERE job_id = $3 AND idx = $4 AND attempt = $5"
        ))
        .bind(json_text(&outcome))
        .bind(duration.as_millis() as i64)
        .bind(job_id)
        .bind(i64::from(step_index))
        .bind(i64::from(attempt))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("UPDATE steps SET state = $1, last_error = $2 WHERE job_id = $3 AND idx = $4")
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
        } = success;
        let mut tx = self.begin().await.map_err(db)?;
        self.check_lease(&mut *tx, job_id, worker).await?;
        let now = self.now();
        sqlx::query(safe!(
            "UPDATE attempts SET outcome = $1, finished_at = {now}, duration_ms = $2 WHERE job_id = $3 AND idx = $4 AND attempt = $5"
        ))
        .bind(json_text(&AttemptOutcome::Succeeded))
        .bind(duration.as_millis() as i64)
        .bind(job_id)
        .bind(i64::from(step_index))
        .bind(i64::from(attempt))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("UPDATE steps SET state = 'succeeded', facts = $1, last_error = NULL WHERE job_id = $2 AND idx = $3")
            .bind(json_text(&facts))
            .bind(job_id)
            .bind(i64::from(step_index))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let contract_id: String = sqlx::query("SELECT contract_id FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?
            .get(0);
        match change {
            ResourceChange::Upsert(r) => {
                sqlx::query(
                    "DELETE FROM resources WHERE contract_id = $1 AND kind = $2 AND key = $3",
                )
                .bind(&contract_id)
                .bind(&r.kind)
                .bind(&r.key)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                sqlx::query(safe!(
                    "INSERT INTO resources (contract_id, kind, key, adapter, spec, facts, updated_at) VALUES ($1, $2, $3, $4, $5, $6, {now})"
                ))
                .bind(&contract_id)
                .bind(&r.kind)
                .bind(&r.key)
                .bind(&r.adapter)
                .bind(json_text(&r.spec))
                .bind(json_text(&r.facts))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            ResourceChange::Delete { kind, key } => {
                sqlx::query(
                    "DELETE FROM resources WHERE contract_id = $1 AND kind = $2 AND key = $3",
                )
                .bind(&contract_id)
                .bind(&kind)
                .bind(&key)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
        }
        for (name, value) in secrets {
            sqlx::query("DELETE FROM secrets WHERE job_id = $1 AND name = $2")
                .bind(job_id)
                .bind(&name)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query("INSERT INTO secrets (job_id, name, value) VALUES ($1, $2, $3)")
                .bind(job_id)
                .bind(&name)
                .bind(&value)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn finish_job(&self, job_id: &str, worker: &str, end: JobEnd) -> Result<()> {
        let mut tx = self.begin().await.map_err(db)?;
        self.check_lease(&mut *tx, job_id, worker).await?;
        let now = self.now();
        match end {
            JobEnd::Succeeded { result, outbox } => {
                sqlx::query(safe!(
                    "UPDATE jobs SET state = 'succeeded', result = $1, error = NULL, failed_step = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = {now} WHERE id = $2"
                ))
                .bind(json_text(&result))
                .bind(job_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                sqlx::query(safe!(
                    "INSERT INTO outbox (idempotency_key, contract_id, body, created_at, next_attempt_at) VALUES ($1, $2, $3, {now}, {now})"
                ))
                .bind(&outbox.idempotency_key)
                .bind(&outbox.contract_id)
                .bind(&outbox.body)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            JobEnd::Failed { step_index, error } => {
                sqlx::query(safe!(
                    "UPDATE jobs SET state = 'failed', error = $1, failed_step = $2, lease_owner = NULL, lease_expires_at = NULL, updated_at = {now} WHERE id = $3"
                ))
                .bind(error)
                .bind(step_index.map(i64::from))
                .bind(job_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                // A step that ran out of its retry budget ends failed, not
                // pending: it is where a rerun will resume.
                if let Some(idx) = step_index {
                    sqlx::query("UPDATE steps SET state = 'failed' WHERE job_id = $1 AND idx = $2")
                        .bind(job_id)
                        .bind(i64::from(idx))
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn release_job(&self, job_id: &str, worker: &str) -> Result<()> {
        let now = self.now();
        let res = sqlx::query(safe!(
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, updated_at = {now} \
             WHERE id = $1 AND state = 'running' AND lease_owner = $2"
        ))
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if res.rows_affected() == 1 {
            sqlx::query(
                "UPDATE steps SET state = 'pending' WHERE job_id = $1 AND state = 'running'",
            )
            .bind(job_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(())
        } else {
            Err(StoreError::LeaseLost(job_id.to_string()))
        }
    }

    async fn resources(&self, contract_id: &str) -> Result<Vec<RecordedResource>> {
        self.records_by(
            "SELECT kind, key, adapter, spec, facts FROM resources WHERE contract_id = $1 ORDER BY kind, key",
            contract_id,
            |r| {
                Ok(RecordedResource {
                    kind: r.get(0),
                    key: r.get(1),
                    adapter: r.get(2),
                    spec: parse_json("spec", &r.get::<String, _>(3))?,
                    facts: parse_json("facts", &r.get::<String, _>(4))?,
                })
            },
        )
        .await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobSummary>> {
        let mut sql = format!("{} WHERE 1 = 1", Self::SUMMARY_SELECT);
        if filter.state.is_some() {
            sql.push_str(" AND j.state = $1");
        } else {
            sql.push_str(" AND $1 = $1");
        }
        if filter.contract_id.is_some() {
            sql.push_str(" AND j.contract_id = $2");
        } else {
            sql.push_str(" AND $2 = $2");
        }
        sql.push_str(" ORDER BY j.created_at DESC, j.revision DESC LIMIT $3");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.state.map(|s| s.as_str()).unwrap_or(""))
            .bind(filter.contract_id.clone().unwrap_or_default())
            .bind(i64::from(filter.limit.unwrap_or(100).min(10_000)))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(Self::summary).collect()
    }

    async fn job(&self, job_id: &str) -> Result<Option<JobDetail>> {
        let Some(r) = sqlx::query(safe!("{} WHERE j.id = $1", Self::SUMMARY_SELECT))
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let summary = Self::summary(&r)?;
        let extra = sqlx::query("SELECT lease_owner, result FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let steps = self.steps_of(job_id).await?;
        let attempts = self
            .records_by(
                "SELECT idx, attempt, worker, started_at, finished_at, outcome, duration_ms FROM attempts \
                 WHERE job_id = $1 ORDER BY started_at, idx, attempt",
                job_id,
                |a| {
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
                },
            )
            .await?;
        let ops = self
            .records_by(
                "SELECT action, actor, at FROM ops_log WHERE job_id = $1 ORDER BY id",
                job_id,
                |o| {
                    Ok(OpsEvent {
                        action: o.get(0),
                        actor: o.get(1),
                        at: ms_to_time(o.get(2)),
                    })
                },
            )
            .await?;
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
        let mut tx = self.begin().await.map_err(db)?;
        let now = self.now();
        let res = sqlx::query(safe!(
            "UPDATE jobs SET state = 'queued', error = NULL, failed_step = NULL, updated_at = {now} WHERE id = $1 AND state = 'failed'"
        ))
        .bind(job_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if res.rows_affected() != 1 {
            drop(tx);
            let state = self.job_state(job_id).await?;
            return Err(StoreError::InvalidTransition {
                job: job_id.to_string(),
                state,
                action: "rerun (only failed jobs are)",
            });
        }
        // The failed step gets a fresh retry budget; finished steps stay finished.
        sqlx::query("UPDATE steps SET state = 'pending' WHERE job_id = $1 AND state = 'failed'")
            .bind(job_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        self.log_op(&mut tx, job_id, "rerun", actor).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn rerun_failed(&self, actor: &str) -> Result<Vec<String>> {
        let ids: Vec<String> =
            sqlx::query("SELECT id FROM jobs WHERE state = 'failed' ORDER BY created_at")
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
        let mut tx = self.begin().await.map_err(db)?;
        let now = self.now();
        let res = sqlx::query(safe!(
            "UPDATE jobs SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, updated_at = {now} \
             WHERE id = $1 AND state IN ('queued', 'failed', 'running')"
        ))
        .bind(job_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if res.rows_affected() != 1 {
            drop(tx);
            let state = self.job_state(job_id).await?;
            return Err(StoreError::InvalidTransition {
                job: job_id.to_string(),
                state,
                action: "cancelled",
            });
        }
        self.log_op(&mut tx, job_id, "cancel", actor).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn take_secrets(&self, job_id: &str) -> Result<BTreeMap<String, String>> {
        let mut tx = self.begin().await.map_err(db)?;
        let rows = sqlx::query("SELECT name, value FROM secrets WHERE job_id = $1")
            .bind(job_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM secrets WHERE job_id = $1")
            .bind(job_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn stats(&self) -> Result<StoreStats> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let backlog: i64 = sqlx::query("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?
            .get(0);
        Ok(StoreStats {
            jobs_by_state: rows
                .iter()
                .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1) as u64))
                .collect(),
            outbox_backlog: backlog as u64,
        })
    }

    async fn outbox_due(&self, limit: u32) -> Result<Vec<OutboxItem>> {
        let rows = sqlx::query(safe!(
            "SELECT id, idempotency_key, contract_id, body, attempts FROM outbox \
             WHERE delivered_at IS NULL AND next_attempt_at <= {} ORDER BY id LIMIT $1",
            self.now()
        ))
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
        sqlx::query(safe!(
            "UPDATE outbox SET delivered_at = {}, attempts = attempts + 1, last_error = NULL WHERE id = $1",
            self.now()
        ))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn outbox_retry_later(&self, id: i64, error: &str, after: Duration) -> Result<()> {
        sqlx::query(safe!(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = {} + $2 WHERE id = $3",
            self.now()
        ))
        .bind(error)
        .bind(after.as_millis() as i64)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }
}
