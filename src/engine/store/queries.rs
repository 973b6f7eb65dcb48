//! SQL text shared by both back ends: one place per query.
//!
//! Written in PostgreSQL's parameter style (`$1`, `$2`, ...) with `{now}` for
//! the database clock (unix milliseconds) and, in the claim look-ups,
//! `{lock}` for PostgreSQL's row lock. [`Dialect::render`] turns a text into
//! what a back end runs: SQLite's `?N` parameters bind by number exactly like
//! `$N`, so only the spelling changes. The texts are our own constants; values
//! always travel as bind parameters.

use std::borrow::Cow;

/// The two SQL dialects the store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The database clock in unix milliseconds, one value per statement
    /// (SQLite's `'now'` is fixed per statement; PostgreSQL's
    /// `statement_timestamp()` too): a statement that ends one attempt and
    /// starts the next stamps both alike, so no start precedes the end it
    /// waited for.
    pub fn now(self) -> &'static str {
        match self {
            Dialect::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Dialect::Postgres => "CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// How a claim look-up makes its row exclusive: PostgreSQL locks it and
    /// skips rows other claimers hold; SQLite has one writer, whose
    /// transaction already excludes every other claim.
    fn lock(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE OF j SKIP LOCKED",
        }
    }

    /// The text this dialect runs for a shared query.
    pub fn render(self, sql: &str) -> Cow<'static, str> {
        let text = sql
            .replace("{now}", self.now())
            .replace("{lock}", self.lock());
        match self {
            Dialect::Postgres => Cow::Owned(text),
            Dialect::Sqlite => Cow::Owned(dollar_to_question(&text)),
        }
    }
}

/// `$N` → `?N` outside string literals (SQLite's numbered parameters).
fn dollar_to_question(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut in_string = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_string = !in_string;
                out.push(c);
            }
            '$' if !in_string && chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                out.push('?');
            }
            _ => out.push(c),
        }
    }
    out
}

// --- claims ---------------------------------------------------------------
//
// A claim is two index-ordered look-ups (`jobs_claim (state, created_at,
// revision)`, migration 0002) instead of one `state = 'queued' OR (running
// and expired)` query, which no index can order: that sorted the whole queue
// on every claim (O(N²) to drain N). The older of the two candidates wins,
// which is the order the single query had.

/// A job's predecessors that hold it back: same contract, not ended (a
/// failed job blocks until rerun or cancelled), and earlier: a lower
/// revision, or the revision's own job before a move at that revision (a
/// move is queued at the head revision, at most one open per contract).
const NO_BLOCKER: &str = "NOT EXISTS (SELECT 1 FROM jobs p WHERE p.contract_id = j.contract_id \
     AND (p.revision < j.revision OR (p.revision = j.revision AND p.kind = 'revision' \
         AND j.kind = 'move')) \
     AND p.state IN ('queued', 'running', 'failed'))";

pub fn claim_queued() -> String {
    format!(
        "SELECT j.id, j.created_at, j.revision FROM jobs j WHERE j.state = 'queued' AND {NO_BLOCKER} \
         ORDER BY j.created_at, j.revision LIMIT 1{{lock}}"
    )
}

pub fn claim_expired() -> String {
    format!(
        "SELECT j.id, j.created_at, j.revision FROM jobs j \
         WHERE j.state = 'running' AND j.lease_expires_at < {{now}} AND {NO_BLOCKER} \
         ORDER BY j.created_at, j.revision LIMIT 1{{lock}}"
    )
}

/// Takes the job: `$1` worker, `$2` lease in ms, `$3` job id. Returns what
/// the worker needs next, so the claim costs no further look-up of the job.
pub const CLAIM_TAKE: &str = "UPDATE jobs SET state = 'running', lease_owner = $1, \
     lease_expires_at = {now} + $2, updated_at = {now} WHERE id = $3 \
     RETURNING contract_id, revision, planned, move_to";

pub const REVISION_PAYLOAD: &str =
    "SELECT payload FROM revisions WHERE contract_id = $1 AND revision = $2";

/// Attempts a dead worker left open are abandoned (`$1` outcome, `$2` job).
pub const ABANDON_OPEN_ATTEMPTS: &str =
    "UPDATE attempts SET outcome = $1, finished_at = {now} WHERE job_id = $2 AND outcome IS NULL";

/// Steps left running by a dead or leaving worker are pending again.
pub const RUNNING_STEPS_PENDING: &str =
    "UPDATE steps SET state = 'pending' WHERE job_id = $1 AND state = 'running'";

pub const STEPS_OF: &str = "SELECT idx, step, state, attempts, last_error, facts FROM steps \
     WHERE job_id = $1 ORDER BY idx";

// --- the worker's writes: the lease check folded into the statement ---------
//
// Every write of a worker for its job starts with an UPDATE of the job row
// that only matches while `$1` is running under `$2`'s lease. No row means
// the lease is gone (or the job is), resolved by [`JOB_EXISTS`] on that error
// path only. On PostgreSQL the UPDATE also locks the row, so a claim taking
// over an expired lease and the old worker's write are ordered.

/// `$1` job, `$2` worker. Returns the contract (step_succeeded needs it).
pub const TOUCH_LEASED: &str = "UPDATE jobs SET updated_at = {now} \
     WHERE id = $1 AND state = 'running' AND lease_owner = $2 RETURNING contract_id";

/// `$1` job, `$2` worker, `$3` lease in ms.
pub const HEARTBEAT: &str = "UPDATE jobs SET lease_expires_at = {now} + $3 \
     WHERE id = $1 AND state = 'running' AND lease_owner = $2";

/// `$1` job, `$2` worker: marks the job planned, once.
pub const MARK_PLANNED: &str = "UPDATE jobs SET planned = 1, updated_at = {now} \
     WHERE id = $1 AND state = 'running' AND lease_owner = $2 AND planned = 0";

/// Whether a job is running under `$2`'s lease (resolves MARK_PLANNED's refusal).
pub const LEASE_HELD: &str =
    "SELECT 1 FROM jobs WHERE id = $1 AND state = 'running' AND lease_owner = $2";

pub const JOB_EXISTS: &str = "SELECT 1 FROM jobs WHERE id = $1";

pub const CONTRACT_OF_JOB: &str = "SELECT contract_id FROM jobs WHERE id = $1";

pub const JOB_STATE: &str = "SELECT state FROM jobs WHERE id = $1";

