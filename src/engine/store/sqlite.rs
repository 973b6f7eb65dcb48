//! The job store on SQLite, through rusqlite, with one writer thread that
//! group-commits.
//!
//! Why not sqlx here: sqlx runs every SQLite statement on the connection's
//! own thread behind a channel, so each of the ~40 statements of a job cost
//! two thread wake-ups, and several writers took turns on SQLite's sleeping
//! busy handler (docs/performance.md, part 3). Here:
//!
//! - **One writer thread** owns the only write connection. Every write
//!   operation of the [`Store`] is a closure sent to it. The thread takes
//!   whatever is queued, runs it all in one `BEGIN IMMEDIATE … COMMIT`, each
//!   operation inside its own `SAVEPOINT` (so one operation's refusal, e.g.
//!   `LeaseLost`, undoes only that operation), and answers each operation only
//!   **after the commit**: nothing is acknowledged before it is on disk
//!   (WAL, `synchronous=FULL`: the WAL is synced at every commit, so a
//!   committed transaction survives a power loss or a kernel crash, not only
//!   a crash of the process). One hop per operation, one commit (one fsync)
//!   per batch, statements prepared once and cached. A batch of only the
//!   engine's own bookkeeping is not synced ([`Durability`]).
//! - **Reads** run on a few reader connections (WAL: they never wait for the
//!   writer) on tokio's blocking threads.
//!
//! The SQL text is shared with the PostgreSQL store (`queries.rs`).

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{CachedStatement, Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use super::queries::{self as q, Dialect};
use super::*;
use crate::engine::claims::{Space, overlaps};

const D: Dialect = Dialect::Sqlite;

/// The most operations one transaction carries: bounds how long the first
/// of them waits for its answer.
const MAX_BATCH: usize = 256;

/// Idle reader connections kept open.
const MAX_IDLE_READERS: usize = 8;

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(e)
}

fn stopped() -> StoreError {
    StoreError::Database("the SQLite writer thread has stopped".into())
}

/// A statement of a shared query, prepared once per connection.
fn stmt<'c>(conn: &'c Connection, sql: &str) -> Result<CachedStatement<'c>> {
    conn.prepare_cached(&D.render(sql)).map_err(db)
}

fn get<T: rusqlite::types::FromSql>(r: &Row<'_>, i: usize) -> Result<T> {
    r.get(i).map_err(db)
}

/// Every row `sql` returns for `params`, each made a record by `record`.
fn rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    record: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut st = stmt(conn, sql)?;
    let mut rows = st.query(params).map_err(db)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(db)? {
        out.push(record(r)?);
    }
    Ok(out)
}

/// Runs a statement with `RETURNING`: whether it returned a row.
fn returns_row(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<bool> {
    Ok(stmt(conn, sql)?
        .query_row(params, |_| Ok(()))
        .optional()
        .map_err(db)?
        .is_some())
}

fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
    stmt(conn, sql)?.execute(params).map_err(db)
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("store values serialize")
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Opens a connection with the store's settings. `busy_timeout` only matters
/// when another process writes the same file (the CLI, a second serve).
fn open_conn(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    // synchronous=FULL: every 202 says the revision is stored, and the
    // contract system does not resend what was acknowledged, so a commit is
    // answered only once the WAL is synced (NORMAL would lose the last
    // commits on a power loss or kernel crash). The writer's group commit
    // keeps it to one fsync per batch (docs/performance.md, part 3).
    // secure_delete: a deleted row's bytes (a secret taken, a job's secrets
    // wiped at cancel) are overwritten, not left in free pages.
    conn.execute_batch(
        "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;",
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Checks the migrations `conn`'s database recorded against this build's
/// (a newer or a changed schema is refused, naming the version: nothing is
/// applied then), records the checksums a store older than them lacks, and
/// applies the migrations it lacks, each in its own `BEGIN IMMEDIATE`
/// transaction (safe against a second process migrating).
fn migrate(conn: &Connection) -> Result<()> {
    let mig = |e: rusqlite::Error| StoreError::Migration(e.to_string());
    conn.execute_batch("BEGIN IMMEDIATE").map_err(mig)?;
    let checked = (|| {
        conn.execute_batch(q::MIGRATIONS_TABLE).map_err(mig)?;
        let has: i64 = conn
            .query_row(q::HAS_CHECKSUM_SQLITE, [], |r| r.get(0))
            .map_err(mig)?;
        if has == 0 {
            conn.execute_batch(q::ADD_CHECKSUM_COLUMN).map_err(mig)?;
        }
        let applied = rows(conn, q::APPLIED_MIGRATIONS, [], |r| {
            Ok((get::<i64>(r, 0)?, get::<Option<String>>(r, 1)?))
        })?;
        for (version, sum) in super::migrate::check_applied(q::MIGRATIONS_SQLITE, &applied)? {
            conn.execute(&D.render(q::BACKFILL_CHECKSUM), params![version, sum])
                .map_err(mig)?;
        }
        Ok(())
    })();
    match checked {
        Ok(()) => conn.execute_batch("COMMIT").map_err(mig)?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    for (version, sql) in q::MIGRATIONS_SQLITE {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(mig)?;
        let step = (|| {
            let applied: Option<i64> = conn
                .query_row(
                    "SELECT version FROM hw_schema_migrations WHERE version = ?1",
                    [version],
                    |r| r.get(0),
                )
                .optional()?;
            if applied.is_none() {
                conn.execute_batch(sql)?;
                conn.execute(
                    &D.render(q::RECORD_MIGRATION),
                    params![version, super::migrate::checksum(sql)],
                )?;
            }
            conn.execute_batch("COMMIT")
        })();
        if let Err(e) = step {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(StoreError::Migration(format!("migration {version}: {e}")));
        }
    }
    Ok(())
}

/// Creates the database file 0600 if it does not exist, and narrows the
/// database, its WAL and its shared-memory index to 0600 where they exist.
fn private_files(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |e: std::io::Error| StoreError::Database(format!("{}: {e}", path.display()));
    if !path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let f = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::metadata(&f) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).map_err(io)?
            }
            _ => {}
        }
    }
    Ok(())
}

