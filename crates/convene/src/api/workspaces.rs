//! `/v1/workspaces`: the operator's routes (master key).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convene_core::page::PageRequest;
use convene_core::workspace::validate_name;

use super::CommonErrors;
use super::dto::{CreateWorkspace, PageParams, Paged, WorkspaceOut};
use crate::http::auth::MasterKey;
use crate::http::error::ApiResult;
use crate::http::json::AppJson;
use crate::http::path::AppPath;
use crate::http::query::AppQuery;
use crate::state::AppState;

/// Create a workspace.
#[utoipa::path(post, path = "/v1/workspaces", tag = "workspaces", request_body = CreateWorkspace,
    responses((status = 201, description = "The new workspace", body = WorkspaceOut), CommonErrors),
    security(("master_key" = [])))]
pub async fn create_workspace(
    _: MasterKey,
    State(state): State<AppState>,
    AppJson(body): AppJson<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<WorkspaceOut>)> {
    let name = validate_name("name", &body.name)?;
    let ws = state.store.create_workspace(name).await?;
    Ok((StatusCode::CREATED, Json(ws.into())))
}

/// List workspaces in creation order.
#[utoipa::path(get, path = "/v1/workspaces", tag = "workspaces", params(PageParams),
    responses((status = 200, description = "A page of workspaces", body = Paged<WorkspaceOut>), CommonErrors),
    security(("master_key" = [])))]
pub async fn list_workspaces(
    _: MasterKey,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<PageParams>,
) -> ApiResult<Json<Paged<WorkspaceOut>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let page = state.store.list_workspaces(page).await?;
    Ok(Json(Paged::from_page(page, WorkspaceOut::from)))
}

/// One workspace.
#[utoipa::path(get, path = "/v1/workspaces/{ws}", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "The workspace", body = WorkspaceOut), CommonErrors),
    security(("master_key" = [])))]
pub async fn get_workspace(
    _: MasterKey,
    State(state): State<AppState>,
    AppPath(ws): AppPath<String>,
) -> ApiResult<Json<WorkspaceOut>> {
    Ok(Json(state.store.get_workspace(&ws).await?.into()))
}