/// `$1`: a job or a repair (both keep secrets under their id).
pub const SECRETS_OWNER: &str =
    "SELECT 1 FROM jobs WHERE id = $1 UNION ALL SELECT 1 FROM repairs WHERE id = $1";

/// The plan's steps in one statement: `rows` rows of (`job`, index, step).
/// `$1` is the job id; row i binds `$(2i+2)` index and `$(2i+3)` step JSON.
pub fn insert_steps(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO steps (job_id, idx, step, state) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("($1, ${}, ${}, 'pending')", 2 * i + 2, 2 * i + 3));
    }
    sql
}

/// `$1` job, `$2` step, `$3` attempt, `$4` worker.
pub const INSERT_ATTEMPT: &str = "INSERT INTO attempts (job_id, idx, attempt, worker, started_at) \
     VALUES ($1, $2, $3, $4, {now})";

/// `$1` attempt number, `$2` job, `$3` step.
pub const STEP_RUNNING: &str =
    "UPDATE steps SET state = 'running', attempts = $1 WHERE job_id = $2 AND idx = $3";

/// `$1` outcome JSON, `$2` duration ms, `$3` job, `$4` step, `$5` attempt.
pub const END_ATTEMPT: &str = "UPDATE attempts SET outcome = $1, finished_at = {now}, duration_ms = $2 \
     WHERE job_id = $3 AND idx = $4 AND attempt = $5";

/// `$1` state, `$2` error, `$3` job, `$4` step.
pub const STEP_NOT_DONE: &str =
    "UPDATE steps SET state = $1, last_error = $2 WHERE job_id = $3 AND idx = $4";

/// `$1` facts JSON, `$2` job, `$3` step.
pub const STEP_DONE: &str = "UPDATE steps SET state = 'succeeded', facts = $1, last_error = NULL \
     WHERE job_id = $2 AND idx = $3";

/// `$1` contract, `$2` kind, `$3` key, `$4` adapter, `$5` spec, `$6` facts.
pub const UPSERT_RESOURCE: &str = "INSERT INTO resources (contract_id, kind, key, adapter, spec, facts, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, {now}) ON CONFLICT (contract_id, kind, key) DO UPDATE SET \
     adapter = excluded.adapter, spec = excluded.spec, facts = excluded.facts, updated_at = excluded.updated_at";

pub const DELETE_RESOURCE: &str =
    "DELETE FROM resources WHERE contract_id = $1 AND kind = $2 AND key = $3";

/// `$1` job, `$2` name, `$3` key id, `$4` sealed value (see `sealed.rs`).
pub const UPSERT_SECRET: &str = "INSERT INTO secrets (job_id, name, key_id, sealed) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (job_id, name) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed";

/// `$1` result JSON, `$2` job, `$3` worker. Returns the job's revision.
pub const JOB_SUCCEEDED: &str = "UPDATE jobs SET state = 'succeeded', result = $1, error = NULL, \
     failed_step = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = {now} \
     WHERE id = $2 AND state = 'running' AND lease_owner = $3 RETURNING revision";

/// `$1` error, `$2` failed step, `$3` job, `$4` worker.
pub const JOB_FAILED: &str = "UPDATE jobs SET state = 'failed', error = $1, failed_step = $2, \
     lease_owner = NULL, lease_expires_at = NULL, updated_at = {now} \
     WHERE id = $3 AND state = 'running' AND lease_owner = $4";

/// `$1` job, `$2` step.
pub const STEP_FAILED: &str = "UPDATE steps SET state = 'failed' WHERE job_id = $1 AND idx = $2";

/// `$1` idempotency key, `$2` contract, `$3` body.
pub const INSERT_OUTBOX: &str = "INSERT INTO outbox (idempotency_key, contract_id, body, created_at, next_attempt_at) \
     VALUES ($1, $2, $3, {now}, {now})";

/// `$1` job, `$2` worker.
pub const RELEASE: &str = "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
     updated_at = {now} WHERE id = $1 AND state = 'running' AND lease_owner = $2";

pub const RESOURCES_OF: &str = "SELECT kind, key, adapter, spec, facts FROM resources \
     WHERE contract_id = $1 ORDER BY kind, key";

// --- PostgreSQL only: a worker write in one statement --------------------------
//
// On PostgreSQL each statement is a network round trip, and BEGIN/COMMIT are
// two more; SQLite runs in-process and has no data-modifying CTEs. So the
// hottest writes have a one-statement form here: the leased UPDATE of the
// job row (`j`, which also locks it) feeds the other changes, which only
// happen when it matched. One statement is one transaction. Each returns one
// row (`SELECT count(*) FROM j`): 0 means the lease check refused.

/// The whole claim in one statement: both look-ups (each locking its row,
/// skipping rows other claimers hold), the older candidate, CLAIM_TAKE and
/// REVISION_PAYLOAD. `$1` worker, `$2` lease in ms. Returns id, contract,
/// revision, planned, payload; no row when nothing is claimable.
pub fn pg_claim() -> String {
    format!(
        "WITH q AS ({queued}), e AS ({expired}), \
         pick AS (SELECT id FROM (SELECT * FROM q UNION ALL SELECT * FROM e) c \
             ORDER BY created_at, revision LIMIT 1), \
         t AS (UPDATE jobs SET state = 'running', lease_owner = $1, \
             lease_expires_at = {{now}} + $2, updated_at = {{now}} \
             WHERE id = (SELECT id FROM pick) RETURNING id, contract_id, revision, planned, move_to) \
         SELECT t.id, t.contract_id, t.revision, t.planned, r.payload, t.move_to FROM t \
         JOIN revisions r ON r.contract_id = t.contract_id AND r.revision = t.revision",
        queued = claim_queued(),
        expired = claim_expired(),
    )
}

/// `$1` job, `$2` worker, `$3` step, `$4` attempt (INSERT_ATTEMPT + STEP_RUNNING).
pub const PG_ATTEMPT_STARTED: &str = "WITH j AS (UPDATE jobs SET updated_at = {now} \
     WHERE id = $1 AND state = 'running' AND lease_owner = $2 RETURNING id), \
     a AS (INSERT INTO attempts (job_id, idx, attempt, worker, started_at) \
         SELECT id, $3, $4, $2, {now} FROM j RETURNING 1), \
     s AS (UPDATE steps SET state = 'running', attempts = $4 \
         WHERE job_id = (SELECT id FROM j) AND idx = $3 RETURNING 1) \
     SELECT count(*) FROM j";

