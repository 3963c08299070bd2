-- Workspaces, service accounts, API keys, fields and contacts.
-- Every table but workspaces carries workspace_id; times are RFC 3339 text
-- with milliseconds in UTC (they sort as text in time order).

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE service_accounts (
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    teams        TEXT NOT NULL DEFAULT '[]',
    scopes       TEXT NOT NULL DEFAULT '[]',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX service_accounts_by_creation ON service_accounts (workspace_id, created_at, id);

CREATE TABLE api_keys (
    workspace_id       TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    id                 TEXT NOT NULL,
    name               TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('analytics', 'full')),
    service_account_id TEXT,
    scopes             TEXT,
    token_hash         BLOB NOT NULL UNIQUE,
    preview            TEXT NOT NULL,
    expires_at         TEXT,
    revoked_at         TEXT,
    last_used_at       TEXT,
    created_at         TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, service_account_id) REFERENCES service_accounts (workspace_id, id)
);
CREATE INDEX api_keys_by_creation ON api_keys (workspace_id, created_at, id);

CREATE TABLE fields (
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    entity       TEXT NOT NULL,
    name         TEXT NOT NULL,
    label        TEXT NOT NULL,
    type         TEXT NOT NULL,
    inferred     INTEGER NOT NULL DEFAULT 0,
    builtin      INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, entity, name)
);

CREATE TABLE contacts (
    id                  INTEGER PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    email               TEXT,
    mobile              TEXT,
    external_id         TEXT,
    traits              TEXT NOT NULL DEFAULT '{}',
    subscription_status TEXT NOT NULL DEFAULT 'SUBSCRIBED',
    company_id          INTEGER,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX contacts_by_workspace ON contacts (workspace_id, id);
CREATE UNIQUE INDEX contacts_email ON contacts (workspace_id, email) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX contacts_mobile ON contacts (workspace_id, mobile) WHERE mobile IS NOT NULL;
CREATE UNIQUE INDEX contacts_external_id ON contacts (workspace_id, external_id) WHERE external_id IS NOT NULL;
