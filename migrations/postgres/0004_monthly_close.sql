-- The monthly close for billing (docs/billing.md, "The monthly close"): one
-- statement per contract and month, exactly once (version 1), and a
-- correction (version n+1, `replaces` = n) when a contract revised after the
-- close changes what the month bills. Each row is written in the same
-- transaction as its outbox report (`idempotency_key`).
CREATE TABLE statements (
    contract_id TEXT NOT NULL,
    month TEXT NOT NULL,
    version BIGINT NOT NULL,
    replaces BIGINT,
    customer_id TEXT NOT NULL,
    based_on_revision BIGINT NOT NULL,
    content TEXT NOT NULL,
    statement TEXT NOT NULL,
    total TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    closed_at BIGINT NOT NULL,
    PRIMARY KEY (contract_id, month, version)
);
CREATE INDEX statements_month ON statements (month, contract_id, version);
