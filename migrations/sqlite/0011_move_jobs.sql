-- Moves (issue 13): a job is either a revision's (`kind` 'revision', one
-- per contract and revision, as before) or the move of a contract's web
-- space to another host (`kind` 'move', `move_to` the host), which runs
-- at the contract's head revision like any job: journaled, leased,
-- rerunnable. The one-job-per-revision rule becomes a partial unique
-- index, which SQLite can only get by rebuilding `jobs`; `steps` and
-- `attempts` reference it and are rebuilt with it (children dropped
-- first, so no foreign key is ever left dangling; renaming `jobs_new`
-- rewrites their references to `jobs`).
CREATE TABLE jobs_new (
    id TEXT PRIMARY KEY,
    contract_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    state TEXT NOT NULL,
    planned BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    error TEXT,
    failed_step BIGINT,
    result TEXT,
    kind TEXT NOT NULL DEFAULT 'revision',
    move_to TEXT
);
INSERT INTO jobs_new (id, contract_id, revision, state, planned, created_at, updated_at,
    lease_owner, lease_expires_at, error, failed_step, result)
SELECT id, contract_id, revision, state, planned, created_at, updated_at,
    lease_owner, lease_expires_at, error, failed_step, result FROM jobs;

CREATE TABLE steps_new (
    job_id TEXT NOT NULL REFERENCES jobs_new (id),
    idx BIGINT NOT NULL,
    step TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    facts TEXT,
    PRIMARY KEY (job_id, idx)
);
INSERT INTO steps_new (job_id, idx, step, state, attempts, last_error, facts)
SELECT job_id, idx, step, state, attempts, last_error, facts FROM steps;

CREATE TABLE attempts_new (
    job_id TEXT NOT NULL REFERENCES jobs_new (id),
    idx BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    worker TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    outcome TEXT,
    duration_ms BIGINT,
    PRIMARY KEY (job_id, idx, attempt)
);
INSERT INTO attempts_new (job_id, idx, attempt, worker, started_at, finished_at, outcome, duration_ms)
SELECT job_id, idx, attempt, worker, started_at, finished_at, outcome, duration_ms FROM attempts;

DROP TABLE attempts;
DROP TABLE steps;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
ALTER TABLE steps_new RENAME TO steps;
ALTER TABLE attempts_new RENAME TO attempts;

CREATE UNIQUE INDEX jobs_revision ON jobs (contract_id, revision) WHERE kind = 'revision';
CREATE INDEX jobs_contract ON jobs (contract_id, revision);
CREATE INDEX jobs_claim ON jobs (state, created_at, revision);
CREATE INDEX jobs_created ON jobs (created_at, id);
