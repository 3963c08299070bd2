//! Console logins (users' password hashes) and sessions.

use chrono::{DateTime, Utc};
use convene_core::session::{NewSession, Session, UserLogin};
use convene_core::token::TokenHash;
use convene_core::{Error, Result};
use rusqlite::{Connection, params};

use crate::conn::storage;
use crate::conversations::user_from_row;
use crate::rows::{one, t, time};

pub(crate) fn set_password(conn: &Connection, ws: &str, id: i64, hash: &str) -> Result<()> {
    let n = conn
        .prepare_cached("UPDATE users SET password_hash = ?3 WHERE workspace_id = ?1 AND id = ?2")
        .and_then(|mut s| s.execute(params![ws, id, hash]))
        .map_err(storage)?;
    if n == 0 {
        return Err(Error::NotFound { entity: "user" });
    }
    Ok(())
}

pub(crate) fn find_logins(conn: &Connection, email: &str) -> Result<Vec<UserLogin>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, name, email, role, active, created_at, updated_at, workspace_id, password_hash
             FROM users WHERE email = ?1 ORDER BY workspace_id LIMIT 100",
        )
        .map_err(storage)?;
    stmt.query_map(params![email], |row| {
        Ok(UserLogin { user: user_from_row(row)?, workspace_id: row.get(7)?, password_hash: row.get(8)? })
    })
    .map_err(storage)?
    .collect::<rusqlite::Result<Vec<_>>>()
    .map_err(storage)
}

pub(crate) fn create(conn: &Connection, s: &NewSession) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO console_sessions (workspace_id, token_hash, user_id, csrf, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut st| {
        st.execute(params![s.workspace_id, &s.token_hash.0[..], s.user_id, s.csrf, t(&s.created_at), t(&s.expires_at)])
    })
    .map_err(storage)?;
    Ok(())
}

pub(crate) fn get(conn: &Connection, ws: &str, hash: &TokenHash) -> Result<Option<Session>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT u.id, u.name, u.email, u.role, u.active, u.created_at, u.updated_at, s.csrf, s.expires_at
             FROM console_sessions s JOIN users u ON u.workspace_id = s.workspace_id AND u.id = s.user_id
             WHERE s.workspace_id = ?1 AND s.token_hash = ?2",
        )
        .map_err(storage)?;
    one(stmt.query_row(params![ws, &hash.0[..]], |row| {
        Ok(Session {
            workspace_id: ws.to_string(),
            user: user_from_row(row)?,
            csrf: row.get(7)?,
            expires_at: time(row, 8)?,
        })
    }))
}

pub(crate) fn delete(conn: &Connection, ws: &str, hash: &TokenHash) -> Result<()> {
    conn.prepare_cached("DELETE FROM console_sessions WHERE workspace_id = ?1 AND token_hash = ?2")
        .and_then(|mut s| s.execute(params![ws, &hash.0[..]]))
        .map_err(storage)?;
    Ok(())
}

pub(crate) fn purge(conn: &Connection, before: &DateTime<Utc>) -> Result<u64> {
    conn.prepare_cached("DELETE FROM console_sessions WHERE expires_at < ?1")
        .and_then(|mut s| s.execute(params![t(before)]))
        .map(|n| n as u64)
        .map_err(storage)
}
