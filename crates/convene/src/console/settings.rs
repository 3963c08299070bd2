//! (being written)
use super::session::{ConsoleUser, Posted};
use axum::response::{IntoResponse, Response};

/// stub
pub async fn accounts(_u: ConsoleUser) -> Response {
    "".into_response()
}
/// stub
pub async fn account(_u: ConsoleUser) -> Response {
    "".into_response()
}
/// stub
pub async fn keys(_u: ConsoleUser) -> Response {
    "".into_response()
}
/// stub
pub async fn fields(_u: ConsoleUser) -> Response {
    "".into_response()
}
/// stub
pub async fn users(_u: ConsoleUser) -> Response {
    "".into_response()
}
/// stub
pub async fn teams(_u: ConsoleUser) -> Response {
    "".into_response()
}
/// stub
pub async fn create_account(_p: Posted) -> Response {
    "".into_response()
}
/// stub
pub async fn update_account(_p: Posted) -> Response {
    "".into_response()
}
/// stub
pub async fn create_key(_p: Posted) -> Response {
    "".into_response()
}
/// stub
pub async fn revoke_key(_p: Posted) -> Response {
    "".into_response()
}
/// stub
pub async fn create_field(_p: Posted) -> Response {
    "".into_response()
}
/// stub
pub async fn create_user(_p: Posted) -> Response {
    "".into_response()
}
/// stub
pub async fn update_user(_p: Posted) -> Response {
    "".into_response()
}
