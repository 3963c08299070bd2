//! Connections: opening with the right pragmas, the writer thread with group
//! commit, and the pool of readers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use convene_core::field::{Entity, FieldRegistry};
use convene_core::store::RowStream;
use convene_core::{Error, Result};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::SqliteOptions;

/// SQLite's `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync at every commit and WAL checkpoint: survives power loss.
    Full,
    /// fsync at checkpoints only: survives a crash of the process, may lose
    /// the last commits on power loss.
    Normal,
}

/// Settings read back from one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSettings {
    /// `wal` expected.
    pub journal_mode: String,
    /// 2 = FULL, 1 = NORMAL.
    pub synchronous: i64,
    /// Milliseconds.
    pub busy_timeout: i64,
    /// 1 expected.
    pub foreign_keys: i64,
}

pub(crate) fn open(path: &Path, options: &SqliteOptions, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    };
    let conn = Connection::open_with_flags(path, flags).map_err(storage)?;
    let sync = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    let cache_kib = if read_only { options.reader_cache_mib } else { options.writer_cache_mib } as i64 * 1024;
    conn.busy_timeout(std::time::Duration::from_millis(options.busy_timeout_ms as u64)).map_err(storage)?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL").map_err(storage)?;
        // Checkpoints run on a background thread (checkpoint.rs); this is the fallback.
        conn.pragma_update(None, "wal_autocheckpoint", crate::checkpoint::FALLBACK_AUTOCHECKPOINT_PAGES)
            .map_err(storage)?;
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync};
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -{cache_kib};
         PRAGMA temp_store = MEMORY;
         PRAGMA secure_delete = FAST;"
    ))
    .map_err(storage)?;
    // The query planner stability guarantee: a statement keeps one plan
    // whatever its bound values. Without it SQLite marks statements whose
    // plan *could* depend on a bound value (the contact lookups by identity,
    // against the partial unique indexes, and the API-key lookup), and
    // since the statement cache clears the bindings of every statement it
    // hands back, each such statement was re-parsed and re-planned at every
    // use. The plans are the same either way: no query uses LIKE/GLOB and
    // there are no ANALYZE statistics.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(storage)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

pub(crate) fn read_settings(conn: &Connection) -> Result<ConnectionSettings> {
    let q = |p: &str| -> Result<rusqlite::types::Value> {
        conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0)).map_err(storage)
    };
    let int = |v: rusqlite::types::Value| match v {
        rusqlite::types::Value::Integer(i) => i,
        _ => -1,
    };
    Ok(ConnectionSettings {
        journal_mode: match q("journal_mode")? {
            rusqlite::types::Value::Text(t) => t,
            _ => String::new(),
        },
        synchronous: int(q("synchronous")?),
        busy_timeout: int(q("busy_timeout")?),
        foreign_keys: int(q("foreign_keys")?),
    })
}

/// Maps a SQLite error to convene's: a full disk is 503 (retry later),
/// everything else a storage error.
pub(crate) fn storage(e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::DiskFull
    {
        return Error::Unavailable { message: "the database disk is full".into(), retry_after_secs: 30 };
    }
    Error::Storage(e.to_string())
}

/// What a write closure sees: the write connection, inside a transaction,
/// and the writer's cache of field registries.
pub(crate) struct WriteCtx {
    pub conn: Connection,
    registries: HashMap<(String, Entity), FieldRegistry>,
}

impl WriteCtx {
    /// The field registry of `entity` in `ws`, loaded once and kept.
    pub fn registry(&mut self, ws: &str, entity: Entity) -> Result<&mut FieldRegistry> {
        let key = (ws.to_string(), entity);
        if !self.registries.contains_key(&key) {
            let loaded = crate::rows::load_registry(&self.conn, ws, entity)?;
            self.registries.insert(key.clone(), loaded);
        }
        Ok(self.registries.get_mut(&key).expect("inserted above"))
    }

    /// Forgets cached registries (after a rollback they may hold fields
    /// that were not written).
    pub(crate) fn forget_registries(&mut self) {
        self.registries.clear();
    }
}

