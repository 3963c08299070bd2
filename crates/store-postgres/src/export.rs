//! Exports: an entity's rows in cursor order (each table's primary key
//! `(workspace_id, id|seq)`), read as the stream is consumed and rendered
//! straight from the row into chunks (no domain object per row).

use chrono::{DateTime, SecondsFormat, Utc};
use convene_core::Result;
use convene_core::export::{
    Cell, Column, ColumnKind, ExportCursor, ExportEntity, ExportQuery, ExportRenderer, MAX_COLUMNS,
};
use convene_core::store::{RENDER_CHUNK_BYTES, RowStream};
use deadpool_postgres::Pool;
use tokio_postgres::Row;

use crate::db::{conn, query_opt};
use crate::error::db;
use crate::stream::{self, Param};

/// The statement of an entity: `$1` workspace, `$2` the key after which
/// rows start, `$3` the `since` time or NULL; columns in export order.
fn sql(entity: ExportEntity) -> &'static str {
    match entity {
        ExportEntity::Contacts => {
            "SELECT id, email, mobile, external_id, anonymous_id, traits::text, subscription_status, company_id,
                    created_at, updated_at
             FROM contacts WHERE workspace_id = $1 AND id > $2 AND ($3::timestamptz IS NULL OR updated_at >= $3)
             ORDER BY id"
        }
        ExportEntity::Events => {
            "SELECT id, contact_id, name, kind, properties::text, description, timestamp, received_at, message_id
             FROM events WHERE workspace_id = $1 AND id > $2 AND ($3::timestamptz IS NULL OR received_at >= $3)
             ORDER BY id"
        }
        ExportEntity::Conversations => {
            "SELECT id, contact_id, status, assignee_id, channel, subject, to_json(labels)::text, messages_count,
                    created_at, updated_at, last_message_at
             FROM conversations WHERE workspace_id = $1 AND seq > $2 AND ($3::timestamptz IS NULL OR updated_at >= $3)
             ORDER BY seq"
        }
        ExportEntity::Messages => {
            "SELECT m.id, c.id, m.type, m.content, m.sender_type, m.sender_id, m.created_at
             FROM messages m JOIN conversations c ON c.workspace_id = m.workspace_id AND c.seq = m.conversation_seq
             WHERE m.workspace_id = $1 AND m.id > $2 AND ($3::timestamptz IS NULL OR m.created_at >= $3)
             ORDER BY m.id"
        }
        ExportEntity::Reps => {
            "SELECT rep_id, name, email, department, active, attributes::text, created_at, updated_at
             FROM reps WHERE workspace_id = $1 AND seq > $2 AND ($3::timestamptz IS NULL OR updated_at >= $3)
             ORDER BY seq"
        }
        ExportEntity::Companies => {
            "SELECT id, external_id, domain, traits::text, created_at, updated_at
             FROM companies WHERE workspace_id = $1 AND id > $2 AND ($3::timestamptz IS NULL OR updated_at >= $3)
             ORDER BY id"
        }
    }
}

/// The sequence number after which rows start.
async fn start_after(pool: &Pool, ws: &str, entity: ExportEntity, cursor: &Option<ExportCursor>) -> Result<i64> {
    let key = match cursor {
        None => return Ok(0),
        Some(ExportCursor::Id(id)) => return Ok(*id),
        Some(ExportCursor::Key(key)) => key,
    };
    let lookup = match entity {
        ExportEntity::Reps => "SELECT seq FROM reps WHERE workspace_id = $1 AND rep_id = $2",
        ExportEntity::Conversations => "SELECT seq FROM conversations WHERE workspace_id = $1 AND id = $2",
        _ => return Err(ExportCursor::unknown(entity)),
    };
    let c = conn(pool).await?;
    let row = query_opt(&c, lookup, &[&ws, key]).await?.ok_or_else(|| ExportCursor::unknown(entity))?;
    row.try_get(0).map_err(db)
}

/// Renders one row into `out`.
fn render_row(row: &Row, columns: &[Column], render: &mut ExportRenderer, out: &mut Vec<u8>) -> Result<()> {
    // Times are formatted as the native API writes them (chrono's RFC 3339).
    let mut times: [Option<String>; MAX_COLUMNS] = Default::default();
    for (i, column) in columns.iter().enumerate() {
        if column.kind == ColumnKind::Time {
            let t: Option<DateTime<Utc>> = row.try_get(i).map_err(db)?;
            times[i] = t.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        }
    }
    let mut cells = [Cell::Null; MAX_COLUMNS];
    for (i, column) in columns.iter().enumerate() {
        cells[i] = match column.kind {
            ColumnKind::Int => row.try_get::<_, Option<i64>>(i).map_err(db)?.map_or(Cell::Null, Cell::Int),
            ColumnKind::Bool => row.try_get::<_, Option<bool>>(i).map_err(db)?.map_or(Cell::Null, Cell::Bool),
            ColumnKind::Text => {
                row.try_get::<_, Option<&str>>(i).map_err(db)?.map_or(Cell::Null, |t| Cell::Text(t.as_bytes()))
            }
            ColumnKind::Json => {
                row.try_get::<_, Option<&str>>(i).map_err(db)?.map_or(Cell::Null, |j| Cell::Json(j.as_bytes()))
            }
            ColumnKind::Time => times[i].as_deref().map_or(Cell::Null, |t| Cell::Time(t.as_bytes())),
        };
    }
    render(&cells[..columns.len()], out);
    Ok(())
}

/// The export as a stream of chunks of about [`RENDER_CHUNK_BYTES`].
pub(crate) fn export_rendered(pool: &Pool, ws: &str, query: ExportQuery, render: ExportRenderer) -> RowStream<Vec<u8>> {
    enum State {
        Start(Pool, String, ExportQuery, ExportRenderer),
        Open(stream::Open, ExportEntity, ExportRenderer),
        Done,
    }
    let start = State::Start(pool.clone(), ws.to_string(), query, render);
    let chunks = futures::stream::unfold(start, move |state| async move {
        let (mut open, entity, mut render) = match state {
            State::Start(pool, ws, query, render) => {
                let after = match start_after(&pool, &ws, query.entity, &query.after).await {
                    Ok(after) => after,
                    Err(e) => return Some((Err(e), State::Done)),
                };
                let params: Vec<Param> = vec![Box::new(ws), Box::new(after), Box::new(query.since)];
                match stream::Open::start(&pool, sql(query.entity), params).await {
                    Ok(open) => (open, query.entity, render),
                    Err(e) => return Some((Err(e), State::Done)),
                }
            }
            State::Open(open, entity, render) => (open, entity, render),
            State::Done => return None,
        };
        let columns = entity.columns();
        let mut buf = Vec::with_capacity(RENDER_CHUNK_BYTES + 4096);
        loop {
            match open.next().await {
                Ok(Some(row)) => {
                    if let Err(e) = render_row(&row, columns, &mut render, &mut buf) {
                        return Some((Err(e), State::Done));
                    }
                    if buf.len() >= RENDER_CHUNK_BYTES {
                        return Some((Ok(buf), State::Open(open, entity, render)));
                    }
                }
                Ok(None) if buf.is_empty() => return None,
                Ok(None) => return Some((Ok(buf), State::Done)),
                Err(e) => return Some((Err(e), State::Done)),
            }
        }
    });
    Box::pin(chunks)
}
