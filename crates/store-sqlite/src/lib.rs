//! The embedded SQLite implementation of convene's [`Store`] trait.
//!
//! One database file in WAL mode. A single writer thread owns the write
//! connection and applies every write request inside one transaction per
//! batch (group commit: concurrent requests share one fsync; each request
//! runs in its own savepoint, so one failing request rolls back alone).
//! Readers use a small pool of read-only connections on blocking threads.
//!
//! Durability: `synchronous=FULL` by default, so a write acknowledged to a
//! client survives power loss; `NORMAL` survives a process crash but may lose
//! the last transactions on power loss (docs/operations.md).
//!
//! [`Store`]: convene_core::Store

mod apply;
pub mod backup;
mod batch;
mod calls;
mod checkpoint;
mod companies;
mod conn;
mod contacts;
mod conversations;
mod erase;
mod events;
mod export;
mod inbox;
mod keys;
mod migrate;
mod reports;
mod reps;

pub use migrate::MIGRATION_COUNT;
mod rows;
mod sessions;
mod store;
mod workspaces;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64};

use convene_core::Result;

pub use conn::{ConnectionSettings, Synchronous};
use conn::{Readers, Writer};

/// Tuning of the SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// FULL (default) or NORMAL.
    pub synchronous: Synchronous,
    /// Read connections in the pool.
    pub readers: usize,
    /// Page cache of the write connection, in MiB.
    pub writer_cache_mib: u32,
    /// Page cache of each read connection, in MiB.
    pub reader_cache_mib: u32,
    /// How long a connection waits for a lock, in milliseconds.
    pub busy_timeout_ms: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            readers: 4,
            writer_cache_mib: 32,
            reader_cache_mib: 8,
            busy_timeout_ms: 5000,
        }
    }
}

/// convene's data in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    readers: Readers,
    inbox: std::sync::Arc<inbox::Inbox>,
    /// Last inbox sequence applied (mirrors `ingest_cursor`).
    applied_seq: AtomicI64,
    /// Items in the inbox not yet applied.
    backlog: AtomicU64,
    /// One applier at a time.
    applying: tokio::sync::Mutex<()>,
    /// Background WAL checkpoints of both files.
    _checkpointer: checkpoint::Checkpointer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and its inbox
    /// beside it (`inbox.db`), and applies the embedded migrations.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Self> {
        let mut write_conn = conn::open(path, &options, false)?;
        migrate::apply(&mut write_conn)?;
        let applied: i64 = write_conn
            .query_row("SELECT applied_seq FROM ingest_cursor WHERE id = 1", [], |r| r.get(0))
            .map_err(conn::storage)?;
        let readers = Readers::open(path, &options)?;
        let writer = Writer::start(write_conn);
        let inbox_path = backup::inbox_path(path);
        // The inbox stays small (applied entries are deleted): small caches.
        let inbox_options = SqliteOptions { writer_cache_mib: 8, reader_cache_mib: 4, ..options.clone() };
        let inbox = inbox::Inbox::open(&inbox_path, &inbox_options)?;
        let backlog = inbox.pending_items(applied)?;
        let checkpointer = checkpoint::Checkpointer::start(&[path.to_path_buf(), inbox_path], &options)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer,
            readers,
            inbox: std::sync::Arc::new(inbox),
            applied_seq: AtomicI64::new(applied),
            backlog: AtomicU64::new(backlog),
            applying: tokio::sync::Mutex::new(()),
            _checkpointer: checkpointer,
        })
    }

    /// Applies the embedded migrations and returns how many were new.
    pub fn migrate(path: &Path, options: &SqliteOptions) -> Result<usize> {
        let mut c = conn::open(path, options, false)?;
        migrate::apply(&mut c)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The settings read back from the write connection and every pooled
    /// read connection (journal mode, synchronous, busy timeout, …).
    pub async fn connection_settings(&self) -> Result<Vec<ConnectionSettings>> {
        let mut all = vec![self.writer.run(|ctx| conn::read_settings(&ctx.conn)).await?];
        all.extend(self.readers.settings_of_each().await?);
        Ok(all)
    }
}
