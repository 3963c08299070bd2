//! Exports: an entity's rows in cursor order, rendered on the reader thread
//! straight from SQLite's values into chunks (no domain object per row).
//!
//! Contacts, events, companies and reps have a `(workspace_id, id|seq)`
//! index. When the workspace holds most of the rows between its first and
//! last key (one count over that index says), the table is read in rowid
//! order between them — a sequential walk — instead of through the index,
//! which costs a table lookup per row (20% of an export of 1,000,000
//! contacts); a workspace spread thin over a shared table is read through
//! the index. Conversations and messages have no such index: they are read
//! in rowid order, every workspace's rows. `+workspace_id` keeps the
//! planner from choosing another index and sorting (a sorter would hold
//! the whole export in memory).

use convene_core::export::{Cell, ColumnKind, ExportCursor, ExportEntity, ExportQuery, ExportRenderer, MAX_COLUMNS};
use convene_core::store::RENDER_CHUNK_BYTES;
use convene_core::{Error, Result};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};

use crate::conn::storage;
use crate::rows::t;

/// How an entity is read.
struct Source {
    /// `SELECT <the export's columns, in order> FROM …`.
    select: &'static str,
    /// The key (rowid) column, the workspace column and the `since` column.
    key: &'static str,
    ws: &'static str,
    since: &'static str,
    /// The table with a `(workspace_id, key)` index, if any.
    indexed: Option<&'static str>,
}

fn source(entity: ExportEntity) -> Source {
    let (select, key, ws, since, indexed) = match entity {
        ExportEntity::Contacts => (
            "SELECT id, email, mobile, external_id, anonymous_id, traits, subscription_status, company_id, created_at,
                    updated_at FROM contacts",
            "id",
            "workspace_id",
            "updated_at",
            Some("contacts"),
        ),
        ExportEntity::Events => (
            "SELECT id, contact_id, name, kind, properties, description, timestamp, received_at, message_id
             FROM events",
            "id",
            "workspace_id",
            "received_at",
            Some("events"),
        ),
        ExportEntity::Conversations => (
            "SELECT id, contact_id, status, assignee_id, channel, subject, labels, messages_count, created_at,
                    updated_at, last_message_at FROM conversations",
            "seq",
            "workspace_id",
            "updated_at",
            None,
        ),
        ExportEntity::Messages => (
            "SELECT m.id, c.id, m.type, m.content, m.sender_type, m.sender_id, m.created_at
             FROM messages m JOIN conversations c ON c.seq = m.conversation",
            "m.id",
            "m.workspace_id",
            "m.created_at",
            None,
        ),
        ExportEntity::Reps => (
            "SELECT rep_id, name, email, department, active, attributes, created_at, updated_at FROM reps",
            "seq",
            "workspace_id",
            "updated_at",
            Some("reps"),
        ),
        ExportEntity::Companies => (
            "SELECT id, external_id, domain, traits, created_at, updated_at FROM companies",
            "id",
            "workspace_id",
            "updated_at",
            Some("companies"),
        ),
    };
    Source { select, key, ws, since, indexed }
}

/// The statement: `?1` workspace, `?2` the key after which rows start,
/// `?3` the `since` time or NULL, `?4` (rowid order) the last key to read.
fn sql(entity: ExportEntity, rowid_order: bool) -> String {
    let Source { select, key, ws, since, .. } = source(entity);
    if rowid_order {
        format!(
            "{select} WHERE +{ws} = ?1 AND {key} > ?2 AND {key} <= ?4 AND (?3 IS NULL OR {since} >= ?3) ORDER BY {key}"
        )
    } else {
        format!("{select} WHERE {ws} = ?1 AND {key} > ?2 AND (?3 IS NULL OR {since} >= ?3) ORDER BY {key}")
    }
}

/// Whether to read in rowid order, and up to which key (`None`: no row).
fn plan(conn: &Connection, ws: &str, entity: ExportEntity, after: i64) -> Result<Option<(bool, i64)>> {
    let Source { key, indexed, .. } = source(entity);
    let Some(table) = indexed else { return Ok(Some((true, i64::MAX))) };
    let sql = format!("SELECT count(*), min({key}), max({key}) FROM {table} WHERE workspace_id = ?1 AND {key} > ?2");
    let (n, first, last): (i64, Option<i64>, Option<i64>) = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row(params![ws, after], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
        .map_err(storage)?;
    Ok(match (first, last) {
        (Some(first), Some(last)) => Some((n.saturating_mul(2) > last.saturating_sub(first) + 1, last)),
        _ => None,
    })
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
    let Some((rowid_order, last)) = plan(conn, ws, entity, after)? else { return Ok(()) };
    let since = query.since.as_ref().map(t);
    let columns = entity.columns();
    let sql = sql(entity, rowid_order);
    let mut stmt = conn.prepare_cached(&sql).map_err(storage)?;
    let mut rows =
        if rowid_order { stmt.query(params![ws, after, since, last]) } else { stmt.query(params![ws, after, since]) }
            .map_err(storage)?;
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
            for rowid_order in [false, true] {
                if !rowid_order && source(entity).indexed.is_none() {
                    continue;
                }
                let sql = sql(entity, rowid_order);
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                let n = stmt.parameter_count();
                let args = rusqlite::params_from_iter(["ws", "0", "", "9"].into_iter().take(n));
                let plan: Vec<String> =
                    stmt.query_map(args, |r| r.get::<_, String>(3)).unwrap().collect::<rusqlite::Result<_>>().unwrap();
                let plan = plan.join(" | ");
                assert!(!plan.contains("TEMP B-TREE"), "{entity:?}: {plan}");
                let expected = if rowid_order { "INTEGER PRIMARY KEY" } else { "USING INDEX" };
                assert!(plan.contains(expected), "{entity:?} (rowid order: {rowid_order}): {plan}");
            }
        }
    }
}
