-- Erasure: the audit record (identities as hashes only) and the suppression
-- list that refuses erased identities until an admin lifts it.

CREATE TABLE erasures (
    workspace_id TEXT NOT NULL,
    id           TEXT NOT NULL,
    contact_id   INTEGER NOT NULL,
    identities   TEXT NOT NULL,   -- JSON [[kind, sha256 hex], …]
    actor        TEXT NOT NULL,
    erased_at    TEXT NOT NULL,
    counts       TEXT NOT NULL,   -- JSON {"events": n, …}
    PRIMARY KEY (workspace_id, id)
) WITHOUT ROWID;

CREATE TABLE suppressions (
    workspace_id  TEXT NOT NULL,
    identity_hash TEXT NOT NULL,
    kind          TEXT NOT NULL,
    erasure_id    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (workspace_id, identity_hash)
) WITHOUT ROWID;
