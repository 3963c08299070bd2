-- Ingestion: events, jobs, message-id dedupe, the applier's cursor,
-- anonymous ids, and companies (for Segment's group call).

ALTER TABLE contacts ADD COLUMN anonymous_id TEXT;
ALTER TABLE contacts ADD COLUMN last_seen_at TEXT;
CREATE UNIQUE INDEX contacts_anonymous_id ON contacts (workspace_id, anonymous_id) WHERE anonymous_id IS NOT NULL;

CREATE TABLE companies (
    id          INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    domain      TEXT,
    traits      TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX companies_external_id ON companies (workspace_id, external_id);

CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    contact_id   INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    properties   TEXT NOT NULL DEFAULT '{}',
    description  TEXT,
    timestamp    TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    message_id   TEXT
);
CREATE INDEX events_by_workspace ON events (workspace_id, id);
CREATE INDEX events_by_contact ON events (workspace_id, contact_id, id);
CREATE INDEX events_by_name ON events (workspace_id, name, id);
CREATE INDEX events_by_contact_ref ON events (contact_id);

CREATE TABLE ingest_dedupe (
    workspace_id TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    seen_at      TEXT NOT NULL,
    PRIMARY KEY (workspace_id, message_id)
) WITHOUT ROWID;
CREATE INDEX ingest_dedupe_by_time ON ingest_dedupe (seen_at);

CREATE TABLE jobs (
    workspace_id TEXT NOT NULL,
    id           TEXT NOT NULL,
    status       TEXT NOT NULL,
    total        INTEGER NOT NULL,
    applied      INTEGER NOT NULL,
    duplicates   INTEGER NOT NULL,
    failed       INTEGER NOT NULL,
    errors       TEXT NOT NULL DEFAULT '[]',
    received_at  TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX jobs_by_finish ON jobs (finished_at);

-- The last inbox sequence number applied; written in the applying transaction.
CREATE TABLE ingest_cursor (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    applied_seq INTEGER NOT NULL
);
INSERT INTO ingest_cursor (id, applied_seq) VALUES (1, 0);

CREATE TABLE contact_merges (
    workspace_id TEXT NOT NULL,
    from_id      INTEGER NOT NULL,
    into_id      INTEGER NOT NULL,
    merged_at    TEXT NOT NULL
);