/// `$1` job, `$2` worker, `$3` step, `$4` attempt, `$5` outcome JSON,
/// `$6` duration ms, `$7` step facts JSON, `$8` kind, `$9` key, `$10` whether
/// the resource is upserted (else deleted), `$11` adapter, `$12` spec JSON,
/// `$13` resource facts JSON, `$14`/`$18`/`$15` secret names, key ids and
/// sealed values (arrays), `$16`/`$17` steps/attempts to start next
/// (arrays, maybe empty):
/// END_ATTEMPT + STEP_DONE + UPSERT_RESOURCE or DELETE_RESOURCE +
/// UPSERT_SECRET + INSERT_ATTEMPT and STEP_RUNNING for each next step.
pub const PG_STEP_SUCCEEDED: &str = "WITH j AS (UPDATE jobs SET updated_at = {now} \
     WHERE id = $1 AND state = 'running' AND lease_owner = $2 RETURNING id, contract_id), \
     a AS (UPDATE attempts SET outcome = $5, finished_at = {now}, duration_ms = $6 \
         WHERE job_id = (SELECT id FROM j) AND idx = $3 AND attempt = $4 RETURNING 1), \
     s AS (UPDATE steps SET state = 'succeeded', facts = $7, last_error = NULL \
         WHERE job_id = (SELECT id FROM j) AND idx = $3 RETURNING 1), \
     u AS (INSERT INTO resources (contract_id, kind, key, adapter, spec, facts, updated_at) \
         SELECT contract_id, $8, $9, $11, $12, $13, {now} FROM j WHERE $10 \
         ON CONFLICT (contract_id, kind, key) DO UPDATE SET adapter = excluded.adapter, \
         spec = excluded.spec, facts = excluded.facts, updated_at = excluded.updated_at RETURNING 1), \
     d AS (DELETE FROM resources WHERE NOT $10 AND contract_id = (SELECT contract_id FROM j) \
         AND kind = $8 AND key = $9 RETURNING 1), \
     x AS (INSERT INTO secrets (job_id, name, key_id, sealed) \
         SELECT j.id, t.name, t.key_id, t.sealed FROM j, \
         unnest($14::text[], $18::text[], $15::bytea[]) AS t(name, key_id, sealed) \
         ON CONFLICT (job_id, name) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed RETURNING 1), \
     na AS (INSERT INTO attempts (job_id, idx, attempt, worker, started_at) \
         SELECT j.id, t.idx, t.att, $2, {now} FROM j, unnest($16::bigint[], $17::bigint[]) AS t(idx, att) \
         RETURNING 1), \
     ns AS (UPDATE steps SET state = 'running', attempts = t.att \
         FROM unnest($16::bigint[], $17::bigint[]) AS t(idx, att) \
         WHERE steps.job_id = (SELECT id FROM j) AND steps.idx = t.idx RETURNING 1) \
     SELECT count(*) FROM j";
/// The first attempts of the plan's steps `$3` (array) for worker `$2` on
/// job `$1`, journaled with the plan (INSERT_ATTEMPT + STEP_RUNNING each).
pub const PG_START_FIRST_ATTEMPTS: &str = "WITH a AS (INSERT INTO attempts (job_id, idx, attempt, worker, started_at) \
         SELECT $1, t.idx, 1, $2, {now} FROM unnest($3::bigint[]) AS t(idx) RETURNING 1) \
     UPDATE steps SET state = 'running', attempts = 1 WHERE job_id = $1 AND idx = ANY($3::bigint[])";

/// `$1` result JSON, `$2` job, `$3` worker, `$4` idempotency key,
/// `$5` contract, `$6` body, `$7` the names to keep (`space name` each),
/// `$8` the domains to keep: JOB_SUCCEEDED + INSERT_OUTBOX + the release of
/// the contract's claims of this or an older revision not kept.
pub const PG_JOB_SUCCEEDED: &str = "WITH j AS (UPDATE jobs SET state = 'succeeded', result = $1, \
     error = NULL, failed_step = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = {now} \
     WHERE id = $2 AND state = 'running' AND lease_owner = $3 RETURNING id, revision), \
     o AS (INSERT INTO outbox (idempotency_key, contract_id, body, created_at, next_attempt_at) \
         SELECT $4, $5, $6, {now}, {now} FROM j RETURNING 1), \
     rc AS (DELETE FROM claims c WHERE c.contract_id = $5 AND c.revision <= (SELECT revision FROM j) \
         AND NOT ((c.space || ' ' || c.name) = ANY($7::text[])) RETURNING 1), \
     rd AS (DELETE FROM domain_claims d WHERE d.contract_id = $5 AND d.revision <= (SELECT revision FROM j) \
         AND NOT (d.name = ANY($8::text[])) RETURNING 1) \
     SELECT count(*) FROM j";

// --- intake ------------------------------------------------------------------

/// `$1` contract, `$2` revision, `$3` payload: the revision's job, and
/// whether it was recorded with this payload.
pub const JOB_OF_REVISION: &str = "SELECT j.id, CASE WHEN r.payload = $3 THEN 1 ELSE 0 END \
     FROM jobs j JOIN revisions r ON r.contract_id = j.contract_id AND r.revision = j.revision \
     WHERE j.contract_id = $1 AND j.revision = $2 AND j.kind = 'revision'";

pub const INSERT_REVISION: &str = "INSERT INTO revisions (contract_id, revision, customer_id, service, active, envelope, payload, received_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// `$1` id, `$2` contract, `$3` revision.
pub const INSERT_JOB: &str = "INSERT INTO jobs (id, contract_id, revision, state, created_at, updated_at) \
     VALUES ($1, $2, $3, 'queued', {now}, {now})";

pub const INSERT_REJECTION: &str = "INSERT INTO rejections (contract_id, revision, kind, reasons, received, received_at, \
     received_sha256, received_size) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub const LATEST_REVISION: &str = "SELECT contract_id, revision, payload, received_at FROM revisions \
     WHERE contract_id = $1 ORDER BY revision DESC LIMIT 1";

pub const REVISIONS: &str = "SELECT contract_id, revision, payload, received_at FROM revisions \
     WHERE contract_id = $1 ORDER BY revision";

pub const CUSTOMER_CONTRACTS: &str = "SELECT contract_id, service, active FROM contract_heads \
     WHERE customer_id = $1 ORDER BY contract_id";

pub const LATEST_REVISIONS: &str = "SELECT r.contract_id, r.revision, r.payload, r.received_at \
     FROM contract_heads h JOIN revisions r ON r.contract_id = h.contract_id AND r.revision = h.revision \
     ORDER BY (SELECT MIN(f.received_at) FROM revisions f WHERE f.contract_id = h.contract_id), h.contract_id";

