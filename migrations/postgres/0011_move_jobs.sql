-- Moves (issue 13): a job is either a revision's (`kind` 'revision', one
-- per contract and revision, as before) or the move of a contract's web
-- space to another host (`kind` 'move', `move_to` the host), which runs
-- at the contract's head revision like any job: journaled, leased,
-- rerunnable. The one-job-per-revision rule becomes a partial unique index.
ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'revision';
ALTER TABLE jobs ADD COLUMN move_to TEXT;
ALTER TABLE jobs DROP CONSTRAINT jobs_contract_id_revision_key;
CREATE UNIQUE INDEX jobs_revision ON jobs (contract_id, revision) WHERE kind = 'revision';
