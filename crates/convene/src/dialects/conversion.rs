//! The Conversion.ai external API at `/compat/conversion/api/v1`: batch
//! upserts of contacts and companies, contacts by email, companies by
//! external id, subscription status in batches, and engagements.
//!
//! Every answer is `{"success": true, "data": …}` or `{"success": false,
//! "error": {"code", "message", "details"?}}`; errors are rendered once by
//! this dialect's layer from core's error table. Batches are all or
//! nothing. Decisions: docs/compat/conversion.md.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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

/// The dialect's routes, with its envelope.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/contacts/batch", post(batch_contacts))
        .route("/api/v1/contacts/by-email/{email}", get(get_contact).delete(delete_contact))
        .route("/api/v1/contacts/batch-subscription", post(batch_subscription))
        .route("/api/v1/contacts/engagements", post(engagement))
        .route("/api/v1/companies/batch", post(batch_companies))
        .route("/api/v1/companies/by-external-id/{id}", get(get_company).delete(delete_company))
        .fallback(crate::api::ops::not_found)
        .method_not_allowed_fallback(crate::api::ops::method_not_allowed)
        .layer(middleware::from_fn(|req, next| super::rewrite_errors_and_status(req, next, render_error)))
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

#[derive(Serialize)]
struct Success<T: Serialize> {
    success: bool,
    data: T,
}

fn ok<T: Serialize>(status: StatusCode, data: T) -> Response {
    (status, axum::Json(Success { success: true, data })).into_response()
}

/// A contact as the vendor shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContactData {
    id: i64,
    email: Option<String>,
    variables: Map<String, Value>,
    external_contact: Value,
    subscription_status: SubscriptionStatus,
    created_at: String,
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
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CompanyData {
    id: String,
    base_domain: Option<String>,
    variables: Map<String, Value>,
    created_at: String,
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
    let updated = outcome.count(RowStatus::Updated);
    let objects = outcome.rows.into_iter().filter_map(|r| r.outcome.ok()).map(|(_, o)| D::from(o)).collect();
    (created, updated, objects)
}

#[derive(Serialize)]
struct ContactBatchData {
    created: usize,
    updated: usize,
    contacts: Vec<ContactData>,
}

#[derive(Serialize)]
struct CompanyBatchData {
    created: usize,
    updated: usize,
    companies: Vec<CompanyData>,
}

/// `POST /contacts/batch`: upsert contacts by email, all or nothing.
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

/// `GET /contacts/by-email/{email}`
pub async fn get_contact(
    auth: Need<scopes::ContactsRead>,
    State(state): State<AppState>,
    AppPath(email): AppPath<String>,
) -> ApiResult<Response> {
    let contact = contact_by_email(&state, auth.workspace(), &email).await?;
    Ok(ok(StatusCode::OK, ContactData::from(contact)))
}

/// `DELETE /contacts/by-email/{email}`
pub async fn delete_contact(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    AppPath(email): AppPath<String>,
) -> ApiResult<Response> {
    let contact = contact_by_email(&state, auth.workspace(), &email).await?;
    state.store.delete_contact(auth.workspace(), contact.id).await?;
    #[derive(Serialize)]
    struct Deleted {
        deleted: bool,
        email: Option<String>,
    }
    Ok(ok(StatusCode::OK, Deleted { deleted: true, email: contact.state.email }))
}

/// `POST /contacts/batch-subscription`: set the status of existing
/// contacts, all or nothing.
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
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Row {
        email: Option<String>,
        subscription_status: SubscriptionStatus,
    }
    let contacts: Vec<Row> = outcome
        .rows
        .into_iter()
        .filter_map(|r| r.outcome.ok())
        .map(|(_, c)| Row { email: c.state.email, subscription_status: c.state.subscription_status })
        .collect();
    #[derive(Serialize)]
    struct Data {
        updated: usize,
        contacts: Vec<Row>,
    }
    Ok(ok(StatusCode::OK, Data { updated: contacts.len(), contacts }))
}

/// `POST /contacts/engagements`: record an engagement on a known contact.
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
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        id: i64,
        contact_email: String,
        #[serde(rename = "type")]
        kind: &'static str,
        name: String,
        description: Option<String>,
        data: Map<String, Value>,
        created_at: String,
    }
    Ok(ok(
        StatusCode::CREATED,
        Data {
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

/// `POST /companies/batch`: upsert companies by id, all or nothing.
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

/// `GET /companies/by-external-id/{id}`
pub async fn get_company(
    auth: Need<scopes::CompaniesRead>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<Response> {
    let company = company_by_external_id(&state, auth.workspace(), &id).await?;
    Ok(ok(StatusCode::OK, CompanyData::from(company)))
}

/// `DELETE /companies/by-external-id/{id}`
pub async fn delete_company(
    auth: Need<scopes::CompaniesWrite>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<Response> {
    let company = company_by_external_id(&state, auth.workspace(), &id).await?;
    state.store.delete_company(auth.workspace(), company.id).await?;
    #[derive(Serialize)]
    struct Deleted {
        deleted: bool,
        id: String,
    }
    Ok(ok(StatusCode::OK, Deleted { deleted: true, id: company.external_id }))
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
