//! The durable inbox on PostgreSQL. Appends are group-committed: requests
//! arriving together are written by one multi-row INSERT in one transaction
//! (synchronous_commit on), and each is answered once that commit returns.

use std::sync::Arc;

use convene_core::ingest::QueuedJob;
use convene_core::{Error, Result};
use deadpool_postgres::Pool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::db::{conn, execute};

/// Lanes of the inbox (rows of `ingest_lanes`).
pub(crate) const LANES: u32 = 64;
/// Most appends written by one commit.
const MAX_GROUP: usize = 512;
/// Group-commit workers (commits in flight at once).
const WORKERS: usize = 2;

/// The lane of a workspace: FNV-1a of its id, so every node agrees.
pub(crate) fn lane_of(workspace_id: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in workspace_id.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % LANES) as i32
}

struct Append {
    workspace_id: String,
    job_id: String,
    items: i32,
    body: Vec<u8>,
    received_at: chrono::DateTime<chrono::Utc>,
    done: oneshot::Sender<Result<()>>,
}

/// The appending side of the inbox.
pub(crate) struct Inbox {
    tx: mpsc::Sender<Append>,
}

impl Inbox {
    /// Starts the group-commit workers on `pool`.
    pub fn start(pool: Pool) -> Inbox {
        let (tx, rx) = mpsc::channel::<Append>(8192);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WORKERS {
            let (pool, rx) = (pool.clone(), rx.clone());
            tokio::spawn(async move {
                loop {
                    let mut group = Vec::new();
                    {
                        let mut rx = rx.lock().await;
                        match rx.recv().await {
                            Some(first) => group.push(first),
                            None => return,
                        }
                        while group.len() < MAX_GROUP {
                            match rx.try_recv() {
                                Ok(next) => group.push(next),
                                Err(_) => break,
                            }
                        }
                    }
                    let result = write_group(&pool, &group).await;
                    for append in group {
                        let _ = append.done.send(result.as_ref().map(|_| ()).map_err(replicate));
                    }
                }
            });
        }
        Inbox { tx }
    }

    /// Appends a job; answers once it is committed.
    pub async fn append(&self, job: &QueuedJob) -> Result<()> {
        let body = serde_json::to_vec(job).map_err(|e| Error::Internal(e.to_string()))?;
        let (done, wait) = oneshot::channel();
        let append = Append {
            workspace_id: job.workspace_id.clone(),
            job_id: job.id.clone(),
            items: job.items.len() as i32,
            body,
            received_at: job.received_at,
            done,
        };
        self.tx.send(append).await.map_err(|_| Error::Internal("the inbox writer stopped".into()))?;
        wait.await.map_err(|_| Error::Internal("the inbox writer stopped".into()))?
    }
}

async fn write_group(pool: &Pool, group: &[Append]) -> Result<()> {
    let ws: Vec<&str> = group.iter().map(|a| a.workspace_id.as_str()).collect();
    let lanes: Vec<i32> = group.iter().map(|a| lane_of(&a.workspace_id)).collect();
    let jobs: Vec<&str> = group.iter().map(|a| a.job_id.as_str()).collect();
    let counts: Vec<i32> = group.iter().map(|a| a.items).collect();
    let bodies: Vec<&[u8]> = group.iter().map(|a| a.body.as_slice()).collect();
    let times: Vec<chrono::DateTime<chrono::Utc>> = group.iter().map(|a| a.received_at).collect();
    let c = conn(pool).await?;
    execute(
        &c,
        "INSERT INTO ingest_inbox (workspace_id, lane, job_id, item_count, body, received_at)
         SELECT w, l, j, c, b, t FROM unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::bytea[], $6::timestamptz[])
              WITH ORDINALITY AS v(w, l, j, c, b, t, o)
         ORDER BY o",
        &[&ws, &lanes, &jobs, &counts, &bodies, &times],
    )
    .await?;
    Ok(())
}

/// The same error for every waiter of a failed group.
fn replicate(e: &Error) -> Error {
    match e {
        Error::Unavailable { message, retry_after_secs } => {
            Error::Unavailable { message: message.clone(), retry_after_secs: *retry_after_secs }
        }
        other => Error::Storage(other.to_string()),
    }
}
