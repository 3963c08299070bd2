//! `/v1/users`: the workspace's people (admin scope), and
//! `/v1/workspaces/{ws}/users` for the operator (the first console admin).
//! Users are deactivated (`"active": false`), not deleted: messages keep
//! their sender. A `password` is hashed (argon2id) and never returned.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convene_core::ids::now;
use convene_core::page::PageRequest;
use convene_core::password::Password;
use convene_core::user::User;
use convene_core::user::UserChanges;
use convene_core::{Error, Store};
use serde_json::{Map, Value};

use super::CommonErrors;
use super::dto::{CreateUser, PageParams, Paged, UserIn, UserOut};
use crate::http::auth::{MasterKey, Need, scopes};
use crate::http::error::ApiResult;
use crate::http::json::AppJson;
use crate::http::path::AppPath;
use crate::http::query::AppQuery;
use crate::state::AppState;

fn user_id(raw: &str) -> Result<i64, Error> {
    raw.parse().map_err(|_| Error::NotFound { entity: "user" })
}

/// The argon2id hash of a password, computed off the async threads.
pub async fn hash_password(password: &Password) -> Result<String, Error> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || password.hash())
        .await
        .map_err(|e| Error::Internal(format!("password hashing stopped: {e}")))?
}

/// Creates a user and sets its password if one is given (hashed before
/// anything is written). The API, the CLI and the console all create users
/// here.
pub async fn create_with_password(store: &dyn Store, ws: &str, mut changes: UserChanges) -> Result<User, Error> {
    let password = changes.password.take();
    let user = changes.into_new(now())?;
    let hash = match &password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let user = store.create_user(ws, user).await?;
    if let Some(hash) = hash {
        store.set_user_password(ws, user.id, hash).await?;
    }
    Ok(user)
}

/// Changes a user and its password if one is given.
pub async fn update_with_password(
    store: &dyn Store,
    ws: &str,
    id: i64,
    mut changes: UserChanges,
) -> Result<User, Error> {
    let hash = match changes.password.take() {
        Some(p) => Some(hash_password(&p).await?),
        None => None,
    };
    let user = store.update_user(ws, id, changes).await?;
    if let Some(hash) = hash {
        store.set_user_password(ws, id, hash).await?;
    }
    Ok(user)
}

/// Create a user.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, description = "The new user", body = UserOut), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn create_user(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<UserOut>)> {
    let user = create_with_password(&*state.store, auth.workspace(), UserChanges::from_json(body)?).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Create a user in a workspace (the operator making the first console admin).
#[utoipa::path(post, path = "/v1/workspaces/{ws}/users", tag = "users", request_body = CreateUser,
    params(("ws" = String, Path, description = "Workspace id")),
    responses((status = 201, description = "The new user", body = UserOut), CommonErrors),
    security(("master_key" = [])))]
pub async fn master_create_user(
    _: MasterKey,
    State(state): State<AppState>,
    AppPath(ws): AppPath<String>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<UserOut>)> {
    state.store.get_workspace(&ws).await?;
    let user = create_with_password(&*state.store, &ws, UserChanges::from_json(body)?).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
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
    Ok(Json(update_with_password(&*state.store, auth.workspace(), id, changes).await?.into()))
}
