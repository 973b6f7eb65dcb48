-- Fleets of web hosts (issue 13): the host each contract's web space is
-- placed on, with the disk it commits there (its web quota), and the state
-- ops gave a host (`hosts drain` / `hosts activate`) over the config's.
-- What a host holds is the placements of contracts still in force
-- (contract_heads.active), counted by the placement guard in one statement.
CREATE TABLE placements (
    contract_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    disk_mb BIGINT NOT NULL,
    placed_at BIGINT NOT NULL
);
CREATE INDEX placements_host ON placements (host);
CREATE TABLE fleet_host_states (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at BIGINT NOT NULL
);
