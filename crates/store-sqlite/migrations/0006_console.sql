-- Console logins and sessions.

ALTER TABLE users ADD COLUMN password_hash TEXT;
CREATE INDEX users_by_email ON users (email);

-- Only the SHA-256 of a session cookie's secret is kept.
CREATE TABLE console_sessions (
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    token_hash   BLOB NOT NULL,
    user_id      INTEGER NOT NULL,
    csrf         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, token_hash)
) WITHOUT ROWID;
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
