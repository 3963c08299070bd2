//! The PostgreSQL implementation of convene's [`Store`] trait: any number
//! of convene nodes on one database.
//!
//! Reads and native writes go through a connection pool; each native write
//! is one transaction that locks what it changes. The ingest inbox is a
//! table written by group commit (synchronous_commit on); appliers on every
//! node take its lanes with an advisory lock and run several steps of a
//! lane at once, keeping per-contact order (apply.rs). Nothing a
//! node keeps in memory is needed for correctness: a node can be killed at
//! any moment and another finishes its work.
//!
//! [`Store`]: convene_core::Store

mod apply;
mod batch;
mod calls;
mod companies;
mod contacts;
mod conversations;
mod db;
mod erase;
mod error;
mod events;
mod export;
mod inbox;
mod keys;
mod migrate;
mod pending;
mod report;
mod reps;
mod stream;

pub use migrate::MIGRATION_COUNT;
mod rows;
mod sessions;
mod store;
mod workspaces;

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use convene_core::{Error, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

/// Tuning of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most connections this node opens.
    pub max_connections: u32,
    /// Longest a statement may run, in milliseconds (0: no limit).
    pub statement_timeout_ms: u64,
    /// Longest a request waits for a free connection, in milliseconds.
    pub acquire_timeout_ms: u64,
    /// How many times a transaction is run again after a serialization
    /// failure or deadlock.
    pub retries: u32,
    /// Apply steps of one lane (one workspace's queue) this node runs at
    /// once, each in its own transaction and on its own connection; the
    /// applier's batch (`--ingest-apply-batch`) is shared among them.
    pub apply_parallelism: usize,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 16,
            statement_timeout_ms: 30_000,
            acquire_timeout_ms: 5_000,
            retries: 5,
            apply_parallelism: 3,
        }
    }
}

/// convene's data in PostgreSQL.
pub struct PgStore {
    pool: Pool,
    options: PgOptions,
    inbox: inbox::Inbox,
    /// Items queued and not yet applied, across all nodes (refreshed from
    /// the table every 250 ms, adjusted locally in between).
    backlog: Arc<AtomicU64>,
    /// Where this node's next apply step starts looking for a lane.
    next_lane: AtomicI32,
    /// This node's applier (one caller at a time).
    pipeline: tokio::sync::Mutex<apply::Pipeline>,
    _refresher: tokio::task::JoinHandle<()>,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`), applies the embedded migrations
    /// and starts the inbox writers. Must be called inside a Tokio runtime.
    pub async fn connect(url: &str, options: PgOptions) -> Result<Self> {
        let pool = pool(url, &options).await?;
        migrate::apply(&pool).await?;
        let inbox = inbox::Inbox::start(pool.clone());
        let backlog = Arc::new(AtomicU64::new(count_backlog(&pool).await?));
        let refresher = {
            let (pool, backlog) = (pool.clone(), backlog.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tick.tick().await;
                    if let Ok(n) = count_backlog(&pool).await {
                        backlog.store(n, Ordering::SeqCst);
                    }
                }
            })
        };
        let start = (std::process::id() % inbox::LANES) as i32;
        Ok(PgStore {
            pool,
            options,
            inbox,
            backlog,
            next_lane: AtomicI32::new(start),
            pipeline: tokio::sync::Mutex::new(apply::Pipeline::default()),
            _refresher: refresher,
        })
    }

    /// Applies the embedded migrations and returns how many were new.
    pub async fn migrate(url: &str, options: &PgOptions) -> Result<usize> {
        let pool = pool(url, options).await?;
        let ran = migrate::apply(&pool).await;
        pool.close();
        ran
    }

    /// The pool (for tests and tools).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self._refresher.abort();
    }
}

async fn pool(url: &str, options: &PgOptions) -> Result<Pool> {
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e| Error::bad_request(format!("the database URL is not a valid postgres:// URL: {e}")))?;
    config.application_name("convene");
    config.options(format!("-c statement_timeout={} -c synchronous_commit=on", options.statement_timeout_ms));
    config.connect_timeout(Duration::from_millis(options.acquire_timeout_ms));
    let manager =
        Manager::from_config(config, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let wait = Some(Duration::from_millis(options.acquire_timeout_ms));
    let pool = Pool::builder(manager)
        .max_size(options.max_connections.max(2) as usize)
        .runtime(Runtime::Tokio1)
        .wait_timeout(wait)
        .create_timeout(wait)
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the connection pool: {e}")))?;
    // Fail at start, with the reason, when the database cannot be reached.
    let probe = pool.get().await.map_err(|e| Error::Unavailable {
        message: format!("cannot connect to PostgreSQL: {e}"),
        retry_after_secs: 5,
    })?;
    drop(probe);
    Ok(pool)
}

async fn count_backlog(pool: &Pool) -> Result<u64> {
    let c = db::conn(pool).await?;
    let row = db::query_one(&c, "SELECT COALESCE(SUM(item_count), 0)::bigint AS n FROM ingest_inbox", &[]).await?;
    let n: i64 = rows::get(&row, "n")?;
    Ok(n.max(0) as u64)
}

/// Scratch databases for test suites and benchmarks.
pub mod scratch {
    use convene_core::{Error, Result};

    /// The environment variable naming a PostgreSQL server that tests may
    /// create databases on (an admin URL, e.g. from `scripts/test-postgres`).
    pub const TEST_URL_VAR: &str = "CONVENE_TEST_POSTGRES_URL";

    /// The admin URL of the test server; panics with instructions when unset
    /// (a PostgreSQL test must fail, not skip, without its server).
    pub fn test_admin_url() -> String {
        std::env::var(TEST_URL_VAR).unwrap_or_else(|_| {
            panic!(
                "{TEST_URL_VAR} is not set: this test needs a PostgreSQL server. Start one with \
                 `scripts/test-postgres start /tmp/convene-pg` and export the URL it prints (.ci/run does this)"
            )
        })
    }

    /// Creates an empty database with a unique name on the server of
    /// `admin_url`; returns its URL.
    pub async fn fresh_database(admin_url: &str) -> Result<String> {
        let name = convene_core::ids::new_id("convene_test");
        let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await.map_err(|e| {
            Error::Unavailable { message: format!("cannot reach {admin_url}: {e}"), retry_after_secs: 1 }
        })?;
        let driver = tokio::spawn(connection);
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.map_err(crate::error::db)?;
        drop(client);
        let _ = driver.await;
        Ok(with_database(admin_url, &name))
    }

    /// `url` with its database name replaced.
    pub fn with_database(url: &str, name: &str) -> String {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (url, String::new()),
        };
        let authority_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        let base = match base[authority_end..].find('/') {
            Some(slash) => &base[..authority_end + slash],
            None => base,
        };
        format!("{base}/{name}{query}")
    }
}