// --- serialised intake and ownership (claims.rs, migration 0003) ---------------
//
// A revision is recorded only onto the state its rules were judged against:
// the contract's head revision and the customer's version, both read before
// the rules ran and checked again in the recording transaction (SQLite: the
// one writer; PostgreSQL: the rows locked). A revision that changes what
// the customer's other contracts' rules read (a new contract, another
// service type, in force or not, another customer) moves the version on.

pub const CUSTOMER_VERSION: &str = "SELECT version FROM customers WHERE customer_id = $1";

/// `$1` contract: its head revision, customer, service, whether in force.
pub const CONTRACT_HEAD: &str =
    "SELECT revision, customer_id, service, active FROM contract_heads WHERE contract_id = $1";

/// `$1` contract, `$2` customer, `$3` revision, `$4` service, `$5` active.
/// No row when another intake made the head meanwhile.
pub const INSERT_HEAD: &str = "INSERT INTO contract_heads (contract_id, customer_id, revision, service, active) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (contract_id) DO NOTHING RETURNING 1";

/// As INSERT_HEAD, moving the head from revision `$6` only.
pub const MOVE_HEAD: &str = "UPDATE contract_heads SET customer_id = $2, revision = $3, service = $4, \
     active = $5 WHERE contract_id = $1 AND revision = $6 RETURNING 1";

/// `$1` customer.
pub const BUMP_CUSTOMER: &str = "INSERT INTO customers (customer_id, version) VALUES ($1, 1) \
     ON CONFLICT (customer_id) DO UPDATE SET version = customers.version + 1";

/// `$1` space, `$2` name: the owning contract.
pub const CLAIM_OWNER: &str = "SELECT contract_id FROM claims WHERE space = $1 AND name = $2";

/// `$1` space, `$2` name, `$3` contract, `$4` revision. No row when another
/// contract owns the name.
pub const CLAIM_NAME: &str = "INSERT INTO claims (space, name, contract_id, revision) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (space, name) DO UPDATE SET revision = excluded.revision \
     WHERE claims.contract_id = excluded.contract_id RETURNING 1";

/// PostgreSQL: CLAIM_NAME for arrays `$1` spaces and `$2` names; returns the
/// names claimed (the others are owned by other contracts). A name another
/// transaction is claiming waits for it to end.
pub const PG_CLAIM_NAMES: &str = "INSERT INTO claims (space, name, contract_id, revision) \
     SELECT t.space, t.name, $3, $4 FROM unnest($1::text[], $2::text[]) AS t(space, name) \
     ON CONFLICT (space, name) DO UPDATE SET revision = excluded.revision \
     WHERE claims.contract_id = excluded.contract_id RETURNING space, name";

/// Domains under the registrable domain `$1` held by other customers than
/// `$2` (rows of contract `$3` itself excepted: a contract that changes hands
/// keeps its own domains).
pub const DOMAINS_UNDER: &str = "SELECT name FROM domain_claims \
     WHERE base = $1 AND customer_id <> $2 AND contract_id <> $3";

/// `$1` name, `$2` contract, `$3` base, `$4` customer, `$5` revision.
pub const CLAIM_DOMAIN: &str = "INSERT INTO domain_claims (name, contract_id, base, customer_id, revision) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, contract_id) DO UPDATE SET \
     customer_id = excluded.customer_id, revision = excluded.revision";

/// `$1` contract, `$2` its new customer (第18条 succession).
pub const DOMAINS_TO_CUSTOMER: &str =
    "UPDATE domain_claims SET customer_id = $2 WHERE contract_id = $1";

/// `$1` contract: its claimed names and the revision of each.
pub const CLAIMS_OF: &str = "SELECT space, name, revision FROM claims WHERE contract_id = $1";

pub const DOMAIN_CLAIMS_OF: &str =
    "SELECT name, revision FROM domain_claims WHERE contract_id = $1";

/// `$1` space, `$2` name, `$3` contract.
pub const RELEASE_CLAIM: &str =
    "DELETE FROM claims WHERE space = $1 AND name = $2 AND contract_id = $3";

/// `$1` name, `$2` contract.
pub const RELEASE_DOMAIN: &str = "DELETE FROM domain_claims WHERE name = $1 AND contract_id = $2";

/// PostgreSQL: the first of the names `$1` spaces / `$2` names that contract
/// `$3` does not own (no row: it owns them all).
pub const PG_NOT_OWNED: &str = "SELECT t.space, t.name FROM unnest($1::text[], $2::text[]) AS t(space, name) \
     LEFT JOIN claims c ON c.space = t.space AND c.name = t.name \
     WHERE c.contract_id IS DISTINCT FROM $3 LIMIT 1";

/// PostgreSQL: whether a revision's job exists (`$1` contract, `$2`
/// revision) and the contract's head, in one round trip.
pub const PG_EXISTING_AND_HEAD: &str = "SELECT j.id, h.revision, h.customer_id, h.service, h.active, \
     CASE WHEN r.payload = $3 THEN 1 ELSE 0 END \
     FROM (SELECT 1) AS one LEFT JOIN jobs j ON j.contract_id = $1 AND j.revision = $2 AND j.kind = 'revision' \
     LEFT JOIN revisions r ON r.contract_id = $1 AND r.revision = $2 \
     LEFT JOIN contract_heads h ON h.contract_id = $1";

/// PostgreSQL: which of the names `$1` spaces / `$2` names contracts other
/// than `$3` own.
pub const PG_OWNED_BY_OTHERS: &str = "SELECT c.space, c.name FROM unnest($1::text[], $2::text[]) AS t(space, name) \
     JOIN claims c ON c.space = t.space AND c.name = t.name WHERE c.contract_id <> $3";

/// PostgreSQL: the customer's version is still `$2`, and stays so until
/// commit (a concurrent change of it waits for this transaction, and one
/// that committed first makes this match nothing).
pub const PG_HOLD_CUSTOMER: &str =
    "SELECT 1 FROM customers WHERE customer_id = $1 AND version = $2 FOR SHARE";

/// PostgreSQL: moves the customer's version on from `$2` (no row: it moved).
pub const PG_MOVE_CUSTOMER: &str = "UPDATE customers SET version = version + 1 \
     WHERE customer_id = $1 AND version = $2 RETURNING 1";

