//! The state every handler shares.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use convene_core::Store;
use parking_lot::Mutex;

use crate::config::Secret;
use crate::http::metrics::Metrics;

/// Shared by every request: the store, the master key, metrics.
#[derive(Clone)]
pub struct AppState {
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
        if !used.is_empty() {
            if let Err(e) = store.touch_keys(used).await {
                tracing::warn!(error = %e, "could not record key use");
            }
        }
    }
}
