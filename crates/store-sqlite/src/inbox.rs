//! The durable inbox: a second SQLite file (`inbox.db`) with its own writer
//! thread, so acknowledging an ingest request (one small append, group
//! committed with its neighbours) never waits behind a large apply
//! transaction on the main database.

use std::collections::BTreeMap;
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
    /// Jobs this process appended, by seq, until the applier takes them: it
    /// then reads only their seqs from disk instead of reading and parsing
    /// their bodies. Only an optimisation: an entry missing here (evicted by
    /// the bound, appended before a restart, not yet noted) is read from disk.
    recent: Mutex<Recent>,
}

/// The appended jobs kept in memory, and how many items they hold.
#[derive(Default)]
struct Recent {
    jobs: BTreeMap<i64, QueuedJob>,
    items: usize,
}

impl Recent {
    /// Keeps the job appended at `seq`, unless that would pass the bound.
    fn keep(&mut self, seq: i64, job: QueuedJob) {
        if self.items + job.items.len() <= RECENT_MAX_ITEMS {
            self.items += job.items.len();
            self.jobs.insert(seq, job);
        }
    }

    /// Forgets the jobs at or before `seq` (applied: noted after the
    /// applier had read them from disk).
    fn forget_through(&mut self, seq: i64) {
        let newer = self.jobs.split_off(&(seq + 1));
        for job in std::mem::replace(&mut self.jobs, newer).into_values() {
            self.items = self.items.saturating_sub(job.items.len());
        }
    }

    /// The job at `seq`, if kept.
    fn take(&mut self, seq: i64) -> Option<QueuedJob> {
        let job = self.jobs.remove(&seq)?;
        self.items = self.items.saturating_sub(job.items.len());
        Some(job)
    }
}

