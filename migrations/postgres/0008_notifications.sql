-- Notifications (issue 16): webhook events waiting for delivery, the
-- outbox of the notifier (src/engine/outbox.rs delivers them like billing
-- reports: at least once, retried with the one retry policy). Written in
-- the same transaction as the job end they announce. `idempotency_key` is
-- unique: an event is queued once however often its writer retries, and the
-- receiver sees the same key on every delivery of it. `event` picks the
-- configured endpoint ([notify.<event>]) when it is delivered.
CREATE TABLE notifications (
    id BIGSERIAL PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    body BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT
);
CREATE INDEX notifications_due ON notifications (delivered_at, next_attempt_at);
