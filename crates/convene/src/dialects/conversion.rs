//! The Conversion.ai external API at `/compat/conversion/api/v1`: batch
//! upserts of contacts and companies, contacts by email, companies by
//! external id, subscription status in batches, and engagements.
//!
//! Every answer is `{"success": true, "data": …}` or `{"success": false,
//! "error": {"code", "message", "details"?}}`; errors are rendered once by
//! this dialect's layer from core's error table. Batches are all or
//! nothing. Decisions: docs/compat/conversion.md.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use convene_core::batch::{BatchOptions, BatchOutcome, CompanyUpsert, ContactUpsert, RowStatus, first_duplicate};
use convene_core::company::{Company, CompanyChanges, CompanyFilter, domain_of, external_id_of};
use convene_core::contact::{Contact, ContactChanges, ContactFilter, SubscriptionStatus};
use convene_core::event::new_engagement;
use convene_core::identity::{IdentityKind, normalise_email};
use convene_core::merge::TraitOp;
use convene_core::page::PageRequest;
use convene_core::{Error, ErrorCode, Result, ids};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::{IntoResponses, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::contacts::batch_rows;
use crate::http::auth::{Need, scopes};
use crate::http::error::{ApiResult, ErrorInfo};
use crate::http::json::{AppJson, BatchJson};
use crate::http::path::AppPath;
use crate::state::AppState;

/// What changes made through this dialect record as their source.
const SOURCE: &str = "conversion";
/// The trait that keeps a contact's `externalContact` as given.
pub const EXTERNAL_CONTACT_TRAIT: &str = "external_contact";

/// The tag of the dialect's operations in `/openapi.json`.
pub const TAG: &str = "compat: conversion";

/// The dialect's routes (each with its OpenAPI entry), with its envelope.
pub fn router() -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::with_openapi(openapi())
        .routes(routes!(batch_contacts))
        .routes(routes!(get_contact, delete_contact))
        .routes(routes!(batch_subscription))
        .routes(routes!(engagement))
        .routes(routes!(batch_companies))
        .routes(routes!(get_company, delete_company));
    super::enveloped(routes, super::Envelope::StatusAndBody(render_error))
}

/// The dialect's tag, security scheme and error envelope.
fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(OpenApi)]
    #[openapi(components(schemas(ConversionError)))]
    struct Schemas;
    let scheme = super::doc::bearer();
    let mut doc = super::doc::frame(
        TAG,
        "The Conversion.ai external API: change the base URL `https://pub-api.conversion.ai/api/v1` to \
         `http://convene-host/compat/conversion/api/v1`. Every answer is `{\"success\": true, \"data\"}` or \
         `{\"success\": false, \"error\": {\"code\", \"message\", \"details\"?}}` with the vendor's codes \
         and statuses; batches are all or nothing. Decisions: docs/compat/conversion.md.",
        vec![("conversion_bearer", scheme)],
    );
    doc.merge(Schemas::openapi());
    doc
}

/// The vendor's code and the status sent for each of core's codes.
pub fn vendor_code(code: ErrorCode) -> (u16, &'static str) {
    match code {
        ErrorCode::Validation | ErrorCode::InvalidValue | ErrorCode::UnsupportedMediaType => (400, "VALIDATION_ERROR"),
        ErrorCode::PayloadTooLarge => (413, "VALIDATION_ERROR"),
        ErrorCode::Unauthenticated => (401, "UNAUTHORIZED"),
        ErrorCode::Forbidden => (403, "UNAUTHORIZED"),
        ErrorCode::NotFound => (404, "NOT_FOUND"),
        ErrorCode::MethodNotAllowed => (405, "NOT_FOUND"),
        ErrorCode::Conflict => (409, "DUPLICATE_ERROR"),
        ErrorCode::RateLimited => (429, "RATE_LIMIT_EXCEEDED"),
        ErrorCode::Unavailable => (503, "INTERNAL_ERROR"),
        ErrorCode::Internal => (500, "INTERNAL_ERROR"),
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    success: bool,
    error: VendorError<'a>,
}

#[derive(Serialize)]
struct VendorError<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
}

#[derive(Serialize)]
struct Details<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    row: Option<usize>,
}