/// PostgreSQL: a new customer's first version (no row: another intake made it).
pub const PG_NEW_CUSTOMER: &str = "INSERT INTO customers (customer_id, version) VALUES ($1, 1) \
     ON CONFLICT (customer_id) DO NOTHING RETURNING 1";

/// PostgreSQL: serialises claims of domains per registrable domain (`$1`,
/// array), the locks taken in one order so two intakes cannot deadlock.
pub const PG_LOCK_BASES: &str = "SELECT pg_advisory_xact_lock(7242025, h) \
     FROM (SELECT DISTINCT hashtext(b) AS h FROM unnest($1::text[]) AS t(b) ORDER BY 1) AS s";

/// PostgreSQL: DOMAINS_UNDER for the registrable domains `$1` (array).
pub const PG_DOMAINS_UNDER: &str = "SELECT name FROM domain_claims \
     WHERE base = ANY($1::text[]) AND customer_id <> $2 AND contract_id <> $3";

/// PostgreSQL: CLAIM_DOMAIN for arrays `$1` names and `$2` bases, contract
/// `$3`, customer `$4`, revision `$5`.
pub const PG_CLAIM_DOMAINS: &str = "INSERT INTO domain_claims (name, contract_id, base, customer_id, revision) \
     SELECT t.name, $3, t.base, $4, $5 FROM unnest($1::text[], $2::text[]) AS t(name, base) \
     ON CONFLICT (name, contract_id) DO UPDATE SET customer_id = excluded.customer_id, \
     revision = excluded.revision";

/// PostgreSQL: INSERT_REVISION and INSERT_JOB (`$9` job id) in one statement.
pub const PG_INSERT_REVISION: &str = "WITH rev AS (INSERT INTO revisions (contract_id, revision, customer_id, \
         service, active, envelope, payload, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING contract_id, revision) \
     INSERT INTO jobs (id, contract_id, revision, state, created_at, updated_at) \
     SELECT $9, contract_id, revision, 'queued', {now}, {now} FROM rev";

/// PostgreSQL: the customer's version, then the contract's latest revision
/// (one statement: one snapshot).
pub const PG_INTAKE_VIEW: &str = "SELECT (SELECT version FROM customers WHERE customer_id = $2), \
     r.contract_id, r.revision, r.payload, r.received_at FROM (SELECT 1) AS one \
     LEFT JOIN LATERAL (SELECT contract_id, revision, payload, received_at FROM revisions \
         WHERE contract_id = $1 ORDER BY revision DESC LIMIT 1) AS r ON true";

pub const META: &str = "SELECT value FROM hw_meta WHERE key = $1";

pub const SET_META: &str = "INSERT INTO hw_meta (key, value) VALUES ($1, $2) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// `$1` cutoff (unix ms), `$2` batch size: the oldest refusals first
/// (index `rejections_received_at`, migration 0006).
pub const PRUNE_REJECTIONS: &str = "DELETE FROM rejections WHERE id IN (SELECT id FROM rejections \
     WHERE received_at < $1 ORDER BY received_at LIMIT $2)";

// --- retention (engine/retention.rs) -----------------------------------------------

/// The succeeded jobs that ended before `$1`, with ids after `$3`, at most
/// `$2`, in id order: one batch of a prune of attempts, walked by the
/// primary key so that a whole prune reads each job once. `state || ''`
/// keeps SQLite off `jobs_claim (state, …)`, which would read every
/// succeeded job and sort them for each batch (40 ms a batch with 250,000
/// jobs, against 0.3 ms by the key: docs/performance.md).
const PRUNABLE_JOBS: &str = "SELECT id FROM jobs WHERE id > $3 AND state || '' = 'succeeded' \
     AND updated_at < $1 ORDER BY id LIMIT $2";

/// The batch's last job id and size (the cursor of the next batch).
pub fn prune_attempts_batch() -> String {
    format!("SELECT MAX(p.id), COUNT(*) FROM ({PRUNABLE_JOBS}) p")
}

/// Deletes the attempts of the batch's jobs (same parameters).
pub fn prune_attempts() -> String {
    format!("DELETE FROM attempts WHERE job_id IN ({PRUNABLE_JOBS})")
}

/// Reports delivered before `$1`, at most `$2`, oldest first; never the
/// newest report of a contract (what the contracts API shows as its
/// billable state), never one not yet delivered. Uses `outbox_contract`
/// (migration 0007).
pub const PRUNE_DELIVERED_REPORTS: &str = "DELETE FROM outbox WHERE id IN (SELECT o.id FROM outbox o \
     WHERE o.delivered_at IS NOT NULL AND o.delivered_at < $1 \
     AND o.id < (SELECT MAX(n.id) FROM outbox n WHERE n.contract_id = o.contract_id) \
     ORDER BY o.delivered_at LIMIT $2)";

// --- ops -----------------------------------------------------------------------

pub const SUMMARY_SELECT: &str = "SELECT j.id, j.contract_id, j.revision, j.state, j.created_at, j.updated_at, j.error, \
     (SELECT COUNT(*) FROM steps s WHERE s.job_id = j.id) AS steps_total, \
     (SELECT COUNT(*) FROM steps s WHERE s.job_id = j.id AND s.state = 'succeeded') AS steps_done, \
     j.move_to FROM jobs j";

/// `$1` state (or `''`), `$2` contract (or `''`), `$3` limit; the unused
/// filters compare a parameter with itself so every parameter is bound.
pub fn list_jobs(by_state: bool, by_contract: bool) -> String {
    let mut sql = format!("{SUMMARY_SELECT} WHERE 1 = 1");
    sql.push_str(if by_state {
        " AND j.state = $1"
    } else {
        " AND $1 = $1"
    });
    sql.push_str(if by_contract {
        " AND j.contract_id = $2"
    } else {
        " AND $2 = $2"
    });
    sql.push_str(" ORDER BY j.created_at DESC, j.revision DESC LIMIT $3");
    sql
}

pub fn job_summary() -> String {
    format!("{SUMMARY_SELECT} WHERE j.id = $1")
}

pub const JOB_EXTRA: &str = "SELECT lease_owner, result FROM jobs WHERE id = $1";

pub const ATTEMPTS_OF: &str = "SELECT idx, attempt, worker, started_at, finished_at, outcome, duration_ms FROM attempts \
     WHERE job_id = $1 ORDER BY started_at, idx, attempt";

pub const OPS_OF: &str = "SELECT action, actor, at FROM ops_log WHERE job_id = $1 ORDER BY id";

