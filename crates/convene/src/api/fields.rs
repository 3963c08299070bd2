//! `/v1/fields`: the fields registry.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convene_core::field::{Field, validate_field_name};
use convene_core::page::PageRequest;
use convene_core::store::NewField;
use convene_core::workspace::validate_name;

use super::CommonErrors;
use super::dto::{CreateField, FieldOut, FieldQuery, Paged};
use crate::http::auth::{Need, scopes};
use crate::http::error::ApiResult;
use crate::http::json::AppJson;
use crate::http::query::AppQuery;
use crate::state::AppState;

/// List fields (built-in, created and inferred), by entity and name.
#[utoipa::path(get, path = "/v1/fields", tag = "fields", params(FieldQuery),
    responses((status = 200, description = "A page of fields", body = Paged<FieldOut>), CommonErrors),
    security(("bearer" = ["contacts:read"]), ("api_key" = ["contacts:read"])))]
pub async fn list_fields(
    auth: Need<scopes::ContactsRead>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<FieldQuery>,
) -> ApiResult<Json<Paged<FieldOut>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let page = state.store.list_fields(auth.workspace(), q.entity, page).await?;
    Ok(Json(Paged::from_page(page, FieldOut::from)))
}

/// Create a field with a type, before values arrive.
#[utoipa::path(post, path = "/v1/fields", tag = "fields", request_body = CreateField,
    responses((status = 201, description = "The new field", body = FieldOut), CommonErrors),
    security(("bearer" = ["contacts:write"]), ("api_key" = ["contacts:write"])))]
pub async fn create_field(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    AppJson(body): AppJson<CreateField>,
) -> ApiResult<(StatusCode, Json<FieldOut>)> {
    let field = add_field(&state, auth.workspace(), body).await?;
    Ok((StatusCode::CREATED, Json(field.into())))
}

/// Checks and creates a field (the API and the console).
pub async fn add_field(state: &AppState, ws: &str, body: CreateField) -> Result<Field, convene_core::Error> {
    validate_field_name(&body.name)?;
    let label = body.label.as_deref().map(|l| validate_name("label", l)).transpose()?;
    let new = NewField { entity: body.entity, name: body.name, label, field_type: body.field_type };
    state.store.create_field(ws, new).await
}