/// The vendor's status and body for an error.
pub fn render_error(info: &ErrorInfo) -> (u16, String) {
    let (status, code) = vendor_code(info.code);
    let details =
        (info.field.is_some() || info.row.is_some()).then_some(Details { field: info.field.as_deref(), row: info.row });
    let body = ErrorBody { success: false, error: VendorError { code, message: &info.message, details } };
    (status, serde_json::to_string(&body).unwrap_or_else(|_| r#"{"success":false}"#.into()))
}

/// Every success: `{"success": true, "data"}`.
#[derive(Serialize, ToSchema)]
#[schema(as = ConversionOk)]
pub struct Success<T: Serialize + ToSchema> {
    /// Always `true`.
    success: bool,
    /// The answer.
    data: T,
}

/// The vendor's error body (documentation of what [`render_error`] writes).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConversionError {
    /// Always `false`.
    success: bool,
    /// The error.
    error: ConversionErrorBody,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConversionErrorBody {
    /// The vendor's code.
    code: ConversionCode,
    /// A sentence for a person (`contacts[3].email: …` for a row).
    message: String,
    /// The field and row concerned, when the error names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    details: Option<ConversionErrorDetails>,
}

/// The field and row an error names.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConversionErrorDetails {
    /// The field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    field: Option<String>,
    /// The 0-based index in the request's array.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 0)]
    row: Option<usize>,
}

/// The vendor's error codes.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)]
pub enum ConversionCode {
    /// 400 (413 for a body over the limit).
    ValidationError,
    /// 401, or 403 for a key without the route's scope.
    Unauthorized,
    /// 404 (405 for a known route with another method).
    NotFound,
    /// 409: the same key twice in one batch, or a value another contact holds.
    DuplicateError,
    /// 429.
    RateLimitExceeded,
    /// 500 or 503.
    InternalError,
}

/// The errors every route may answer, in the vendor's envelope.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ConversionErrors {
    /// An invalid body or row (naming it), or a body that is not JSON.
    #[response(status = 400, description = "VALIDATION_ERROR")]
    BadRequest(ConversionError),
    /// No key, or an unknown, expired or revoked one.
    #[response(status = 401, description = "UNAUTHORIZED: missing or invalid key")]
    Unauthenticated(ConversionError),
    /// The key lacks the route's scope.
    #[response(status = 403, description = "UNAUTHORIZED: the key lacks the scope")]
    Forbidden(ConversionError),
    /// Too many requests.
    #[response(status = 429, description = "RATE_LIMIT_EXCEEDED; see Retry-After",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    RateLimited(ConversionError),
    /// Server fault.
    #[response(status = 500, description = "INTERNAL_ERROR")]
    Internal(ConversionError),
    /// Overloaded or shutting down.
    #[response(status = 503, description = "INTERNAL_ERROR (unavailable); see Retry-After",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(ConversionError),
}

fn ok<T: Serialize + ToSchema>(status: StatusCode, data: T) -> Response {
    (status, axum::Json(Success { success: true, data })).into_response()
}

/// A contact as the vendor shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConversionContact)]
pub struct ContactData {
    /// convene's id of the contact.
    id: i64,
    /// Lower-cased email.
    #[schema(required = true)]
    email: Option<String>,
    /// Its traits.
    #[schema(value_type = Object)]
    variables: Map<String, Value>,
    /// As last given (`null` when none).
    #[schema(value_type = Option<Object>, required = true)]
    external_contact: Value,
    /// SUBSCRIBED, UNSUBSCRIBED or PENDING.
    subscription_status: SubscriptionStatus,
    /// RFC 3339 UTC with milliseconds.
    #[schema(format = DateTime)]
    created_at: String,
    /// RFC 3339 UTC with milliseconds.
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<Contact> for ContactData {
    fn from(c: Contact) -> Self {
        let mut variables = c.state.traits;
        let external_contact = variables.remove(EXTERNAL_CONTACT_TRAIT).unwrap_or(Value::Null);
        ContactData {
            id: c.id,
            email: c.state.email,
            variables,
            external_contact,
            subscription_status: c.state.subscription_status,
            created_at: ids::fmt_time(&c.created_at),
            updated_at: ids::fmt_time(&c.updated_at),
        }
    }
}

/// A company as the vendor shows it (`id` is the caller's id).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConversionCompany)]
pub struct CompanyData {
    /// Your id of the company.
    id: String,
    /// Lower-cased base domain.
    #[schema(required = true)]
    base_domain: Option<String>,
    /// Its traits.
    #[schema(value_type = Object)]
    variables: Map<String, Value>,
    /// RFC 3339 UTC with milliseconds.
    #[schema(format = DateTime)]
    created_at: String,
    /// RFC 3339 UTC with milliseconds.
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<Company> for CompanyData {
    fn from(c: Company) -> Self {
        CompanyData {
            id: c.external_id,
            base_domain: c.domain,
            variables: c.traits,
            created_at: ids::fmt_time(&c.created_at),
            updated_at: ids::fmt_time(&c.updated_at),
        }
    }
}

/// Names row `row` of array `list` in an error: the row goes to `details`,
/// and the message says `contacts[3].email: …`.
fn at_row(e: Error, list: &str, row: usize) -> Error {
    let path = |field: &Option<String>| match field {
        Some(f) => format!("{list}[{row}].{f}"),
        None => format!("{list}[{row}]"),
    };
    match e {
        Error::Validation { message, field, .. } => {
            Error::Validation { message: format!("{}: {message}", path(&field)), field, row: Some(row) }
        }
        Error::InvalidValue { message, field, .. } => {
            let p = path(&Some(field.clone()));
            Error::InvalidValue { message: format!("{p}: {message}"), field, row: Some(row) }
        }
        other => other.at_row(row),
    }
}

/// The first failed row of an all-or-nothing batch as the request's error.
fn first_failure<T>(outcome: BatchOutcome<T>, list: &str) -> Result<BatchOutcome<T>> {
    if outcome.failed() == 0 {
        return Ok(outcome);
    }
    let failed = outcome.rows.into_iter().find_map(|r| r.outcome.err().map(|e| (r.row, e)));
    match failed {
        Some((row, e)) => Err(at_row(e, list, row)),
        None => Err(Error::Internal("a failed batch without a failed row".into())),
    }
}

/// Reads a required string field.
fn required_str<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a str> {
    match object.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(Error::validation(field, format!("{field} is required")))
        }
        Some(_) => Err(Error::validation(field, format!("{field} must be a string"))),
    }
}

