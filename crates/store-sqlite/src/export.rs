//! Exports: an entity's rows in cursor order, rendered on the reader thread
//! straight from SQLite's values into chunks (no domain object per row).
//!
//! Contacts, events, companies and reps are read through their
//! `(workspace_id, id|seq)` index. Conversations and messages have no such
//! index: they are read in rowid order (`+workspace_id` keeps the planner
//! from choosing another index and sorting — a sorter would hold the whole
//! export in memory), so their export scans every workspace's rows.

use convene_core::export::{Cell, ColumnKind, ExportCursor, ExportEntity, ExportQuery, ExportRenderer, MAX_COLUMNS};
use convene_core::store::RENDER_CHUNK_BYTES;
use convene_core::{Error, Result};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};

use crate::conn::storage;
use crate::rows::t;

/// The statement of an entity: `?1` workspace, `?2` the key after which
/// rows start, `?3` the `since` time or NULL; columns in export order.
fn sql(entity: ExportEntity) -> &'static str {
    match entity {
        ExportEntity::Contacts => {
            "SELECT id, email, mobile, external_id, anonymous_id, traits, subscription_status, company_id, created_at,
                    updated_at
             FROM contacts WHERE workspace_id = ?1 AND id > ?2 AND (?3 IS NULL OR updated_at >= ?3) ORDER BY id"
        }
        ExportEntity::Events => {
            "SELECT id, contact_id, name, kind, properties, description, timestamp, received_at, message_id
             FROM events WHERE workspace_id = ?1 AND id > ?2 AND (?3 IS NULL OR received_at >= ?3) ORDER BY id"
        }
        ExportEntity::Conversations => {
            "SELECT id, contact_id, status, assignee_id, channel, subject, labels, messages_count, created_at,
                    updated_at, last_message_at
             FROM conversations WHERE +workspace_id = ?1 AND seq > ?2 AND (?3 IS NULL OR updated_at >= ?3)
             ORDER BY seq"
        }
        ExportEntity::Messages => {
            "SELECT m.id, c.id, m.type, m.content, m.sender_type, m.sender_id, m.created_at
             FROM messages m JOIN conversations c ON c.seq = m.conversation
             WHERE +m.workspace_id = ?1 AND m.id > ?2 AND (?3 IS NULL OR m.created_at >= ?3) ORDER BY m.id"
        }
        ExportEntity::Reps => {
            "SELECT rep_id, name, email, department, active, attributes, created_at, updated_at
             FROM reps WHERE workspace_id = ?1 AND seq > ?2 AND (?3 IS NULL OR updated_at >= ?3) ORDER BY seq"
        }
        ExportEntity::Companies => {
            "SELECT id, external_id, domain, traits, created_at, updated_at
             FROM companies WHERE workspace_id = ?1 AND id > ?2 AND (?3 IS NULL OR updated_at >= ?3) ORDER BY id"
        }
    }
}

/// The sequence number after which rows start.
fn start_after(conn: &Connection, ws: &str, entity: ExportEntity, cursor: &Option<ExportCursor>) -> Result<i64> {
    let key = match cursor {
        None => return Ok(0),
        Some(ExportCursor::Id(id)) => return Ok(*id),
        Some(ExportCursor::Key(key)) => key,
    };
    let lookup = match entity {
        ExportEntity::Reps => "SELECT seq FROM reps WHERE workspace_id = ?1 AND rep_id = ?2",
        ExportEntity::Conversations => "SELECT seq FROM conversations WHERE workspace_id = ?1 AND id = ?2",
        _ => return Err(ExportCursor::unknown(entity)),
    };
    conn.prepare_cached(lookup)
        .and_then(|mut s| s.query_row(params![ws, key], |r| r.get::<_, i64>(0)).optional())
        .map_err(storage)?
        .ok_or_else(|| ExportCursor::unknown(entity))
}

/// A stored value as a cell of `kind`.
fn cell(value: ValueRef<'_>, kind: ColumnKind) -> Result<Cell<'_>> {
    Ok(match (value, kind) {
        (ValueRef::Null, _) => Cell::Null,
        (ValueRef::Integer(i), ColumnKind::Bool) => Cell::Bool(i != 0),
        (ValueRef::Integer(i), _) => Cell::Int(i),
        (ValueRef::Text(b), ColumnKind::Json) => Cell::Json(b),
        (ValueRef::Text(b), ColumnKind::Time) => Cell::Time(b),
        (ValueRef::Text(b), _) => Cell::Text(b),
        (ValueRef::Real(_) | ValueRef::Blob(_), _) => {
            return Err(Error::Storage(format!("unexpected stored value for a {kind:?} column")));
        }
    })
}

/// Streams the export through `send`, in chunks of about
/// [`RENDER_CHUNK_BYTES`] (false from `send`: the reader has gone, stop).
pub(crate) fn export_rendered(
    conn: &Connection,
    ws: &str,
    query: &ExportQuery,
    mut render: ExportRenderer,
    send: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<()> {
    let entity = query.entity;
    let after = start_after(conn, ws, entity, &query.after)?;
    let since = query.since.as_ref().map(t);
    let columns = entity.columns();
    let mut stmt = conn.prepare_cached(sql(entity)).map_err(storage)?;
    let mut rows = stmt.query(params![ws, after, since]).map_err(storage)?;
    let mut buf = Vec::with_capacity(RENDER_CHUNK_BYTES + 4096);
    while let Some(row) = rows.next().map_err(storage)? {
        let mut cells = [Cell::Null; MAX_COLUMNS];
        for (i, column) in columns.iter().enumerate() {
            cells[i] = cell(row.get_ref(i).map_err(storage)?, column.kind)?;
        }
        render(&cells[..columns.len()], &mut buf);
        if buf.len() >= RENDER_CHUNK_BYTES
            && !send(std::mem::replace(&mut buf, Vec::with_capacity(RENDER_CHUNK_BYTES + 4096)))
        {
            return Ok(());
        }
    }
    if !buf.is_empty() {
        send(buf);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every export reads in index or rowid order: no sorter (which would
    /// hold the rows in memory) and no full scan where an index leads with
    /// the workspace.
    #[test]
    fn exports_never_sort() {
        let dir = tempfile::tempdir().unwrap();
        crate::SqliteStore::migrate(&dir.path().join("x.db"), &crate::SqliteOptions::default()).unwrap();
        let conn = Connection::open(dir.path().join("x.db")).unwrap();
        for entity in ExportEntity::ALL {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", sql(entity))).unwrap();
            let plan: Vec<String> = stmt
                .query_map(params!["ws", 0, None::<String>], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let plan = plan.join(" | ");
            assert!(!plan.contains("TEMP B-TREE"), "{entity:?}: {plan}");
        }
    }
}
