//! API keys.

use chrono::{DateTime, Utc};
use convene_core::ids::{new_id, now};
use convene_core::page::{Page, PageRequest};
use convene_core::scope::KeyKind;
use convene_core::token::TokenHash;
use convene_core::workspace::{ApiKey, KeyRecord, NewKey};
use convene_core::{Error, Result};
use rusqlite::{Connection, Row, params};

use crate::conn::storage;
use crate::rows::{creation_key, one, opt_time, scopes_from_text, scopes_to_text, split_creation_key, t, time};

/// Key columns joined with the account's scopes (column 11) and the hash (12).
const KEY_SELECT: &str = "SELECT k.id, k.workspace_id, k.name, k.kind, k.service_account_id, k.scopes, k.preview,
        k.expires_at, k.revoked_at, k.last_used_at, k.created_at, sa.scopes, k.token_hash
    FROM api_keys k LEFT JOIN service_accounts sa
      ON sa.workspace_id = k.workspace_id AND sa.id = k.service_account_id";

fn key_from_row(row: &Row) -> rusqlite::Result<ApiKey> {
    let kind: String = row.get(3)?;
    let own: Option<String> = row.get(5)?;
    let account: Option<String> = row.get(11)?;
    let mut key = ApiKey {
        id: row.get(0)?,
        workspace_id: row.get(1)?,
        name: row.get(2)?,
        kind: kind.parse().unwrap_or(KeyKind::Analytics),
        service_account_id: row.get(4)?,
        own_scopes: own.as_deref().map(scopes_from_text),
        scopes: Vec::new(),
        preview: row.get(6)?,
        expires_at: opt_time(row, 7)?,
        revoked_at: opt_time(row, 8)?,
        last_used_at: opt_time(row, 9)?,
        created_at: time(row, 10)?,
    };
    let account_scopes = account.as_deref().map(scopes_from_text);
    key.resolve_scopes(account_scopes.as_deref());
    Ok(key)
}

pub(crate) fn create_key(conn: &Connection, ws: &str, new: NewKey) -> Result<ApiKey> {
    if let Some(sa) = &new.service_account_id {
        crate::workspaces::get_service_account(conn, ws, sa).map_err(|_| {
            Error::validation("service_account_id", format!("no service account '{sa}' in this workspace"))
        })?;
    }
    let id = new_id("key");
    conn.execute(
        "INSERT INTO api_keys (workspace_id, id, name, kind, service_account_id, scopes, token_hash, preview, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            ws,
            id,
            new.name,
            new.kind.as_str(),
            new.service_account_id,
            new.scopes.as_deref().map(scopes_to_text),
            new.hash.0.as_slice(),
            new.preview,
            new.expires_at.as_ref().map(t),
            t(&now())
        ],
    )
    .map_err(storage)?;
    get_key(conn, ws, &id)
}

pub(crate) fn list_keys(conn: &Connection, ws: &str, page: &PageRequest) -> Result<Page<ApiKey>> {
    let (after_t, after_id) = split_creation_key(&page.after)?;
    let mut stmt = conn
        .prepare_cached(&format!(
            "{KEY_SELECT} WHERE k.workspace_id = ?1 AND (k.created_at, k.id) > (?2, ?3) ORDER BY k.created_at, k.id LIMIT ?4"
        ))
        .map_err(storage)?;
    let items = stmt
        .query_map(params![ws, after_t, after_id, page.limit as i64 + 1], key_from_row)
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    Ok(Page::from_overfetch(items, page.limit, |k| creation_key(&k.created_at, &k.id)))
}

pub(crate) fn get_key(conn: &Connection, ws: &str, id: &str) -> Result<ApiKey> {
    let mut stmt =
        conn.prepare_cached(&format!("{KEY_SELECT} WHERE k.workspace_id = ?1 AND k.id = ?2")).map_err(storage)?;
    one(stmt.query_row([ws, id], key_from_row))?.ok_or(Error::NotFound { entity: "key" })
}

pub(crate) fn revoke_key(conn: &Connection, ws: &str, id: &str) -> Result<ApiKey> {
    conn.execute(
        "UPDATE api_keys SET revoked_at = ?3 WHERE workspace_id = ?1 AND id = ?2 AND revoked_at IS NULL",
        params![ws, id, t(&now())],
    )
    .map_err(storage)?;
    get_key(conn, ws, id)
}

pub(crate) fn find_key(conn: &Connection, hash: &TokenHash) -> Result<Option<KeyRecord>> {
    let mut stmt = conn.prepare_cached(&format!("{KEY_SELECT} WHERE k.token_hash = ?1")).map_err(storage)?;
    one(stmt.query_row([hash.0.as_slice()], |row| Ok(KeyRecord { key: key_from_row(row)?, hash: row.get(12)? })))
}

pub(crate) fn touch_keys(conn: &Connection, used: &[(String, DateTime<Utc>)]) -> Result<()> {
    let mut stmt = conn
        .prepare_cached(
            "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
        )
        .map_err(storage)?;
    for (id, at) in used {
        stmt.execute(params![id, t(at)]).map_err(storage)?;
    }
    Ok(())
}