/// Reads an optional object field.
fn optional_object(object: &mut Map<String, Value>, field: &str) -> Result<Option<Map<String, Value>>> {
    match object.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(Error::validation(field, format!("{field} must be an object"))),
    }
}

/// Refuses keys a row does not have.
fn no_other_keys(object: &Map<String, Value>, known: &[&str]) -> Result<()> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(Error::validation(k.as_str(), format!("unknown field '{k}'; a row has {}", known.join(", ")))),
        None => Ok(()),
    }
}

/// One row of `POST /contacts/batch`.
fn contact_row(value: Value) -> Result<(String, ContactChanges)> {
    let Value::Object(mut object) = value else {
        return Err(Error::bad_request("each contact must be an object with an email"));
    };
    no_other_keys(&object, &["email", "variables", "externalContact"])?;
    let email = normalise_email(required_str(&object, "email")?)?;
    let mut variables = optional_object(&mut object, "variables")?.unwrap_or_default();
    let external = object.remove("externalContact");
    let mut changes = ContactChanges { source: Some(SOURCE.into()), ..Default::default() };
    changes.set_identity(IdentityKind::Email, &Value::String(email.clone()))?;
    // Identity names among the variables are identities (an `external_id`
    // variable sets the contact's external id); `email` must agree.
    let mut identities = Map::new();
    for kind in IdentityKind::ALL {
        if let Some(v) = variables.remove(kind.field()) {
            identities.insert(kind.field().to_string(), v);
        }
    }
    changes.add_traits(identities).map_err(|e| prefix_field(e, "variables"))?;
    if variables.contains_key(EXTERNAL_CONTACT_TRAIT) {
        return Err(Error::validation(
            "variables",
            format!("'{EXTERNAL_CONTACT_TRAIT}' is kept for externalContact; send it as externalContact"),
        ));
    }
    changes.traits.extend(TraitOp::parse_plain_map(&variables).map_err(|e| prefix_field(e, "variables"))?);
    match external {
        None => {}
        Some(Value::Null) => changes.traits.push((EXTERNAL_CONTACT_TRAIT.into(), TraitOp::Unset)),
        Some(Value::Object(map)) => {
            let value = Value::Object(map);
            let size = serde_json::to_vec(&value).map(|v| v.len()).unwrap_or(usize::MAX);
            if size > convene_core::limits::MAX_TRAIT_VALUE_BYTES {
                return Err(Error::validation(
                    "externalContact",
                    format!("externalContact is larger than {} bytes", convene_core::limits::MAX_TRAIT_VALUE_BYTES),
                ));
            }
            changes.traits.push((EXTERNAL_CONTACT_TRAIT.into(), TraitOp::Set(value)));
        }
        Some(_) => return Err(Error::validation("externalContact", "externalContact must be an object")),
    }
    Ok((email, changes))
}

