//! `/v1/users`: the workspace's people (admin scope). Users are deactivated
//! (`"active": false`), not deleted: messages keep their sender.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convene_core::Error;
use convene_core::ids::now;
use convene_core::page::PageRequest;
use convene_core::user::UserChanges;
use serde_json::{Map, Value};

use super::CommonErrors;
use super::dto::{PageParams, Paged, UserIn, UserOut};
use crate::http::auth::{Need, scopes};
use crate::http::error::ApiResult;
use crate::http::json::AppJson;
use crate::http::path::AppPath;
use crate::http::query::AppQuery;
use crate::state::AppState;

fn user_id(raw: &str) -> Result<i64, Error> {
    raw.parse().map_err(|_| Error::NotFound { entity: "user" })
}

/// Create a user.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = UserIn,
    responses((status = 201, description = "The new user", body = UserOut), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn create_user(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<UserOut>)> {
    let user = UserChanges::from_json(body)?.into_new(now())?;
    Ok((StatusCode::CREATED, Json(state.store.create_user(auth.workspace(), user).await?.into())))
}

/// List users by id.
#[utoipa::path(get, path = "/v1/users", tag = "users", params(PageParams),
    responses((status = 200, description = "A page of users", body = Paged<UserOut>), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn list_users(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<PageParams>,
) -> ApiResult<Json<Paged<UserOut>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    Ok(Json(Paged::from_page(state.store.list_users(auth.workspace(), page).await?, UserOut::from)))
}

/// One user.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "The user", body = UserOut), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn get_user(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<UserOut>> {
    Ok(Json(state.store.get_user(auth.workspace(), user_id(&id)?).await?.into()))
}

/// Change a user's name, email, role or active flag.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", request_body = UserIn,
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "The user after the change", body = UserOut), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn update_user(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<Json<UserOut>> {
    let id = user_id(&id)?;
    let changes = UserChanges::from_json(body)?;
    Ok(Json(state.store.update_user(auth.workspace(), id, changes).await?.into()))
}
