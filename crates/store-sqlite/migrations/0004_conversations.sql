-- Users, conversations and messages; events by contact and time for the timeline.

CREATE TABLE users (
    id           INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    email        TEXT NOT NULL,
    role         TEXT NOT NULL,
    active       INTEGER NOT NULL DEFAULT 1,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX users_by_workspace ON users (workspace_id, id);
CREATE UNIQUE INDEX users_email ON users (workspace_id, email);

CREATE TABLE conversations (
    seq             INTEGER PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    contact_id      INTEGER REFERENCES contacts(id) ON DELETE CASCADE,
    status          TEXT NOT NULL,
    assignee_id     INTEGER,
    channel         TEXT NOT NULL,
    subject         TEXT,
    labels          TEXT NOT NULL DEFAULT '[]',
    messages_count  INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    last_message_at TEXT
);
CREATE UNIQUE INDEX conversations_id ON conversations (workspace_id, id);
CREATE INDEX conversations_by_status ON conversations (workspace_id, status, seq);
CREATE INDEX conversations_by_assignee ON conversations (workspace_id, assignee_id, seq) WHERE assignee_id IS NOT NULL;
CREATE INDEX conversations_by_contact ON conversations (workspace_id, contact_id, seq);
CREATE INDEX conversations_by_contact_ref ON conversations (contact_id);

CREATE TABLE conversation_labels (
    workspace_id TEXT NOT NULL,
    label        TEXT NOT NULL,
    seq          INTEGER NOT NULL REFERENCES conversations(seq) ON DELETE CASCADE,
    PRIMARY KEY (workspace_id, label, seq)
) WITHOUT ROWID;
CREATE INDEX conversation_labels_by_seq ON conversation_labels (seq);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    workspace_id    TEXT NOT NULL,
    conversation    INTEGER NOT NULL REFERENCES conversations(seq) ON DELETE CASCADE,
    contact_id      INTEGER,
    type            TEXT NOT NULL,
    content         TEXT NOT NULL,
    sender_type     TEXT NOT NULL,
    sender_id       TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation, id);
CREATE INDEX messages_by_contact ON messages (workspace_id, contact_id, created_at, id);

CREATE INDEX events_by_contact_time ON events (workspace_id, contact_id, timestamp, id);