/// `variables.first_name` rather than `first_name` in errors about variables.
fn prefix_field(e: Error, parent: &str) -> Error {
    match e {
        Error::Validation { message, field, row } => Error::Validation {
            message,
            field: Some(field.map_or(parent.to_string(), |f| format!("{parent}.{f}"))),
            row,
        },
        other => other,
    }
}

/// Refuses the same key twice in one batch.
fn refuse_duplicates(keys: &[(usize, String)], list: &str, field: &str) -> Result<()> {
    if let Some((key, first, again)) = first_duplicate(keys.iter().map(|(r, k)| (*r, k.as_str()))) {
        return Err(Error::Duplicate {
            field: field.to_string(),
            message: format!("{list}[{again}].{field}: '{key}' appears twice in this batch (also {list}[{first}])"),
            row: Some(again),
        });
    }
    Ok(())
}

/// Counts and objects of a committed batch.
fn batch_parts<T, D: From<T>>(outcome: BatchOutcome<T>) -> (usize, usize, Vec<D>) {
    let created = outcome.count(RowStatus::Created);
    // The vendor knows created and updated only: a row left as it was is updated.
    let updated = outcome.count(RowStatus::Updated) + outcome.count(RowStatus::Unchanged);
    let objects = outcome.rows.into_iter().filter_map(|r| r.outcome.ok()).map(|(_, o)| D::from(o)).collect();
    (created, updated, objects)
}

/// The answer of a contact batch.
#[derive(Serialize, ToSchema)]
#[schema(as = ConversionContactBatch)]
pub struct ContactBatchData {
    /// Contacts created.
    created: usize,
    /// Contacts found (changed or left as they were).
    updated: usize,
    /// Every contact of the batch, in request order.
    contacts: Vec<ContactData>,
}

/// The answer of a company batch.
#[derive(Serialize, ToSchema)]
#[schema(as = ConversionCompanyBatch)]
pub struct CompanyBatchData {
    /// Companies created.
    created: usize,
    /// Companies found (changed or left as they were).
    updated: usize,
    /// Every company of the batch, in request order.
    companies: Vec<CompanyData>,
}

/// Upsert contacts by email, all or nothing.
#[utoipa::path(post, path = "/api/v1/contacts/batch", tag = TAG, operation_id = "conversion_batch_contacts",
    request_body(content = ConversionContactsIn, content_type = "application/json"),
    responses((status = 200, description = "Every contact written", body = Success<ContactBatchData>),
        (status = 409, description = "DUPLICATE_ERROR: an email twice, or an identity another contact holds",
            body = ConversionError),
        (status = 413, description = "VALIDATION_ERROR: body over 8 MiB", body = ConversionError),
        ConversionErrors),
    security(("conversion_bearer" = ["contacts:write"])))]
pub async fn batch_contacts(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    BatchJson(body): BatchJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let rows = batch_rows(body, "contacts")?;
    let mut upserts = Vec::with_capacity(rows.len());
    let mut emails = Vec::with_capacity(rows.len());
    for (row, value) in rows.into_iter().enumerate() {
        let (email, changes) = contact_row(value).map_err(|e| at_row(e, "contacts", row))?;
        emails.push((row, email.clone()));
        upserts.push(ContactUpsert { row, lookups: vec![(IdentityKind::Email, email)], changes, create: true });
    }
    refuse_duplicates(&emails, "contacts", "email")?;
    let options = BatchOptions { dry_run: false, all_or_nothing: true };
    let outcome = state.store.upsert_contacts(auth.workspace(), upserts, options).await?;
    let outcome = first_failure(outcome, "contacts")?;
    let (created, updated, contacts) = batch_parts(outcome);
    Ok(ok(StatusCode::OK, ContactBatchData { created, updated, contacts }))
}

/// The contact holding an email in the key's workspace.
async fn contact_by_email(state: &AppState, ws: &str, email: &str) -> Result<Contact> {
    let email = normalise_email(email).map_err(|_| Error::NotFound { entity: "contact" })?;
    let filter = ContactFilter { identity: Some((IdentityKind::Email, email)), ..Default::default() };
    let page = state.store.list_contacts(ws, filter, PageRequest::parse(None, Some(1))?).await?;
    page.items.into_iter().next().ok_or(Error::NotFound { entity: "contact" })
}

/// The contact holding an email.
#[utoipa::path(get, path = "/api/v1/contacts/by-email/{email}", tag = TAG, operation_id = "conversion_get_contact",
    params(("email" = String, Path, description = "The email (matched case-insensitively)",
        example = "seed@example.com")),
    responses((status = 200, description = "The contact", body = Success<ContactData>),
        (status = 404, description = "NOT_FOUND: no contact holds it", body = ConversionError),
        ConversionErrors),
    security(("conversion_bearer" = ["contacts:read"])))]
