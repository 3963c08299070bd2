//! Console logins (users' password hashes) and sessions.

use chrono::{DateTime, Utc};
use convene_core::session::{NewSession, Session, UserLogin};
use convene_core::token::TokenHash;
use convene_core::{Error, Result};
use deadpool_postgres::Pool;

use crate::conversations::user_from_row;
use crate::db::{conn, execute, query, query_opt};
use crate::rows::get;

pub(crate) async fn set_password(pool: &Pool, ws: &str, id: i64, hash: &str) -> Result<()> {
    let c = conn(pool).await?;
    let n = execute(&c, "UPDATE users SET password_hash = $3 WHERE workspace_id = $1 AND id = $2", &[&ws, &id, &hash])
        .await?;
    if n == 0 {
        return Err(Error::NotFound { entity: "user" });
    }
    Ok(())
}

pub(crate) async fn find_logins(pool: &Pool, email: &str) -> Result<Vec<UserLogin>> {
    let c = conn(pool).await?;
    let rows = query(
        &c,
        "SELECT id, name, email, role, active, created_at, updated_at, workspace_id, password_hash
         FROM users WHERE email = $1 ORDER BY workspace_id LIMIT 100",
        &[&email],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(UserLogin {
                user: user_from_row(row)?,
                workspace_id: get(row, "workspace_id")?,
                password_hash: get(row, "password_hash")?,
            })
        })
        .collect()
}

pub(crate) async fn create(pool: &Pool, s: &NewSession) -> Result<()> {
    let c = conn(pool).await?;
    execute(
        &c,
        "INSERT INTO console_sessions (workspace_id, token_hash, user_id, csrf, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&s.workspace_id, &&s.token_hash.0[..], &s.user_id, &s.csrf, &s.created_at, &s.expires_at],
    )
    .await?;
    Ok(())
}

pub(crate) async fn get_one(pool: &Pool, ws: &str, hash: &TokenHash) -> Result<Option<Session>> {
    let c = conn(pool).await?;
    let row = query_opt(
        &c,
        "SELECT u.id, u.name, u.email, u.role, u.active, u.created_at, u.updated_at, s.csrf, s.expires_at
         FROM console_sessions s JOIN users u ON u.workspace_id = s.workspace_id AND u.id = s.user_id
         WHERE s.workspace_id = $1 AND s.token_hash = $2",
        &[&ws, &&hash.0[..]],
    )
    .await?;
    row.map(|row| {
        Ok(Session {
            workspace_id: ws.to_string(),
            user: user_from_row(&row)?,
            csrf: get(&row, "csrf")?,
            expires_at: get(&row, "expires_at")?,
        })
    })
    .transpose()
}

pub(crate) async fn delete(pool: &Pool, ws: &str, hash: &TokenHash) -> Result<()> {
    let c = conn(pool).await?;
    execute(&c, "DELETE FROM console_sessions WHERE workspace_id = $1 AND token_hash = $2", &[&ws, &&hash.0[..]])
        .await?;
    Ok(())
}

pub(crate) async fn purge(pool: &Pool, before: &DateTime<Utc>) -> Result<u64> {
    let c = conn(pool).await?;
    execute(&c, "DELETE FROM console_sessions WHERE expires_at < $1", &[before]).await
}
