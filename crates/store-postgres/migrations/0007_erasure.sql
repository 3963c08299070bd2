-- Erasure: the audit record (identities as hashes only) and the suppression
-- list that refuses erased identities until an admin lifts it.

CREATE TABLE erasures (
    workspace_id text NOT NULL,
    id           text NOT NULL,
    contact_id   bigint NOT NULL,
    identities   jsonb NOT NULL,
    actor        text NOT NULL,
    erased_at    timestamptz NOT NULL,
    counts       jsonb NOT NULL,
    PRIMARY KEY (workspace_id, id)
);

CREATE TABLE suppressions (
    workspace_id  text NOT NULL,
    identity_hash text NOT NULL,
    kind          text NOT NULL,
    erasure_id    text NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, identity_hash)
);

