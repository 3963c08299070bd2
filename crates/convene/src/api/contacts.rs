//! `/v1/contacts`: native contact CRUD with trait operations.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convene_core::Error;
use convene_core::contact::{ContactChanges, ContactFilter};
use convene_core::identity::IdentityKind;
use convene_core::page::PageRequest;
use serde_json::{Map, Value};

use super::CommonErrors;
use super::dto::{ContactIn, ContactOut, ContactQuery, Paged};
use crate::http::auth::{Need, scopes};
use crate::http::error::ApiResult;
use crate::http::json::AppJson;
use crate::http::path::AppPath;
use crate::http::query::AppQuery;
use crate::state::AppState;

/// Reads a contact id from the path; anything not an integer is no contact.
fn contact_id(raw: &str) -> Result<i64, Error> {
    raw.parse().map_err(|_| Error::NotFound { entity: "contact" })
}

/// Create a contact.
#[utoipa::path(post, path = "/v1/contacts", tag = "contacts", request_body = ContactIn,
    responses((status = 201, description = "The new contact", body = ContactOut), CommonErrors),
    security(("bearer" = ["contacts:write"]), ("api_key" = ["contacts:write"])))]
pub async fn create_contact(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<ContactOut>)> {
    let changes = ContactChanges::from_json(body)?;
    let contact = state.store.create_contact(auth.workspace(), changes).await?;
    Ok((StatusCode::CREATED, Json(contact.into())))
}

/// One contact.
#[utoipa::path(get, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = i64, Path, description = "Contact id")),
    responses((status = 200, description = "The contact", body = ContactOut), CommonErrors),
    security(("bearer" = ["contacts:read"]), ("api_key" = ["contacts:read"])))]
pub async fn get_contact(
    auth: Need<scopes::ContactsRead>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<ContactOut>> {
    Ok(Json(state.store.get_contact(auth.workspace(), contact_id(&id)?).await?.into()))
}

/// Change a contact: identities, trait operations, subscription status; all or nothing.
#[utoipa::path(patch, path = "/v1/contacts/{id}", tag = "contacts", request_body = ContactIn,
    params(("id" = i64, Path, description = "Contact id")),
    responses((status = 200, description = "The contact after the change", body = ContactOut), CommonErrors),
    security(("bearer" = ["contacts:write"]), ("api_key" = ["contacts:write"])))]
pub async fn update_contact(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<Json<ContactOut>> {
    let id = contact_id(&id)?;
    let changes = ContactChanges::from_json(body)?;
    Ok(Json(state.store.update_contact(auth.workspace(), id, changes).await?.into()))
}

/// Delete a contact.
#[utoipa::path(delete, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = i64, Path, description = "Contact id")),
    responses((status = 204, description = "Deleted"), CommonErrors),
    security(("bearer" = ["contacts:write"]), ("api_key" = ["contacts:write"])))]
pub async fn delete_contact(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_contact(auth.workspace(), contact_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List contacts by id, optionally filtered by one identity.
#[utoipa::path(get, path = "/v1/contacts", tag = "contacts", params(ContactQuery),
    responses((status = 200, description = "A page of contacts", body = Paged<ContactOut>), CommonErrors),
    security(("bearer" = ["contacts:read"]), ("api_key" = ["contacts:read"])))]
pub async fn list_contacts(
    auth: Need<scopes::ContactsRead>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<ContactQuery>,
) -> ApiResult<Json<Paged<ContactOut>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let given: Vec<(IdentityKind, &String)> = [
        (IdentityKind::Email, q.email.as_ref()),
        (IdentityKind::Mobile, q.mobile.as_ref()),
        (IdentityKind::ExternalId, q.external_id.as_ref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let filter = match given.as_slice() {
        [] => ContactFilter::default(),
        [(kind, value)] => ContactFilter { identity: Some((*kind, kind.normalise(value)?)) },
        _ => {
            return Err(Error::bad_request("filter by one of email, mobile or external_id at a time").into());
        }
    };
    let page = state.store.list_contacts(auth.workspace(), filter, page).await?;
    Ok(Json(Paged::from_page(page, ContactOut::from)))
}
