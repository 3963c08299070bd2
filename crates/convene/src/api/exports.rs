//! `GET /v1/exports/{entity}` (being written).

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::http::auth::{Need, scopes};
use crate::http::path::AppPath;
use crate::state::AppState;

/// Export an entity, streamed (being written).
#[utoipa::path(get, path = "/v1/exports/{entity}", tag = "data",
    params(("entity" = String, Path, description = "contacts, events, conversations, messages, reps or companies")),
    responses((status = 200, description = "The rows, streamed")),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn export(
    _auth: Need<scopes::Admin>,
    State(_state): State<AppState>,
    AppPath(_entity): AppPath<String>,
) -> Response {
    "".into_response()
}
