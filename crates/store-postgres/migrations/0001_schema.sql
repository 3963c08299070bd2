-- convene on PostgreSQL: every table but workspaces leads its primary key
-- and indexes with workspace_id, so Citus can distribute by workspace
-- (docs/scaling.md). Times are timestamptz with millisecond precision;
-- traits and other documents are jsonb.

CREATE TABLE workspaces (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE service_accounts (
    workspace_id text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    id           text NOT NULL,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    teams        jsonb NOT NULL DEFAULT '[]',
    scopes       jsonb NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX service_accounts_by_creation ON service_accounts (workspace_id, created_at, id);

-- Looked up by token hash before the workspace is known: on Citus this is a
-- reference table (small, replicated to every node).
CREATE TABLE api_keys (
    workspace_id       text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    id                 text NOT NULL,
    name               text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('analytics', 'full')),
    service_account_id text,
    scopes             jsonb,
    token_hash         bytea NOT NULL,
    preview            text NOT NULL,
    expires_at         timestamptz,
    revoked_at         timestamptz,
    last_used_at       timestamptz,
    created_at         timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE UNIQUE INDEX api_keys_token_hash ON api_keys (token_hash);
CREATE INDEX api_keys_by_creation ON api_keys (workspace_id, created_at, id);

CREATE TABLE fields (
    workspace_id text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    entity       text NOT NULL,
    name         text NOT NULL,
    label        text NOT NULL,
    type         text NOT NULL,
    inferred     boolean NOT NULL DEFAULT false,
    builtin      boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, entity, name)
);

CREATE TABLE companies (
    workspace_id text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    id           bigserial,
    external_id  text NOT NULL,
    domain       text,
    traits       jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE UNIQUE INDEX companies_external_id ON companies (workspace_id, external_id);

CREATE TABLE contacts (
    workspace_id        text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    id                  bigserial,
    email               text,
    mobile              text,
    external_id         text,
    anonymous_id        text,
    traits              jsonb NOT NULL DEFAULT '{}',
    subscription_status text NOT NULL DEFAULT 'SUBSCRIBED',
    company_id          bigint,
    last_seen_at        timestamptz,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE UNIQUE INDEX contacts_email ON contacts (workspace_id, email) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX contacts_mobile ON contacts (workspace_id, mobile) WHERE mobile IS NOT NULL;
CREATE UNIQUE INDEX contacts_external_id ON contacts (workspace_id, external_id) WHERE external_id IS NOT NULL;
CREATE UNIQUE INDEX contacts_anonymous_id ON contacts (workspace_id, anonymous_id) WHERE anonymous_id IS NOT NULL;

CREATE TABLE events (
    workspace_id text NOT NULL,
    id           bigserial,
    contact_id   bigint NOT NULL,
    name         text NOT NULL,
    kind         text NOT NULL,
    properties   jsonb NOT NULL DEFAULT '{}',
    description  text,
    timestamp    timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    message_id   text,
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, contact_id) REFERENCES contacts (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX events_by_contact ON events (workspace_id, contact_id, id);
CREATE INDEX events_by_name ON events (workspace_id, name, id);

CREATE TABLE contact_merges (
    workspace_id text NOT NULL,
    from_id      bigint NOT NULL,
    into_id      bigint NOT NULL,
    merged_at    timestamptz NOT NULL
);
CREATE INDEX contact_merges_by_contact ON contact_merges (workspace_id, into_id);

-- Message ids applied (retries apply once); unique across nodes.
CREATE TABLE ingest_dedupe (
    workspace_id text NOT NULL,
    message_id   text NOT NULL,
    seen_at      timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, message_id)
);
CREATE INDEX ingest_dedupe_by_time ON ingest_dedupe (seen_at);

-- Results of applied jobs (queued ones are still in ingest_inbox).
CREATE TABLE jobs (
    workspace_id text NOT NULL,
    id           text NOT NULL,
    status       text NOT NULL,
    total        integer NOT NULL,
    applied      integer NOT NULL,
    duplicates   integer NOT NULL,
    failed       integer NOT NULL,
    errors       jsonb NOT NULL DEFAULT '[]',
    received_at  timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX jobs_by_finish ON jobs (finished_at);

-- The durable inbox. A row is one accepted request; its lane is a hash of
-- its workspace, so one workspace's rows are applied by one applier at a
-- time, in order (per-contact order), while other lanes go in parallel on
-- any node. Applied rows are deleted in the applying transaction.
CREATE TABLE ingest_inbox (
    workspace_id text NOT NULL,
    seq          bigserial,
    lane         integer NOT NULL,
    job_id       text NOT NULL,
    item_count   integer NOT NULL,
    body         bytea NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, seq)
);
CREATE INDEX ingest_inbox_by_lane ON ingest_inbox (lane, seq);
CREATE INDEX ingest_inbox_by_job ON ingest_inbox (workspace_id, job_id);

-- One row per lane; an applier holds its row (FOR UPDATE SKIP LOCKED) for
-- the length of its transaction.
CREATE TABLE ingest_lanes (
    lane integer PRIMARY KEY
);
INSERT INTO ingest_lanes (lane) SELECT generate_series(0, 63);
