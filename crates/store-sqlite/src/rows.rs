//! Row ↔ domain mapping shared by the table modules.

use chrono::{DateTime, Utc};
use convene_core::field::{BUILTIN_CONTACT_FIELDS, Entity, Field, FieldRegistry, FieldType};
use convene_core::ids::{fmt_time, parse_time};
use convene_core::scope::Scope;
use convene_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension, Row};

use crate::conn::storage;

/// Reads a stored time.
pub(crate) fn time(row: &Row, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let s: String = row.get(idx)?;
    parse_time(&s).ok_or_else(|| rusqlite::Error::InvalidColumnType(idx, "time".into(), rusqlite::types::Type::Text))
}

/// Reads an optional stored time.
pub(crate) fn opt_time(row: &Row, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let s: Option<String> = row.get(idx)?;
    Ok(s.and_then(|s| parse_time(&s)))
}

/// Formats a time for storage.
pub(crate) fn t(time: &DateTime<Utc>) -> String {
    fmt_time(time)
}

/// Scopes stored as a JSON array of names.
pub(crate) fn scopes_to_text(scopes: &[Scope]) -> String {
    serde_json::to_string(scopes).unwrap_or_else(|_| "[]".into())
}

/// Reads a JSON array of scope names; unknown names (from a newer version)
/// are skipped.
pub(crate) fn scopes_from_text(text: &str) -> Vec<Scope> {
    let names: Vec<String> = serde_json::from_str(text).unwrap_or_default();
    names.iter().filter_map(|n| n.parse().ok()).collect()
}

/// The cursor key of lists ordered by creation: `created_at|id`.
pub(crate) fn creation_key(created_at: &DateTime<Utc>, id: &str) -> String {
    format!("{}|{id}", t(created_at))
}

/// Splits a creation cursor.
pub(crate) fn split_creation_key(key: &Option<String>) -> Result<(String, String)> {
    match key {
        None => Ok((String::new(), String::new())),
        Some(k) => k
            .split_once('|')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .ok_or_else(|| Error::validation("cursor", "cursor is not one this server issued")),
    }
}

/// Loads the field types of one entity of one workspace.
pub(crate) fn load_registry(conn: &Connection, ws: &str, entity: Entity) -> Result<FieldRegistry> {
    let mut stmt = conn
        .prepare_cached("SELECT name, type FROM fields WHERE workspace_id = ?1 AND entity = ?2")
        .map_err(storage)?;
    let rows = stmt
        .query_map(rusqlite::params![ws, entity.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(storage)?;
    let mut registry =
        if entity == Entity::Contact { FieldRegistry::builtin_contact() } else { FieldRegistry::default() };
    for row in rows {
        let (name, ty) = row.map_err(storage)?;
        if let Ok(ty) = ty.parse::<FieldType>() {
            registry.insert(name, ty);
        }
    }
    Ok(registry)
}

/// Records fields created on the fly (an existing one is left as it is).
pub(crate) fn insert_inferred_fields(
    conn: &Connection,
    ws: &str,
    entity: Entity,
    fields: &[(String, FieldType)],
) -> Result<()> {
    if fields.is_empty() {
        return Ok(());
    }
    let now = t(&convene_core::ids::now());
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO fields (workspace_id, entity, name, label, type, inferred, builtin, created_at)
             VALUES (?1, ?2, ?3, ?3, ?4, 1, 0, ?5) ON CONFLICT DO NOTHING",
        )
        .map_err(storage)?;
    for (name, ty) in fields {
        stmt.execute(rusqlite::params![ws, entity.as_str(), name, ty.as_str(), now]).map_err(storage)?;
    }
    Ok(())
}

/// Creates the built-in fields of a new workspace.
pub(crate) fn insert_builtin_fields(conn: &Connection, ws: &str, now: &DateTime<Utc>) -> Result<()> {
    for (name, label, ty) in BUILTIN_CONTACT_FIELDS {
        conn.execute(
            "INSERT INTO fields (workspace_id, entity, name, label, type, inferred, builtin, created_at)
             VALUES (?1, 'contact', ?2, ?3, ?4, 0, 1, ?5)",
            rusqlite::params![ws, name, label, ty.as_str(), t(now)],
        )
        .map_err(storage)?;
    }
    Ok(())
}

/// Column list of [`field_from_row`].
pub(crate) const FIELD_COLUMNS: &str = "entity, name, label, type, inferred, builtin, created_at";

/// Reads a field row.
pub(crate) fn field_from_row(row: &Row) -> rusqlite::Result<Field> {
    let entity: String = row.get(0)?;
    let ty: String = row.get(3)?;
    Ok(Field {
        entity: entity.parse().unwrap_or(Entity::Contact),
        name: row.get(1)?,
        label: row.get(2)?,
        field_type: ty.parse().unwrap_or(FieldType::Json),
        inferred: row.get(4)?,
        builtin: row.get(5)?,
        created_at: time(row, 6)?,
    })
}

/// A single optional row.
pub(crate) fn one<T>(r: rusqlite::Result<T>) -> Result<Option<T>> {
    r.optional().map_err(storage)
}
