//! Row ↔ domain helpers shared by the table modules.

use chrono::{DateTime, Utc};
use convene_core::field::{BUILTIN_CONTACT_FIELDS, Entity, Field, FieldRegistry, FieldType};
use convene_core::ids::{fmt_time, parse_time};
use convene_core::scope::Scope;
use convene_core::{Error, Result};
use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::db::{execute, query};
use crate::error::db;

/// Scopes stored as a JSON array of names.
pub(crate) fn scopes_to_json(scopes: &[Scope]) -> serde_json::Value {
    serde_json::to_value(scopes).unwrap_or_else(|_| serde_json::Value::Array(Vec::new()))
}

/// Reads a JSON array of scope names; unknown names (from a newer version)
/// are skipped.
pub(crate) fn scopes_from_json(value: &serde_json::Value) -> Vec<Scope> {
    value.as_array().map(|a| a.iter().filter_map(|n| n.as_str()?.parse().ok()).collect()).unwrap_or_default()
}

/// The cursor key of lists ordered by creation: `created_at|id`.
pub(crate) fn creation_key(created_at: &DateTime<Utc>, id: &str) -> String {
    format!("{}|{id}", fmt_time(created_at))
}

/// Splits a creation cursor into (time, id); (None, "") for the first page.
pub(crate) fn split_creation_key(key: &Option<String>) -> Result<(Option<DateTime<Utc>>, String)> {
    let Some(k) = key else { return Ok((None, String::new())) };
    k.split_once('|')
        .and_then(|(a, b)| Some((Some(parse_time(a)?), b.to_string())))
        .ok_or_else(|| Error::validation("cursor", "cursor is not one this server issued"))
}

/// Reads a column.
pub(crate) fn get<'r, T: FromSql<'r>>(row: &'r Row, column: &str) -> Result<T> {
    row.try_get(column).map_err(db)
}

/// Reads a JSON object column (anything else reads as empty).
pub(crate) fn object(row: &Row, column: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    match get::<serde_json::Value>(row, column)? {
        serde_json::Value::Object(map) => Ok(map),
        _ => Ok(Default::default()),
    }
}

/// Loads the field types of one entity of one workspace.
pub(crate) async fn load_registry(c: &ClientWrapper, ws: &str, entity: Entity) -> Result<FieldRegistry> {
    let rows =
        query(c, "SELECT name, type FROM fields WHERE workspace_id = $1 AND entity = $2", &[&ws, &entity.as_str()])
            .await?;
    let mut registry =
        if entity == Entity::Contact { FieldRegistry::builtin_contact() } else { FieldRegistry::default() };
    for row in rows {
        let name: String = get(&row, "name")?;
        let ty: String = get(&row, "type")?;
        if let Ok(ty) = ty.parse::<FieldType>() {
            registry.insert(name, ty);
        }
    }
    Ok(registry)
}

/// Records fields created on the fly (an existing one is left as it is).
pub(crate) async fn insert_inferred_fields(
    c: &ClientWrapper,
    ws: &str,
    entity: Entity,
    fields: &[(String, FieldType)],
) -> Result<()> {
    if fields.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    let types: Vec<&str> = fields.iter().map(|(_, t)| t.as_str()).collect();
    execute(
        c,
        "INSERT INTO fields (workspace_id, entity, name, label, type, inferred, builtin, created_at)
         SELECT $1, $2, n, n, t, true, false, $5 FROM unnest($3::text[], $4::text[]) AS f(n, t)
         ON CONFLICT DO NOTHING",
        &[&ws, &entity.as_str(), &names, &types, &convene_core::ids::now()],
    )
    .await?;
    Ok(())
}

/// Creates the built-in fields of a new workspace.
pub(crate) async fn insert_builtin_fields(c: &ClientWrapper, ws: &str, now: &DateTime<Utc>) -> Result<()> {
    for (name, label, ty) in BUILTIN_CONTACT_FIELDS {
        execute(
            c,
            "INSERT INTO fields (workspace_id, entity, name, label, type, inferred, builtin, created_at)
             VALUES ($1, 'contact', $2, $3, $4, false, true, $5)",
            &[&ws, &name, &label, &ty.as_str(), now],
        )
        .await?;
    }
    Ok(())
}

/// Column list of [`field_from_row`].
pub(crate) const FIELD_COLUMNS: &str = "entity, name, label, type, inferred, builtin, created_at";

/// Reads a field row.
pub(crate) fn field_from_row(row: &Row) -> Result<Field> {
    let entity: String = get(row, "entity")?;
    let ty: String = get(row, "type")?;
    Ok(Field {
        entity: entity.parse().unwrap_or(Entity::Contact),
        name: get(row, "name")?,
        label: get(row, "label")?,
        field_type: ty.parse().unwrap_or(FieldType::Json),
        inferred: get(row, "inferred")?,
        builtin: get(row, "builtin")?,
        created_at: get(row, "created_at")?,
    })
}