type Completion = Box<dyn FnOnce(Result<()>) + Send>;
/// A write request: run with the context, or with `None` when the
/// transaction could not begin (it then only reports the failure).
type Work = Box<dyn FnOnce(Option<&mut WriteCtx>) -> (bool, Completion) + Send>;

/// A write request and whether it runs in its own savepoint.
struct Job {
    work: Work,
    /// False for a closure that runs a single statement: SQLite undoes a
    /// failed statement by itself, so the savepoint's two round trips
    /// through the VM would buy nothing (the inbox append).
    savepoint: bool,
}

/// The writer thread's handle.
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

/// Most requests committed in one transaction.
const MAX_GROUP: usize = 512;

impl Writer {
    pub fn start(conn: Connection) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        std::thread::Builder::new()
            .name("convene-sqlite-writer".into())
            .spawn(move || writer_loop(WriteCtx { conn, registries: HashMap::new() }, rx))
            .expect("spawn the SQLite writer thread");
        Writer { tx }
    }

    /// Runs `f` in the writer's current transaction and answers once that
    /// transaction is committed (durable) or has failed.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteCtx) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.submit(f, true).await
    }

    /// As [`Writer::run`] for a closure that executes exactly one statement
    /// (atomic by itself), so it needs no savepoint of its own.
    pub async fn run_one_statement<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteCtx) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.submit(f, false).await
    }

    async fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteCtx) -> Result<T> + Send + 'static,
        savepoint: bool,
    ) -> Result<T> {
        let (done_tx, done_rx) = oneshot::channel::<Result<T>>();
        let work: Work = Box::new(move |ctx| {
            let outcome = match ctx {
                Some(ctx) => f(ctx),
                None => Err(Error::Unavailable {
                    message: "the database cannot start a write now".into(),
                    retry_after_secs: 1,
                }),
            };
            let ok = outcome.is_ok();
            let completion: Completion = Box::new(move |committed| {
                let _ = done_tx.send(committed.and(outcome));
            });
            (ok, completion)
        });
        self.tx
            .send(Job { work, savepoint })
            .await
            .map_err(|_| Error::Internal("the SQLite writer has stopped".into()))?;
        done_rx.await.map_err(|_| Error::Internal("the SQLite writer dropped a request".into()))?
    }
}

/// Runs one transaction-control statement through the statement cache (they
/// run several times per batch; `execute_batch` would parse them each time).
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn writer_loop(mut ctx: WriteCtx, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_GROUP);
    loop {
        match rx.blocking_recv() {
            Some(job) => batch.push(job),
            None => return,
        }
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut completions = Vec::with_capacity(batch.len());
        let began = control(&ctx.conn, "BEGIN IMMEDIATE").map_err(storage);
        if let Err(e) = began {
            tracing::error!(error = %e, "could not begin a write transaction");
            for job in batch.drain(..) {
                let (_, completion) = (job.work)(None);
                completion(Ok(()));
            }
            continue;
        }
        // Requests that arrive while the batch runs join the same
        // transaction (up to MAX_GROUP), so they share its commit instead of
        // waiting for it and then paying for one more.
        loop {
            for job in batch.drain(..) {
                if !job.savepoint {
                    let (ok, completion) = (job.work)(Some(&mut ctx));
                    if !ok {
                        ctx.forget_registries();
                    }
                    completions.push(completion);
                    continue;
                }
                let savepoint = control(&ctx.conn, "SAVEPOINT request");
                let (ok, completion) = (job.work)(Some(&mut ctx));
                if savepoint.is_ok() {
                    let end = if ok {
                        control(&ctx.conn, "RELEASE request")
                    } else {
                        control(&ctx.conn, "ROLLBACK TO request").and_then(|()| control(&ctx.conn, "RELEASE request"))
                    };
                    if let Err(e) = end {
                        tracing::error!(error = %e, "savepoint end failed");
                    }
                }
                if !ok {
                    ctx.forget_registries();
                }
                completions.push(completion);
            }
            while completions.len() + batch.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
        }
        let committed = control(&ctx.conn, "COMMIT").map_err(storage);
        if committed.is_err() {
            let _ = ctx.conn.execute_batch("ROLLBACK");
            ctx.forget_registries();
        }
        for completion in completions {
            let result = match &committed {
                Ok(()) => Ok(()),
                Err(Error::Unavailable { message, retry_after_secs }) => {
                    Err(Error::Unavailable { message: message.clone(), retry_after_secs: *retry_after_secs })
                }
                Err(e) => Err(Error::Storage(e.to_string())),
            };
            completion(result);
        }
    }
}

