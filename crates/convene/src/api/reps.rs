//! `/v1/reps`: the team's members as data — create, read, change, delete
//! and list (filters, cursor paging). Reps are keyed by their `rep_id`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use convene_core::page::PageRequest;
use convene_core::rep::{Rep, RepFilter, RepWrite, WriteMode, active_of};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::CommonErrors;
use super::dto::Paged;
use super::schema;
use crate::http::auth::{Need, scopes};
use crate::http::error::ApiResult;
use crate::http::json::AppJson;
use crate::http::path::AppPath;
use crate::http::query::AppQuery;
use crate::state::AppState;

/// A rep.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepOut {
    /// Your id for the rep (unique in the workspace).
    pub rep_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Email, lower-cased.
    pub email: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Whether the rep is active.
    pub active: bool,
    /// Typed attributes (fields of entity `rep`).
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<Rep> for RepOut {
    fn from(r: Rep) -> Self {
        RepOut {
            rep_id: r.rep_id,
            name: r.name,
            email: r.email,
            department: r.department,
            active: r.active,
            attributes: r.attributes,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The body of `POST /v1/reps`: `rep_id` is required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CreateRep {
    /// Your id for the rep (unique in the workspace).
    #[schema(schema_with = schema::rep_id)]
    pub rep_id: String,
    /// Display name.
    #[schema(schema_with = schema::rep_text_or_null)]
    pub name: Option<String>,
    /// Email.
    #[schema(schema_with = schema::rep_email_or_null)]
    pub email: Option<String>,
    /// Department.
    #[schema(schema_with = schema::rep_text_or_null)]
    pub department: Option<String>,
    /// Active.
    #[schema(schema_with = schema::rep_active)]
    pub active: Option<Value>,
    /// Attributes.
    #[schema(schema_with = schema::attributes_or_null)]
    pub attributes: Option<Map<String, Value>>,
}

/// The body of `PATCH /v1/reps/{rep_id}`: only the keys sent change (a
/// `rep_id` in the body is ignored: the path names the rep).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RepIn {
    /// Ignored (the path names the rep).
    pub rep_id: Option<Value>,
    /// Display name.
    #[schema(schema_with = schema::rep_text_or_null)]
    pub name: Option<String>,
    /// Email.
    #[schema(schema_with = schema::rep_email_or_null)]
    pub email: Option<String>,
    /// Department.
    #[schema(schema_with = schema::rep_text_or_null)]
    pub department: Option<String>,
    /// Active.
    #[schema(schema_with = schema::rep_active)]
    pub active: Option<Value>,
    /// Attributes.
    #[schema(schema_with = schema::attributes_or_null)]
    pub attributes: Option<Map<String, Value>>,
}

/// Filters of `GET /v1/reps`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RepQuery {
    /// Only this department.
    pub department: Option<String>,
    /// Only this rep.
    pub rep_id: Option<String>,
    /// Only active (`true`/1) or inactive (`false`/0) reps.
    pub active: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Create a rep; an existing `rep_id` is a conflict.
#[utoipa::path(post, path = "/v1/reps", tag = "reps", request_body = CreateRep,
    responses((status = 201, description = "The new rep", body = RepOut), CommonErrors),
    security(("bearer" = ["reps:write"]), ("api_key" = ["reps:write"])))]
pub async fn create_rep(
    auth: Need<scopes::RepsWrite>,
    State(state): State<AppState>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<RepOut>)> {
    let write = RepWrite::from_native(body, None)?;
    let rep = state.store.write_rep(auth.workspace(), write, WriteMode::Create).await?;
    Ok((StatusCode::CREATED, Json(rep.into())))
}

/// One rep.
#[utoipa::path(get, path = "/v1/reps/{id}", tag = "reps",
    params(("id" = String, Path, description = "The rep's rep_id")),
    responses((status = 200, description = "The rep", body = RepOut), CommonErrors),
    security(("bearer" = ["reps:read"]), ("api_key" = ["reps:read"])))]
pub async fn get_rep(
    auth: Need<scopes::RepsRead>,
    State(state): State<AppState>,
    AppPath(rep_id): AppPath<String>,
) -> ApiResult<Json<RepOut>> {
    Ok(Json(state.store.get_rep(auth.workspace(), &rep_id).await?.into()))
}

/// Change a rep (only the keys sent; `null` clears); all or nothing.
#[utoipa::path(patch, path = "/v1/reps/{id}", tag = "reps", request_body = RepIn,
    params(("id" = String, Path, max_length = 255,
        // utoipa takes only a literal here: this is schema::TEXT.
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        description = "The rep's rep_id: 1 to 255 characters after trimming, no control characters")),
    responses((status = 200, description = "The rep after the change", body = RepOut), CommonErrors),
    security(("bearer" = ["reps:write"]), ("api_key" = ["reps:write"])))]
pub async fn update_rep(
    auth: Need<scopes::RepsWrite>,
    State(state): State<AppState>,
    AppPath(rep_id): AppPath<String>,
    AppJson(mut body): AppJson<Map<String, Value>>,
) -> ApiResult<Json<RepOut>> {
    body.remove("rep_id");
    let write = RepWrite::from_native(body, Some(&rep_id))?;
    Ok(Json(state.store.write_rep(auth.workspace(), write, WriteMode::Update).await?.into()))
}

/// Delete a rep; calls keep its `rep_id`.
#[utoipa::path(delete, path = "/v1/reps/{id}", tag = "reps",
    params(("id" = String, Path, description = "The rep's rep_id")),
    responses((status = 204, description = "Deleted"), CommonErrors),
    security(("bearer" = ["reps:write"]), ("api_key" = ["reps:write"])))]
pub async fn delete_rep(
    auth: Need<scopes::RepsWrite>,
    State(state): State<AppState>,
    AppPath(rep_id): AppPath<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_rep(auth.workspace(), &rep_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List reps in creation order, optionally by department, rep id or activity.
#[utoipa::path(get, path = "/v1/reps", tag = "reps", params(RepQuery),
    responses((status = 200, description = "A page of reps", body = Paged<RepOut>), CommonErrors),
    security(("bearer" = ["reps:read"]), ("api_key" = ["reps:read"])))]
pub async fn list_reps(
    auth: Need<scopes::RepsRead>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<RepQuery>,
) -> ApiResult<Json<Paged<RepOut>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let filter = RepFilter {
        department: q.department,
        rep_id: q.rep_id,
        active: q.active.map(|a| active_of(&Value::String(a))).transpose()?.flatten(),
    };
    let page = state.store.list_reps(auth.workspace(), filter, page).await?;
    Ok(Json(Paged::from_page(page, RepOut::from)))
}