/// Seals the clear-text secrets a store older than migration 0003 holds,
/// and re-seals under the current key what older keys sealed (rotation).
/// One transaction; the WAL is truncated after it, so the clear text is gone
/// from both files.
fn seal_at_rest(conn: &Connection, keys: &SecretKeys) -> Result<()> {
    let unsealed_table: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'secrets_unsealed'",
            [],
            |_| Ok(()),
        )
        .optional()
        .map_err(db)?
        .is_some();
    let old = rows(conn, q::SECRETS_UNDER_OLD_KEYS, [keys.current_id()], |r| {
        Ok((
            get::<String>(r, 0)?,
            get::<String>(r, 1)?,
            get::<String>(r, 2)?,
            get::<Vec<u8>>(r, 3)?,
        ))
    })?;
    if !unsealed_table && old.is_empty() {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE").map_err(db)?;
    let work = (|| {
        if unsealed_table {
            let clear = rows(conn, q::UNSEALED_SECRETS, [], |r| {
                Ok((
                    get::<String>(r, 0)?,
                    get::<String>(r, 1)?,
                    get::<String>(r, 2)?,
                ))
            })?;
            for (job, name, value) in clear {
                let (key_id, sealed) = keys.seal(&job, &name, &Secret::new(value));
                exec(conn, q::UPSERT_SECRET, params![job, name, key_id, sealed])?;
            }
            exec(conn, q::DROP_UNSEALED_SECRETS, [])?;
        }
        for (job, name, key_id, sealed) in old {
            let secret = keys.open(&key_id, &job, &name, &sealed)?;
            let (key_id, sealed) = keys.seal(&job, &name, &secret);
            exec(conn, q::UPSERT_SECRET, params![job, name, key_id, sealed])?;
        }
        Ok(())
    })();
    match work {
        Ok(()) => conn.execute_batch("COMMIT").map_err(db)?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(db)?;
    Ok(())
}

// --- the writer thread ----------------------------------------------------------

/// One write operation waiting for the writer thread.
trait WriteOp: Send {
    /// Runs the operation inside the open transaction, in its own savepoint.
    fn run(&mut self, conn: &Connection);
    /// Whether the WAL must be checkpointed and truncated before the answer
    /// (the op wiped secrets: their old pages must not linger in the WAL).
    fn wipes(&self) -> bool;
    /// Whether the op's answer is an acknowledgement to someone outside
    /// the engine (intake's 202, an ops action), so its commit must be
    /// synced before the answer (`synchronous=FULL`); see [`Durability`].
    fn durable(&self) -> bool;
    /// Answers the caller once the transaction ended (`committed` is the
    /// commit's outcome).
    fn answer(self: Box<Self>, committed: std::result::Result<(), String>);
}

struct Op<T, F> {
    f: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
    wipes: bool,
    durable: bool,
}

/// How a write is committed.
///
/// - `Acknowledged`: the answer promises something to the outside (intake's
///   202 says the revision is stored; an ops action was done; a secret was
///   handed out). Its transaction runs under `synchronous=FULL`: the WAL is
///   synced before the answer, so a power loss or kernel crash cannot undo it.
/// - `Progress`: a worker's or the reporter's own bookkeeping (claims,
///   leases, the journal, step results, job ends, delivery marks). Committed
///   under `synchronous=NORMAL`: a process crash loses nothing, a power loss
///   can lose the last of these commits, never a part of one, and never one
///   older than the last acknowledged commit (the WAL is synced in order).
///   What is lost is redone: the job's lease expires, its unfinished steps
///   run again (`ensure` is idempotent) and its report keeps its idempotency
///   key, so billing records it once. The same as a crash just before the
///   commit, which these writes always had to survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    Acknowledged,
    Progress,
}

impl<T, F> WriteOp for Op<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) {
        let f = self.f.take().expect("a write op runs once");
        // A panicking op must not take the writer thread (and every later
        // write) with it: it becomes this op's error, and its savepoint is
        // rolled back like any other refusal.
        let f = |conn: &Connection| {
            std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(StoreError::Database("store operation panicked".into())))
        };
        self.result = Some(in_savepoint(conn, f));
    }

    fn wipes(&self) -> bool {
        self.wipes
    }

    fn durable(&self) -> bool {
        self.durable
    }

    fn answer(self: Box<Self>, committed: std::result::Result<(), String>) {
        let r = match (self.result, committed) {
            // Refused ops changed nothing: their own error stands.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(e)) => Err(StoreError::Database(format!("commit failed: {e}"))),
            (None, Ok(())) => Err(StoreError::Database("store operation did not run".into())),
        };
        let _ = self.reply.send(r);
    }
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    exec(conn, "SAVEPOINT op", [])?;
    match f(conn) {
        Ok(v) => match exec(conn, "RELEASE op", []) {
            Ok(_) => Ok(v),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK TO op; RELEASE op");
                Err(e)
            }
        },
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO op; RELEASE op");
            Err(e)
        }
    }
}

/// Runs until every sender is gone (the store was dropped).
fn writer_loop(conn: Connection, rx: mpsc::Receiver<Box<dyn WriteOp>>, transactions: &AtomicU64) {
    // open_conn set FULL.
    let mut synced = true;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        // One acknowledged op makes the whole batch's commit synced.
        let want = batch.iter().any(|op| op.durable());
        let committed = if want != synced {
            let pragma = if want {
                "PRAGMA synchronous=FULL"
            } else {
                "PRAGMA synchronous=NORMAL"
            };
            match conn.execute_batch(pragma) {
                Ok(()) => {
                    synced = want;
                    run_batch(&conn, &mut batch)
                }
                Err(e) => Err(format!("setting the commit's durability: {e}")),
            }
        } else {
            run_batch(&conn, &mut batch)
        };
        transactions.fetch_add(1, Ordering::Relaxed);
        if committed.is_ok() && batch.iter().any(|op| op.wipes()) {
            // The deleted rows' pages were zeroed in the database file
            // (secure_delete); copy them back and cut the WAL so no older
            // frame keeps them. Readers holding an old snapshot can leave
            // part of the WAL for the next wipe: best effort, logged.
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            }) {
                tracing::warn!(error = %e, "WAL checkpoint after a wipe failed");
            }
        }
        for op in batch {
            op.answer(committed.clone());
        }
    }
}

/// One transaction for the whole batch. Ops run in arrival order; if SQLite
/// rolled the transaction back under us (a severe error inside an op), the
/// rest are not run, so none of them can commit on its own.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn WriteOp>]) -> std::result::Result<(), String> {
    exec(conn, "BEGIN IMMEDIATE", []).map_err(|e| e.to_string())?;
    for op in batch.iter_mut() {
        if conn.is_autocommit() {
            break;
        }
        op.run(conn);
    }
    if conn.is_autocommit() {
        return Err("the transaction was rolled back by SQLite".into());
    }
    match exec(conn, "COMMIT", []) {
        Ok(_) => Ok(()),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e.to_string())
        }
    }
}

// --- readers ----------------------------------------------------------------------

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.idle.lock().expect("reader pool lock").pop();
        let conn = match conn {
            Some(c) => c,
            None => open_conn(&self.path).map_err(db)?,
        };
        let r = f(&conn);
        let mut idle = self.idle.lock().expect("reader pool lock");
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        r
    }
}