/// `$1` job, `$2` action, `$3` actor.
pub const LOG_OP: &str =
    "INSERT INTO ops_log (job_id, action, actor, at) VALUES ($1, $2, $3, {now})";

pub const RERUN: &str = "UPDATE jobs SET state = 'queued', error = NULL, failed_step = NULL, updated_at = {now} \
     WHERE id = $1 AND state = 'failed'";

pub const FAILED_STEPS_PENDING: &str =
    "UPDATE steps SET state = 'pending' WHERE job_id = $1 AND state = 'failed'";

pub const FAILED_JOBS: &str = "SELECT id FROM jobs WHERE state = 'failed' ORDER BY created_at";

pub const CANCEL: &str = "UPDATE jobs SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, \
     updated_at = {now} WHERE id = $1 AND state IN ('queued', 'failed', 'running')";

/// Clear-text secrets of stores older than migration 0003, sealed at start.
pub const UNSEALED_SECRETS: &str = "SELECT job_id, name, value FROM secrets_unsealed";

pub const DROP_UNSEALED_SECRETS: &str = "DROP TABLE secrets_unsealed";

/// Secrets sealed under another key than `$1` (re-sealed at start).
pub const SECRETS_UNDER_OLD_KEYS: &str =
    "SELECT job_id, name, key_id, sealed FROM secrets WHERE key_id <> $1";

pub const SECRETS_OF: &str = "SELECT name, key_id, sealed FROM secrets WHERE job_id = $1";

pub const DELETE_SECRETS: &str = "DELETE FROM secrets WHERE job_id = $1";

pub const JOBS_BY_STATE: &str = "SELECT state, COUNT(*) FROM jobs GROUP BY state";

/// The oldest queued job's creation and the longest-failed job's failure
/// (its last update), for the age metrics.
pub const OLDEST_WAITING: &str = "SELECT state, MIN(created_at), MIN(updated_at) FROM jobs \
     WHERE state IN ('queued', 'failed') GROUP BY state";

pub const OUTBOX_BACKLOG: &str = "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL";

// --- outbox ----------------------------------------------------------------------

pub const OUTBOX_DUE: &str = "SELECT id, idempotency_key, contract_id, body, attempts FROM outbox \
     WHERE delivered_at IS NULL AND next_attempt_at <= {now} ORDER BY id LIMIT $1";

pub const OUTBOX_DELIVERED: &str = "UPDATE outbox SET delivered_at = {now}, attempts = attempts + 1, \
     last_error = NULL WHERE id = $1";

/// `$1` error, `$2` delay ms, `$3` id.
pub const OUTBOX_RETRY_LATER: &str = "UPDATE outbox SET attempts = attempts + 1, last_error = $1, \
     next_attempt_at = {now} + $2 WHERE id = $3";

// --- notifications (webhooks) ------------------------------------------------------

/// `$1` idempotency key, `$2` event, `$3` body: queued once per key.
pub const INSERT_NOTIFICATION: &str = "INSERT INTO notifications (idempotency_key, event, body, created_at, next_attempt_at) \
     VALUES ($1, $2, $3, {now}, {now}) ON CONFLICT (idempotency_key) DO NOTHING";

pub const NOTIFICATIONS_DUE: &str = "SELECT id, idempotency_key, event, body, attempts FROM notifications \
     WHERE delivered_at IS NULL AND next_attempt_at <= {now} ORDER BY id LIMIT $1";

pub const NOTIFICATION_DELIVERED: &str = "UPDATE notifications SET delivered_at = {now}, \
     attempts = attempts + 1, last_error = NULL WHERE id = $1";

/// `$1` error, `$2` delay ms, `$3` id.
pub const NOTIFICATION_RETRY_LATER: &str = "UPDATE notifications SET attempts = attempts + 1, \
     last_error = $1, next_attempt_at = {now} + $2 WHERE id = $3";

pub const NOTIFICATIONS_BACKLOG: &str =
    "SELECT COUNT(*) FROM notifications WHERE delivered_at IS NULL";

// --- the monthly close -------------------------------------------------------------

pub const CONTRACT_IDS: &str = "SELECT DISTINCT contract_id FROM revisions ORDER BY contract_id";

pub const STATEMENT_COLUMNS: &str = "contract_id, month, version, replaces, customer_id, \
     based_on_revision, content, statement, total, idempotency_key, closed_at";

/// `$1` contract, `$2` month.
pub fn latest_statement() -> String {
    format!(
        "SELECT {STATEMENT_COLUMNS} FROM statements WHERE contract_id = $1 AND month = $2 \
         ORDER BY version DESC LIMIT 1"
    )
}

/// `$1` month: every version, by contract and version.
pub fn statements_of_month() -> String {
    format!(
        "SELECT {STATEMENT_COLUMNS} FROM statements WHERE month = $1 ORDER BY contract_id, version"
    )
}

/// `$1`..`$10` as STATEMENT_COLUMNS without closed_at; nothing when the
/// version exists already (another close got there first).
pub const INSERT_STATEMENT: &str = "INSERT INTO statements (contract_id, month, version, replaces, \
     customer_id, based_on_revision, content, statement, total, idempotency_key, closed_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, {now}) \
     ON CONFLICT (contract_id, month, version) DO NOTHING";
// --- ops credentials and the audit log (ops.rs) ---------------------------------

pub const INSERT_TOKEN: &str = "INSERT INTO ops_tokens (id, name, scopes, hash, created_at, created_by, expires_at) \
     VALUES ($1, $2, $3, $4, {now}, $5, $6)";

pub const TOKEN_SELECT: &str =
    "SELECT id, name, scopes, hash, created_at, created_by, expires_at, revoked_at FROM ops_tokens";

pub fn token_by_id() -> String {
    format!("{TOKEN_SELECT} WHERE id = $1")
}

pub fn all_tokens() -> String {
    format!("{TOKEN_SELECT} ORDER BY created_at, name")
}

pub const REVOKE_TOKEN: &str =
    "UPDATE ops_tokens SET revoked_at = {now} WHERE name = $1 AND revoked_at IS NULL";

pub const TOKEN_NAME_TAKEN: &str = "SELECT COUNT(*) FROM ops_tokens WHERE name = $1";

/// Queues a repair unless one of the same resource is queued or running;
/// returns the row when queued.
pub const QUEUE_REPAIR: &str = "INSERT INTO repairs (id, contract_id, revision, kind, key, adapter, spec, \
     reason, requested_by, state, attempts, created_at, updated_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', 0, {now}, {now} \
     WHERE NOT EXISTS (SELECT 1 FROM repairs WHERE contract_id = $2 AND kind = $4 AND key = $5 \
     AND state IN ('queued', 'running')) RETURNING id";

