//! WAL checkpoints off the write path.
//!
//! SQLite's automatic checkpoint runs inside a writer's COMMIT whenever the
//! WAL passes its threshold, copying pages back and fsyncing the database
//! file while that commit's requests wait. Here a background thread runs a
//! PASSIVE checkpoint (which never blocks writers or readers) every 250 ms on
//! each database file; the writers keep a much higher automatic threshold
//! only as a fallback.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use convene_core::Result;

use crate::SqliteOptions;
use crate::conn::{open, storage};

/// WAL pages after which a writer checkpoints inline anyway (≈ 40 MiB).
pub(crate) const FALLBACK_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// The checkpoint thread; stopped and joined on drop.
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database files at `paths`.
    pub fn start(paths: &[PathBuf], options: &SqliteOptions) -> Result<Checkpointer> {
        let small = SqliteOptions { writer_cache_mib: 1, ..options.clone() };
        let conns = paths.iter().map(|p| open(p, &small, false)).collect::<Result<Vec<_>>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("convene-sqlite-checkpoint".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(Duration::from_millis(250));
                    for conn in &conns {
                        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                            tracing::warn!(error = %e, "WAL checkpoint failed; the writers' fallback threshold still applies");
                        }
                    }
                }
            })
            .map_err(|e| convene_core::Error::Internal(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer { stop, handle: Some(handle) })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

/// Checkpoints the whole WAL of `path` into the database and truncates the
/// WAL file to zero bytes (after an erasure: no earlier page version may
/// survive in it). Readers of older snapshots are waited for (busy
/// timeout); a checkpoint already running on the background thread makes
/// SQLite answer "busy" at once, so this retries for up to 30 s. Returns
/// whether the WAL was truncated.
pub(crate) fn truncate(path: &std::path::Path) -> Result<bool> {
    let conn = rusqlite::Connection::open(path).map_err(storage)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(storage)?;
    let started = std::time::Instant::now();
    loop {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0)).map_err(storage)?;
        if busy == 0 {
            return Ok(true);
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
