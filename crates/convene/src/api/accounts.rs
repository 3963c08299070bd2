//! Service accounts: under `/v1/workspaces/{ws}/service-accounts` for the
//! operator, and `/v1/service-accounts` for a workspace key with `admin`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convene_core::Error;
use convene_core::page::PageRequest;
use convene_core::scope::{Scope, check_grant};
use convene_core::workspace::{
    NewServiceAccount, ServiceAccount, ServiceAccountUpdate, validate_description, validate_name, validate_teams,
};

use super::CommonErrors;
use super::dto::{CreateServiceAccount, PageParams, Paged, ServiceAccountOut, UpdateServiceAccount};
use crate::http::auth::{MasterKey, Need, scopes};
use crate::http::error::ApiResult;
use crate::http::json::AppJson;
use crate::http::path::AppPath;
use crate::http::query::AppQuery;
use crate::state::AppState;

/// Creates a service account. `granter`: the scopes of the admin key asking
/// (None for the master key and the console's admins); an account may not
/// be given scopes the granter lacks.
pub async fn new_account(
    state: &AppState,
    ws: &str,
    body: CreateServiceAccount,
    granter: Option<&[Scope]>,
) -> Result<ServiceAccount, Error> {
    let new = NewServiceAccount {
        name: validate_name("name", &body.name)?,
        description: validate_description(&body.description)?,
        teams: validate_teams(&body.teams)?,
        scopes: Scope::parse_list(&body.scopes, "scopes")?,
    };
    if let Some(granter) = granter {
        check_grant(granter, &new.scopes)?;
    }
    state.store.create_service_account(ws, new).await
}

async fn create(
    state: &AppState,
    ws: &str,
    body: CreateServiceAccount,
    granter: Option<&[Scope]>,
) -> ApiResult<(StatusCode, Json<ServiceAccountOut>)> {
    Ok((StatusCode::CREATED, Json(new_account(state, ws, body, granter).await?.into())))
}

async fn list(state: &AppState, ws: &str, q: PageParams) -> ApiResult<Json<Paged<ServiceAccountOut>>> {
    let page = state.store.list_service_accounts(ws, PageRequest::parse(q.cursor.as_deref(), q.limit)?).await?;
    Ok(Json(Paged::from_page(page, ServiceAccountOut::from)))
}

/// Changes a service account (its keys' scopes follow at once on this node).
pub async fn change_account(
    state: &AppState,
    ws: &str,
    id: &str,
    body: UpdateServiceAccount,
    granter: Option<&[Scope]>,
) -> Result<ServiceAccount, Error> {
    let update = ServiceAccountUpdate {
        name: body.name.as_deref().map(|n| validate_name("name", n)).transpose()?,
        description: body.description.as_deref().map(validate_description).transpose()?,
        teams: body.teams.as_deref().map(validate_teams).transpose()?,
        scopes: body.scopes.as_deref().map(|s| Scope::parse_list(s, "scopes")).transpose()?,
    };
    if let (Some(granter), Some(scopes)) = (granter, &update.scopes) {
        check_grant(granter, scopes)?;
    }
    let account = state.store.update_service_account(ws, id, update).await?;
    state.key_cache.clear();
    Ok(account)
}

async fn update(
    state: &AppState,
    ws: &str,
    id: &str,
    body: UpdateServiceAccount,
    granter: Option<&[Scope]>,
) -> ApiResult<Json<ServiceAccountOut>> {
    Ok(Json(change_account(state, ws, id, body, granter).await?.into()))
}

/// Create a service account in a workspace.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/service-accounts", operation_id = "create_workspace_service_account", tag = "service accounts", request_body = CreateServiceAccount,
    params(("ws" = String, Path, description = "Workspace id")),
    responses((status = 201, description = "The new account", body = ServiceAccountOut), CommonErrors),
    security(("master_key" = [])))]
