//! API keys: under `/v1/workspaces/{ws}/keys` for the operator, and
//! `/v1/keys` for a workspace key with `admin`. The token appears in the
//! creation response only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convene_core::page::PageRequest;
use convene_core::scope::{KeyKind, Scope, check_grant, effective_scopes};
use convene_core::workspace::{ApiKey, NewKey, validate_name};
use convene_core::{Error, ids, token};

use super::CommonErrors;
use super::dto::{CreateKey, KeyOut, PageParams, Paged};
use crate::http::auth::{MasterKey, Need, scopes};
use crate::http::error::ApiResult;
use crate::http::json::AppJson;
use crate::http::path::AppPath;
use crate::http::query::AppQuery;
use crate::state::AppState;

/// Creates a key and returns it with its token (to show once); `granter`
/// is the scopes of the admin key asking (None for the master key and the
/// console's admins): a key may not grant what it lacks.
pub async fn mint_key(
    state: &AppState,
    ws: &str,
    body: CreateKey,
    granter: Option<&[Scope]>,
) -> Result<(ApiKey, String), Error> {
    let name = validate_name("name", &body.name)?;
    let scopes = body.scopes.as_deref().map(|s| Scope::parse_list(s, "scopes")).transpose()?;
    if body.kind == KeyKind::Analytics
        && let Some(extra) = scopes.iter().flatten().find(|s| !Scope::ANALYTICS.contains(s))
    {
        return Err(Error::validation(
            "scopes",
            format!("an analytics key can hold only contacts:write and events:write, not {extra}"),
        ));
    }
    if body.expires_at.is_some_and(|at| at <= ids::now()) {
        return Err(Error::validation("expires_at", "expires_at must be in the future"));
    }
    if let Some(granter) = granter {
        let account_scopes = match &body.service_account_id {
            Some(sa) => Some(
                state
                    .store
                    .get_service_account(ws, sa)
                    .await
                    .map_err(|_| {
                        Error::validation("service_account_id", format!("no service account '{sa}' in this workspace"))
                    })?
                    .scopes,
            ),
            None => None,
        };
        check_grant(granter, &effective_scopes(body.kind, scopes.as_deref(), account_scopes.as_deref()))?;
    }
    let minted = token::mint();
    let new = NewKey {
        name,
        kind: body.kind,
        service_account_id: body.service_account_id,
        scopes,
        expires_at: body.expires_at,
        hash: minted.hash,
        preview: minted.preview,
    };
    let key = state.store.create_key(ws, new).await?;
    Ok((key, minted.token))
}

async fn create(
    state: &AppState,
    ws: &str,
    body: CreateKey,
    granter: Option<&[Scope]>,
) -> ApiResult<(StatusCode, Json<KeyOut>)> {
    let (key, token) = mint_key(state, ws, body, granter).await?;
    let mut out = KeyOut::listed(key);
    out.token = Some(token);
    Ok((StatusCode::CREATED, Json(out)))
}

async fn list(state: &AppState, ws: &str, q: PageParams) -> ApiResult<Json<Paged<KeyOut>>> {
    let page = state.store.list_keys(ws, PageRequest::parse(q.cursor.as_deref(), q.limit)?).await?;
    Ok(Json(Paged::from_page(page, KeyOut::listed)))
}

/// Create a key in a workspace; the response holds the token, once.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/keys", operation_id = "create_workspace_key", tag = "keys", request_body = CreateKey,
    params(("ws" = String, Path, description = "Workspace id")),
    responses((status = 201, description = "The new key with its token (shown only here)", body = KeyOut), CommonErrors),
    security(("master_key" = [])))]
pub async fn master_create(
    _: MasterKey,
    State(state): State<AppState>,
    AppPath(ws): AppPath<String>,
    AppJson(body): AppJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<KeyOut>)> {
    state.store.get_workspace(&ws).await?;
    create(&state, &ws, body, None).await
}

/// List a workspace's keys (previews only).
#[utoipa::path(get, path = "/v1/workspaces/{ws}/keys", operation_id = "list_workspace_keys", tag = "keys",
    params(("ws" = String, Path, description = "Workspace id"), PageParams),
    responses((status = 200, description = "A page of keys", body = Paged<KeyOut>), CommonErrors),
    security(("master_key" = [])))]
pub async fn master_list(
    _: MasterKey,
    State(state): State<AppState>,
    AppPath(ws): AppPath<String>,
    AppQuery(q): AppQuery<PageParams>,
) -> ApiResult<Json<Paged<KeyOut>>> {
    state.store.get_workspace(&ws).await?;
    list(&state, &ws, q).await
}

/// One key of a workspace.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/keys/{id}", operation_id = "get_workspace_key", tag = "keys",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "The key", body = KeyOut), CommonErrors),
    security(("master_key" = [])))]
pub async fn master_get(
    _: MasterKey,
    State(state): State<AppState>,
    AppPath((ws, id)): AppPath<(String, String)>,
) -> ApiResult<Json<KeyOut>> {
    Ok(Json(KeyOut::listed(state.store.get_key(&ws, &id).await?)))
}

/// Revoke a key at once.
#[utoipa::path(delete, path = "/v1/workspaces/{ws}/keys/{id}", operation_id = "revoke_workspace_key", tag = "keys",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "The revoked key", body = KeyOut), CommonErrors),
    security(("master_key" = [])))]
pub async fn master_revoke(
    _: MasterKey,
    State(state): State<AppState>,
    AppPath((ws, id)): AppPath<(String, String)>,
) -> ApiResult<Json<KeyOut>> {
    let key = state.store.revoke_key(&ws, &id).await?;
    state.key_cache.clear();
    Ok(Json(KeyOut::listed(key)))
}

/// Create a key in the admin key's workspace; the response holds the token, once.
#[utoipa::path(post, path = "/v1/keys", operation_id = "create_key", tag = "keys", request_body = CreateKey,
    responses((status = 201, description = "The new key with its token (shown only here)", body = KeyOut), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn admin_create(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppJson(body): AppJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<KeyOut>)> {
    create(&state, auth.workspace(), body, Some(&auth.key.scopes)).await
}

/// List the admin key's workspace's keys.
#[utoipa::path(get, path = "/v1/keys", operation_id = "list_keys", tag = "keys", params(PageParams),
    responses((status = 200, description = "A page of keys", body = Paged<KeyOut>), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn admin_list(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<PageParams>,
) -> ApiResult<Json<Paged<KeyOut>>> {
    list(&state, auth.workspace(), q).await
}

/// One key of the admin key's workspace.
#[utoipa::path(get, path = "/v1/keys/{id}", operation_id = "get_key", tag = "keys", params(("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "The key", body = KeyOut), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn admin_get(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<KeyOut>> {
    Ok(Json(KeyOut::listed(state.store.get_key(auth.workspace(), &id).await?)))
}

/// Revoke a key of the admin key's workspace at once.
#[utoipa::path(delete, path = "/v1/keys/{id}", operation_id = "revoke_key", tag = "keys", params(("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "The revoked key", body = KeyOut), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn admin_revoke(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<KeyOut>> {
    let key = state.store.revoke_key(auth.workspace(), &id).await?;
    state.key_cache.clear();
    Ok(Json(KeyOut::listed(key)))
}
