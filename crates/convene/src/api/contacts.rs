//! `/v1/contacts`: native contact CRUD with trait operations.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convene_core::Error;
use convene_core::batch::{BatchOptions, ContactUpsert, check_batch_size};
use convene_core::contact::{ContactChanges, ContactFilter};
use convene_core::identity::IdentityKind;
use convene_core::ingest::lookups_of;
use convene_core::page::PageRequest;
use serde_json::{Map, Value};

use super::CommonErrors;
use super::dto::{
    BatchOut, ContactBatchIn, ContactBatchQuery, ContactIn, ContactOut, ContactQuery, PageParams, Paged,
    SubscriptionChangeOut,
};
use crate::http::auth::{Need, scopes};
use crate::http::error::ApiResult;
use crate::http::json::{AppJson, BatchJson};
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

/// `erase=true` on a contact's deletion.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Erase: also its events, its messages' content, the job errors and
    /// message ids that carry its identities; suppress the identities.
    pub erase: Option<bool>,
}

/// Delete a contact; with `erase=true`, erase every trace of it.
#[utoipa::path(delete, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = i64, Path, description = "Contact id"), DeleteQuery),
    responses((status = 204, description = "Deleted"),
              (status = 200, description = "Erased: the audit record", body = super::erasures::ErasureOut), CommonErrors),
    security(("bearer" = ["contacts:write"]), ("api_key" = ["contacts:write"])))]
pub async fn delete_contact(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<DeleteQuery>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let id = contact_id(&id)?;
    if q.erase == Some(true) {
        let target = convene_core::erase::EraseTarget::Id(id);
        let out = super::erasures::erase(&state, auth.workspace(), &auth.key.key_id, target).await?;
        return Ok(Json(out).into_response());
    }
    state.store.delete_contact(auth.workspace(), id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
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
        [(kind, value)] => ContactFilter { identity: Some((*kind, kind.normalise(value)?)), ..Default::default() },
        _ => {
            return Err(Error::bad_request("filter by one of email, mobile or external_id at a time").into());
        }
    };
    let page = state.store.list_contacts(auth.workspace(), filter, page).await?;
    Ok(Json(Paged::from_page(page, ContactOut::from)))
}

/// The rows of a batch body `{"<field>": [ … ]}`, 1 to 1,000 of them.
pub fn batch_rows(mut body: Map<String, Value>, field: &str) -> Result<Vec<Value>, Error> {
    let rows = match body.remove(field) {
        Some(Value::Array(rows)) => rows,
        _ => return Err(Error::validation(field, format!("the body must be {{\"{field}\": [ … ]}}"))),
    };
    if let Some(other) = body.keys().next() {
        return Err(Error::validation(other.as_str(), format!("unknown field '{other}'; the body holds only {field}")));
    }
    check_batch_size(rows.len(), field)?;
    Ok(rows)
}

/// Reads one native contact row of a batch, found by `id` when given.
fn contact_row(row: usize, value: Value, id: Option<IdentityKind>) -> Result<ContactUpsert, Error> {
    let Value::Object(map) = value else {
        return Err(Error::bad_request("each row must be a contact object"));
    };
    let changes = ContactChanges::from_json(map)?;
    if changes.company.is_some() {
        return Err(Error::validation(
            "company_id",
            "company_id cannot be set in a batch; use PATCH /v1/contacts/{id}",
        ));
    }
    if let Some(kind) = id {
        let lookups = convene_core::import::id_lookup(&changes, kind)?;
        return Ok(ContactUpsert { row, lookups, changes, create: true });
    }
    let lookups = lookups_of(&changes);
    if lookups.is_empty() {
        return Err(Error::validation(
            "email",
            "each row needs an email, mobile or external_id to find the contact by",
        ));
    }
    Ok(ContactUpsert { row, lookups, changes, create: true })
}

/// Upsert up to 1,000 contacts in one transaction, with a result per row.
/// Each row is found by external_id, else email, else mobile, and created
/// when none holds them; a failed row is reported and the others are kept.
/// `?dry_run=true` runs everything and writes nothing; `?id_column=email`
/// finds rows by that identity only.
#[utoipa::path(post, path = "/v1/contacts/batch", tag = "contacts", request_body = ContactBatchIn, params(ContactBatchQuery),
    responses((status = 200, description = "One result per row", body = BatchOut<ContactOut>), CommonErrors),
    security(("bearer" = ["contacts:write"]), ("api_key" = ["contacts:write"])))]
pub async fn batch_contacts(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<ContactBatchQuery>,
    BatchJson(body): BatchJson<Map<String, Value>>,
) -> ApiResult<Json<BatchOut<ContactOut>>> {
    let id = match q.id_column.as_deref() {
        None => None,
        Some(name) => Some(convene_core::import::contact_id_kind(name)?),
    };
    let rows = batch_rows(body, "contacts")?;
    let (mut good, mut failures) = (Vec::new(), Vec::new());
    for (row, value) in rows.into_iter().enumerate() {
        match contact_row(row, value, id) {
            Ok(upsert) => good.push(upsert),
            Err(e) => failures.push((row, e)),
        }
    }
    let dry_run = q.dry_run.unwrap_or(false);
    let options = BatchOptions { dry_run, all_or_nothing: false };
    let outcome = state.store.upsert_contacts(auth.workspace(), good, options).await?.with_failures(failures);
    Ok(Json(BatchOut::of(outcome, dry_run, ContactOut::from).listing(q.results)))
}

/// A contact's subscription status changes, oldest first.
#[utoipa::path(get, path = "/v1/contacts/{id}/subscription-history", tag = "contacts",
    params(("id" = i64, Path, description = "Contact id"), PageParams),
    responses((status = 200, description = "A page of changes", body = Paged<SubscriptionChangeOut>), CommonErrors),
    security(("bearer" = ["contacts:read"]), ("api_key" = ["contacts:read"])))]
pub async fn subscription_history(
    auth: Need<scopes::ContactsRead>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<PageParams>,
) -> ApiResult<Json<Paged<SubscriptionChangeOut>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let page = state.store.subscription_history(auth.workspace(), contact_id(&id)?, page).await?;
    Ok(Json(Paged::from_page(page, SubscriptionChangeOut::from)))
}