pub async fn get_contact(
    auth: Need<scopes::ContactsRead>,
    State(state): State<AppState>,
    AppPath(email): AppPath<String>,
) -> ApiResult<Response> {
    let contact = contact_by_email(&state, auth.workspace(), &email).await?;
    Ok(ok(StatusCode::OK, ContactData::from(contact)))
}

/// Delete the contact holding an email.
#[utoipa::path(delete, path = "/api/v1/contacts/by-email/{email}", tag = TAG,
    operation_id = "conversion_delete_contact",
    params(("email" = String, Path, description = "The email (matched case-insensitively)",
        example = "seed@example.com")),
    responses((status = 200, description = "Deleted", body = Success<DeletedContact>),
        (status = 404, description = "NOT_FOUND: no contact holds it", body = ConversionError),
        ConversionErrors),
    security(("conversion_bearer" = ["contacts:write"])))]
pub async fn delete_contact(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    AppPath(email): AppPath<String>,
) -> ApiResult<Response> {
    let contact = contact_by_email(&state, auth.workspace(), &email).await?;
    state.store.delete_contact(auth.workspace(), contact.id).await?;
    Ok(ok(StatusCode::OK, DeletedContact { deleted: true, email: contact.state.email }))
}

/// The answer of a contact delete.
#[derive(Serialize, ToSchema)]
#[schema(as = ConversionDeletedContact)]
pub struct DeletedContact {
    /// Always `true`.
    deleted: bool,
    /// The contact's email.
    #[schema(required = true)]
    email: Option<String>,
}

/// Set the subscription status of existing contacts, all or nothing.
#[utoipa::path(post, path = "/api/v1/contacts/batch-subscription", tag = TAG,
    operation_id = "conversion_batch_subscription",
    request_body(content = ConversionSubscriptionsIn, content_type = "application/json"),
    responses((status = 200, description = "Every status set", body = Success<SubscriptionData>),
        (status = 404, description = "NOT_FOUND: no contact with a row's email (nothing written)",
            body = ConversionError),
        (status = 409, description = "DUPLICATE_ERROR: an email twice in the batch", body = ConversionError),
        (status = 413, description = "VALIDATION_ERROR: body over 8 MiB", body = ConversionError),
        ConversionErrors),
    security(("conversion_bearer" = ["contacts:write"])))]
pub async fn batch_subscription(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    BatchJson(body): BatchJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let rows = batch_rows(body, "contacts")?;
    let mut upserts = Vec::with_capacity(rows.len());
    let mut emails = Vec::with_capacity(rows.len());
    for (row, value) in rows.into_iter().enumerate() {
        let parsed = (|| {
            let Value::Object(object) = value else {
                return Err(Error::bad_request("each row must be {\"email\", \"subscriptionStatus\"}"));
            };
            no_other_keys(&object, &["email", "subscriptionStatus"])?;
            let email = normalise_email(required_str(&object, "email")?)?;
            let status = match object.get("subscriptionStatus") {
                Some(Value::String(s)) if ["SUBSCRIBED", "UNSUBSCRIBED", "PENDING"].contains(&s.as_str()) => {
                    SubscriptionStatus::parse(s)
                }
                _ => None,
            }
            .ok_or_else(|| {
                Error::validation(
                    "subscriptionStatus",
                    "subscriptionStatus must be SUBSCRIBED, UNSUBSCRIBED or PENDING",
                )
            })?;
            Ok((email, status))
        })();
        let (email, status) = parsed.map_err(|e| at_row(e, "contacts", row))?;
        emails.push((row, email.clone()));
        let changes =
            ContactChanges { subscription_status: Some(status), source: Some(SOURCE.into()), ..Default::default() };
        upserts.push(ContactUpsert { row, lookups: vec![(IdentityKind::Email, email)], changes, create: false });
    }
    refuse_duplicates(&emails, "contacts", "email")?;
    let options = BatchOptions { dry_run: false, all_or_nothing: true };
    let outcome = state.store.upsert_contacts(auth.workspace(), upserts, options).await?;
    if let Some(row) = outcome.rows.iter().find(|r| matches!(r.outcome, Err(Error::NotFound { .. }))) {
        let email = emails.iter().find(|(r, _)| *r == row.row).map(|(_, e)| e.as_str()).unwrap_or("");
        return Err(Error::RowNotFound {
            message: format!("contacts[{}].email: no contact with email '{email}'", row.row),
            field: "email".into(),
            row: row.row,
        }
        .into());
    }
    let outcome = first_failure(outcome, "contacts")?;
    let contacts: Vec<SubscriptionRow> = outcome
        .rows
        .into_iter()
        .filter_map(|r| r.outcome.ok())
        .map(|(_, c)| SubscriptionRow { email: c.state.email, subscription_status: c.state.subscription_status })
        .collect();
    Ok(ok(StatusCode::OK, SubscriptionData { updated: contacts.len(), contacts }))
}