/// Most items [`Inbox::recent`] keeps (about 10–20 MB of single identifies);
/// beyond, jobs are only on disk until applied.
const RECENT_MAX_ITEMS: usize = 10_000;

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
        Ok(Inbox { writer: Writer::start(conn), reader: Mutex::new(reader), recent: Mutex::default() })
    }

    /// Appends a job; answers once it is committed (durable).
    pub async fn append(&self, job: QueuedJob) -> Result<()> {
        let body = serde_json::to_string(&job).map_err(|e| Error::Internal(e.to_string()))?;
        let (ws, id, count, at) =
            (job.workspace_id.clone(), job.id.clone(), job.items.len() as i64, t(&job.received_at));
        let seq = self
            .writer
            .run_one_statement(move |ctx| {
                let mut stmt = ctx
                    .conn
                    .prepare_cached(
                        "INSERT INTO inbox (workspace_id, job_id, item_count, body, received_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(storage)?;
                stmt.execute(params![ws, id, count, body, at]).map_err(storage)?;
                Ok(ctx.conn.last_insert_rowid())
            })
            .await?;
        self.recent.lock().keep(seq, job);
        Ok(())
    }

    /// Entries after `after`, in order, until about `max_items` items (each
    /// entry holds at least one, so at most `max_items` entries: single-event
    /// jobs are applied as many per transaction as batches are). The order
    /// and the count come from disk; bodies from memory where kept.
    pub fn read_after(&self, after: i64, max_items: usize) -> Result<Vec<InboxEntry>> {
        let conn = self.reader.lock();
        let mut seqs = Vec::new();
        {
            let mut stmt = conn
                .prepare_cached("SELECT seq, item_count FROM inbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                .map_err(storage)?;
            let mut rows = stmt.query(params![after, max_items as i64]).map_err(storage)?;
            let mut items = 0usize;
            while let Some(row) = rows.next().map_err(storage)? {
                seqs.push(row.get::<_, i64>(0).map_err(storage)?);
                items += row.get::<_, i64>(1).map_err(storage)? as usize;
                if items >= max_items {
                    break;
                }
            }
        }
        let kept: Vec<(i64, Option<QueuedJob>)> = {
            let mut recent = self.recent.lock();
            recent.forget_through(after);
            seqs.into_iter().map(|seq| (seq, recent.take(seq))).collect()
        };
        let mut out = Vec::with_capacity(kept.len());
        for (seq, job) in kept {
            let job = match job {
                Some(job) => job,
                None => {
                    let mut stmt = conn.prepare_cached("SELECT body FROM inbox WHERE seq = ?1").map_err(storage)?;
                    let body: String = stmt.query_row([seq], |r| r.get(0)).map_err(storage)?;
                    serde_json::from_str(&body)
                        .map_err(|e| Error::Internal(format!("inbox entry {seq} is unreadable: {e}")))?
                }
            };
            out.push(InboxEntry { seq, job });
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

#[cfg(test)]
mod tests {
    use super::*;
    use convene_core::identity::IdentityKind;
    use convene_core::ingest::{IngestItem, identify_item};

    fn job(n: usize) -> QueuedJob {
        let items: Vec<IngestItem> = (0..n)
            .map(|i| {
                let traits = serde_json::json!({ "plan": "pro", "n": i }).as_object().cloned().unwrap_or_default();
                identify_item(vec![(IdentityKind::ExternalId, format!("u{i}"))], traits, None).expect("an item")
            })
            .collect();
        QueuedJob::new("ws_1", items)
    }

    fn ids(entries: &[InboxEntry]) -> Vec<(i64, String)> {
        entries.iter().map(|e| (e.seq, e.job.id.clone())).collect()
    }

    /// Bodies come from memory when kept and from disk otherwise, in seq
    /// order either way, and entries the cursor has passed are forgotten.
    #[tokio::test]
    async fn read_after_takes_kept_jobs_from_memory_and_the_rest_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(&dir.path().join("inbox.db"), &SqliteOptions::default()).unwrap();
        let jobs: Vec<QueuedJob> = (1..=4).map(job).collect();
        let expected: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        for j in jobs {
            inbox.append(j).await.unwrap();
        }
        assert_eq!(inbox.recent.lock().jobs.len(), 4);
        assert_eq!(inbox.recent.lock().items, 1 + 2 + 3 + 4);
        // The second job is no longer kept (as if evicted or appended before a restart).
        {
            let mut recent = inbox.recent.lock();
            let seq = *recent.jobs.keys().nth(1).unwrap();
            recent.take(seq).unwrap();
        }
        let first = inbox.read_after(0, 3).unwrap();
        assert_eq!(ids(&first).iter().map(|(_, id)| id.clone()).collect::<Vec<_>>(), expected[..2]);
        assert_eq!(first[1].job.items.len(), 2, "the job read from disk is whole");
        let rest = inbox.read_after(first[1].seq, 100).unwrap();
        assert_eq!(rest.iter().map(|e| e.job.id.clone()).collect::<Vec<_>>(), expected[2..]);
        assert!(inbox.recent.lock().jobs.is_empty());
        assert_eq!(inbox.recent.lock().items, 0);
        // A job noted after the applier passed it is dropped at the next read.
        inbox.recent.lock().keep(1, job(1));
        assert!(inbox.read_after(rest[1].seq, 100).unwrap().is_empty());
        assert_eq!(inbox.recent.lock().items, 0);
    }

    /// Beyond the bound, appended jobs are only on disk, and still read.
    #[tokio::test]
    async fn jobs_beyond_the_memory_bound_are_read_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(&dir.path().join("inbox.db"), &SqliteOptions::default()).unwrap();
        let big = job(RECENT_MAX_ITEMS);
        let big_id = big.id.clone();
        inbox.append(big).await.unwrap();
        let small = job(1);
        let small_id = small.id.clone();
        inbox.append(small).await.unwrap();
        assert_eq!(inbox.recent.lock().jobs.len(), 1, "the second job did not fit");
        let read = inbox.read_after(0, RECENT_MAX_ITEMS + 1).unwrap();
        assert_eq!(read.iter().map(|e| e.job.id.clone()).collect::<Vec<_>>(), vec![big_id, small_id]);
        assert_eq!(read[1].job.items.len(), 1);
    }
}
