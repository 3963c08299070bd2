//! The native API (`/v1/…`), the operations endpoints and `/openapi.json`.
//!
//! Routes are registered through `utoipa-axum`, so every route and its
//! OpenAPI entry come from the same `#[utoipa::path]` declaration.

pub mod accounts;
pub mod companies;
pub mod contacts;
pub mod conversations;
pub mod dto;
pub mod erasures;
pub mod exports;
pub mod fields;
pub mod imports;
pub mod ingest;
pub mod keys;
pub mod ops;
pub mod reports;
pub mod reps;
pub mod schema;
pub mod users;
pub mod workspaces;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ErrorEnvelope;
use crate::state::AppState;

/// The error responses every route may give, in the native envelope.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum CommonErrors {
    /// Malformed or invalid request; `field` names the culprit.
    #[response(status = 400, description = "Invalid request (validation_error)")]
    BadRequest(#[to_schema] ErrorEnvelope),
    /// No key, or a malformed, unknown, expired or revoked one.
    #[response(status = 401, description = "Missing or invalid credentials (unauthenticated)")]
    Unauthenticated(#[to_schema] ErrorEnvelope),
    /// The key lacks the route's scope.
    #[response(status = 403, description = "The key lacks the scope (forbidden)")]
    Forbidden(#[to_schema] ErrorEnvelope),
    /// No such object in the key's workspace.
    #[response(status = 404, description = "Not found in this workspace (not_found)")]
    NotFound(#[to_schema] ErrorEnvelope),
    /// A unique value is held by another object.
    #[response(status = 409, description = "Conflict (conflict)")]
    Conflict(#[to_schema] ErrorEnvelope),
    /// Body over 1 MiB.
    #[response(status = 413, description = "Body too large (payload_too_large)")]
    TooLarge(#[to_schema] ErrorEnvelope),
    /// Body not JSON.
    #[response(status = 415, description = "Not JSON (unsupported_media_type)")]
    MediaType(#[to_schema] ErrorEnvelope),
    /// A value does not fit its field's type.
    #[response(status = 422, description = "Value does not fit the field (invalid_value)")]
    Invalid(#[to_schema] ErrorEnvelope),
    /// Server fault.
    #[response(status = 500, description = "Internal error (internal_error)")]
    Internal(#[to_schema] ErrorEnvelope),
}

/// The OpenAPI document's frame; paths are added by the router.
#[derive(OpenApi)]
#[openapi(
    info(title = "convene", description = "A self-hosted engagement data hub: contacts, fields, keys and more."),
    modifiers(&SecuritySchemes),
    components(schemas(crate::http::error::ErrorBody, crate::http::error::ConveneCode, dto::BatchResults)),
    tags(
        (name = "workspaces", description = "Tenants (master key)"),
        (name = "service accounts", description = "API identities with permissions"),
        (name = "keys", description = "API keys: the token is shown once"),
        (name = "contacts", description = "Contacts with typed traits"),
        (name = "companies", description = "Companies with typed traits; contacts link to one"),
        (name = "fields", description = "The fields registry"),
        (name = "reps", description = "The team's members as data (sales and support agents)"),
        (name = "reports", description = "Metrics over conversations, calls and events"),
        (name = "users", description = "The workspace's people: operators and console users"),
        (name = "conversations", description = "Conversations with contacts and their messages"),
        (name = "ingest", description = "Queued identify/track/batch, jobs, events"),
        (name = "data", description = "Bulk import and streamed export"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("master_key", bearer());
        components.add_security_scheme("bearer", bearer());
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    }
}

/// Every route with its OpenAPI entry.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(workspaces::create_workspace, workspaces::list_workspaces))
        .routes(routes!(workspaces::get_workspace))
        .routes(routes!(accounts::master_create, accounts::master_list))
        .routes(routes!(accounts::master_get, accounts::master_update))
        .routes(routes!(accounts::admin_create, accounts::admin_list))
        .routes(routes!(accounts::admin_get, accounts::admin_update))
        .routes(routes!(keys::master_create, keys::master_list))
        .routes(routes!(keys::master_get, keys::master_revoke))
        .routes(routes!(keys::admin_create, keys::admin_list))
        .routes(routes!(keys::admin_get, keys::admin_revoke))
        .routes(routes!(contacts::create_contact, contacts::list_contacts, erasures::erase_by_identity))
        .routes(routes!(contacts::get_contact, contacts::update_contact, contacts::delete_contact))
        .routes(routes!(contacts::batch_contacts))
        .routes(routes!(contacts::subscription_history))
        .routes(routes!(erasures::list_erasures))
        .routes(routes!(erasures::lift_suppression))
        .routes(routes!(companies::create_company, companies::list_companies))
        .routes(routes!(companies::get_company, companies::update_company, companies::delete_company))
        .routes(routes!(companies::company_contacts))
        .routes(routes!(companies::batch_companies))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::get_user, users::update_user))
        .routes(routes!(users::master_create_user))
        .routes(routes!(conversations::create_conversation, conversations::list_conversations))
        .routes(routes!(conversations::get_conversation, conversations::update_conversation))
        .routes(routes!(conversations::list_messages, conversations::create_message))
        .routes(routes!(conversations::timeline))
        .routes(routes!(reps::create_rep, reps::list_reps))
        .routes(routes!(reps::get_rep, reps::update_rep, reps::delete_rep))
        .routes(routes!(reports::report))
        .routes(routes!(fields::list_fields, fields::create_field))
        .routes(routes!(ingest::identify))
        .routes(routes!(ingest::track))
        .routes(routes!(ingest::batch))
        .routes(routes!(ingest::get_job))
        .routes(routes!(ingest::list_events))
        .routes(routes!(ingest::contact_events))
        .routes(routes!(imports::import))
        .routes(routes!(exports::export))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .split_for_parts()
}

/// The application's router (without the cross-cutting layers). The
/// document at `/openapi.json` holds the native routes and every dialect's.
pub fn router() -> Router<AppState> {
    let (router, mut openapi) = routes();
    let (dialects, dialect_doc) = crate::dialects::router().split_for_parts();
    openapi.merge(dialect_doc);
    openapi.openapi = utoipa::openapi::OpenApiVersion::Version31;
    openapi.info.version = env!("CARGO_PKG_VERSION").to_string();
    let doc = Arc::new(openapi);
    router
        .merge(dialects)
        .merge(crate::console::router())
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
}
