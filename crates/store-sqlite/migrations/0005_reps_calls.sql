-- Reps (the team's members as data) and calls (conversations with call details).

CREATE TABLE reps (
    seq          INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    rep_id       TEXT NOT NULL,
    name         TEXT,
    email        TEXT,
    department   TEXT,
    active       INTEGER NOT NULL DEFAULT 1,
    attributes   TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX reps_rep_id ON reps (workspace_id, rep_id);
CREATE INDEX reps_by_seq ON reps (workspace_id, seq);
CREATE INDEX reps_by_department ON reps (workspace_id, department, seq);

-- A call is a conversation (channel 'call') whose call columns are set.
-- at_ms is the time reports use: the call's start, else the creation time.
ALTER TABLE conversations ADD COLUMN call_id TEXT;
ALTER TABLE conversations ADD COLUMN rep_id TEXT;
ALTER TABLE conversations ADD COLUMN started_at TEXT;
ALTER TABLE conversations ADD COLUMN ended_at TEXT;
ALTER TABLE conversations ADD COLUMN duration REAL;
ALTER TABLE conversations ADD COLUMN direction TEXT;
ALTER TABLE conversations ADD COLUMN vendor TEXT;
ALTER TABLE conversations ADD COLUMN campaign TEXT;
ALTER TABLE conversations ADD COLUMN summary TEXT;
ALTER TABLE conversations ADD COLUMN attributes TEXT;
ALTER TABLE conversations ADD COLUMN at_ms INTEGER;
UPDATE conversations SET at_ms = CAST(unixepoch(created_at, 'subsec') * 1000 AS INTEGER);
CREATE UNIQUE INDEX conversations_call_id ON conversations (workspace_id, call_id) WHERE call_id IS NOT NULL;
-- By time, covering the columns reports group, filter and measure by (an index-only scan
-- reads a narrow b-tree in time order instead of the whole rows).
CREATE INDEX conversations_report ON conversations
    (workspace_id, at_ms, rep_id, duration, vendor, campaign, direction, status, channel);
CREATE INDEX conversations_calls_by_rep ON conversations (workspace_id, rep_id, at_ms, seq) WHERE call_id IS NOT NULL;
CREATE INDEX events_by_time ON events (workspace_id, timestamp, id);
