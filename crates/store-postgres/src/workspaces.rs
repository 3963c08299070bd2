//! Workspaces, service accounts and fields.

use convene_core::field::{Entity, Field};
use convene_core::ids::{new_id, now};
use convene_core::page::{Page, PageRequest};
use convene_core::store::NewField;
use convene_core::workspace::{NewServiceAccount, ServiceAccount, ServiceAccountUpdate, Workspace};
use convene_core::{Error, Result};
use deadpool_postgres::{ClientWrapper, Pool};
use tokio_postgres::Row;

use crate::db::{Tx, conn, execute, query, query_opt};
use crate::rows::{self, FIELD_COLUMNS, creation_key, field_from_row, get, scopes_from_json, split_creation_key};

fn workspace_from_row(row: &Row) -> Result<Workspace> {
    Ok(Workspace { id: get(row, "id")?, name: get(row, "name")?, created_at: get(row, "created_at")? })
}

pub(crate) async fn create_workspace(pool: &Pool, name: String) -> Result<Workspace> {
    let ws = Workspace { id: new_id("ws"), name, created_at: now() };
    let tx = Tx::begin(pool).await?;
    let result = async {
        execute(
            tx.c(),
            "INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)",
            &[&ws.id, &ws.name, &ws.created_at],
        )
        .await?;
        rows::insert_builtin_fields(tx.c(), &ws.id, &ws.created_at).await
    }
    .await;
    tx.finish(result).await?;
    Ok(ws)
}

pub(crate) async fn list_workspaces(pool: &Pool, page: &PageRequest) -> Result<Page<Workspace>> {
    let (after_t, after_id) = split_creation_key(&page.after)?;
    let c = conn(pool).await?;
    let rows = query(
        &c,
        "SELECT id, name, created_at FROM workspaces
         WHERE $1::timestamptz IS NULL OR (created_at, id) > ($1, $2)
         ORDER BY created_at, id LIMIT $3",
        &[&after_t, &after_id, &(page.limit as i64 + 1)],
    )
    .await?;
    let items = rows.iter().map(workspace_from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |w| creation_key(&w.created_at, &w.id)))
}

pub(crate) async fn get_workspace(pool: &Pool, id: &str) -> Result<Workspace> {
    let c = conn(pool).await?;
    let row = query_opt(&c, "SELECT id, name, created_at FROM workspaces WHERE id = $1", &[&id]).await?;
    row.as_ref().map(workspace_from_row).transpose()?.ok_or(Error::NotFound { entity: "workspace" })
}

const SA_COLUMNS: &str = "id, workspace_id, name, description, teams, scopes, created_at, updated_at";

fn account_from_row(row: &Row) -> Result<ServiceAccount> {
    let teams: serde_json::Value = get(row, "teams")?;
    let scopes: serde_json::Value = get(row, "scopes")?;
    Ok(ServiceAccount {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        teams: serde_json::from_value(teams).unwrap_or_default(),
        scopes: scopes_from_json(&scopes),
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub(crate) async fn create_service_account(pool: &Pool, ws: &str, new: NewServiceAccount) -> Result<ServiceAccount> {
    let at = now();
    let sa = ServiceAccount {
        id: new_id("sa"),
        workspace_id: ws.to_string(),
        name: new.name,
        description: new.description,
        teams: new.teams,
        scopes: new.scopes,
        created_at: at,
        updated_at: at,
    };
    let c = conn(pool).await?;
    execute(
        &c,
        &format!("INSERT INTO service_accounts ({SA_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
        &[
            &sa.id,
            &sa.workspace_id,
            &sa.name,
            &sa.description,
            &serde_json::to_value(&sa.teams).unwrap_or_default(),
            &rows::scopes_to_json(&sa.scopes),
            &at,
            &at,
        ],
    )
    .await?;
    Ok(sa)
}

pub(crate) async fn list_service_accounts(pool: &Pool, ws: &str, page: &PageRequest) -> Result<Page<ServiceAccount>> {
    let (after_t, after_id) = split_creation_key(&page.after)?;
    let c = conn(pool).await?;
    let rows = query(
        &c,
        &format!(
            "SELECT {SA_COLUMNS} FROM service_accounts
             WHERE workspace_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))
             ORDER BY created_at, id LIMIT $4"
        ),
        &[&ws, &after_t, &after_id, &(page.limit as i64 + 1)],
    )
    .await?;
    let items = rows.iter().map(account_from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |a| creation_key(&a.created_at, &a.id)))
}

pub(crate) async fn get_service_account(c: &ClientWrapper, ws: &str, id: &str, lock: bool) -> Result<ServiceAccount> {
    let sql = format!(
        "SELECT {SA_COLUMNS} FROM service_accounts WHERE workspace_id = $1 AND id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = query_opt(c, &sql, &[&ws, &id]).await?;
    row.as_ref().map(account_from_row).transpose()?.ok_or(Error::NotFound { entity: "service account" })
}

pub(crate) async fn update_service_account(
    pool: &Pool,
    ws: &str,
    id: &str,
    update: ServiceAccountUpdate,
) -> Result<ServiceAccount> {
    let tx = Tx::begin(pool).await?;
    let result = async {
        let mut sa = get_service_account(tx.c(), ws, id, true).await?;
        sa.apply(update, now());
        execute(
            tx.c(),
            "UPDATE service_accounts SET name = $3, description = $4, teams = $5, scopes = $6, updated_at = $7
             WHERE workspace_id = $1 AND id = $2",
            &[
                &ws,
                &id,
                &sa.name,
                &sa.description,
                &serde_json::to_value(&sa.teams).unwrap_or_default(),
                &rows::scopes_to_json(&sa.scopes),
                &sa.updated_at,
            ],
        )
        .await?;
        Ok(sa)
    }
    .await;
    tx.finish(result).await
}

pub(crate) async fn list_fields(
    pool: &Pool,
    ws: &str,
    entity: Option<Entity>,
    page: &PageRequest,
) -> Result<Page<Field>> {
    let after = page.after.clone().unwrap_or_default();
    let c = conn(pool).await?;
    let rows = query(
        &c,
        &format!(
            "SELECT {FIELD_COLUMNS} FROM fields WHERE workspace_id = $1 AND ($2::text IS NULL OR entity = $2)
             AND (entity || '|' || name) COLLATE \"C\" > $3 ORDER BY (entity || '|' || name) COLLATE \"C\" LIMIT $4"
        ),
        &[&ws, &entity.map(|e| e.as_str()), &after, &(page.limit as i64 + 1)],
    )
    .await?;
    let items = rows.iter().map(field_from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |f| format!("{}|{}", f.entity.as_str(), f.name)))
}

pub(crate) async fn create_field(pool: &Pool, ws: &str, new: NewField) -> Result<Field> {
    let field = Field {
        entity: new.entity,
        label: new.label.unwrap_or_else(|| new.name.clone()),
        name: new.name,
        field_type: new.field_type,
        inferred: false,
        builtin: false,
        created_at: now(),
    };
    let c = conn(pool).await?;
    let inserted = execute(
        &c,
        "INSERT INTO fields (workspace_id, entity, name, label, type, inferred, builtin, created_at)
         VALUES ($1, $2, $3, $4, $5, false, false, $6) ON CONFLICT DO NOTHING",
        &[&ws, &field.entity.as_str(), &field.name, &field.label, &field.field_type.as_str(), &field.created_at],
    )
    .await?;
    if inserted == 0 {
        return Err(Error::Conflict { entity: "field", field: "name".into(), row: None });
    }
    Ok(field)
}