/// The SQLite job store.
pub struct SqliteStore {
    /// A shared `flock` on the database file for the store's life: `store
    /// restore` and `store copy` refuse a store any hostwright has open.
    _in_use: std::fs::File,
    keys: SecretKeys,
    writer: mpsc::Sender<Box<dyn WriteOp>>,
    readers: Arc<Readers>,
    /// Transactions the writer ran: with ops from many callers in flight,
    /// fewer than the ops (group commit).
    transactions: Arc<AtomicU64>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, migrates it, seals
    /// what older versions left in clear, and starts its writer thread.
    /// The file and its WAL are the owner's alone (0600): they hold every
    /// contract and, sealed, the secrets.
    pub async fn open(path: &Path, keys: SecretKeys) -> Result<SqliteStore> {
        let path = path.to_path_buf();
        let p = path.clone();
        let k = keys.clone();
        let (conn, in_use) = tokio::task::spawn_blocking(move || {
            private_files(&p)?;
            let in_use = super::admin::hold_shared(&p)?;
            let conn = open_conn(&p).map_err(db)?;
            migrate(&conn)?;
            // SQLite makes the WAL and its index with the database's mode;
            // files an older version made world-readable are narrowed too.
            private_files(&p)?;
            seal_at_rest(&conn, &k)?;
            Ok::<_, StoreError>((conn, in_use))
        })
        .await
        .map_err(|e| StoreError::Database(format!("opening the store: {e}")))??;
        let (tx, rx) = mpsc::channel();
        let transactions = Arc::new(AtomicU64::new(0));
        let counter = transactions.clone();
        std::thread::Builder::new()
            .name("hw-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, &counter))
            .map_err(|e| StoreError::Database(format!("starting the writer thread: {e}")))?;
        Ok(SqliteStore {
            _in_use: in_use,
            keys,
            writer: tx,
            readers: Arc::new(Readers {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            transactions,
        })
    }

    /// Runs `f` on the writer thread within the next group commit; answers
    /// after that commit.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(f, false, Durability::Acknowledged)?
            .await
            .map_err(|_| stopped())?
    }

    /// As [`SqliteStore::write`], for the engine's own bookkeeping
    /// ([`Durability::Progress`]): committed in the same group commits, but
    /// a batch of only these is not synced before its answer.
    async fn write_progress<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(f, false, Durability::Progress)?
            .await
            .map_err(|_| stopped())?
    }

    /// As [`SqliteStore::write`], for an op that deletes secrets: answered
    /// only once the WAL was checkpointed and truncated after its commit.
    async fn write_wiping<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(f, true, Durability::Acknowledged)?
            .await
            .map_err(|_| stopped())?
    }

    /// Queues `f` for the writer thread; the receiver answers after the
    /// commit of the transaction that carried it.
    fn submit<T, F>(
        &self,
        f: F,
        wipes: bool,
        durability: Durability,
    ) -> Result<oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Box::new(Op {
                f: Some(f),
                result: None,
                reply,
                wipes,
                durable: durability == Durability::Acknowledged,
            }))
            .map_err(|_| stopped())?;
        Ok(answer)
    }

    /// How many transactions the writer thread committed (or tried to).
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    /// Runs `f` on a reader connection in one read transaction (a consistent
    /// snapshot for multi-query reads).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            readers.with(|conn| {
                let tx = conn.unchecked_transaction().map_err(db)?;
                let r = f(&tx);
                let _ = tx.finish();
                r
            })
        })
        .await
        .map_err(|e| StoreError::Database(format!("store read failed: {e}")))?
    }
}

/// `LeaseLost` or `JobNotFound` for a write the lease check refused.
fn lease_error(conn: &Connection, job_id: &str) -> StoreError {
    match stmt(conn, q::JOB_EXISTS)
        .and_then(|mut s| s.query_row([job_id], |_| Ok(())).optional().map_err(db))
    {
        Ok(Some(())) => StoreError::LeaseLost(job_id.to_string()),
        Ok(None) => StoreError::JobNotFound(job_id.to_string()),
        Err(e) => e,
    }
}

/// The worker's lease check, folded into a write of the job row; returns the
/// job's contract.
fn touch_leased(conn: &Connection, job_id: &str, worker: &str) -> Result<String> {
    stmt(conn, q::TOUCH_LEASED)?
        .query_row(params![job_id, worker], |r| r.get(0))
        .optional()
        .map_err(db)?
        .ok_or_else(|| lease_error(conn, job_id))
}

fn job_state(conn: &Connection, job_id: &str) -> Result<JobState> {
    let s: String = stmt(conn, q::JOB_STATE)?
        .query_row([job_id], |r| r.get(0))
        .optional()
        .map_err(db)?
        .ok_or_else(|| StoreError::JobNotFound(job_id.to_string()))?;
    JobState::parse(&s).ok_or_else(|| StoreError::Corrupt("job state".into()))
}

fn steps_of(conn: &Connection, job_id: &str) -> Result<Vec<StepRecord>> {
    rows(conn, q::STEPS_OF, [job_id], |r| {
        Ok(StepRecord {
            index: get::<i64>(r, 0)? as u32,
            step: parse_json("step", &get::<String>(r, 1)?)?,
            state: StepState::parse(&get::<String>(r, 2)?)
                .ok_or_else(|| StoreError::Corrupt("step state".into()))?,
            attempts: get::<i64>(r, 3)? as u32,
            last_error: get(r, 4)?,
            facts: get::<Option<String>>(r, 5)?
                .map(|f| parse_json("facts", &f))
                .transpose()?,
        })
    })
}

fn summary(r: &Row<'_>) -> Result<JobSummary> {
    Ok(JobSummary {
        job_id: get(r, 0)?,
        contract_id: get(r, 1)?,
        revision: get::<i64>(r, 2)? as u32,
        state: JobState::parse(&get::<String>(r, 3)?)
            .ok_or_else(|| StoreError::Corrupt("job state".into()))?,
        created_at: ms_to_time(get(r, 4)?),
        updated_at: ms_to_time(get(r, 5)?),
        error: get(r, 6)?,
        steps_total: get::<i64>(r, 7)? as u32,
        steps_done: get::<i64>(r, 8)? as u32,
        move_to: get(r, 9)?,
    })
}

fn stored_revision(r: &Row<'_>) -> Result<StoredRevision> {
    Ok(StoredRevision {
        contract_id: get(r, 0)?,
        revision: get::<i64>(r, 1)? as u32,
        payload: get(r, 2)?,
        received_at: ms_to_time(get(r, 3)?),
    })
}

