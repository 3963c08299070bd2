//! Events and jobs: the set-based INSERT of events, reading events and
//! job results back, and the purge of old jobs and message ids.

use chrono::{DateTime, Utc};
use convene_core::event::{Event, EventFilter, EventKind, NewEvent};
use convene_core::ingest::{Job, JobStatus, RowError};
use convene_core::page::{Page, PageRequest};
use convene_core::{Error, Result};
use deadpool_postgres::{ClientWrapper, Pool};
use tokio_postgres::Row;

use crate::db::{conn, execute, query, query_opt};
use crate::rows::{get, object};

fn event_from_row(row: &Row) -> Result<Event> {
    let kind: String = get(row, "kind")?;
    Ok(Event {
        id: get(row, "id")?,
        contact_id: get(row, "contact_id")?,
        event: NewEvent {
            name: get(row, "name")?,
            kind: EventKind::parse(&kind).unwrap_or(EventKind::Track),
            properties: object(row, "properties")?,
            description: get(row, "description")?,
            timestamp: get(row, "timestamp")?,
            received_at: get(row, "received_at")?,
            message_id: get(row, "message_id")?,
        },
    })
}

/// Inserts events of one workspace, in order. The one INSERT of events.
pub(crate) async fn insert(c: &ClientWrapper, ws: &str, events: &[(i64, &NewEvent)]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let contacts: Vec<i64> = events.iter().map(|(c, _)| *c).collect();
    let names: Vec<&str> = events.iter().map(|(_, e)| e.name.as_str()).collect();
    let kinds: Vec<&str> = events.iter().map(|(_, e)| e.kind.as_str()).collect();
    let props: Vec<String> =
        events.iter().map(|(_, e)| serde_json::to_string(&e.properties).unwrap_or_else(|_| "{}".into())).collect();
    let descriptions: Vec<Option<&str>> = events.iter().map(|(_, e)| e.description.as_deref()).collect();
    let stamps: Vec<DateTime<Utc>> = events.iter().map(|(_, e)| e.timestamp).collect();
    let received: Vec<DateTime<Utc>> = events.iter().map(|(_, e)| e.received_at).collect();
    let message_ids: Vec<Option<&str>> = events.iter().map(|(_, e)| e.message_id.as_deref()).collect();
    execute(
        c,
        "INSERT INTO events (workspace_id, contact_id, name, kind, properties, description, timestamp, received_at, message_id)
         SELECT $1, v.c, v.n, v.k, v.p::jsonb, v.d, v.t, v.r, v.m
         FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::text[])
              WITH ORDINALITY AS v(c, n, k, p, d, t, r, m, o)
         ORDER BY v.o",
        &[&ws, &contacts, &names, &kinds, &props, &descriptions, &stamps, &received, &message_ids],
    )
    .await?;
    Ok(())
}

pub(crate) async fn list(pool: &Pool, ws: &str, filter: &EventFilter, page: &PageRequest) -> Result<Page<Event>> {
    let after = page.after_i64()?.unwrap_or(0);
    let c = conn(pool).await?;
    let rows = query(
        &c,
        "SELECT id, contact_id, name, kind, properties, description, timestamp, received_at, message_id FROM events
         WHERE workspace_id = $1 AND id > $2
           AND ($3::bigint IS NULL OR contact_id = $3) AND ($4::text IS NULL OR name = $4)
           AND ($5::timestamptz IS NULL OR timestamp >= $5) AND ($6::timestamptz IS NULL OR timestamp < $6)
         ORDER BY id LIMIT $7",
        &[&ws, &after, &filter.contact_id, &filter.name, &filter.from, &filter.to, &(page.limit as i64 + 1)],
    )
    .await?;
    let items = rows.iter().map(event_from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |e| e.id.to_string()))
}

/// A finished job's result.
/// A contact's events after `(at, after_id)` by time then id (the timeline).
pub(crate) async fn timeline(
    c: &ClientWrapper,
    ws: &str,
    contact_id: i64,
    at: DateTime<Utc>,
    after_id: i64,
    limit: i64,
) -> Result<Vec<Event>> {
    let rows = query(
        c,
        "SELECT id, contact_id, name, kind, properties, description, timestamp, received_at, message_id FROM events
         WHERE workspace_id = $1 AND contact_id = $2 AND (timestamp > $3 OR (timestamp = $3 AND id > $4))
         ORDER BY timestamp, id LIMIT $5",
        &[&ws, &contact_id, &at, &after_id, &limit],
    )
    .await?;
    rows.iter().map(event_from_row).collect()
}

pub(crate) async fn get_job(pool: &Pool, ws: &str, id: &str) -> Result<Option<Job>> {
    let c = conn(pool).await?;
    let row = query_opt(
        &c,
        "SELECT status, total, applied, duplicates, failed, errors, received_at, finished_at
         FROM jobs WHERE workspace_id = $1 AND id = $2",
        &[&ws, &id],
    )
    .await?;
    let Some(r) = row else { return Ok(None) };
    let status: String = get(&r, "status")?;
    let errors: serde_json::Value = get(&r, "errors")?;
    Ok(Some(Job {
        id: id.to_string(),
        status: if status == "failed" { JobStatus::Failed } else { JobStatus::Applied },
        total: get::<i32>(&r, "total")? as usize,
        applied: get::<i32>(&r, "applied")? as usize,
        duplicates: get::<i32>(&r, "duplicates")? as usize,
        failed: get::<i32>(&r, "failed")? as usize,
        errors: serde_json::from_value::<Vec<RowError>>(errors).unwrap_or_default(),
        received_at: get(&r, "received_at")?,
        finished_at: get(&r, "finished_at")?,
    }))
}

/// A job still in the inbox: its item count and acceptance time.
pub(crate) async fn find_queued(pool: &Pool, ws: &str, id: &str) -> Result<Option<(usize, DateTime<Utc>)>> {
    let c = conn(pool).await?;
    let row = query_opt(
        &c,
        "SELECT item_count, received_at FROM ingest_inbox WHERE workspace_id = $1 AND job_id = $2",
        &[&ws, &id],
    )
    .await?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some((get::<i32>(&r, "item_count")? as usize, get(&r, "received_at")?))),
    }
}

/// Deletes old job results and dedupe records.
pub(crate) async fn purge(pool: &Pool, jobs_before: DateTime<Utc>, dedupe_before: DateTime<Utc>) -> Result<()> {
    let c = conn(pool).await?;
    execute(&c, "DELETE FROM jobs WHERE finished_at < $1", &[&jobs_before]).await?;
    execute(&c, "DELETE FROM ingest_dedupe WHERE seen_at < $1", &[&dedupe_before]).await?;
    Ok(())
}

/// The not-found error of jobs.
pub(crate) fn no_job() -> Error {
    Error::NotFound { entity: "job" }
}
