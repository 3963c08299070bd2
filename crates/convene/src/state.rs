//! The state every handler shares.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use convene_core::Store;
use convene_core::token::TokenHash;
use convene_core::workspace::ApiKey;
use parking_lot::Mutex;

use crate::config::Secret;
use crate::http::metrics::Metrics;

/// Shared by every request: the store, the master key, metrics. One `Arc`:
/// axum clones the state for every extractor and layer of every request,
/// and one reference count is cheaper to bump than seven.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// The state over its parts.
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    /// The only door to storage.
    pub store: Arc<dyn Store>,
    /// The operator credential.
    pub master_key: Arc<Secret>,
    /// When keys were last used, flushed to the store in the background.
    pub key_usage: Arc<KeyUsage>,
    /// HTTP metrics.
    pub metrics: Arc<Metrics>,
    /// The ingest pipeline's front door.
    pub ingest: Arc<crate::ingest::Ingest>,
    /// Keys recently authenticated, by token hash.
    pub key_cache: Arc<KeyCache>,
    /// Rate-limit buckets (per key, per client address).
    pub limits: Arc<crate::http::ratelimit::RateLimits>,
}

/// Keys found by token hash in the last few seconds, so that a busy
/// integration does not cost a database read per request. Only keys that
/// exist are kept (a flood of made-up tokens cannot fill it). Revoking a key
/// or changing a service account clears it on this node at once; other nodes
/// (PostgreSQL deployments) see the change within the TTL.
pub struct KeyCache {
    /// The epoch (bumped by every clear) and the entries.
    entries: Mutex<(u64, CachedKeys)>,
    ttl: Duration,
}

/// Keys by token hash, with the time they were read.
type CachedKeys = HashMap<[u8; 32], (ApiKey, Instant)>;

/// Most keys the cache holds before it starts over.
const KEY_CACHE_CAPACITY: usize = 10_000;

impl KeyCache {
    /// A cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        KeyCache { entries: Mutex::new((0, HashMap::new())), ttl }
    }

    /// The key with this token hash, if seen within the TTL; else the
    /// cache's epoch, to pass to [`KeyCache::insert`] after the lookup.
    pub fn get(&self, hash: &TokenHash) -> Result<ApiKey, u64> {
        let guard = self.entries.lock();
        match guard.1.get(&hash.0).filter(|(_, at)| at.elapsed() < self.ttl) {
            Some((key, _)) => Ok(key.clone()),
            None => Err(guard.0),
        }
    }

    /// Remembers a key read from the store, unless the cache was cleared
    /// since `epoch` (the key read may predate a revocation).
    pub fn insert(&self, hash: TokenHash, key: ApiKey, epoch: u64) {
        let mut guard = self.entries.lock();
        if guard.0 != epoch {
            return;
        }
        if guard.1.len() >= KEY_CACHE_CAPACITY {
            guard.1.clear();
        }
        guard.1.insert(hash.0, (key, Instant::now()));
    }

    /// Forgets everything (after a revocation or a permission change).
    pub fn clear(&self) {
        let mut guard = self.entries.lock();
        guard.0 += 1;
        guard.1.clear();
    }
}

/// Last-use times of keys, kept in memory and written every few seconds,
/// so that authenticating a request never writes to the database.
#[derive(Default)]
pub struct KeyUsage {
    pending: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl KeyUsage {
    /// Notes that `key_id` was used at `at`.
    pub fn record(&self, key_id: &str, at: DateTime<Utc>) {
        let mut pending = self.pending.lock();
        match pending.get_mut(key_id) {
            Some(t) => *t = at,
            None => {
                pending.insert(key_id.to_string(), at);
            }
        }
    }

    /// Takes what was recorded since the last call.
    pub fn drain(&self) -> Vec<(String, DateTime<Utc>)> {
        self.pending.lock().drain().collect()
    }

    /// Writes recorded uses to the store every `every`, until the store is gone.
    pub fn spawn_flusher(self: Arc<Self>, store: Arc<dyn Store>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                self.flush(&*store).await;
            }
        })
    }

    /// Writes what was recorded now.
    pub async fn flush(&self, store: &dyn Store) {
        let used = self.drain();
        if !used.is_empty()
            && let Err(e) = store.touch_keys(used).await
        {
            tracing::warn!(error = %e, "could not record key use");
        }
    }
}
