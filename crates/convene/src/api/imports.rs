//! `POST /v1/imports` (being written).

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::http::auth::{Need, scopes};
use crate::state::AppState;

/// Import a CSV body as a job (being written).
#[utoipa::path(post, path = "/v1/imports", tag = "data",
    responses((status = 202, description = "The import job")),
    security(("bearer" = ["contacts:write"]), ("api_key" = ["contacts:write"])))]
pub async fn import(_auth: Need<scopes::ContactsWrite>, State(_state): State<AppState>) -> Response {
    "".into_response()
}
