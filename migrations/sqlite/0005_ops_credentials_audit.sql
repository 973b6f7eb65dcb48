-- Per-person ops credentials and the audit log (issue #16).
-- ops_tokens: a token is `hwt_<id>_<secret>`; only the SHA-256 of the whole
-- token is kept. A revoked token keeps its row (and name), so the audit log
-- always names a known credential.
CREATE TABLE ops_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);

-- Every ops action and every refused attempt. No reference to jobs: the
-- log outlives the jobs it names.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    address TEXT,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_target ON audit_log (target, id);
