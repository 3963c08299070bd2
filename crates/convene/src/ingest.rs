//! The ingest service every API that queues writes goes through (native
//! identify/track/batch and, later, the dialects): back-pressure, message
//! ids from `Idempotency-Key`, the durable append, waking the applier; and
//! the background appliers and purge task.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use convene_core::ingest::{IngestItem, MAX_ITEMS_PER_REQUEST, QueuedJob, validate_message_id};
use convene_core::{Error, Result, Store, ids};
use tokio::sync::Notify;

use crate::http::metrics::Metrics;

/// Tuning of the ingest pipeline.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Unapplied items beyond which ingest answers 503.
    pub max_backlog: u64,
    /// Items an applier takes per transaction.
    pub apply_batch: usize,
    /// How long job results are kept.
    pub job_retention: Duration,
    /// How long message ids are remembered for deduplication.
    pub dedupe_window: Duration,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            max_backlog: 1_000_000,
            apply_batch: 5_000,
            job_retention: Duration::from_secs(7 * 24 * 3600),
            dedupe_window: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// How long the applier waits after a small step for more items to gather.
const GATHER: Duration = Duration::from_millis(10);
/// A step of fewer than `apply_batch / SMALL_STEP_DIVISOR` items is small.
const SMALL_STEP_DIVISOR: usize = 8;

/// How long the applier waits after a step of `items` (more than none):
/// after a small step the inbox was drained, so it lets items gather and
/// single-event requests are applied many per transaction instead of a few
/// (each step costs its reads, commit and fsync); after a large one, none.
fn pause_after_step(items: usize, apply_batch: usize) -> Option<Duration> {
    (items < apply_batch / SMALL_STEP_DIVISOR).then_some(GATHER)
}

/// Accepts validated items into the durable inbox.
pub struct Ingest {
    store: Arc<dyn Store>,
    settings: IngestSettings,
    wake: Notify,
    metrics: Arc<Metrics>,
}

impl Ingest {
    /// The service over a store.
    pub fn new(store: Arc<dyn Store>, settings: IngestSettings, metrics: Arc<Metrics>) -> Self {
        Ingest { store, settings, wake: Notify::new(), metrics }
    }

    /// Queues `items` as one job of workspace `ws`; returns the job id once
    /// the job is on disk. With an `Idempotency-Key`, item `i` without its
    /// own message id gets `key#i`, so a retried request applies once.
    pub async fn accept(&self, ws: &str, items: Vec<IngestItem>, idempotency_key: Option<&str>) -> Result<String> {
        self.accept_up_to(ws, items, idempotency_key, MAX_ITEMS_PER_REQUEST).await
    }

    /// As [`Ingest::accept`], with at most `max_items` items (an import
    /// takes more than an ingest request).
    pub async fn accept_up_to(
        &self,
        ws: &str,
        mut items: Vec<IngestItem>,
        idempotency_key: Option<&str>,
        max_items: usize,
    ) -> Result<String> {
        if items.is_empty() {
            return Err(Error::bad_request("nothing to ingest: the request has no items"));
        }
        if items.len() > max_items {
            return Err(Error::bad_request(format!("at most {max_items} items per request")));
        }
        let backlog = self.store.backlog();
        if backlog + items.len() as u64 > self.settings.max_backlog {
            return Err(Error::Unavailable {
                message: format!("ingest backlog is full ({backlog} items waiting); retry shortly"),
                retry_after_secs: 2,
            });
        }
        if let Some(key) = idempotency_key {
            for (i, item) in items.iter_mut().enumerate() {
                item.default_message_id(format!("{key}#{i}"));
            }
        }
        let job = QueuedJob::new(ws, items);
        let id = job.id.clone();
        let items = job.items.len();
        self.store.enqueue(job).await?;
        self.metrics.observe_accepted(items);
        self.wake.notify_one();
        Ok(id)
    }

    /// Runs the applier until the task is dropped: applies whenever woken,
    /// and at least every 100 ms (other nodes may have queued work).
    pub fn spawn_applier(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.store.apply_pending(self.settings.apply_batch).await {
                    Ok(report) if report.items == 0 => {
                        let _ = tokio::time::timeout(Duration::from_millis(100), self.wake.notified()).await;
                    }
                    Ok(report) => {
                        let now = ids::now();
                        let lags = report
                            .received_at
                            .iter()
                            .map(|at| (now - *at).num_microseconds().unwrap_or(0) as f64 / 1e6);
                        self.metrics.observe_applied(report.items, lags);
                        match pause_after_step(report.items, self.settings.apply_batch) {
                            Some(pause) => tokio::time::sleep(pause).await,
                            None => tokio::task::yield_now().await,
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "applying queued items failed; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    }

    /// Purges expired job results, message ids and console sessions every hour.
    pub fn spawn_purger(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let now = ids::now();
                let jobs = now - chrono::Duration::from_std(self.settings.job_retention).unwrap_or_default();
                let dedupe = now - chrono::Duration::from_std(self.settings.dedupe_window).unwrap_or_default();
                if let Err(e) = self.store.purge_ingest(jobs, dedupe).await {
                    tracing::warn!(error = %e, "purging old jobs failed");
                }
                if let Err(e) = self.store.purge_sessions(now).await {
                    tracing::warn!(error = %e, "purging expired console sessions failed");
                }
            }
        })
    }
}

/// The `Idempotency-Key` header, validated.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let key = v.to_str().map_err(|_| Error::validation("Idempotency-Key", "Idempotency-Key must be text"))?;
            validate_message_id(key.trim())
                .map(Some)
                .map_err(|_| Error::validation("Idempotency-Key", "Idempotency-Key must have 1 to 200 characters"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small step is followed by a pause for items to gather; a large
    /// one (a backlog) by none, so the applier keeps up.
    #[test]
    fn the_applier_pauses_only_after_a_small_step() {
        assert_eq!(pause_after_step(1, 5_000), Some(GATHER));
        assert_eq!(pause_after_step(624, 5_000), Some(GATHER));
        assert_eq!(pause_after_step(625, 5_000), None);
        assert_eq!(pause_after_step(5_000, 5_000), None);
        // A tiny apply batch never counts a step as small.
        assert_eq!(pause_after_step(1, 4), None);
    }
}
