//! What every request goes through, as one middleware: its request id
//! (kept from the client or made, and echoed), a tracing span, the request
//! metrics, a dialect's envelope for errors made outside the dialect's router,
//! panic catching, the request timeout and the rate-limit headers.
//!
//! One async function instead of a stack of eight tower and `from_fn`
//! layers: each layer boxes the request's future and clones the service
//! below it, and the eight cost about 13 µs per request, a third of a
//! single-event ingest request's HTTP time (BENCHMARKS.md, ingestion).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use convene_core::Error;
use futures::FutureExt;
use tracing::Instrument;

use crate::http::error::ApiError;
use crate::http::metrics::Metrics;

/// The request id header, read from the client or set, and echoed.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The middleware's state: the metrics it records, and the request timeout.
#[derive(Clone)]
pub struct Stack {
    /// Where each request is counted.
    pub metrics: Arc<Metrics>,
    /// Longest a request may take before it is answered 503.
    pub timeout: Duration,
}

/// The middleware: see the module documentation for what it does, in that
/// order from the outside in.
pub async fn around(State(stack): State<Stack>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = match req.headers().get(&REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("-"));
            req.headers_mut().insert(REQUEST_ID, id.clone());
            id
        }
    };
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let render = crate::dialects::late_error_renderer(req.uri().path());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id.to_str().unwrap_or("-"),
        method = %method,
        path = %req.uri().path()
    );
    let mut response =
        guarded(crate::http::ratelimit::run_with_rate_state(req, next), stack.timeout).instrument(span.clone()).await;
    if let Some(render) = render {
        response = crate::dialects::render_late_error(render, response);
    }
    let status = response.status();
    let elapsed = started.elapsed();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    stack.metrics.observe(method.as_str(), route, status.as_u16(), elapsed.as_secs_f64());
    span.in_scope(|| {
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), latency_ms, "response failed");
        } else {
            tracing::debug!(status = status.as_u16(), latency_ms, "finished processing request");
        }
    });
    response.headers_mut().insert(REQUEST_ID, request_id);
    response
}

/// Runs a request's future: a panic is answered 500 and a run longer than
/// `timeout` 503, in convene's envelope (a dialect's is applied after).
async fn guarded(run: impl Future<Output = Response>, timeout: Duration) -> Response {
    match tokio::time::timeout(timeout, AssertUnwindSafe(run).catch_unwind()).await {
        Ok(Ok(response)) => response,
        Ok(Err(_panic)) => ApiError(Error::Internal("a handler panicked".into())).into_response(),
        Err(_) => ApiError(Error::Unavailable {
            message: format!("the request took longer than {} s", timeout.as_secs()),
            retry_after_secs: 1,
        })
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[tokio::test]
    async fn a_panicking_request_is_answered_500() {
        let response = guarded(async { panic!("a handler bug") }, Duration::from_secs(5)).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn a_request_over_the_timeout_is_answered_503_with_retry_after() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK.into_response()
        };
        let response = guarded(slow, Duration::from_millis(20)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));
    }

    #[tokio::test]
    async fn a_request_within_the_timeout_passes_unchanged() {
        let response = guarded(async { StatusCode::IM_A_TEAPOT.into_response() }, Duration::from_secs(5)).await;
        assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    }
}
