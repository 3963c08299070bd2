-- Reps (the team's members as data) and calls (conversations with call details).

-- No foreign key to workspaces (as contacts since 0004): workspaces are never
-- deleted, every write names the workspace it was authenticated for, and a
-- reps update of 100,000 rows would pay 100,000 lookups of it.
CREATE TABLE reps (
    workspace_id text NOT NULL,
    seq          bigserial,
    rep_id       text NOT NULL,
    name         text,
    email        text,
    department   text,
    active       boolean NOT NULL DEFAULT true,
    attributes   jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    -- The primary key is also the (workspace_id, seq) index of the list.
    PRIMARY KEY (workspace_id, seq)
);
CREATE UNIQUE INDEX reps_rep_id ON reps (workspace_id, rep_id);
CREATE INDEX reps_by_department ON reps (workspace_id, department, seq);

-- A call may not know its contact, so neither do its conversation and messages.
ALTER TABLE conversations ALTER COLUMN contact_id DROP NOT NULL;
ALTER TABLE messages ALTER COLUMN contact_id DROP NOT NULL;

-- A call is a conversation (channel 'call') whose call columns are set.
-- at_ms is the time reports use: the call's start, else the creation time
-- (Unix milliseconds).
ALTER TABLE conversations
    ADD COLUMN call_id    text,
    ADD COLUMN rep_id     text,
    ADD COLUMN started_at timestamptz,
    ADD COLUMN ended_at   timestamptz,
    ADD COLUMN duration   double precision,
    ADD COLUMN direction  text,
    ADD COLUMN vendor     text,
    ADD COLUMN campaign   text,
    ADD COLUMN summary    text,
    ADD COLUMN attributes jsonb,
    ADD COLUMN at_ms      bigint;
UPDATE conversations SET at_ms = floor(extract(epoch FROM created_at) * 1000)::bigint;
ALTER TABLE conversations ALTER COLUMN at_ms SET NOT NULL;
CREATE UNIQUE INDEX conversations_call_id ON conversations (workspace_id, call_id) WHERE call_id IS NOT NULL;
CREATE INDEX conversations_by_time ON conversations (workspace_id, at_ms, seq);
CREATE INDEX conversations_calls_by_rep ON conversations (workspace_id, rep_id, at_ms, seq) WHERE call_id IS NOT NULL;

-- Event reports read a period of a workspace's events.
CREATE INDEX events_by_time ON events (workspace_id, timestamp, id);
