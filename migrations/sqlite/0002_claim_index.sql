-- Claims look up queued jobs, and running jobs whose lease expired, each in
-- (created_at, revision) order (src/engine/store/queries.rs): this index
-- serves both look-ups in that order, so a claim reads the first runnable
-- row instead of sorting the queue. It covers what jobs_state did.
CREATE INDEX jobs_claim ON jobs (state, created_at, revision);
DROP INDEX jobs_state;
