//! The durable inbox: a second SQLite file (`inbox.db`) with its own writer
//! thread, so acknowledging an ingest request (one small append, group
//! committed with its neighbours) never waits behind a large apply
//! transaction on the main database.

use std::path::Path;

use convene_core::ingest::QueuedJob;
use convene_core::{Error, Result};
use parking_lot::Mutex;
use rusqlite::{Connection, params};

use crate::SqliteOptions;
use crate::conn::{Writer, open, storage};
use crate::rows::t;

/// One inbox row as read by the applier.
pub(crate) struct InboxEntry {
    pub seq: i64,
    pub job: QueuedJob,
}

pub(crate) struct Inbox {
    writer: Writer,
    reader: Mutex<Connection>,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS inbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: the cursor relies on it
    workspace_id TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    item_count   INTEGER NOT NULL,
    body         TEXT NOT NULL,
    received_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_by_job ON inbox (job_id);";

impl Inbox {
    pub fn open(path: &Path, options: &SqliteOptions) -> Result<Inbox> {
        let conn = open(path, options, false)?;
        conn.execute_batch(SCHEMA).map_err(storage)?;
        let reader = open(path, options, true)?;
        Ok(Inbox { writer: Writer::start(conn), reader: Mutex::new(reader) })
    }

    /// Appends a job; answers once it is committed (durable).
    pub async fn append(&self, job: &QueuedJob) -> Result<()> {
        let body = serde_json::to_string(job).map_err(|e| Error::Internal(e.to_string()))?;
        let (ws, id, count, at) =
            (job.workspace_id.clone(), job.id.clone(), job.items.len() as i64, t(&job.received_at));
        self.writer
            .run_one_statement(move |ctx| {
                let mut stmt = ctx
                    .conn
                    .prepare_cached(
                        "INSERT INTO inbox (workspace_id, job_id, item_count, body, received_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(storage)?;
                stmt.execute(params![ws, id, count, body, at]).map_err(storage)?;
                Ok(())
            })
            .await
    }

    /// Entries after `after`, in order, until about `max_items` items (each
    /// entry holds at least one, so at most `max_items` entries: single-event
    /// jobs are applied as many per transaction as batches are).
    pub fn read_after(&self, after: i64, max_items: usize) -> Result<Vec<InboxEntry>> {
        let conn = self.reader.lock();
        let mut stmt = conn
            .prepare_cached("SELECT seq, body, item_count FROM inbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(storage)?;
        let mut rows = stmt.query(params![after, max_items as i64]).map_err(storage)?;
        let mut out = Vec::new();
        let mut items = 0usize;
        while let Some(row) = rows.next().map_err(storage)? {
            let seq: i64 = row.get(0).map_err(storage)?;
            let body: String = row.get(1).map_err(storage)?;
            let count: i64 = row.get(2).map_err(storage)?;
            let job: QueuedJob = serde_json::from_str(&body)
                .map_err(|e| Error::Internal(format!("inbox entry {seq} is unreadable: {e}")))?;
            out.push(InboxEntry { seq, job });
            items += count as usize;
            if items >= max_items {
                break;
            }
        }
        Ok(out)
    }

    /// Forgets entries up to `seq` (they are applied).
    pub async fn delete_through(&self, seq: i64) -> Result<()> {
        self.writer
            .run_one_statement(move |ctx| {
                let mut stmt = ctx.conn.prepare_cached("DELETE FROM inbox WHERE seq <= ?1").map_err(storage)?;
                stmt.execute([seq]).map_err(storage)?;
                Ok(())
            })
            .await
    }

    /// Items not yet applied, counted at start.
    pub fn pending_items(&self, after: i64) -> Result<u64> {
        let conn = self.reader.lock();
        conn.query_row("SELECT COALESCE(SUM(item_count), 0) FROM inbox WHERE seq > ?1", [after], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(storage)
    }

    /// The queued job with this id, if still in the inbox after `after`.
    pub fn find_queued(&self, ws: &str, id: &str, after: i64) -> Result<Option<(usize, String)>> {
        let conn = self.reader.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT item_count, received_at FROM inbox WHERE job_id = ?1 AND workspace_id = ?2 AND seq > ?3",
            )
            .map_err(storage)?;
        crate::rows::one(
            stmt.query_row(params![id, ws, after], |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, String>(1)?))),
        )
    }
}