type Candidate = (String, i64, i64);

fn candidate(conn: &Connection, sql: &str) -> Result<Option<Candidate>> {
    stmt(conn, sql)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
        .map_err(db)
}

fn claim_in(conn: &Connection, worker: &str, lease_ms: i64) -> Result<Option<ClaimedJob>> {
    let queued = candidate(conn, &q::claim_queued())?;
    let expired = candidate(conn, &q::claim_expired())?;
    let id = match (queued, expired) {
        (Some(a), Some(b)) => {
            if (b.1, b.2) < (a.1, a.2) {
                b.0
            } else {
                a.0
            }
        }
        (Some(a), None) => a.0,
        (None, Some(b)) => b.0,
        (None, None) => return Ok(None),
    };
    let (contract_id, revision, planned, move_to): (String, i64, i64, Option<String>) =
        stmt(conn, q::CLAIM_TAKE)?
            .query_row(params![worker, lease_ms, id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(db)?;
    // Only a job that was planned before can have attempts a dead worker
    // left open, or steps left running.
    let plan = if planned != 0 {
        let abandoned = json_text(&AttemptOutcome::Abandoned {
            error: "worker lost its lease mid-attempt".into(),
        });
        exec(conn, q::ABANDON_OPEN_ATTEMPTS, params![abandoned, id])?;
        exec(conn, q::RUNNING_STEPS_PENDING, [&id])?;
        Some(steps_of(conn, &id)?)
    } else {
        None
    };
    let payload: Vec<u8> = stmt(conn, q::REVISION_PAYLOAD)?
        .query_row(params![contract_id, revision], |r| r.get(0))
        .map_err(db)?;
    Ok(Some(ClaimedJob {
        job_id: id,
        contract_id,
        revision: revision as u32,
        payload,
        plan,
        move_to,
    }))
}

/// Runs an ops transition of one job (`sql`: an UPDATE guarded by the states
/// it may leave, `$1` the job id); when it matches no row, the refusal names
/// the job's state.
fn transition(conn: &Connection, sql: &str, job_id: &str, action: &'static str) -> Result<()> {
    if exec(conn, sql, [job_id])? != 1 {
        return Err(StoreError::InvalidTransition {
            job: job_id.to_string(),
            state: job_state(conn, job_id)?,
            action,
        });
    }
    Ok(())
}

fn rerun_in(conn: &Connection, job_id: &str, actor: &str) -> Result<()> {
    transition(conn, q::RERUN, job_id, "rerun (only failed jobs are)")?;
    // The failed step gets a fresh retry budget; finished steps stay finished.
    exec(conn, q::FAILED_STEPS_PENDING, [job_id])?;
    exec(conn, q::LOG_OP, params![job_id, "rerun", actor])?;
    Ok(())
}

fn customer_version(conn: &Connection, customer_id: &str) -> Result<i64> {
    Ok(stmt(conn, q::CUSTOMER_VERSION)?
        .query_row([customer_id], |r| r.get(0))
        .optional()
        .map_err(db)?
        .unwrap_or(0))
}

/// The names of `claims` other contracts own, and its domains other
/// customers hold (same name, above or below it).
fn taken_in(
    conn: &Connection,
    contract_id: &str,
    customer_id: &str,
    claims: &Claims,
) -> Result<(Vec<Claim>, Vec<String>)> {
    let mut names = Vec::new();
    for c in &claims.names {
        let owner: Option<String> = stmt(conn, q::CLAIM_OWNER)?
            .query_row(params![c.space.as_str(), c.name], |r| r.get(0))
            .optional()
            .map_err(db)?;
        if owner.is_some_and(|o| o != contract_id) {
            names.push(c.clone());
        }
    }
    let mut domains = Vec::new();
    for d in &claims.domains {
        let held = rows(
            conn,
            q::DOMAINS_UNDER,
            params![base_of(d), customer_id, contract_id],
            |r| get::<String>(r, 0),
        )?;
        if held.iter().any(|h| overlaps(h, d)) {
            domains.push(d.clone());
        }
    }
    Ok((names, domains))
}

/// Records `claims` for the contract at `revision` (all free: checked first).
fn record_claims_in(
    conn: &Connection,
    contract_id: &str,
    customer_id: &str,
    revision: u32,
    claims: &Claims,
) -> Result<()> {
    for c in &claims.names {
        let claimed = returns_row(
            conn,
            q::CLAIM_NAME,
            params![c.space.as_str(), c.name, contract_id, revision],
        )?;
        if !claimed {
            return Err(StoreError::Corrupt(format!(
                "{c} was taken between its check and its claim"
            )));
        }
    }
    for d in &claims.domains {
        exec(
            conn,
            q::CLAIM_DOMAIN,
            params![d, contract_id, base_of(d), customer_id, revision],
        )?;
    }
    Ok(())
}

/// `Err(NotOwner)` unless `contract_id` owns every name of `owned`.
fn owned_in(conn: &Connection, contract_id: &str, owned: &[Claim]) -> Result<()> {
    for c in owned {
        let owner: Option<String> = stmt(conn, q::CLAIM_OWNER)?
            .query_row(params![c.space.as_str(), c.name], |r| r.get(0))
            .optional()
            .map_err(db)?;
        if owner.as_deref() != Some(contract_id) {
            return Err(StoreError::NotOwner {
                contract: contract_id.to_string(),
                claim: c.clone(),
            });
        }
    }
    Ok(())
}

/// Intake's recording step (see [`Store::record_revision`]).
fn record_in(conn: &Connection, rev: &NewRevision) -> Result<IntakeOutcome> {
    let existing: Option<(String, i64)> = stmt(conn, q::JOB_OF_REVISION)?
        .query_row(params![rev.contract_id, rev.revision, rev.payload], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(db)?;
    match existing {
        Some((job_id, 1)) => return Ok(IntakeOutcome::Existing { job_id }),
        // The same revision with other content: immutable.
        Some(_) => {
            return Ok(IntakeOutcome::Stale {
                latest: rev.revision,
            });
        }
        None => {}
    }
    let head: Option<Head> = stmt(conn, q::CONTRACT_HEAD)?
        .query_row([&rev.contract_id], |r| {
            Ok(Head {
                revision: r.get::<_, i64>(0)? as u32,
                customer_id: r.get(1)?,
                service: r.get(2)?,
                active: r.get::<_, i64>(3)? != 0,
            })
        })
        .optional()
        .map_err(db)?;
    let latest = head.as_ref().map(|h| h.revision);
    if let Some(l) = latest
        && l >= rev.revision
    {
        return Ok(IntakeOutcome::Stale { latest: l });
    }
    if latest != rev.judged.latest
        || customer_version(conn, &rev.customer_id)? != rev.judged.customer_version
    {
        return Ok(IntakeOutcome::Changed);
    }
    let (names, domains) = taken_in(conn, &rev.contract_id, &rev.customer_id, &rev.claims)?;
    if !names.is_empty() || !domains.is_empty() {
        return Ok(IntakeOutcome::Taken { names, domains });
    }
    exec(
        conn,
        q::INSERT_REVISION,
        params![
            rev.contract_id,
            rev.revision,
            rev.customer_id,
            rev.service,
            rev.active as i64,
            rev.envelope,
            rev.payload,
            rev.received_at.timestamp_millis()
        ],
    )?;
    let job_id = uuid::Uuid::new_v4().to_string();
    exec(
        conn,
        q::INSERT_JOB,
        params![job_id, rev.contract_id, rev.revision],
    )?;
    // The writer thread is the only writer: the guard holds (checked above).
    let moved = match &head {
        None => returns_row(
            conn,
            q::INSERT_HEAD,
            params![
                rev.contract_id,
                rev.customer_id,
                rev.revision,
                rev.service,
                rev.active as i64,
            ],
        )?,
        Some(h) => returns_row(
            conn,
            q::MOVE_HEAD,
            params![
                rev.contract_id,
                rev.customer_id,
                rev.revision,
                rev.service,
                rev.active as i64,
                h.revision
            ],
        )?,
    };
    if !moved {
        return Err(StoreError::Corrupt(format!(
            "the head of {} moved under the writer",
            rev.contract_id
        )));
    }
    for customer in rev.moves_customers(head.as_ref()) {
        exec(conn, q::BUMP_CUSTOMER, [customer])?;
    }
    if head
        .as_ref()
        .is_some_and(|h| h.customer_id != rev.customer_id)
    {
        exec(
            conn,
            q::DOMAINS_TO_CUSTOMER,
            params![rev.contract_id, rev.customer_id],
        )?;
    }
    record_claims_in(
        conn,
        &rev.contract_id,
        &rev.customer_id,
        rev.revision,
        &rev.claims,
    )?;
    Ok(IntakeOutcome::Created { job_id })
}

/// Releases the contract's claims of revision `revision` or older that
/// `keep` does not hold.
fn release_in(conn: &Connection, contract_id: &str, revision: i64, keep: &Claims) -> Result<()> {
    let names = rows(conn, q::CLAIMS_OF, [contract_id], |r| {
        Ok((
            get::<String>(r, 0)?,
            get::<String>(r, 1)?,
            get::<i64>(r, 2)?,
        ))
    })?;
    for (space, name, rev) in names {
        let kept = Space::parse(&space)
            .is_some_and(|sp| keep.names.contains(&Claim::new(sp, name.clone())));
        if rev <= revision && !kept {
            exec(conn, q::RELEASE_CLAIM, params![space, name, contract_id])?;
        }
    }
    let domains = rows(conn, q::DOMAIN_CLAIMS_OF, [contract_id], |r| {
        Ok((get::<String>(r, 0)?, get::<i64>(r, 1)?))
    })?;
    for (name, rev) in domains {
        if rev <= revision && !keep.domains.contains(&name) {
            exec(conn, q::RELEASE_DOMAIN, params![name, contract_id])?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn record_revision(&self, rev: NewRevision) -> Result<IntakeOutcome> {
        // The writer thread is the only writer: the checks below and the
        // records they allow are one serial step, so no other intake can
        // change what they saw in between.
        self.write(move |conn| record_in(conn, &rev)).await
    }

    async fn record_rejection(&self, rej: Rejection) -> Result<()> {
        let reasons = json_text(&rej.reasons);
        self.write(move |conn| {
            exec(
                conn,
                q::INSERT_REJECTION,
                params![
                    rej.contract_id,
                    rej.revision,
                    rej.kind,
                    reasons,
                    rej.received,
                    rej.received_at.timestamp_millis(),
                    rej.received_sha256,
                    rej.received_size.map(|n| n as i64)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn intake_view(
        &self,
        contract_id: &str,
        customer_id: &str,
        claims: &Claims,
    ) -> Result<IntakeView> {
        let (cid, cust) = (contract_id.to_string(), customer_id.to_string());
        let claims = claims.clone();
        // One read transaction: one snapshot for all of it.
        self.read(move |conn| {
            let customer_version = customer_version(conn, &cust)?;
            let latest = rows(conn, q::LATEST_REVISION, [&cid], stored_revision)?
                .into_iter()
                .next();
            let others = rows(conn, q::CUSTOMER_CONTRACTS, [&cust], |r| {
                Ok(CustomerContract {
                    contract_id: get(r, 0)?,
                    service: get(r, 1)?,
                    active: get::<i64>(r, 2)? != 0,
                })
            })?;
            let (taken_names, taken_domains) = taken_in(conn, &cid, &cust, &claims)?;
            Ok(IntakeView {
                latest,
                others,
                customer_version,
                taken_names,
                taken_domains,
            })
        })
        .await
    }

    async fn revisions(&self, contract_id: &str) -> Result<Vec<StoredRevision>> {
        let cid = contract_id.to_string();
        self.read(move |conn| rows(conn, q::REVISIONS, [&cid], stored_revision))
            .await
    }

    async fn latest_revisions(&self) -> Result<Vec<StoredRevision>> {
        self.read(move |conn| rows(conn, q::LATEST_REVISIONS, [], stored_revision))
            .await
    }

    async fn adopt_claims(
        &self,
        contract_id: &str,
        customer_id: &str,
        revision: u32,
        claims: &Claims,
    ) -> Result<(Vec<Claim>, Vec<String>)> {
        let (cid, cust, claims) = (
            contract_id.to_string(),
            customer_id.to_string(),
            claims.clone(),
        );
        self.write(move |conn| {
            let (names, domains) = taken_in(conn, &cid, &cust, &claims)?;
            let free = Claims {
                names: claims
                    .names
                    .iter()
                    .filter(|c| !names.contains(c))
                    .cloned()
                    .collect(),
                domains: claims
                    .domains
                    .iter()
                    .filter(|d| !domains.contains(d))
                    .cloned()
                    .collect(),
            };
            record_claims_in(conn, &cid, &cust, revision, &free)?;
            Ok((names, domains))
        })
        .await
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_string();
        self.read(move |conn| {
            stmt(conn, q::META)?
                .query_row([&key], |r| r.get(0))
                .optional()
                .map_err(db)
        })
        .await
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        let (key, value) = (key.to_string(), value.to_string());
        self.write(move |conn| exec(conn, q::SET_META, params![key, value]).map(drop))
            .await
    }

    async fn prune_rejections(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        let cutoff = before.timestamp_millis();
        self.write_progress(move |conn| {
            exec(conn, q::PRUNE_REJECTIONS, params![cutoff, i64::from(batch)]).map(|n| n as u64)
        })
        .await
    }

    async fn prune_attempts(
        &self,
        before: DateTime<Utc>,
        after: &str,
        batch: u32,
    ) -> Result<(u64, Option<String>)> {
        let (cutoff, after, batch) = (
            before.timestamp_millis(),
            after.to_string(),
            i64::from(batch),
        );
        self.write_progress(move |conn| {
            let (last, n): (Option<String>, i64) = stmt(conn, &q::prune_attempts_batch())?
                .query_row(params![cutoff, batch, after], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(db)?;
            let deleted = exec(conn, &q::prune_attempts(), params![cutoff, batch, after])?;
            Ok((deleted as u64, last.filter(|_| n == batch)))
        })
        .await
    }

    async fn prune_delivered_reports(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        let cutoff = before.timestamp_millis();
        self.write_progress(move |conn| {
            exec(
                conn,
                q::PRUNE_DELIVERED_REPORTS,
                params![cutoff, i64::from(batch)],
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<ClaimedJob>> {
        let worker = worker.to_string();
        let lease_ms = lease.as_millis() as i64;
        self.write_progress(move |conn| claim_in(conn, &worker, lease_ms))
            .await
    }

    async fn heartbeat(&self, job_id: &str, worker: &str, lease: Duration) -> Result<()> {
        let (job_id, worker) = (job_id.to_string(), worker.to_string());
        let lease_ms = lease.as_millis() as i64;
        self.write_progress(move |conn| {
            if exec(conn, q::HEARTBEAT, params![job_id, worker, lease_ms])? == 1 {
                Ok(())
            } else {
                Err(StoreError::LeaseLost(job_id))
            }
        })
        .await
    }

    async fn set_plan(
        &self,
        job_id: &str,
        worker: &str,
        steps: &[PlannedStep],
        start: &[u32],
        owned: &[Claim],
    ) -> Result<()> {
        let (job_id, worker) = (job_id.to_string(), worker.to_string());
        let start = start.to_vec();
        let owned = owned.to_vec();
        let mut values = Vec::with_capacity(1 + 2 * steps.len());
        values.push(Value::Text(job_id.clone()));
        for (i, s) in steps.iter().enumerate() {
            values.push(Value::Integer(i as i64));
            values.push(Value::Text(json_text(s)));
        }
        let n = steps.len();
        self.write_progress(move |conn| {
            if exec(conn, q::MARK_PLANNED, params![job_id, worker])? != 1 {
                let held = stmt(conn, q::LEASE_HELD)?
                    .query_row(params![job_id, worker], |_| Ok(()))
                    .optional()
                    .map_err(db)?;
                return Err(match held {
                    Some(()) => StoreError::InvalidTransition {
                        job: job_id,
                        state: JobState::Running,
                        action: "planned twice",
                    },
                    None => lease_error(conn, &job_id),
                });
            }
            let contract_id: String = stmt(conn, q::CONTRACT_OF_JOB)?
                .query_row([&job_id], |r| r.get(0))
                .map_err(db)?;
            owned_in(conn, &contract_id, &owned)?;
            if n > 0 {
                exec(
                    conn,
                    &q::insert_steps(n),
                    rusqlite::params_from_iter(values.iter()),
                )?;
                for idx in &start {
                    exec(conn, q::INSERT_ATTEMPT, params![job_id, idx, 1, worker])?;
                    exec(conn, q::STEP_RUNNING, params![1, job_id, idx])?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn attempt_started(
        &self,
        job_id: &str,
        worker: &str,
        step_index: u32,
        attempt: u32,
        owned: &[Claim],
    ) -> Result<()> {
        let (job_id, worker) = (job_id.to_string(), worker.to_string());
        let owned = owned.to_vec();
        self.write_progress(move |conn| {
            let contract_id = touch_leased(conn, &job_id, &worker)?;
            owned_in(conn, &contract_id, &owned)?;
            exec(
                conn,
                q::INSERT_ATTEMPT,
                params![job_id, step_index, attempt, worker],
            )?;
            exec(conn, q::STEP_RUNNING, params![attempt, job_id, step_index])?;
            Ok(())
        })
        .await
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
        let outcome = json_text(&outcome);
        let (job_id, worker) = (job_id.to_string(), worker.to_string());
        let ms = duration.as_millis() as i64;
        self.write_progress(move |conn| {
            touch_leased(conn, &job_id, &worker)?;
            exec(
                conn,
                q::END_ATTEMPT,
                params![outcome, ms, job_id, step_index, attempt],
            )?;
            exec(
                conn,
                q::STEP_NOT_DONE,
                params![step_state, error, job_id, step_index],
            )?;
            Ok(())
        })
        .await
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
        let outcome = json_text(&AttemptOutcome::Succeeded);
        let facts = json_text(&facts);
        let change = match change {
            ResourceChange::Upsert(r) => {
                let (spec, rfacts) = (json_text(&r.spec), json_text(&r.facts));
                Ok((r.kind, r.key, r.adapter, spec, rfacts))
            }
            ResourceChange::Delete { kind, key } => Err(Some((kind, key))),
            ResourceChange::Keep => Err(None),
        };
        let (job_id, worker) = (job_id.to_string(), worker.to_string());
        let ms = duration.as_millis() as i64;
        let secrets: Vec<(String, String, Vec<u8>)> = secrets
            .iter()
            .map(|(name, secret)| {
                let (key_id, sealed) = self.keys.seal(&job_id, name, secret);
                (name.clone(), key_id, sealed)
            })
            .collect();
        self.write_progress(move |conn| {
            let contract_id = touch_leased(conn, &job_id, &worker)?;
            exec(
                conn,
                q::END_ATTEMPT,
                params![outcome, ms, job_id, step_index, attempt],
            )?;
            exec(conn, q::STEP_DONE, params![facts, job_id, step_index])?;
            match &change {
                Ok((kind, key, adapter, spec, rfacts)) => exec(
                    conn,
                    q::UPSERT_RESOURCE,
                    params![contract_id, kind, key, adapter, spec, rfacts],
                )?,
                Err(Some((kind, key))) => {
                    exec(conn, q::DELETE_RESOURCE, params![contract_id, kind, key])?
                }
                Err(None) => 0,
            };
            for (name, key_id, sealed) in &secrets {
                exec(
                    conn,
                    q::UPSERT_SECRET,
                    params![job_id, name, key_id, sealed],
                )?;
            }
            for &(next, next_attempt) in &then_start {
                exec(
                    conn,
                    q::INSERT_ATTEMPT,
                    params![job_id, next, next_attempt, worker],
                )?;
                exec(conn, q::STEP_RUNNING, params![next_attempt, job_id, next])?;
            }
            Ok(())
        })
        .await
    }

    async fn finish_job(&self, job_id: &str, worker: &str, end: JobEnd) -> Result<()> {
        let (job_id, worker) = (job_id.to_string(), worker.to_string());
        let (end, notify) = match end {
            JobEnd::Succeeded {
                result,
                outbox,
                keep,
                notify,
            } => (Ok((json_text(&result), outbox, keep)), notify),
            JobEnd::Failed {
                step_index,
                error,
                notify,
            } => (Err((step_index, error)), notify),
        };
        self.write_progress(move |conn| {
            for n in &notify {
                exec(
                    conn,
                    q::INSERT_NOTIFICATION,
                    params![n.idempotency_key, n.event, n.body],
                )?;
            }
            match &end {
                Ok((result, outbox, keep)) => {
                    let revision: i64 = stmt(conn, q::JOB_SUCCEEDED)?
                        .query_row(params![result, job_id, worker], |r| r.get(0))
                        .optional()
                        .map_err(db)?
                        .ok_or_else(|| lease_error(conn, &job_id))?;
                    exec(
                        conn,
                        q::INSERT_OUTBOX,
                        params![outbox.idempotency_key, outbox.contract_id, outbox.body],
                    )?;
                    release_in(conn, &outbox.contract_id, revision, keep)?;
                }
                Err((step_index, error)) => {
                    if exec(
                        conn,
                        q::JOB_FAILED,
                        params![error, step_index, job_id, worker],
                    )? != 1
                    {
                        return Err(lease_error(conn, &job_id));
                    }
                    // A step that ran out of its retry budget ends failed,
                    // not pending: it is where a rerun will resume.
                    if let Some(idx) = step_index {
                        exec(conn, q::STEP_FAILED, params![job_id, idx])?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn release_job(&self, job_id: &str, worker: &str) -> Result<()> {
        let (job_id, worker) = (job_id.to_string(), worker.to_string());
        self.write_progress(move |conn| {
            if exec(conn, q::RELEASE, params![job_id, worker])? != 1 {
                return Err(StoreError::LeaseLost(job_id));
            }
            exec(conn, q::RUNNING_STEPS_PENDING, [&job_id])?;
            Ok(())
        })
        .await
    }

    async fn resources(&self, contract_id: &str) -> Result<Vec<RecordedResource>> {
        let cid = contract_id.to_string();
        self.read(move |conn| {
            rows(conn, q::RESOURCES_OF, [&cid], |r| {
                Ok(RecordedResource {
                    kind: get(r, 0)?,
                    key: get(r, 1)?,
                    adapter: get(r, 2)?,
                    spec: parse_json("spec", &get::<String>(r, 3)?)?,
                    facts: parse_json("facts", &get::<String>(r, 4)?)?,
                })
            })
        })
        .await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobSummary>> {
        let sql = q::list_jobs(filter.state.is_some(), filter.contract_id.is_some());
        let state = filter.state.map(|s| s.as_str()).unwrap_or("");
        let contract = filter.contract_id.clone().unwrap_or_default();
        let limit = i64::from(filter.limit.unwrap_or(100).min(MAX_LIST_JOBS));
        self.read(move |conn| rows(conn, &sql, params![state, contract, limit], summary))
            .await
    }

    async fn job(&self, job_id: &str) -> Result<Option<JobDetail>> {
        let job_id = job_id.to_string();
        self.read(move |conn| {
            let Some(summary) = rows(conn, &q::job_summary(), [&job_id], summary)?
                .into_iter()
                .next()
            else {
                return Ok(None);
            };
            let (lease_owner, result): (Option<String>, Option<String>) = stmt(conn, q::JOB_EXTRA)?
                .query_row([&job_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db)?;
            let steps = steps_of(conn, &job_id)?;
            let attempts = rows(conn, q::ATTEMPTS_OF, [&job_id], |a| {
                Ok(AttemptRecord {
                    step_index: get::<i64>(a, 0)? as u32,
                    attempt: get::<i64>(a, 1)? as u32,
                    worker: get(a, 2)?,
                    started_at: ms_to_time(get(a, 3)?),
                    finished_at: get::<Option<i64>>(a, 4)?.map(ms_to_time),
                    outcome: get::<Option<String>>(a, 5)?
                        .map(|o| parse_json("outcome", &o))
                        .transpose()?,
                    duration_ms: get::<Option<i64>>(a, 6)?.map(|d| d as u64),
                })
            })?;
            let ops = rows(conn, q::OPS_OF, [&job_id], |o| {
                Ok(OpsEvent {
                    action: get(o, 0)?,
                    actor: get(o, 1)?,
                    at: ms_to_time(get(o, 2)?),
                })
            })?;
            Ok(Some(JobDetail {
                summary,
                lease_owner,
                steps,
                attempts,
                ops,
                result: result.map(|r| parse_json("result", &r)).transpose()?,
            }))
        })
        .await
    }

    async fn rerun(&self, job_id: &str, actor: &str) -> Result<()> {
        let (job_id, actor) = (job_id.to_string(), actor.to_string());
        self.write(move |conn| rerun_in(conn, &job_id, &actor))
            .await
    }

    async fn rerun_failed(&self, actor: &str) -> Result<Vec<String>> {
        let actor = actor.to_string();
        // One transaction: the failed jobs seen are the ones rerun.
        self.write(move |conn| {
            let ids = rows(conn, q::FAILED_JOBS, [], |r| get::<String>(r, 0))?;
            for id in &ids {
                rerun_in(conn, id, &actor)?;
            }
            Ok(ids)
        })
        .await
    }

    async fn cancel(&self, job_id: &str, actor: &str) -> Result<()> {
        let (job_id, actor) = (job_id.to_string(), actor.to_string());
        self.write_wiping(move |conn| {
            transition(conn, q::CANCEL, &job_id, "cancelled")?;
            exec(conn, q::LOG_OP, params![job_id, "cancel", actor])?;
            // Nobody will take them now.
            exec(conn, q::DELETE_SECRETS, [&job_id])?;
            Ok(())
        })
        .await
    }

    async fn take_secrets(&self, job_id: &str, actor: &str) -> Result<BTreeMap<String, Secret>> {
        let (job_id, actor) = (job_id.to_string(), actor.to_string());
        let keys = self.keys.clone();
        self.write_wiping(move |conn| {
            if rows(conn, q::SECRETS_OWNER, [&job_id], |_| Ok(()))?.is_empty() {
                return Err(StoreError::JobNotFound(job_id.clone()));
            }
            let secrets = rows(conn, q::SECRETS_OF, [&job_id], |r| {
                let (name, key_id, sealed) = (
                    get::<String>(r, 0)?,
                    get::<String>(r, 1)?,
                    get::<Vec<u8>>(r, 2)?,
                );
                // Opened before they are wiped: a secret that cannot be
                // opened (its key is gone) fails the take and stays.
                let secret = keys.open(&key_id, &job_id, &name, &sealed)?;
                Ok((name, secret))
            })?;
            exec(conn, q::DELETE_SECRETS, [&job_id])?;
            exec(
                conn,
                q::LOG_OP,
                params![job_id, secrets_taken(secrets.len()), actor],
            )?;
            Ok(secrets.into_iter().collect())
        })
        .await
    }

    async fn stats(&self) -> Result<StoreStats> {
        self.read(|conn| {
            let jobs_by_state = rows(conn, q::JOBS_BY_STATE, [], |r| {
                Ok((get::<String>(r, 0)?, get::<i64>(r, 1)? as u64))
            })?
            .into_iter()
            .collect();
            let backlog: i64 = stmt(conn, q::OUTBOX_BACKLOG)?
                .query_row([], |r| r.get(0))
                .map_err(db)?;
            let notify: i64 = stmt(conn, q::NOTIFICATIONS_BACKLOG)?
                .query_row([], |r| r.get(0))
                .map_err(db)?;
            let oldest = rows(conn, q::OLDEST_WAITING, [], |r| {
                Ok((get::<String>(r, 0)?, get::<i64>(r, 1)?, get::<i64>(r, 2)?))
            })?;
            let mut stats = StoreStats {
                jobs_by_state,
                outbox_backlog: backlog as u64,
                notify_backlog: notify as u64,
                ..StoreStats::default()
            };
            stats.set_oldest(oldest);
            Ok(stats)
        })
        .await
    }

    async fn outbox_due(&self, limit: u32) -> Result<Vec<OutboxItem>> {
        self.read(move |conn| {
            rows(conn, q::OUTBOX_DUE, [i64::from(limit)], |r| {
                Ok(OutboxItem {
                    id: get(r, 0)?,
                    idempotency_key: get(r, 1)?,
                    contract_id: get(r, 2)?,
                    body: get(r, 3)?,
                    attempts: get::<i64>(r, 4)? as u32,
                })
            })
        })
        .await
    }

    async fn outbox_delivered(&self, id: i64) -> Result<()> {
        self.write_progress(move |conn| exec(conn, q::OUTBOX_DELIVERED, [id]).map(drop))
            .await
    }

    async fn outbox_retry_later(&self, id: i64, error: &str, after: Duration) -> Result<()> {
        let error = error.to_string();
        let ms = after.as_millis() as i64;
        self.write_progress(move |conn| {
            exec(conn, q::OUTBOX_RETRY_LATER, params![error, ms, id]).map(drop)
        })
        .await
    }

    async fn enqueue_notification(&self, n: NewNotification) -> Result<()> {
        self.write(move |conn| {
            exec(
                conn,
                q::INSERT_NOTIFICATION,
                params![n.idempotency_key, n.event, n.body],
            )
            .map(drop)
        })
        .await
    }

    async fn notifications_due(&self, limit: u32) -> Result<Vec<NotificationItem>> {
        self.read(move |conn| {
            rows(conn, q::NOTIFICATIONS_DUE, [i64::from(limit)], |r| {
                Ok(NotificationItem {
                    id: get(r, 0)?,
                    idempotency_key: get(r, 1)?,
                    event: get(r, 2)?,
                    body: get(r, 3)?,
                    attempts: get::<i64>(r, 4)? as u32,
                })
            })
        })
        .await
    }

    async fn notification_delivered(&self, id: i64) -> Result<()> {
        self.write(move |conn| exec(conn, q::NOTIFICATION_DELIVERED, [id]).map(drop))
            .await
    }

    async fn notification_retry_later(&self, id: i64, error: &str, after: Duration) -> Result<()> {
        let error = error.to_string();
        let ms = after.as_millis() as i64;
        self.write(move |conn| {
            exec(conn, q::NOTIFICATION_RETRY_LATER, params![error, ms, id]).map(drop)
        })
        .await
    }

    async fn contract_ids(&self) -> Result<Vec<String>> {
        self.read(|conn| rows(conn, q::CONTRACT_IDS, [], |r| get::<String>(r, 0)))
            .await
    }

    async fn latest_statement(
        &self,
        contract_id: &str,
        month: &str,
    ) -> Result<Option<ClosedStatement>> {
        let (cid, month) = (contract_id.to_string(), month.to_string());
        self.read(move |conn| {
            Ok(rows(
                conn,
                &q::latest_statement(),
                params![cid, month],
                closed_statement,
            )?
            .into_iter()
            .next())
        })
        .await
    }

    async fn statements_of_month(&self, month: &str) -> Result<Vec<ClosedStatement>> {
        let month = month.to_string();
        self.read(move |conn| rows(conn, &q::statements_of_month(), [&month], closed_statement))
            .await
    }

    async fn insert_statement(&self, st: ClosedStatement, report: NewOutboxItem) -> Result<bool> {
        self.write(move |conn| {
            let inserted = exec(
                conn,
                q::INSERT_STATEMENT,
                params![
                    st.contract_id,
                    st.month,
                    i64::from(st.version),
                    st.replaces.map(i64::from),
                    st.customer_id,
                    i64::from(st.based_on_revision),
                    st.content,
                    json_text(&st.statement),
                    st.total,
                    st.idempotency_key,
                ],
            )?;
            if inserted == 1 {
                exec(
                    conn,
                    q::INSERT_OUTBOX,
                    params![report.idempotency_key, report.contract_id, report.body],
                )?;
            }
            Ok(inserted == 1)
        })
        .await
    }
}

fn closed_statement(r: &Row<'_>) -> Result<ClosedStatement> {
    Ok(ClosedStatement {
        contract_id: get(r, 0)?,
        month: get(r, 1)?,
        version: get::<i64>(r, 2)? as u32,
        replaces: get::<Option<i64>>(r, 3)?.map(|v| v as u32),
        customer_id: get(r, 4)?,
        based_on_revision: get::<i64>(r, 5)? as u32,
        content: get(r, 6)?,
        statement: parse_json("statement", &get::<String>(r, 7)?)?,
        total: get(r, 8)?,
        idempotency_key: get(r, 9)?,
        closed_at: ms_to_time(get(r, 10)?),
    })
}

mod fleet;
mod ops;
mod repairs;
#[cfg(test)]
mod tests;
