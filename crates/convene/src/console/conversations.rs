//! (being written)
use super::session::{ConsoleUser, Posted};
use axum::response::{IntoResponse, Response};

/// stub
pub async fn inbox(_u: ConsoleUser) -> Response {
    "".into_response()
}
/// stub
pub async fn thread(_u: ConsoleUser) -> Response {
    "".into_response()
}
/// stub
pub async fn post_message(_p: Posted) -> Response {
    "".into_response()
}
/// stub
pub async fn set_status(_p: Posted) -> Response {
    "".into_response()
}
/// stub
pub async fn assign(_p: Posted) -> Response {
    "".into_response()
}
