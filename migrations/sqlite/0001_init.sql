-- hostwright job store, SQLite. Timestamps are unix milliseconds taken
-- from the database clock; JSON is stored as text (the engine owns its shape).
CREATE TABLE revisions (
    contract_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    customer_id TEXT NOT NULL,
    service TEXT NOT NULL,
    active BIGINT NOT NULL,
    envelope BLOB NOT NULL,
    payload BLOB NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (contract_id, revision)
);
CREATE INDEX revisions_customer ON revisions (customer_id);

CREATE TABLE jobs (
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
    UNIQUE (contract_id, revision)
);
CREATE INDEX jobs_state ON jobs (state, created_at);
CREATE INDEX jobs_contract ON jobs (contract_id, revision);

CREATE TABLE steps (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    idx BIGINT NOT NULL,
    step TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    facts TEXT,
    PRIMARY KEY (job_id, idx)
);

CREATE TABLE attempts (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    idx BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    worker TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    outcome TEXT,
    duration_ms BIGINT,
    PRIMARY KEY (job_id, idx, attempt)
);

CREATE TABLE resources (
    contract_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    adapter TEXT NOT NULL,
    spec TEXT NOT NULL,
    facts TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (contract_id, kind, key)
);

CREATE TABLE secrets (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (job_id, name)
);

CREATE TABLE ops_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX ops_log_job ON ops_log (job_id);

CREATE TABLE rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    contract_id TEXT,
    revision BIGINT,
    kind TEXT NOT NULL,
    reasons TEXT NOT NULL,
    received BLOB NOT NULL,
    received_at BIGINT NOT NULL
);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    contract_id TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox (delivered_at, next_attempt_at);