pub const REPAIR_COLUMNS: &str = "id, contract_id, revision, kind, key, adapter, spec, reason, \
     requested_by, state, attempts, last_error, facts, created_at, updated_at";

/// `$1` state (or `''`), `$2` contract (or `''`), `$3` limit; oldest first.
pub fn repairs_list() -> String {
    format!(
        "SELECT {REPAIR_COLUMNS} FROM repairs WHERE ($1 = '' OR state = $1) \
         AND ($2 = '' OR contract_id = $2) ORDER BY created_at, id LIMIT $3"
    )
}

pub fn repair_by_id() -> String {
    format!("SELECT {REPAIR_COLUMNS} FROM repairs WHERE id = $1")
}

/// A queued repair starts its next attempt (only one starter wins).
pub const START_REPAIR: &str = "UPDATE repairs SET state = 'running', attempts = attempts + 1, \
     updated_at = {now} WHERE id = $1 AND state = 'queued' RETURNING attempts";

pub const END_REPAIR: &str = "UPDATE repairs SET state = $2, last_error = $3, facts = $4, \
     updated_at = {now} WHERE id = $1 AND state = 'running'";

pub const INSERT_REPAIR_ATTEMPT: &str = "INSERT INTO repair_attempts (repair_id, attempt, worker, \
     started_at, finished_at, outcome, error) VALUES ($1, $2, $3, $4, {now}, $5, $6)";

/// A failed repair (or a running one whose runner died) is queued again.
pub const RERUN_REPAIR: &str = "UPDATE repairs SET state = 'queued', updated_at = {now} \
     WHERE id = $1 AND state IN ('failed', 'running')";

pub const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, actor, action, target, address, outcome, detail) \
     VALUES ({now}, $1, $2, $3, $4, $5, $6)";

/// `$1` actor (or `''`), `$2` target (or `''`), `$3` cursor: entries with a
/// smaller id (`0`: from the newest), `$4` limit. Unused filters compare a
/// parameter with itself so every parameter is bound.
pub fn audit(by_actor: bool, by_target: bool, after_cursor: bool) -> String {
    let mut sql = String::from(
        "SELECT id, at, actor, action, target, address, outcome, detail FROM audit_log WHERE 1 = 1",
    );
    sql.push_str(if by_actor {
        " AND actor = $1"
    } else {
        " AND $1 = $1"
    });
    sql.push_str(if by_target {
        " AND target = $2"
    } else {
        " AND $2 = $2"
    });
    sql.push_str(if after_cursor {
        " AND id < $3"
    } else {
        " AND $3 = $3"
    });
    sql.push_str(" ORDER BY id DESC LIMIT $4");
    sql
}

// --- paged reads for the API (ops.rs) ------------------------------------------

/// `$1` state (or `''`), `$2` contract (or `''`), `$3` 1 when a cursor is
/// given, `$4`/`$5` the cursor's (created_at, id), `$6` limit. Newest first.
pub fn jobs_page() -> String {
    format!(
        "{SUMMARY_SELECT} WHERE ($1 = '' OR j.state = $1) AND ($2 = '' OR j.contract_id = $2) \
         AND ($3 = 0 OR j.created_at < $4 OR (j.created_at = $4 AND j.id < $5)) \
         AND ($7 = '' OR (',' || $7 || ',') LIKE ('%,' || j.id || ',%')) \
         ORDER BY j.created_at DESC, j.id DESC LIMIT $6"
    )
}

/// `$1` the cursor (an id; 0 for the newest), `$2` limit.
pub const REJECTIONS_PAGE: &str = "SELECT id, contract_id, revision, kind, reasons, received_at, \
     received, received_sha256, received_size FROM rejections \
     WHERE ($1 = 0 OR id < $1) ORDER BY id DESC LIMIT $2";

/// The latest revision of each contract: `$1` customer (or `''`), `$2` a
/// domain one of its recorded resources carries (or `''`), `$3` contracts
/// after this id (`''` from the start), `$4` limit.
pub const CONTRACTS_PAGE: &str = "SELECT r.contract_id, r.revision, r.payload, r.received_at FROM revisions r \
     WHERE r.revision = (SELECT MAX(r2.revision) FROM revisions r2 WHERE r2.contract_id = r.contract_id) \
     AND ($1 = '' OR r.customer_id = $1) \
     AND ($2 = '' OR EXISTS (SELECT 1 FROM resources x WHERE x.contract_id = r.contract_id AND x.key = $2)) \
     AND r.contract_id > $3 ORDER BY r.contract_id LIMIT $4";

/// The newest billable-state report of a contract and whether billing has it.
pub const LATEST_REPORT: &str = "SELECT body, created_at, delivered_at FROM outbox \
     WHERE contract_id = $1 ORDER BY id DESC LIMIT 1";

// --- fleets (fleet.rs, migration 0010) ---------------------------------------------

/// The placements of contracts in force on each host, and what they commit.
const HOST_HELD: &str = "FROM placements p JOIN contract_heads h ON h.contract_id = p.contract_id \
     WHERE h.active <> 0";

pub const PLACEMENT: &str =
    "SELECT contract_id, host, disk_mb, placed_at FROM placements WHERE contract_id = $1";

pub const PLACEMENTS_ON: &str = "SELECT contract_id, host, disk_mb, placed_at FROM placements \
     WHERE host = $1 ORDER BY contract_id";

pub fn host_usage() -> String {
    format!(
        "SELECT p.host, COUNT(*), CAST(COALESCE(SUM(p.disk_mb), 0) AS BIGINT) {HOST_HELD} GROUP BY p.host"
    )
}

/// Places contract $1 on host $2 committing $3 MB, when $4 = 0 (adopting
/// what is already there) or when the host's contracts in force number
/// fewer than $5 and commit at most $6 - $3 MB: the capacity check and the
/// insert are one statement (PostgreSQL also takes the placement lock).
pub fn place() -> String {
    format!(
        "INSERT INTO placements (contract_id, host, disk_mb, placed_at) \
         SELECT $1, $2, $3, {{now}} WHERE $4 = 0 OR ( \
           (SELECT COUNT(*) {HOST_HELD} AND p.host = $2) < $5 \
           AND (SELECT COALESCE(SUM(p.disk_mb), 0) {HOST_HELD} AND p.host = $2) + $3 <= $6) \
         ON CONFLICT (contract_id) DO NOTHING"
    )
}