/// One contact of a subscription batch's answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConversionSubscriptionRow)]
pub struct SubscriptionRow {
    /// The contact's email.
    #[schema(required = true)]
    email: Option<String>,
    /// Its status now.
    subscription_status: SubscriptionStatus,
}

/// The answer of a subscription batch.
#[derive(Serialize, ToSchema)]
#[schema(as = ConversionSubscriptionBatch)]
pub struct SubscriptionData {
    /// Rows in the batch.
    updated: usize,
    /// Every contact of the batch, in request order.
    contacts: Vec<SubscriptionRow>,
}

/// A recorded engagement.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConversionEngagement)]
pub struct EngagementData {
    /// The event's id.
    id: i64,
    /// The contact's email.
    contact_email: String,
    /// Always `ACTIVITY`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "ACTIVITY")]
    kind: &'static str,
    /// The name.
    name: String,
    /// The description.
    #[schema(required = true)]
    description: Option<String>,
    /// The data as given.
    #[schema(value_type = Object)]
    data: Map<String, Value>,
    /// When recorded (RFC 3339 UTC with milliseconds).
    #[schema(format = DateTime)]
    created_at: String,
}

/// Record an engagement on a known contact.
#[utoipa::path(post, path = "/api/v1/contacts/engagements", tag = TAG, operation_id = "conversion_engagement",
    request_body(content = ConversionEngagementIn, content_type = "application/json"),
    responses((status = 201, description = "Recorded", body = Success<EngagementData>),
        (status = 404, description = "NOT_FOUND: no contact with that email", body = ConversionError),
        (status = 413, description = "VALIDATION_ERROR: body over 1 MiB", body = ConversionError),
        ConversionErrors),
    security(("conversion_bearer" = ["events:write"])))]
pub async fn engagement(
    auth: Need<scopes::EventsWrite>,
    State(state): State<AppState>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let mut body = body;
    no_other_keys(&body, &["contactEmail", "type", "name", "description", "data"])?;
    let email = normalise_email(required_str(&body, "contactEmail")?)
        .map_err(|e| Error::validation("contactEmail", e.public_message().replace("email", "contactEmail")))?;
    match body.get("type") {
        Some(Value::String(t)) if t == "ACTIVITY" => {}
        None | Some(Value::Null) => {
            return Err(Error::validation("type", "type is required and must be \"ACTIVITY\"").into());
        }
        Some(_) => return Err(Error::validation("type", "type must be \"ACTIVITY\"").into()),
    }
    let name = required_str(&body, "name")?.to_string();
    let description = required_str(&body, "description")?.to_string();
    let data = optional_object(&mut body, "data")?.unwrap_or_default();
    let event = new_engagement(&name, &description, data, ids::now())?;
    let recorded = state.store.record_event(auth.workspace(), (IdentityKind::Email, email.clone()), event).await?;
    Ok(ok(
        StatusCode::CREATED,
        EngagementData {
            id: recorded.id,
            contact_email: email,
            kind: "ACTIVITY",
            name: recorded.event.name,
            description: recorded.event.description,
            data: recorded.event.properties,
            created_at: ids::fmt_time(&recorded.event.timestamp),
        },
    ))
}

/// One row of `POST /companies/batch`.
fn company_row(value: Value) -> Result<(String, CompanyChanges)> {
    let Value::Object(mut object) = value else {
        return Err(Error::bad_request("each company must be an object with an id"));
    };
    no_other_keys(&object, &["id", "baseDomain", "variables"])?;
    let id = match object.get("id") {
        None | Some(Value::Null) => return Err(Error::validation("id", "id is required")),
        Some(v) => external_id_of(v).map_err(|e| match e {
            Error::Validation { message, row, .. } => {
                Error::Validation { message: message.replace("external_id", "id"), field: Some("id".into()), row }
            }
            other => other,
        })?,
    };
    let domain = match object.get("baseDomain") {
        None => None,
        Some(v) => Some(domain_of(v, "baseDomain")?),
    };
    let variables = optional_object(&mut object, "variables")?.unwrap_or_default();
    let traits = TraitOp::parse_plain_map(&variables).map_err(|e| prefix_field(e, "variables"))?;
    Ok((id.clone(), CompanyChanges { external_id: Some(id), domain, traits }))
}