/// A pool of read-only connections used on blocking threads.
pub(crate) struct Readers {
    slots: Arc<Vec<Mutex<Connection>>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    pub fn open(path: &Path, options: &SqliteOptions) -> Result<Readers> {
        let n = options.readers.max(1);
        let slots = (0..n).map(|_| open(path, options, true).map(Mutex::new)).collect::<Result<Vec<_>>>()?;
        Ok(Readers { slots: Arc::new(slots), permits: Arc::new(Semaphore::new(n)) })
    }

    /// Runs `f` on a free read connection.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let permit =
            self.permits.clone().acquire_owned().await.map_err(|_| Error::Internal("reader pool closed".into()))?;
        let slots = self.slots.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let guard = slots
                .iter()
                .find_map(|slot| slot.try_lock())
                .ok_or_else(|| Error::Internal("no free read connection".into()))?;
            f(&guard)
        })
        .await
        .map_err(|e| Error::Internal(format!("read task failed: {e}")))?
    }

    /// Streams what `f` sends from a free read connection: rows go through a
    /// bounded channel in chunks, so a slow consumer holds the reader (and
    /// memory stays flat) instead of rows piling up; a consumer that goes
    /// away stops the query at its next row.
    pub fn stream<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &mut dyn FnMut(T) -> bool) -> Result<()> + Send + 'static,
    ) -> RowStream<T> {
        self.stream_chunked(256, f)
    }

    /// As [`Readers::stream`], with `chunk_items` items per send (1 for items
    /// that are already large chunks).
    pub fn stream_chunked<T: Send + 'static>(
        &self,
        chunk_items: usize,
        f: impl FnOnce(&Connection, &mut dyn FnMut(T) -> bool) -> Result<()> + Send + 'static,
    ) -> RowStream<T> {
        let chunk_size = chunk_items.max(1);
        let (tx, rx) = mpsc::channel::<Result<Vec<T>>>(8);
        let (permits, slots) = (self.permits.clone(), self.slots.clone());
        tokio::spawn(async move {
            let permit = match permits.acquire_owned().await {
                Ok(p) => p,
                Err(_) => {
                    let _ = tx.send(Err(Error::Internal("reader pool closed".into()))).await;
                    return;
                }
            };
            let task = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let Some(guard) = slots.iter().find_map(|slot| slot.try_lock()) else {
                    let _ = tx.blocking_send(Err(Error::Internal("no free read connection".into())));
                    return;
                };
                let mut chunk = Vec::with_capacity(chunk_size);
                let mut open = true;
                let mut send = |item: T| {
                    chunk.push(item);
                    if chunk.len() == chunk_size {
                        open =
                            tx.blocking_send(Ok(std::mem::replace(&mut chunk, Vec::with_capacity(chunk_size)))).is_ok();
                    }
                    open
                };
                let outcome = f(&guard, &mut send);
                let rest = match outcome {
                    Ok(()) if !chunk.is_empty() => Ok(chunk),
                    Ok(()) => return,
                    Err(e) => Err(e),
                };
                let _ = tx.blocking_send(rest);
            });
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a streaming read failed");
            }
        });
        let chunks = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        Box::pin(futures::StreamExt::flat_map(chunks, |chunk| {
            let (items, error) = match chunk {
                Ok(items) => (items, None),
                Err(e) => (Vec::new(), Some(Err(e))),
            };
            futures::stream::iter(items.into_iter().map(Ok).chain(error))
        }))
    }

    /// Reads the settings of every pooled connection.
    pub async fn settings_of_each(&self) -> Result<Vec<ConnectionSettings>> {
        let slots = self.slots.clone();
        tokio::task::spawn_blocking(move || slots.iter().map(|slot| read_settings(&slot.lock())).collect())
            .await
            .map_err(|e| Error::Internal(format!("read task failed: {e}")))?
    }
}
