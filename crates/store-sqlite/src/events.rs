//! Reading events and jobs back.

use convene_core::event::{Event, EventFilter, EventKind, NewEvent};
use convene_core::ingest::{Job, JobStatus, RowError};
use convene_core::page::{Page, PageRequest};
use convene_core::{Error, Result};
use rusqlite::{Connection, Row, params};

use crate::conn::storage;
use crate::rows::{one, opt_time, t, time};

fn event_from_row(row: &Row) -> rusqlite::Result<Event> {
    let kind: String = row.get(3)?;
    let props: String = row.get(4)?;
    Ok(Event {
        id: row.get(0)?,
        contact_id: row.get(1)?,
        event: NewEvent {
            name: row.get(2)?,
            kind: EventKind::parse(&kind).unwrap_or(EventKind::Track),
            properties: serde_json::from_str(&props).unwrap_or_default(),
            description: row.get(5)?,
            timestamp: time(row, 6)?,
            received_at: time(row, 7)?,
            message_id: row.get(8)?,
        },
    })
}

pub(crate) fn list(conn: &Connection, ws: &str, filter: &EventFilter, page: &PageRequest) -> Result<Page<Event>> {
    let after = page.after_i64()?.unwrap_or(0);
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, contact_id, name, kind, properties, description, timestamp, received_at, message_id FROM events
             WHERE workspace_id = ?1 AND id > ?2
               AND (?3 IS NULL OR contact_id = ?3) AND (?4 IS NULL OR name = ?4)
               AND (?5 IS NULL OR timestamp >= ?5) AND (?6 IS NULL OR timestamp < ?6)
             ORDER BY id LIMIT ?7",
        )
        .map_err(storage)?;
    let items = stmt
        .query_map(
            params![
                ws,
                after,
                filter.contact_id,
                filter.name,
                filter.from.as_ref().map(t),
                filter.to.as_ref().map(t),
                page.limit as i64 + 1
            ],
            event_from_row,
        )
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    Ok(Page::from_overfetch(items, page.limit, |e| e.id.to_string()))
}

/// A contact's events after `(at, after_id)` by time then id (the timeline).
pub(crate) fn timeline(
    conn: &Connection,
    ws: &str,
    contact_id: i64,
    at: &str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<Event>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, contact_id, name, kind, properties, description, timestamp, received_at, message_id FROM events
             WHERE workspace_id = ?1 AND contact_id = ?2 AND (timestamp > ?3 OR (timestamp = ?3 AND id > ?4))
             ORDER BY timestamp, id LIMIT ?5",
        )
        .map_err(storage)?;
    stmt.query_map(params![ws, contact_id, at, after_id, limit], event_from_row)
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)
}

pub(crate) fn get_job(conn: &Connection, ws: &str, id: &str) -> Result<Option<Job>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT status, total, applied, duplicates, failed, errors, received_at, finished_at FROM jobs WHERE workspace_id = ?1 AND id = ?2",
        )
        .map_err(storage)?;
    one(stmt.query_row(params![ws, id], |r| {
        let status: String = r.get(0)?;
        let errors: String = r.get(5)?;
        Ok(Job {
            id: id.to_string(),
            status: if status == "failed" { JobStatus::Failed } else { JobStatus::Applied },
            total: r.get::<_, i64>(1)? as usize,
            applied: r.get::<_, i64>(2)? as usize,
            duplicates: r.get::<_, i64>(3)? as usize,
            failed: r.get::<_, i64>(4)? as usize,
            errors: serde_json::from_str::<Vec<RowError>>(&errors).unwrap_or_default(),
            received_at: time(r, 6)?,
            finished_at: opt_time(r, 7)?,
        })
    }))
}

/// Deletes old job results and dedupe records.
pub(crate) fn purge(conn: &Connection, jobs_before: &str, dedupe_before: &str) -> Result<()> {
    conn.execute("DELETE FROM jobs WHERE finished_at < ?1", [jobs_before]).map_err(storage)?;
    conn.execute("DELETE FROM ingest_dedupe WHERE seen_at < ?1", [dedupe_before]).map_err(storage)?;
    Ok(())
}

/// The not-found error of jobs.
pub(crate) fn no_job() -> Error {
    Error::NotFound { entity: "job" }
}
