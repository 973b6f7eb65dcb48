-- Retention (issue #17): a contract's reports by id, so a prune of
-- delivered reports finds each contract's newest one without a scan.
CREATE INDEX outbox_contract ON outbox (contract_id, id);
