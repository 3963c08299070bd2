//! (being written)
use super::session::{ConsoleUser, Posted};
use axum::response::{IntoResponse, Response};

/// stub
pub async fn list(_u: ConsoleUser) -> Response {
    "".into_response()
}
/// stub
pub async fn show(_u: ConsoleUser) -> Response {
    "".into_response()
}
