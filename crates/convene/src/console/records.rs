//! (being written)
use super::session::{ConsoleUser, Posted};
use axum::response::{IntoResponse, Response};

/// stub
pub async fn reps(_u: ConsoleUser) -> Response {
    "".into_response()
}
/// stub
pub async fn rep(_u: ConsoleUser) -> Response {
    "".into_response()
}
/// stub
pub async fn companies(_u: ConsoleUser) -> Response {
    "".into_response()
}
/// stub
pub async fn company(_u: ConsoleUser) -> Response {
    "".into_response()
}
