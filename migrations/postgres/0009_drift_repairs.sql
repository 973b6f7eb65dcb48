-- Drift repairs (issue #14): a job kind of its own. One row per resource a
-- drift scan found missing or changed and someone asked to repair: the
-- desired spec of the contract's revision then, who asked, its state
-- (queued, running, succeeded, failed; a failed one can be queued again),
-- and the journal of every attempt. Its adapter's `ensure` does the work.
CREATE TABLE repairs (
    id TEXT PRIMARY KEY,
    contract_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    adapter TEXT NOT NULL,
    spec TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    facts TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX repairs_state ON repairs (state, created_at);
CREATE INDEX repairs_contract ON repairs (contract_id, kind, key);

CREATE TABLE repair_attempts (
    repair_id TEXT NOT NULL REFERENCES repairs (id),
    attempt BIGINT NOT NULL,
    worker TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (repair_id, attempt)
);
