//! API keys.

use chrono::{DateTime, Utc};
use convene_core::ids::{new_id, now};
use convene_core::page::{Page, PageRequest};
use convene_core::scope::KeyKind;
use convene_core::token::TokenHash;
use convene_core::workspace::{ApiKey, KeyRecord, NewKey};
use convene_core::{Error, Result};
use deadpool_postgres::{ClientWrapper, Pool};
use tokio_postgres::Row;

use crate::db::{Tx, conn, execute, query, query_opt};
use crate::rows::{creation_key, get, scopes_from_json, scopes_to_json, split_creation_key};

/// Key columns joined with the account's scopes and the hash.
const KEY_SELECT: &str = "SELECT k.id, k.workspace_id, k.name, k.kind, k.service_account_id, k.scopes, k.preview,
        k.expires_at, k.revoked_at, k.last_used_at, k.created_at, sa.scopes AS account_scopes, k.token_hash
    FROM api_keys k LEFT JOIN service_accounts sa
      ON sa.workspace_id = k.workspace_id AND sa.id = k.service_account_id";

fn key_from_row(row: &Row) -> Result<ApiKey> {
    let kind: String = get(row, "kind")?;
    let own: Option<serde_json::Value> = get(row, "scopes")?;
    let account: Option<serde_json::Value> = get(row, "account_scopes")?;
    let mut key = ApiKey {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        name: get(row, "name")?,
        kind: kind.parse().unwrap_or(KeyKind::Analytics),
        service_account_id: get(row, "service_account_id")?,
        own_scopes: own.as_ref().map(scopes_from_json),
        scopes: Vec::new(),
        preview: get(row, "preview")?,
        expires_at: get(row, "expires_at")?,
        revoked_at: get(row, "revoked_at")?,
        last_used_at: get(row, "last_used_at")?,
        created_at: get(row, "created_at")?,
    };
    let account_scopes = account.as_ref().map(scopes_from_json);
    key.resolve_scopes(account_scopes.as_deref());
    Ok(key)
}

pub(crate) async fn create_key(pool: &Pool, ws: &str, new: NewKey) -> Result<ApiKey> {
    let tx = Tx::begin(pool).await?;
    let id = new_id("key");
    let result = async {
        if let Some(sa) = &new.service_account_id {
            crate::workspaces::get_service_account(tx.c(), ws, sa, true).await.map_err(|_| {
                Error::validation("service_account_id", format!("no service account '{sa}' in this workspace"))
            })?;
        }
        execute(
            tx.c(),
            "INSERT INTO api_keys (workspace_id, id, name, kind, service_account_id, scopes, token_hash, preview, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &ws,
                &id,
                &new.name,
                &new.kind.as_str(),
                &new.service_account_id,
                &new.scopes.as_deref().map(scopes_to_json),
                &new.hash.0.as_slice(),
                &new.preview,
                &new.expires_at,
                &now(),
            ],
        )
        .await?;
        get_key_on(tx.c(), ws, &id).await
    }
    .await;
    tx.finish(result).await
}

pub(crate) async fn list_keys(pool: &Pool, ws: &str, page: &PageRequest) -> Result<Page<ApiKey>> {
    let (after_t, after_id) = split_creation_key(&page.after)?;
    let c = conn(pool).await?;
    let rows = query(
        &c,
        &format!(
            "{KEY_SELECT} WHERE k.workspace_id = $1 AND ($2::timestamptz IS NULL OR (k.created_at, k.id) > ($2, $3))
             ORDER BY k.created_at, k.id LIMIT $4"
        ),
        &[&ws, &after_t, &after_id, &(page.limit as i64 + 1)],
    )
    .await?;
    let items = rows.iter().map(key_from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |k| creation_key(&k.created_at, &k.id)))
}

async fn get_key_on(c: &ClientWrapper, ws: &str, id: &str) -> Result<ApiKey> {
    let row = query_opt(c, &format!("{KEY_SELECT} WHERE k.workspace_id = $1 AND k.id = $2"), &[&ws, &id]).await?;
    row.as_ref().map(key_from_row).transpose()?.ok_or(Error::NotFound { entity: "key" })
}

pub(crate) async fn get_key(pool: &Pool, ws: &str, id: &str) -> Result<ApiKey> {
    let c = conn(pool).await?;
    get_key_on(&c, ws, id).await
}

pub(crate) async fn revoke_key(pool: &Pool, ws: &str, id: &str) -> Result<ApiKey> {
    let c = conn(pool).await?;
    execute(
        &c,
        "UPDATE api_keys SET revoked_at = $3 WHERE workspace_id = $1 AND id = $2 AND revoked_at IS NULL",
        &[&ws, &id, &now()],
    )
    .await?;
    get_key_on(&c, ws, id).await
}

pub(crate) async fn find_key(pool: &Pool, hash: &TokenHash) -> Result<Option<KeyRecord>> {
    let c = conn(pool).await?;
    let row = query_opt(&c, &format!("{KEY_SELECT} WHERE k.token_hash = $1"), &[&hash.0.as_slice()]).await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some(KeyRecord { key: key_from_row(&row)?, hash: get(&row, "token_hash")? })),
    }
}

pub(crate) async fn touch_keys(pool: &Pool, used: &[(String, DateTime<Utc>)]) -> Result<()> {
    if used.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = used.iter().map(|(id, _)| id.as_str()).collect();
    let times: Vec<DateTime<Utc>> = used.iter().map(|(_, t)| *t).collect();
    let c = conn(pool).await?;
    execute(
        &c,
        "UPDATE api_keys k SET last_used_at = u.t FROM unnest($1::text[], $2::timestamptz[]) AS u(id, t)
         WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.t)",
        &[&ids, &times],
    )
    .await?;
    Ok(())
}
