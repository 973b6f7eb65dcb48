-- Ownership and serialised intake (src/engine/claims.rs, docs/schema.md).

-- The latest accepted revision of each contract and what the rules of the
-- customer's other contracts read of it. Intake moves a head only from the
-- revision it judged the new one against (guarded UPDATE), so two revisions
-- of one contract can never both be judged against the same predecessor.
CREATE TABLE contract_heads (
    contract_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    service TEXT NOT NULL,
    active BIGINT NOT NULL
);
CREATE INDEX contract_heads_customer ON contract_heads (customer_id);
INSERT INTO contract_heads (contract_id, customer_id, revision, service, active)
SELECT r.contract_id, r.customer_id, r.revision, r.service, r.active FROM revisions r
WHERE r.revision = (SELECT MAX(x.revision) FROM revisions x WHERE x.contract_id = r.contract_id);

-- One row per customer whose version changes whenever what the rules read
-- of its contracts (which exist, their service type, whether in force)
-- changes; intake records a revision only if the version it judged against
-- still holds.
CREATE TABLE customers (
    customer_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO customers (customer_id, version) SELECT DISTINCT customer_id, 1 FROM contract_heads;

-- Backend names, each owned by exactly one contract. `revision` is the
-- latest revision of the owner that needs the name; a claim is released
-- only by a successful job of the owner at or after that revision that no
-- longer needs it.
CREATE TABLE claims (
    space TEXT NOT NULL,
    name TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    PRIMARY KEY (space, name)
);
CREATE INDEX claims_contract ON claims (contract_id);

-- Domains held by customers: a name conflicts with another customer's same
-- name, its ancestors and descendants, all under one registrable domain
-- (`base`), which is how intake looks them up (and, on PostgreSQL, locks).
CREATE TABLE domain_claims (
    name TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    base TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    PRIMARY KEY (name, contract_id)
);
CREATE INDEX domain_claims_base ON domain_claims (base);
CREATE INDEX domain_claims_contract ON domain_claims (contract_id);

-- Secrets are sealed (AEAD, key outside the store). Clear-text rows of
-- older versions wait in secrets_unsealed until the engine seals them at
-- start (src/engine/store/sealed.rs), which then drops that table.
ALTER TABLE secrets RENAME TO secrets_unsealed;
CREATE TABLE secrets (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (job_id, name)
);

-- One-time conversions the engine does in code, once each.
CREATE TABLE hw_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