pub async fn master_create(
    _: MasterKey,
    State(state): State<AppState>,
    AppPath(ws): AppPath<String>,
    AppJson(body): AppJson<CreateServiceAccount>,
) -> ApiResult<(StatusCode, Json<ServiceAccountOut>)> {
    state.store.get_workspace(&ws).await?;
    create(&state, &ws, body, None).await
}

/// List a workspace's service accounts.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/service-accounts", operation_id = "list_workspace_service_accounts", tag = "service accounts",
    params(("ws" = String, Path, description = "Workspace id"), PageParams),
    responses((status = 200, description = "A page of accounts", body = Paged<ServiceAccountOut>), CommonErrors),
    security(("master_key" = [])))]
pub async fn master_list(
    _: MasterKey,
    State(state): State<AppState>,
    AppPath(ws): AppPath<String>,
    AppQuery(q): AppQuery<PageParams>,
) -> ApiResult<Json<Paged<ServiceAccountOut>>> {
    state.store.get_workspace(&ws).await?;
    list(&state, &ws, q).await
}

/// One service account of a workspace.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/service-accounts/{id}", operation_id = "get_workspace_service_account", tag = "service accounts",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "The account", body = ServiceAccountOut), CommonErrors),
    security(("master_key" = [])))]
pub async fn master_get(
    _: MasterKey,
    State(state): State<AppState>,
    AppPath((ws, id)): AppPath<(String, String)>,
) -> ApiResult<Json<ServiceAccountOut>> {
    Ok(Json(state.store.get_service_account(&ws, &id).await?.into()))
}

/// Change a service account (name, description, teams, permissions).
#[utoipa::path(patch, path = "/v1/workspaces/{ws}/service-accounts/{id}", operation_id = "update_workspace_service_account", tag = "service accounts", request_body = UpdateServiceAccount,
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "The account", body = ServiceAccountOut), CommonErrors),
    security(("master_key" = [])))]
pub async fn master_update(
    _: MasterKey,
    State(state): State<AppState>,
    AppPath((ws, id)): AppPath<(String, String)>,
    AppJson(body): AppJson<UpdateServiceAccount>,
) -> ApiResult<Json<ServiceAccountOut>> {
    update(&state, &ws, &id, body, None).await
}

/// Create a service account in the key's workspace.
#[utoipa::path(post, path = "/v1/service-accounts", operation_id = "create_service_account", tag = "service accounts", request_body = CreateServiceAccount,
    responses((status = 201, description = "The new account", body = ServiceAccountOut), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn admin_create(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppJson(body): AppJson<CreateServiceAccount>,
) -> ApiResult<(StatusCode, Json<ServiceAccountOut>)> {
    create(&state, auth.workspace(), body, Some(&auth.key.scopes)).await
}

/// List the key's workspace's service accounts.
#[utoipa::path(get, path = "/v1/service-accounts", operation_id = "list_service_accounts", tag = "service accounts", params(PageParams),
    responses((status = 200, description = "A page of accounts", body = Paged<ServiceAccountOut>), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn admin_list(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<PageParams>,
) -> ApiResult<Json<Paged<ServiceAccountOut>>> {
    list(&state, auth.workspace(), q).await
}

/// One service account of the key's workspace.
#[utoipa::path(get, path = "/v1/service-accounts/{id}", operation_id = "get_service_account", tag = "service accounts",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "The account", body = ServiceAccountOut), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn admin_get(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<ServiceAccountOut>> {
    Ok(Json(state.store.get_service_account(auth.workspace(), &id).await?.into()))
}

/// Change a service account of the key's workspace.
#[utoipa::path(patch, path = "/v1/service-accounts/{id}", operation_id = "update_service_account", tag = "service accounts", request_body = UpdateServiceAccount,
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "The account", body = ServiceAccountOut), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn admin_update(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    AppJson(body): AppJson<UpdateServiceAccount>,
) -> ApiResult<Json<ServiceAccountOut>> {
    update(&state, auth.workspace(), &id, body, Some(&auth.key.scopes)).await
}
