//! Building and running the server: `Application::build` opens the store and
//! binds the listener (port 0 in tests), `run_until` serves until shutdown
//! and drains in-flight requests.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use convene_core::{Error, Store};
use convene_store_postgres::PgStore;
use convene_store_sqlite::SqliteStore;
use tokio::net::TcpListener;

use crate::config::{Database, MIN_MASTER_KEY_BYTES, Secret, ServeConfig};
use crate::http::metrics::Metrics;
use crate::ingest::Ingest;
use crate::state::{AppState, KeyCache, KeyUsage};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration refused.
    #[error("{0}")]
    Config(String),
    /// The data directory or listener failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The store failed to open.
    #[error("cannot open the database: {0}")]
    Store(#[from] Error),
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    grace: Duration,
    /// Set when this start generated the master key (printed once by `main`).
    pub generated_master_key: Option<String>,
    /// The data directory's lock (SQLite): one server per directory, and
    /// no restore under a running server.
    _data_lock: Option<std::fs::File>,
}

impl Application {
    /// Creates the data directory, settles the master key, opens and
    /// migrates the store, and binds the listener.
    pub async fn build(config: ServeConfig) -> Result<Self, StartError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let data_lock = match &config.database {
            Database::Sqlite(_) => Some(lock_data_dir(&config.data_dir)?.ok_or_else(|| {
                StartError::Config(format!(
                    "another convene server is using the data directory {}",
                    config.data_dir.display()
                ))
            })?),
            Database::Postgres(_) => None,
        };
        let (master_key, generated_master_key) = settle_master_key(&config)?;
        let store: Arc<dyn Store> = match &config.database {
            Database::Sqlite(path) => {
                let path = path.clone();
                let options = config.sqlite.clone();
                Arc::new(
                    tokio::task::spawn_blocking(move || SqliteStore::open(&path, options))
                        .await
                        .map_err(|e| StartError::Config(e.to_string()))??,
                )
            }
            Database::Postgres(url) => Arc::new(PgStore::connect(url.expose(), config.postgres.clone()).await?),
        };
        let metrics = Arc::new(Metrics::default());
        let state = AppState::new(crate::state::Shared {
            store: store.clone(),
            master_key: Arc::new(master_key),
            key_usage: Arc::new(KeyUsage::default()),
            metrics: metrics.clone(),
            ingest: Arc::new(Ingest::new(store.clone(), config.ingest.clone(), metrics)),
            key_cache: Arc::new(KeyCache::new(Duration::from_secs(2))),
            limits: Arc::new(crate::http::ratelimit::RateLimits::new(config.rate_limits)),
        });
        let router = with_layers(crate::api::router(), state.clone(), Duration::from_secs(config.request_timeout_secs));
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Application {
            listener,
            router,
            state,
            grace: Duration::from_secs(config.shutdown_grace_secs),
            generated_master_key,
            _data_lock: data_lock,
        })
    }

    /// The whole router with its layers, for serving requests in-process
    /// without the listener (the fuzz targets under `fuzz/` do).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The bound address (the real port when built with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish
    /// (up to the grace period) and records key usage.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let flusher = self.state.key_usage.clone().spawn_flusher(self.state.store.clone(), Duration::from_secs(5));
        let applier = self.state.ingest.clone().spawn_applier();
        let purger = self.state.ingest.clone().spawn_purger();
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let grace = self.grace;
        let service = self.router.into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(self.listener, service).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopped_tx.send(());
        });
        let served = tokio::spawn(async move { serve.await });
        let result = tokio::select! {
            r = served => r.map_err(std::io::Error::other)?,
            _ = async {
                let _ = stopped_rx.await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!("shutdown grace period over; closing remaining connections");
                Ok(())
            }
        };
        flusher.abort();
        applier.abort();
        purger.abort();
        self.state.key_usage.flush(&*self.state.store).await;
        result
    }
}

/// Uses the configured master key, or on loopback reads or generates one in
/// the data directory; refuses a non-loopback listener without one.
fn settle_master_key(config: &ServeConfig) -> Result<(Secret, Option<String>), StartError> {
    if let Some(key) = &config.master_key {
        if key.expose().len() < MIN_MASTER_KEY_BYTES {
            return Err(StartError::Config(format!("the master key must be at least {MIN_MASTER_KEY_BYTES} bytes")));
        }
        return Ok((key.clone(), None));
    }
    if !config.listen.ip().is_loopback() {
        return Err(StartError::Config(format!(
            "refusing to listen on {} without a master key: set --master-key or CONVENE_MASTER_KEY (at least {MIN_MASTER_KEY_BYTES} bytes)",
            config.listen
        )));
    }
    let path = config.data_dir.join("master.key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_string();
        if existing.len() >= MIN_MASTER_KEY_BYTES {
            return Ok((Secret::new(existing), None));
        }
    }
    let generated = format!("cvn_master_{}", convene_core::token::mint().token.trim_start_matches("cvn_"));
    write_private(&path, &generated)?;
    Ok((Secret::new(generated.clone()), Some(generated)))
}

/// The lock a serving process holds on its data directory.
pub const LOCK_FILE: &str = "convene.lock";

/// Takes the data directory's lock (held while the file stays open), so
/// that a restore, or a second server, cannot use a directory in use.
pub fn lock_data_dir(dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Adds the cross-cutting middleware (request ids, tracing, metrics,
/// timeout, panic catching, rate-limit headers: `http::stack`).
pub fn with_layers(router: Router<AppState>, state: AppState, timeout: Duration) -> Router {
    let stack = crate::http::stack::Stack { metrics: state.metrics.clone(), timeout };
    router.layer(middleware::from_fn_with_state(stack, crate::http::stack::around)).with_state(state)
}