/// Upsert companies by id, all or nothing.
#[utoipa::path(post, path = "/api/v1/companies/batch", tag = TAG, operation_id = "conversion_batch_companies",
    request_body(content = ConversionCompaniesIn, content_type = "application/json"),
    responses((status = 200, description = "Every company written", body = Success<CompanyBatchData>),
        (status = 409, description = "DUPLICATE_ERROR: an id twice in the batch", body = ConversionError),
        (status = 413, description = "VALIDATION_ERROR: body over 8 MiB", body = ConversionError),
        ConversionErrors),
    security(("conversion_bearer" = ["companies:write"])))]
pub async fn batch_companies(
    auth: Need<scopes::CompaniesWrite>,
    State(state): State<AppState>,
    BatchJson(body): BatchJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let rows = batch_rows(body, "companies")?;
    let mut upserts = Vec::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    for (row, value) in rows.into_iter().enumerate() {
        let (external_id, changes) = company_row(value).map_err(|e| at_row(e, "companies", row))?;
        keys.push((row, external_id.clone()));
        upserts.push(CompanyUpsert { row, external_id, changes });
    }
    refuse_duplicates(&keys, "companies", "id")?;
    let options = BatchOptions { dry_run: false, all_or_nothing: true };
    let outcome = state.store.upsert_companies(auth.workspace(), upserts, options).await?;
    let outcome = first_failure(outcome, "companies")?;
    let (created, updated, companies) = batch_parts(outcome);
    Ok(ok(StatusCode::OK, CompanyBatchData { created, updated, companies }))
}

/// The company with an external id in the key's workspace.
async fn company_by_external_id(state: &AppState, ws: &str, id: &str) -> Result<Company> {
    let id = convene_core::identity::normalise_external_id(id).map_err(|_| Error::NotFound { entity: "company" })?;
    let filter = CompanyFilter { external_id: Some(id), domain: None };
    let page = state.store.list_companies(ws, filter, PageRequest::parse(None, Some(1))?).await?;
    page.items.into_iter().next().ok_or(Error::NotFound { entity: "company" })
}

/// The company with your id.
#[utoipa::path(get, path = "/api/v1/companies/by-external-id/{id}", tag = TAG, operation_id = "conversion_get_company",
    params(("id" = String, Path, description = "Your id of the company", example = "acme")),
    responses((status = 200, description = "The company", body = Success<CompanyData>),
        (status = 404, description = "NOT_FOUND: no company has it", body = ConversionError),
        ConversionErrors),
    security(("conversion_bearer" = ["companies:read"])))]
pub async fn get_company(
    auth: Need<scopes::CompaniesRead>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<Response> {
    let company = company_by_external_id(&state, auth.workspace(), &id).await?;
    Ok(ok(StatusCode::OK, CompanyData::from(company)))
}

/// Delete the company with your id (its contacts are unlinked, not deleted).
#[utoipa::path(delete, path = "/api/v1/companies/by-external-id/{id}", tag = TAG,
    operation_id = "conversion_delete_company",
    params(("id" = String, Path, description = "Your id of the company", example = "acme")),
    responses((status = 200, description = "Deleted", body = Success<DeletedCompany>),
        (status = 404, description = "NOT_FOUND: no company has it", body = ConversionError),
        ConversionErrors),
    security(("conversion_bearer" = ["companies:write"])))]
pub async fn delete_company(
    auth: Need<scopes::CompaniesWrite>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<Response> {
    let company = company_by_external_id(&state, auth.workspace(), &id).await?;
    state.store.delete_company(auth.workspace(), company.id).await?;
    Ok(ok(StatusCode::OK, DeletedCompany { deleted: true, id: company.external_id }))
}

/// The answer of a company delete.
#[derive(Serialize, ToSchema)]
#[schema(as = ConversionDeletedCompany)]
pub struct DeletedCompany {
    /// Always `true`.
    deleted: bool,
    /// Your id of the company.
    id: String,
}

/// `POST /contacts/batch`
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConversionContactsIn {
    /// 1 to 1,000 contacts, each found by email (no email twice).
    #[schema(min_items = 1, max_items = 1000)]
    contacts: Vec<ConversionContactIn>,
}

/// One contact of a batch.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConversionContactIn {
    /// The contact's email (one `@`, a dot in the domain, no spaces; at most 254 bytes).
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// Traits to set.
    #[schema(schema_with = super::doc::variables)]
    variables: Option<Map<String, Value>>,
    /// Any JSON object (at most 64 KiB), stored and returned as given; `null` removes it.
    #[schema(value_type = Option<Object>)]
    external_contact: Option<Value>,
}

