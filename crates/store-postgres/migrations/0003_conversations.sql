-- Users, conversations and messages; events by contact and time for the timeline.

CREATE TABLE users (
    workspace_id text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    id           bigserial,
    name         text NOT NULL,
    email        text NOT NULL,
    role         text NOT NULL,
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE UNIQUE INDEX users_email ON users (workspace_id, email);

CREATE TABLE conversations (
    workspace_id    text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    seq             bigserial,
    id              text NOT NULL,
    contact_id      bigint NOT NULL,
    status          text NOT NULL,
    assignee_id     bigint,
    channel         text NOT NULL,
    subject         text,
    labels          text[] NOT NULL DEFAULT '{}',
    messages_count  bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    last_message_at timestamptz,
    PRIMARY KEY (workspace_id, seq),
    FOREIGN KEY (workspace_id, contact_id) REFERENCES contacts (workspace_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX conversations_id ON conversations (workspace_id, id);
CREATE INDEX conversations_by_status ON conversations (workspace_id, status, seq);
CREATE INDEX conversations_by_assignee ON conversations (workspace_id, assignee_id, seq) WHERE assignee_id IS NOT NULL;
CREATE INDEX conversations_by_contact ON conversations (workspace_id, contact_id, seq);
CREATE INDEX conversations_by_label ON conversations USING gin (labels);

CREATE TABLE messages (
    workspace_id     text NOT NULL,
    id               bigserial,
    conversation_seq bigint NOT NULL,
    contact_id       bigint NOT NULL,
    type             text NOT NULL,
    content          text NOT NULL,
    sender_type      text NOT NULL,
    sender_id        text NOT NULL,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, conversation_seq) REFERENCES conversations (workspace_id, seq) ON DELETE CASCADE
);
CREATE INDEX messages_by_conversation ON messages (workspace_id, conversation_seq, id);
CREATE INDEX messages_by_contact ON messages (workspace_id, contact_id, created_at, id);

CREATE INDEX events_by_contact_time ON events (workspace_id, contact_id, timestamp, id);
