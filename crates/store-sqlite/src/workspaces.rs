//! Workspaces, service accounts and fields.

use convene_core::field::{Entity, Field};
use convene_core::ids::{new_id, now};
use convene_core::page::{Page, PageRequest};
use convene_core::store::NewField;
use convene_core::workspace::{NewServiceAccount, ServiceAccount, ServiceAccountUpdate, Workspace};
use convene_core::{Error, Result};
use rusqlite::{Connection, Row, params};

use crate::conn::storage;
use crate::rows::{
    self, FIELD_COLUMNS, creation_key, field_from_row, one, scopes_from_text, scopes_to_text, split_creation_key, t,
    time,
};

fn workspace_from_row(row: &Row) -> rusqlite::Result<Workspace> {
    Ok(Workspace { id: row.get(0)?, name: row.get(1)?, created_at: time(row, 2)? })
}

pub(crate) fn create_workspace(conn: &Connection, name: String) -> Result<Workspace> {
    let ws = Workspace { id: new_id("ws"), name, created_at: now() };
    conn.execute(
        "INSERT INTO workspaces (id, name, created_at) VALUES (?1, ?2, ?3)",
        params![ws.id, ws.name, t(&ws.created_at)],
    )
    .map_err(storage)?;
    rows::insert_builtin_fields(conn, &ws.id, &ws.created_at)?;
    Ok(ws)
}

pub(crate) fn list_workspaces(conn: &Connection, page: &PageRequest) -> Result<Page<Workspace>> {
    let (after_t, after_id) = split_creation_key(&page.after)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, name, created_at FROM workspaces
             WHERE (created_at, id) > (?1, ?2) ORDER BY created_at, id LIMIT ?3",
        )
        .map_err(storage)?;
    let items = stmt
        .query_map(params![after_t, after_id, page.limit as i64 + 1], workspace_from_row)
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    Ok(Page::from_overfetch(items, page.limit, |w| creation_key(&w.created_at, &w.id)))
}

pub(crate) fn get_workspace(conn: &Connection, id: &str) -> Result<Workspace> {
    let mut stmt = conn.prepare_cached("SELECT id, name, created_at FROM workspaces WHERE id = ?1").map_err(storage)?;
    one(stmt.query_row([id], workspace_from_row))?.ok_or(Error::NotFound { entity: "workspace" })
}

const SA_COLUMNS: &str = "id, workspace_id, name, description, teams, scopes, created_at, updated_at";

fn account_from_row(row: &Row) -> rusqlite::Result<ServiceAccount> {
    let teams: String = row.get(4)?;
    let scopes: String = row.get(5)?;
    Ok(ServiceAccount {
        id: row.get(0)?,
        workspace_id: row.get(1)?,
        name: row.get(2)?,
        description: row.get(3)?,
        teams: serde_json::from_str(&teams).unwrap_or_default(),
        scopes: scopes_from_text(&scopes),
        created_at: time(row, 6)?,
        updated_at: time(row, 7)?,
    })
}

pub(crate) fn create_service_account(conn: &Connection, ws: &str, new: NewServiceAccount) -> Result<ServiceAccount> {
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
    conn.execute(
        &format!("INSERT INTO service_accounts ({SA_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        params![
            sa.id,
            sa.workspace_id,
            sa.name,
            sa.description,
            serde_json::to_string(&sa.teams).unwrap_or_else(|_| "[]".into()),
            scopes_to_text(&sa.scopes),
            t(&at),
            t(&at)
        ],
    )
    .map_err(storage)?;
    Ok(sa)
}

pub(crate) fn list_service_accounts(conn: &Connection, ws: &str, page: &PageRequest) -> Result<Page<ServiceAccount>> {
    let (after_t, after_id) = split_creation_key(&page.after)?;
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {SA_COLUMNS} FROM service_accounts WHERE workspace_id = ?1 AND (created_at, id) > (?2, ?3)
             ORDER BY created_at, id LIMIT ?4"
        ))
        .map_err(storage)?;
    let items = stmt
        .query_map(params![ws, after_t, after_id, page.limit as i64 + 1], account_from_row)
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    Ok(Page::from_overfetch(items, page.limit, |a| creation_key(&a.created_at, &a.id)))
}

pub(crate) fn get_service_account(conn: &Connection, ws: &str, id: &str) -> Result<ServiceAccount> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {SA_COLUMNS} FROM service_accounts WHERE workspace_id = ?1 AND id = ?2"))
        .map_err(storage)?;
    one(stmt.query_row([ws, id], account_from_row))?.ok_or(Error::NotFound { entity: "service account" })
}

pub(crate) fn update_service_account(
    conn: &Connection,
    ws: &str,
    id: &str,
    update: ServiceAccountUpdate,
) -> Result<ServiceAccount> {
    let mut sa = get_service_account(conn, ws, id)?;
    sa.apply(update, now());
    conn.execute(
        "UPDATE service_accounts SET name = ?3, description = ?4, teams = ?5, scopes = ?6, updated_at = ?7
         WHERE workspace_id = ?1 AND id = ?2",
        params![
            ws,
            id,
            sa.name,
            sa.description,
            serde_json::to_string(&sa.teams).unwrap_or_else(|_| "[]".into()),
            scopes_to_text(&sa.scopes),
            t(&sa.updated_at)
        ],
    )
    .map_err(storage)?;
    Ok(sa)
}

pub(crate) fn list_fields(
    conn: &Connection,
    ws: &str,
    entity: Option<Entity>,
    page: &PageRequest,
) -> Result<Page<Field>> {
    let after = page.after.clone().unwrap_or_default();
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {FIELD_COLUMNS} FROM fields WHERE workspace_id = ?1 AND (?2 IS NULL OR entity = ?2)
             AND entity || '|' || name > ?3 ORDER BY entity || '|' || name LIMIT ?4"
        ))
        .map_err(storage)?;
    let items = stmt
        .query_map(params![ws, entity.map(|e| e.as_str()), after, page.limit as i64 + 1], field_from_row)
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    Ok(Page::from_overfetch(items, page.limit, |f| format!("{}|{}", f.entity.as_str(), f.name)))
}

pub(crate) fn create_field(conn: &Connection, ws: &str, new: NewField) -> Result<Field> {
    let field = Field {
        entity: new.entity,
        label: new.label.unwrap_or_else(|| new.name.clone()),
        name: new.name,
        field_type: new.field_type,
        inferred: false,
        builtin: false,
        created_at: now(),
    };
    let inserted = conn
        .execute(
            "INSERT INTO fields (workspace_id, entity, name, label, type, inferred, builtin, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, ?6) ON CONFLICT DO NOTHING",
            params![
                ws,
                field.entity.as_str(),
                field.name,
                field.label,
                field.field_type.as_str(),
                t(&field.created_at)
            ],
        )
        .map_err(storage)?;
    if inserted == 0 {
        return Err(Error::Conflict { entity: "field", field: "name".into(), row: None });
    }
    Ok(field)
}
