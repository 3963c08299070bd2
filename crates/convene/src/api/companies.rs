//! `/v1/companies`: native company CRUD, the company's contacts, and the
//! batch upsert.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convene_core::Error;
use convene_core::batch::{BatchOptions, CompanyUpsert};
use convene_core::company::{CompanyChanges, CompanyFilter, normalise_domain};
use convene_core::contact::ContactFilter;
use convene_core::identity::normalise_external_id;
use convene_core::page::PageRequest;
use serde_json::{Map, Value};

use super::CommonErrors;
use super::dto::{
    BatchOut, BatchQuery, CompanyBatchIn, CompanyIn, CompanyOut, CompanyQuery, ContactOut, CreateCompany, PageParams,
    Paged,
};
use crate::http::auth::{Need, scopes};
use crate::http::error::ApiResult;
use crate::http::json::{AppJson, BatchJson};
use crate::http::path::AppPath;
use crate::http::query::AppQuery;
use crate::state::AppState;

/// Reads a company id from the path; anything not an integer is no company.
fn company_id(raw: &str) -> Result<i64, Error> {
    raw.parse().map_err(|_| Error::NotFound { entity: "company" })
}

/// Create a company.
#[utoipa::path(post, path = "/v1/companies", tag = "companies", request_body = CreateCompany,
    responses((status = 201, description = "The new company", body = CompanyOut), CommonErrors),
    security(("bearer" = ["companies:write"]), ("api_key" = ["companies:write"])))]
pub async fn create_company(
    auth: Need<scopes::CompaniesWrite>,
    State(state): State<AppState>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<CompanyOut>)> {
    let changes = CompanyChanges::from_json(body)?;
    changes.require_external_id()?;
    let company = state.store.create_company(auth.workspace(), changes).await?;
    Ok((StatusCode::CREATED, Json(company.into())))
}

/// One company.
#[utoipa::path(get, path = "/v1/companies/{id}", tag = "companies",
    params(("id" = i64, Path, description = "Company id")),
    responses((status = 200, description = "The company", body = CompanyOut), CommonErrors),
    security(("bearer" = ["companies:read"]), ("api_key" = ["companies:read"])))]
pub async fn get_company(
    auth: Need<scopes::CompaniesRead>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<CompanyOut>> {
    Ok(Json(state.store.get_company(auth.workspace(), company_id(&id)?).await?.into()))
}

/// Change a company: external id, domain, trait operations; all or nothing.
#[utoipa::path(patch, path = "/v1/companies/{id}", tag = "companies", request_body = CompanyIn,
    params(("id" = i64, Path, description = "Company id")),
    responses((status = 200, description = "The company after the change", body = CompanyOut), CommonErrors),
    security(("bearer" = ["companies:write"]), ("api_key" = ["companies:write"])))]
pub async fn update_company(
    auth: Need<scopes::CompaniesWrite>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<Json<CompanyOut>> {
    let id = company_id(&id)?;
    let changes = CompanyChanges::from_json(body)?;
    Ok(Json(state.store.update_company(auth.workspace(), id, changes).await?.into()))
}

/// Delete a company; its contacts stay, unlinked.
#[utoipa::path(delete, path = "/v1/companies/{id}", tag = "companies",
    params(("id" = i64, Path, description = "Company id")),
    responses((status = 204, description = "Deleted"), CommonErrors),
    security(("bearer" = ["companies:write"]), ("api_key" = ["companies:write"])))]
pub async fn delete_company(
    auth: Need<scopes::CompaniesWrite>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_company(auth.workspace(), company_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List companies by id, optionally by external id or domain.
#[utoipa::path(get, path = "/v1/companies", tag = "companies", params(CompanyQuery),
    responses((status = 200, description = "A page of companies", body = Paged<CompanyOut>), CommonErrors),
    security(("bearer" = ["companies:read"]), ("api_key" = ["companies:read"])))]
pub async fn list_companies(
    auth: Need<scopes::CompaniesRead>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<CompanyQuery>,
) -> ApiResult<Json<Paged<CompanyOut>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let filter = CompanyFilter {
        external_id: q.external_id.as_deref().map(normalise_external_id).transpose()?,
        domain: q.domain.as_deref().map(|d| normalise_domain(d, "domain")).transpose()?,
    };
    let page = state.store.list_companies(auth.workspace(), filter, page).await?;
    Ok(Json(Paged::from_page(page, CompanyOut::from)))
}

/// The contacts linked to a company, by id.
#[utoipa::path(get, path = "/v1/companies/{id}/contacts", tag = "companies", params(("id" = i64, Path, description = "Company id"), PageParams),
    responses((status = 200, description = "A page of contacts", body = Paged<ContactOut>), CommonErrors),
    security(("bearer" = ["contacts:read"]), ("api_key" = ["contacts:read"])))]
pub async fn company_contacts(
    auth: Need<scopes::ContactsRead>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<PageParams>,
) -> ApiResult<Json<Paged<ContactOut>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let id = company_id(&id)?;
    state.store.get_company(auth.workspace(), id).await?;
    let filter = ContactFilter { company_id: Some(id), ..Default::default() };
    let page = state.store.list_contacts(auth.workspace(), filter, page).await?;
    Ok(Json(Paged::from_page(page, ContactOut::from)))
}

/// Upsert up to 1,000 companies by external id in one transaction, with a
/// result per row; `?dry_run=true` writes nothing.
#[utoipa::path(post, path = "/v1/companies/batch", tag = "companies", request_body = CompanyBatchIn, params(BatchQuery),
    responses((status = 200, description = "One result per row", body = BatchOut<CompanyOut>), CommonErrors),
    security(("bearer" = ["companies:write"]), ("api_key" = ["companies:write"])))]
pub async fn batch_companies(
    auth: Need<scopes::CompaniesWrite>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<BatchQuery>,
    BatchJson(body): BatchJson<Map<String, Value>>,
) -> ApiResult<Json<BatchOut<CompanyOut>>> {
    let rows = super::contacts::batch_rows(body, "companies")?;
    let (mut good, mut failures) = (Vec::new(), Vec::new());
    for (row, value) in rows.into_iter().enumerate() {
        let parsed = match value {
            Value::Object(map) => CompanyChanges::from_json(map),
            _ => Err(Error::bad_request("each row must be an object")),
        };
        match parsed.and_then(|changes| {
            let external_id = changes.require_external_id()?.to_string();
            Ok(CompanyUpsert { row, external_id, changes })
        }) {
            Ok(upsert) => good.push(upsert),
            Err(e) => failures.push((row, e)),
        }
    }
    let dry_run = q.dry_run.unwrap_or(false);
    let options = BatchOptions { dry_run, all_or_nothing: false };
    let outcome = state.store.upsert_companies(auth.workspace(), good, options).await?.with_failures(failures);
    Ok(Json(BatchOut::of(outcome, dry_run, CompanyOut::from).listing(q.results)))
}