/// Sets contract $1's committed disk to $2 MB when the host's other
/// contracts in force leave room for it under $3 MB.
pub fn resize_placement() -> String {
    format!(
        "UPDATE placements SET disk_mb = $2 WHERE contract_id = $1 \
         AND (SELECT COALESCE(SUM(p.disk_mb), 0) {HOST_HELD} \
              AND p.host = placements.host AND p.contract_id <> $1) + $2 <= $3"
    )
}

/// Moves contract $1's placement to host $2 committing $3 MB, when $2 is
/// another host whose contracts in force number fewer than $4 and commit at
/// most $5 - $3 MB (PostgreSQL also takes the placement lock).
pub fn move_placement() -> String {
    format!(
        "UPDATE placements SET host = $2, disk_mb = $3, placed_at = {{now}} \
         WHERE contract_id = $1 AND host <> $2 \
           AND (SELECT COUNT(*) {HOST_HELD} AND p.host = $2) < $4 \
           AND (SELECT COALESCE(SUM(p.disk_mb), 0) {HOST_HELD} AND p.host = $2) + $3 <= $5"
    )
}

/// `$1` contract: its move job not ended, if any.
pub const OPEN_MOVE: &str = "SELECT id FROM jobs WHERE contract_id = $1 AND kind = 'move' \
     AND state IN ('queued', 'running', 'failed') LIMIT 1";

/// `$1` id, `$2` contract, `$3` revision, `$4` target host.
pub const INSERT_MOVE_JOB: &str = "INSERT INTO jobs (id, contract_id, revision, state, created_at, updated_at, kind, move_to) \
     VALUES ($1, $2, $3, 'queued', {now}, {now}, 'move', $4)";

pub const HOST_STATES: &str = "SELECT name, state FROM fleet_host_states";

pub const SET_HOST_STATE: &str = "INSERT INTO fleet_host_states (name, state, changed_by, changed_at) VALUES ($1, $2, $3, {now}) \
     ON CONFLICT (name) DO UPDATE SET state = excluded.state, changed_by = excluded.changed_by, \
     changed_at = excluded.changed_at";

/// PostgreSQL's lock serialising placements (an advisory transaction lock).
pub const PLACEMENT_LOCK: &str = "SELECT pg_advisory_xact_lock(1013)";

// --- migrations ------------------------------------------------------------------

/// Schema versions in order. Never edit a shipped one: existing stores only
/// run the versions they lack.
pub const MIGRATIONS_SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../../migrations/sqlite/0002_claim_index.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/sqlite/0003_ownership.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/sqlite/0004_monthly_close.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/sqlite/0005_ops_credentials_audit.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/sqlite/0006_rejection_digest.sql"),
    ),
    (
        7,
        include_str!("../../../migrations/sqlite/0007_retention.sql"),
    ),
    (
        8,
        include_str!("../../../migrations/sqlite/0008_notifications.sql"),
    ),
    (
        9,
        include_str!("../../../migrations/sqlite/0009_drift_repairs.sql"),
    ),
    (
        10,
        include_str!("../../../migrations/sqlite/0010_fleet.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/sqlite/0011_move_jobs.sql"),
    ),
];
pub const MIGRATIONS_POSTGRES: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_claim_index.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/postgres/0003_ownership.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/postgres/0004_monthly_close.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/postgres/0005_ops_credentials_audit.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/postgres/0006_rejection_digest.sql"),
    ),
    (
        7,
        include_str!("../../../migrations/postgres/0007_retention.sql"),
    ),
    (
        8,
        include_str!("../../../migrations/postgres/0008_notifications.sql"),
    ),
    (
        9,
        include_str!("../../../migrations/postgres/0009_drift_repairs.sql"),
    ),
    (
        10,
        include_str!("../../../migrations/postgres/0010_fleet.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/postgres/0011_move_jobs.sql"),
    ),
];

/// The record of applied migrations: version, when, and the SHA-256 of the
/// text that ran (`migrate.rs`; NULL in stores older than checksums until
/// their first open by a build that records them).
pub const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS hw_schema_migrations \
     (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL, checksum TEXT)";

/// Adds the checksum column to the table of stores older than it (SQLite
/// has no `ADD COLUMN IF NOT EXISTS`: run only when [`HAS_CHECKSUM_SQLITE`]
/// finds none).
pub const ADD_CHECKSUM_COLUMN: &str = "ALTER TABLE hw_schema_migrations ADD COLUMN checksum TEXT";
pub const ADD_CHECKSUM_COLUMN_POSTGRES: &str =
    "ALTER TABLE hw_schema_migrations ADD COLUMN IF NOT EXISTS checksum TEXT";
pub const HAS_CHECKSUM_SQLITE: &str =
    "SELECT COUNT(*) FROM pragma_table_info('hw_schema_migrations') WHERE name = 'checksum'";

pub const APPLIED_MIGRATIONS: &str =
    "SELECT version, checksum FROM hw_schema_migrations ORDER BY version";

/// `$1` version, `$2` checksum.
pub const RECORD_MIGRATION: &str =
    "INSERT INTO hw_schema_migrations (version, applied_at, checksum) VALUES ($1, {now}, $2)";

/// `$1` version, `$2` checksum: for a version applied before checksums.
pub const BACKFILL_CHECKSUM: &str =
    "UPDATE hw_schema_migrations SET checksum = $2 WHERE version = $1 AND checksum IS NULL";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_gets_numbered_parameters_and_its_clock() {
        let s = Dialect::Sqlite.render("UPDATE t SET a = $1, b = '$2' WHERE c = $12 AND d < {now}");
        assert_eq!(
            s,
            format!(
                "UPDATE t SET a = ?1, b = '$2' WHERE c = ?12 AND d < {}",
                Dialect::Sqlite.now()
            )
        );
        let p = Dialect::Postgres.render("SELECT $1 FROM jobs j{lock}");
        assert_eq!(p, "SELECT $1 FROM jobs j FOR UPDATE OF j SKIP LOCKED");
        assert_eq!(
            Dialect::Sqlite.render("SELECT 1 FROM jobs j{lock}"),
            "SELECT 1 FROM jobs j"
        );
    }

    #[test]
    fn the_plan_insert_numbers_its_rows() {
        assert_eq!(
            insert_steps(2),
            "INSERT INTO steps (job_id, idx, step, state) VALUES ($1, $2, $3, 'pending'), ($1, $4, $5, 'pending')"
        );
    }
}
