//! Operations endpoints: `/healthz`, `/readyz`, `/metrics`, and the JSON
//! answers for unknown routes and methods.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use convene_core::Error;
use serde_json::json;

use crate::http::error::ApiError;
use crate::state::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Up")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready"), (status = 503, description = "The database does not answer")))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            ApiError(Error::Unavailable { message: "the database does not answer".into(), retry_after_secs: 1 })
                .into_response()
        }
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(state.store.backlog()))
}

/// JSON 404 for unknown routes.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError(Error::RouteNotFound { path: uri.path().to_string() })
}

/// JSON 405 for a known route with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError(Error::MethodNotAllowed)
}