/// `POST /contacts/batch-subscription`
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConversionSubscriptionsIn {
    /// 1 to 1,000 existing contacts (no email twice).
    #[schema(min_items = 1, max_items = 1000)]
    contacts: Vec<ConversionSubscriptionIn>,
}

/// One status to set.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConversionSubscriptionIn {
    /// The contact's email (at most 254 bytes).
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// The status (case-sensitive).
    subscription_status: SubscriptionStatus,
}

/// The only engagement type.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[allow(dead_code)]
pub enum EngagementType {
    /// An activity.
    Activity,
}

/// `POST /contacts/engagements`
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConversionEngagementIn {
    /// The contact's email (the contact must exist).
    #[schema(format = Email, max_length = 254)]
    contact_email: String,
    /// Exactly `ACTIVITY`.
    #[serde(rename = "type")]
    kind: EngagementType,
    /// 1 to 200 characters after trimming, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// 1 to 10,000 characters after trimming.
    #[schema(min_length = 1, max_length = 10000)]
    description: String,
    /// Any keys, at most 32 KiB of JSON.
    #[schema(value_type = Option<Object>)]
    data: Option<Map<String, Value>>,
}

/// `POST /companies/batch`
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConversionCompaniesIn {
    /// 1 to 1,000 companies, each found by `id` (no id twice).
    #[schema(min_items = 1, max_items = 1000)]
    companies: Vec<ConversionCompanyIn>,
}

/// One company of a batch.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConversionCompanyIn {
    /// Your id of the company.
    #[schema(schema_with = super::doc::required_identity)]
    id: String,
    /// A domain name (`acme.com`; a scheme, path or port is dropped; at most 253 characters once
    /// reduced); empty or `null` clears it; absent keeps the stored one.
    base_domain: Option<String>,
    /// Traits to set.
    #[schema(schema_with = super::doc::variables)]
    variables: Option<Map<String, Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(e: Error) -> ErrorInfo {
        ErrorInfo { code: e.code(), message: e.public_message(), field: e.field().map(str::to_string), row: e.row() }
    }

    /// Every code of the vendor's table, pinned byte for byte.
    #[test]
    fn every_error_code_renders_in_the_vendor_envelope() {
        let rendered = [
            Error::Validation {
                message: "contacts[2].email: not an email".into(),
                field: Some("email".into()),
                row: Some(2),
            },
            Error::Unauthenticated { reason: "invalid API key" },
            Error::NotFound { entity: "contact" },
            Error::Duplicate { field: "email".into(), message: "duplicate".into(), row: Some(1) },
            Error::RateLimited { retry_after_secs: 3 },
            Error::Internal("disk on fire".into()),
        ]
        .into_iter()
        .map(|e| {
            let (status, body) = render_error(&info(e));
            format!("{status} {body}")
        })
        .collect::<Vec<_>>()
        .join("\n");
        insta::assert_snapshot!(rendered, @r#"
        400 {"success":false,"error":{"code":"VALIDATION_ERROR","message":"contacts[2].email: not an email","details":{"field":"email","row":2}}}
        401 {"success":false,"error":{"code":"UNAUTHORIZED","message":"invalid API key"}}
        404 {"success":false,"error":{"code":"NOT_FOUND","message":"contact not found"}}
        409 {"success":false,"error":{"code":"DUPLICATE_ERROR","message":"duplicate","details":{"field":"email","row":1}}}
        429 {"success":false,"error":{"code":"RATE_LIMIT_EXCEEDED","message":"rate limit exceeded; retry after 3 s"}}
        500 {"success":false,"error":{"code":"INTERNAL_ERROR","message":"internal error; the server log has the details"}}
        "#);
    }

    #[test]
    fn every_core_code_has_a_vendor_code() {
        let known = [
            "VALIDATION_ERROR",
            "UNAUTHORIZED",
            "NOT_FOUND",
            "DUPLICATE_ERROR",
            "RATE_LIMIT_EXCEEDED",
            "INTERNAL_ERROR",
        ];
        for code in ErrorCode::ALL {
            assert!(known.contains(&vendor_code(code).1), "{code:?}");
        }
    }
}
