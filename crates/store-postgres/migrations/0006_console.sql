-- Console logins and sessions.

ALTER TABLE users ADD COLUMN password_hash text;
CREATE INDEX users_by_email ON users (email);

-- Only the SHA-256 of a session cookie's secret is kept.
CREATE TABLE console_sessions (
    workspace_id text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL,
    user_id      bigint NOT NULL,
    csrf         text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, token_hash)
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
