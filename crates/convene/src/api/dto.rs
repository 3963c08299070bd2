//! Wire shapes of the native API (request and response bodies), kept apart
//! from core's types so that storage models never leak onto the wire.

use chrono::{DateTime, Utc};
use convene_core::contact::Contact;
use convene_core::field::{Entity, Field, FieldType};
use convene_core::ids;
use convene_core::page::Page;
use convene_core::scope::{KeyKind, Scope};
use convene_core::workspace::{ApiKey, ServiceAccount, Workspace};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, Ref, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::schema;

/// One page of a list: `data` and the cursor of the next page (`null` on the last).
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T: ToSchema> {
    /// The items.
    pub data: Vec<T>,
    /// Pass as `cursor` to read the next page; `null` when there is none.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> Paged<T> {
    /// Converts a core page.
    pub fn from_page<U>(page: Page<U>, f: impl FnMut(U) -> T) -> Self {
        let page = page.map(f);
        Paged { data: page.items, next_cursor: page.next_cursor }
    }
}

/// Paging parameters of every list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// `POST /v1/workspaces`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    /// Display name.
    #[schema(schema_with = schema::display_name)]
    pub name: String,
}

/// A workspace.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceOut {
    /// `ws_…`
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<Workspace> for WorkspaceOut {
    fn from(w: Workspace) -> Self {
        WorkspaceOut { id: w.id, name: w.name, created_at: w.created_at }
    }
}

/// `POST …/service-accounts`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccount {
    /// Display name, e.g. "Sales Production".
    #[schema(schema_with = schema::display_name)]
    pub name: String,
    /// What it is for.
    #[serde(default)]
    #[schema(schema_with = schema::description)]
    pub description: String,
    /// Teams it belongs to.
    #[serde(default)]
    #[schema(schema_with = schema::teams)]
    pub teams: Vec<String>,
    /// Permissions of its full keys (`companies:*` expands to read and write);
    /// none by default.
    #[serde(default)]
    #[schema(schema_with = schema::scopes)]
    pub scopes: Vec<String>,
}

/// `PATCH …/service-accounts/{id}`: parts left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServiceAccount {
    /// New name.
    #[schema(schema_with = schema::display_name_or_null)]
    pub name: Option<String>,
    /// New description.
    #[schema(schema_with = schema::description_or_null)]
    pub description: Option<String>,
    /// New teams.
    #[schema(schema_with = schema::teams_or_null)]
    pub teams: Option<Vec<String>>,
    /// New permissions.
    #[schema(schema_with = schema::scopes_or_null)]
    pub scopes: Option<Vec<String>>,
}

/// A service account.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceAccountOut {
    /// `sa_…`
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Teams.
    pub teams: Vec<String>,
    /// Permissions.
    pub scopes: Vec<Scope>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<ServiceAccount> for ServiceAccountOut {
    fn from(a: ServiceAccount) -> Self {
        ServiceAccountOut {
            id: a.id,
            name: a.name,
            description: a.description,
            teams: a.teams,
            scopes: a.scopes,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// `POST …/keys`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Display name.
    #[schema(schema_with = schema::display_name)]
    pub name: String,
    /// `analytics` (write contacts and events only) or `full`.
    pub kind: KeyKind,
    /// The service account whose permissions a full key takes.
    pub service_account_id: Option<String>,
    /// Narrows the key's scopes further.
    #[schema(schema_with = schema::scopes_or_null)]
    pub scopes: Option<Vec<String>>,
    /// When the key stops working (must be in the future).
    pub expires_at: Option<DateTime<Utc>>,
}

/// An API key; `token` only in the response that created it.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    /// `key_…`
    pub id: String,
    /// Display name.
    pub name: String,
    /// Analytics or full.
    pub kind: KeyKind,
    /// Its service account.
    pub service_account_id: Option<String>,
    /// What it may do now.
    pub scopes: Vec<Scope>,
    /// Recognisable prefix and last four characters of the token.
    #[schema(example = "cvn_…x9Qa")]
    pub preview: String,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use (recorded every few seconds).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The token: shown in this response only, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl KeyOut {
    /// The listed form of a key (no token).
    pub fn listed(k: ApiKey) -> Self {
        KeyOut {
            status: k.status(ids::now()),
            id: k.id,
            name: k.name,
            kind: k.kind,
            service_account_id: k.service_account_id,
            scopes: k.scopes,
            preview: k.preview,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
            created_at: k.created_at,
            token: None,
        }
    }
}

/// A contact.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactOut {
    /// Integer id.
    pub id: i64,
    /// Lower-cased email.
    pub email: Option<String>,
    /// Normalised phone number.
    pub mobile: Option<String>,
    /// Your system's id.
    pub external_id: Option<String>,
    /// Anonymous visitor id (Segment `anonymousId`).
    pub anonymous_id: Option<String>,
    /// Typed custom fields (`tags` is a list).
    #[schema(value_type = Object)]
    pub traits: Map<String, Value>,
    /// SUBSCRIBED, UNSUBSCRIBED or PENDING.
    pub subscription_status: convene_core::contact::SubscriptionStatus,
    /// Company.
    pub company_id: Option<i64>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<Contact> for ContactOut {
    fn from(c: Contact) -> Self {
        ContactOut {
            id: c.id,
            email: c.state.email,
            mobile: c.state.mobile,
            external_id: c.state.external_id,
            anonymous_id: c.state.anonymous_id,
            traits: c.state.traits,
            subscription_status: c.state.subscription_status,
            company_id: c.company_id,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// `POST /v1/contacts` and `PATCH /v1/contacts/{id}` (every part optional:
/// a contact may be created without an identity). In `traits`, each value
/// is an operation: a value sets, `null` unsets, `{"add": [...], "remove":
/// [...]}` edits a list, `{"$inc": n}` increments, `{"$set_once": v}` sets
/// when empty. `email`/`mobile`/`external_id`/`anonymous_id` inside traits
/// are identities.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ContactIn {
    /// Email (unique in the workspace, matched case-insensitively); `null` unsets.
    #[schema(schema_with = schema::email_or_null)]
    pub email: Option<String>,
    /// Phone number (digits and a leading +, unique); `null` unsets.
    #[schema(schema_with = mobile_or_null)]
    pub mobile: Option<String>,
    /// Your system's id (unique); `null` unsets.
    #[schema(schema_with = external_id_or_null)]
    pub external_id: Option<String>,
    /// Anonymous visitor id; `null` unsets.
    #[schema(schema_with = anonymous_id_or_null)]
    pub anonymous_id: Option<String>,
    /// Trait operations (at most 500 per write).
    #[schema(schema_with = schema::contact_traits_or_null)]
    pub traits: Option<Map<String, Value>>,
    /// SUBSCRIBED, UNSUBSCRIBED or PENDING (any case).
    #[schema(schema_with = subscription_status)]
    pub subscription_status: Option<convene_core::contact::SubscriptionStatus>,
    /// The company to link (an id in this workspace); `null` unlinks.
    #[schema(schema_with = schema::id_or_null)]
    pub company_id: Option<i64>,
}

fn mobile_or_null() -> Schema {
    schema::identity_or_null("mobile")
}

fn external_id_or_null() -> Schema {
    schema::identity_or_null("external_id")
}

fn anonymous_id_or_null() -> Schema {
    schema::identity_or_null("anonymous_id")
}

/// A subscription status (not `null`).
fn subscription_status() -> RefOr<Schema> {
    Ref::from_schema_name(convene_core::contact::SubscriptionStatus::name()).into()
}

/// Filters of `GET /v1/contacts` (at most one identity).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Only the contact with this email.
    pub email: Option<String>,
    /// Only the contact with this phone number.
    pub mobile: Option<String>,
    /// Only the contact with this external id.
    pub external_id: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// `POST /v1/fields`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateField {
    /// Underlying name (the trait key).
    #[schema(schema_with = schema::field_name)]
    pub name: String,
    /// Human label (defaults to the name).
    #[schema(schema_with = schema::display_name_or_null)]
    pub label: Option<String>,
    /// Type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Entity (default `contact`).
    #[serde(default = "default_entity")]
    pub entity: Entity,
}

fn default_entity() -> Entity {
    Entity::Contact
}

/// Filters of `GET /v1/fields`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FieldQuery {
    /// Only this entity's fields.
    pub entity: Option<Entity>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// A field.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldOut {
    /// Entity.
    pub entity: Entity,
    /// Underlying name.
    pub name: String,
    /// Label.
    pub label: String,
    /// Type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Created on the fly from an unknown trait.
    pub inferred: bool,
    /// Every workspace has it.
    pub builtin: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<Field> for FieldOut {
    fn from(f: Field) -> Self {
        FieldOut {
            entity: f.entity,
            name: f.name,
            label: f.label,
            field_type: f.field_type,
            inferred: f.inferred,
            builtin: f.builtin,
            created_at: f.created_at,
        }
    }
}

/// 202 answer of a queued request.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedOut {
    /// Read its state at `GET /v1/jobs/{job_id}`.
    pub job_id: String,
    /// Always `queued`: durable, not yet applied.
    pub status: &'static str,
}

/// The parts of an identify call (`POST /v1/identify`, an identify item of
/// `POST /v1/batch`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct IdentifyFields {
    /// `identify` (required in a batch item; ignored on `POST /v1/identify`).
    #[serde(rename = "type")]
    #[schema(schema_with = identify_type)]
    pub kind: Option<String>,
    /// Your system's id.
    #[schema(schema_with = external_id_or_null)]
    pub external_id: Option<String>,
    /// Email.
    #[schema(schema_with = schema::email_or_null)]
    pub email: Option<String>,
    /// Phone number.
    #[schema(schema_with = mobile_or_null)]
    pub mobile: Option<String>,
    /// Anonymous visitor id.
    #[schema(schema_with = anonymous_id_or_null)]
    pub anonymous_id: Option<String>,
    /// Trait operations.
    #[schema(schema_with = schema::contact_traits_or_null)]
    pub traits: Option<Map<String, Value>>,
    /// SUBSCRIBED, UNSUBSCRIBED or PENDING (any case).
    #[schema(schema_with = subscription_status)]
    pub subscription_status: Option<convene_core::contact::SubscriptionStatus>,
    /// The company to link (an id in this workspace); `null` unlinks.
    #[schema(schema_with = schema::id_or_null)]
    pub company_id: Option<i64>,
    /// Deduplicates retries (7 days at least).
    #[schema(schema_with = schema::message_id_or_null)]
    pub message_id: Option<String>,
}

fn identify_type() -> Schema {
    schema::literal("identify")
}

fn track_type() -> Schema {
    schema::literal("track")
}

/// `POST /v1/identify`: at least one identity (`null` is none) finds or
/// creates the contact (priority external_id, email, mobile, anonymous_id);
/// traits are operations. The document asks for the identity at the top
/// level; the server also takes one given only inside `traits`.
pub struct IdentifyIn;

impl PartialSchema for IdentifyIn {
    fn schema() -> RefOr<Schema> {
        schema::with_an_identity(
            IdentifyFields::schema(),
            "At least one of external_id, email, mobile and anonymous_id, not null (the server also finds one \
             inside traits).",
        )
    }
}

impl ToSchema for IdentifyIn {}

/// The parts of a track call (`POST /v1/track`, a track item of `POST /v1/batch`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TrackFields {
    /// `track` (required in a batch item; ignored on `POST /v1/track`).
    #[serde(rename = "type")]
    #[schema(schema_with = track_type)]
    pub kind: Option<String>,
    /// Your system's id.
    #[schema(schema_with = external_id_or_null)]
    pub external_id: Option<String>,
    /// Email.
    #[schema(schema_with = schema::email_or_null)]
    pub email: Option<String>,
    /// Phone number.
    #[schema(schema_with = mobile_or_null)]
    pub mobile: Option<String>,
    /// Anonymous visitor id.
    #[schema(schema_with = anonymous_id_or_null)]
    pub anonymous_id: Option<String>,
    /// Event name.
    #[schema(schema_with = schema::event_name)]
    pub event: String,
    /// At most 15 key/value pairs.
    #[schema(schema_with = schema::event_properties_or_null)]
    pub properties: Option<Map<String, Value>>,
    /// When it happened (RFC 3339); default: when received.
    #[schema(schema_with = schema::time_or_null)]
    pub timestamp: Option<DateTime<Utc>>,
    /// When the client sent it (for clock-skew correction).
    #[schema(schema_with = schema::time_or_null)]
    pub sent_at: Option<DateTime<Utc>>,
    /// The client's own event time (for clock-skew correction).
    #[schema(schema_with = schema::time_or_null)]
    pub original_timestamp: Option<DateTime<Utc>>,
    /// Deduplicates retries.
    #[schema(schema_with = schema::message_id_or_null)]
    pub message_id: Option<String>,
}

/// `POST /v1/track`: an event of the contact one identity (`null` is none)
/// finds or creates (priority external_id, email, mobile, anonymous_id).
pub struct TrackIn;

impl PartialSchema for TrackIn {
    fn schema() -> RefOr<Schema> {
        schema::with_an_identity(
            TrackFields::schema(),
            "At least one of external_id, email, mobile and anonymous_id, not null.",
        )
    }
}

impl ToSchema for TrackIn {}

/// `POST /v1/batch`: `{"batch": [...]}`, 1 to 10,000 identify and track
/// items (each with its `type`), queued as one job; other keys are ignored.
pub struct BatchIn;

impl PartialSchema for BatchIn {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder};
        let item = |name: std::borrow::Cow<'static, str>| {
            AllOfBuilder::new().item(Ref::from_schema_name(name)).item(ObjectBuilder::new().required("type"))
        };
        let items = ArrayBuilder::new()
            .items(OneOfBuilder::new().item(item(IdentifyIn::name())).item(item(TrackIn::name())))
            .min_items(Some(1))
            .max_items(Some(convene_core::ingest::MAX_ITEMS_PER_REQUEST))
            .description(Some("1 to 10,000 items, each `{\"type\": \"identify\", …}` or `{\"type\": \"track\", …}`."));
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Object)
            .property("batch", items)
            .required("batch")
            .description(Some(
                "`POST /v1/batch`: 1 to 10,000 identify and track items, queued as one job; other keys are ignored.",
            ))
            .into()
    }
}

impl ToSchema for BatchIn {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((IdentifyIn::name().into(), IdentifyIn::schema()));
        schemas.push((TrackIn::name().into(), TrackIn::schema()));
    }
}

/// A job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobOut {
    /// `job_…`
    pub id: String,
    /// queued, applied or failed.
    pub status: convene_core::ingest::JobStatus,
    /// Items in the request.
    pub total: usize,
    /// Rows applied.
    pub applied: usize,
    /// Rows skipped as duplicates of applied ones.
    pub duplicates: usize,
    /// Rows failed.
    pub failed: usize,
    /// Why rows failed.
    pub errors: Vec<convene_core::ingest::RowError>,
    /// Accepted at.
    pub received_at: DateTime<Utc>,
    /// Applied at.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<convene_core::ingest::Job> for JobOut {
    fn from(j: convene_core::ingest::Job) -> Self {
        JobOut {
            id: j.id,
            status: j.status,
            total: j.total,
            applied: j.applied,
            duplicates: j.duplicates,
            failed: j.failed,
            errors: j.errors,
            received_at: j.received_at,
            finished_at: j.finished_at,
        }
    }
}

/// An event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    /// Integer id (arrival order).
    pub id: i64,
    /// The contact.
    pub contact_id: i64,
    /// The event name.
    pub event: String,
    /// track, page, screen or engagement.
    pub kind: convene_core::event::EventKind,
    /// Properties.
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
    /// Engagement description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// When convene received it.
    pub received_at: DateTime<Utc>,
    /// The sender's message id.
    pub message_id: Option<String>,
}

impl From<convene_core::event::Event> for EventOut {
    fn from(e: convene_core::event::Event) -> Self {
        EventOut {
            id: e.id,
            contact_id: e.contact_id,
            event: e.event.name,
            kind: e.event.kind,
            properties: e.event.properties,
            description: e.event.description,
            timestamp: e.event.timestamp,
            received_at: e.event.received_at,
            message_id: e.event.message_id,
        }
    }
}

/// Filters of the event lists.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only this event name.
    pub name: Option<String>,
    /// Only this contact.
    pub contact_id: Option<i64>,
    /// Timestamp at or after (RFC 3339).
    pub from: Option<String>,
    /// Timestamp before (RFC 3339).
    pub to: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// A company.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompanyOut {
    /// Integer id.
    pub id: i64,
    /// Your system's id (unique in the workspace).
    pub external_id: String,
    /// Base domain, lower-cased.
    pub domain: Option<String>,
    /// Typed custom fields (entity `company`).
    #[schema(value_type = Object)]
    pub traits: Map<String, Value>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<convene_core::company::Company> for CompanyOut {
    fn from(c: convene_core::company::Company) -> Self {
        CompanyOut {
            id: c.id,
            external_id: c.external_id,
            domain: c.domain,
            traits: c.traits,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// `POST /v1/companies` and a row of `POST /v1/companies/batch`: trait
/// values are operations, as on contacts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CreateCompany {
    /// Your system's id (unique in the workspace).
    #[schema(schema_with = schema::external_id)]
    pub external_id: String,
    /// Base domain (`acme.com`).
    #[schema(schema_with = schema::domain_or_null)]
    pub domain: Option<String>,
    /// Trait operations.
    #[schema(schema_with = schema::traits_or_null)]
    pub traits: Option<Map<String, Value>>,
}

/// `PATCH /v1/companies/{id}`: the parts sent change; trait values are
/// operations, as on contacts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CompanyIn {
    /// Your system's id (unique in the workspace).
    #[schema(schema_with = schema::external_id)]
    pub external_id: Option<String>,
    /// Base domain (`acme.com`); empty or `null` unsets.
    #[schema(schema_with = schema::domain_or_null)]
    pub domain: Option<String>,
    /// Trait operations.
    #[schema(schema_with = schema::traits_or_null)]
    pub traits: Option<Map<String, Value>>,
}

/// Filters of `GET /v1/companies`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompanyQuery {
    /// Only the company with this external id.
    pub external_id: Option<String>,
    /// Only companies with this base domain.
    pub domain: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Options of the batch upserts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BatchQuery {
    /// Validate and run everything, report, write nothing.
    pub dry_run: Option<bool>,
    /// `failed` lists only the failed rows in `results` (the counts stay).
    pub results: Option<BatchResults>,
}

/// Which rows a batch report lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BatchResults {
    /// Every row, with its object (default).
    #[default]
    All,
    /// Only the rows that failed (a bulk import needs no objects back).
    Failed,
}

/// Options of the contact batch upsert.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactBatchQuery {
    /// Validate and run everything, report, write nothing.
    pub dry_run: Option<bool>,
    /// `failed` lists only the failed rows in `results` (the counts stay).
    pub results: Option<BatchResults>,
    /// Find each row by this identity only (`email`, `mobile` or
    /// `external_id`; a row without it fails) instead of external_id, else
    /// email, else mobile.
    pub id_column: Option<String>,
}

/// `POST /v1/contacts/batch`
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ContactBatchIn {
    /// 1 to 1,000 contacts, each found by external_id, else email, else
    /// mobile, and created when none holds them.
    #[schema(min_items = 1, max_items = 1000)]
    pub contacts: Vec<ContactIn>,
}

/// `POST /v1/companies/batch`
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct CompanyBatchIn {
    /// 1 to 1,000 companies, each found by its external_id.
    #[schema(min_items = 1, max_items = 1000)]
    pub companies: Vec<CreateCompany>,
}

/// Why a row failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RowErrorOut {
    /// Stable code (`validation_error`, `invalid_value`, `conflict`, `not_found`).
    pub code: &'static str,
    /// A sentence for a person.
    pub message: String,
    /// The field concerned, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl RowErrorOut {
    /// The row error of a core error.
    pub fn of(e: &convene_core::Error) -> Self {
        RowErrorOut { code: e.code().name(), message: e.public_message(), field: e.field().map(str::to_string) }
    }
}

/// One row of a batch's results.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchRowOut<T: ToSchema> {
    /// 0-based row in the request.
    pub row: usize,
    /// `created`, `updated`, `unchanged` (found and left as it was: nothing
    /// written, `updated_at` kept) or `failed`.
    #[schema(example = "created")]
    pub status: &'static str,
    /// The object after the write (for a dry run: as it would be).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<T>,
    /// Why the row failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RowErrorOut>,
}

/// A batch upsert's report.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchOut<T: ToSchema> {
    /// True when nothing was meant to be written.
    pub dry_run: bool,
    /// True when the good rows were committed.
    pub written: bool,
    /// Rows created.
    pub created: usize,
    /// Rows updated.
    pub updated: usize,
    /// Rows found and left as they were (nothing written).
    pub unchanged: usize,
    /// Rows that failed.
    pub failed: usize,
    /// One per row, in request order.
    pub results: Vec<BatchRowOut<T>>,
}

impl<T: ToSchema> BatchOut<T> {
    /// Converts a core outcome.
    pub fn of<U>(outcome: convene_core::batch::BatchOutcome<U>, dry_run: bool, mut f: impl FnMut(U) -> T) -> Self {
        use convene_core::batch::RowStatus;
        let created = outcome.count(RowStatus::Created);
        let updated = outcome.count(RowStatus::Updated);
        let unchanged = outcome.count(RowStatus::Unchanged);
        let failed = outcome.failed();
        let written = outcome.written;
        let results = outcome
            .rows
            .into_iter()
            .map(|r| match r.outcome {
                Ok((status, object)) => {
                    BatchRowOut { row: r.row, status: status.as_str(), object: Some(f(object)), error: None }
                }
                Err(e) => BatchRowOut { row: r.row, status: "failed", object: None, error: Some(RowErrorOut::of(&e)) },
            })
            .collect();
        BatchOut { dry_run, written, created, updated, unchanged, failed, results }
    }

    /// Keeps only the failed rows in `results` when asked.
    pub fn listing(mut self, which: Option<BatchResults>) -> Self {
        if which == Some(BatchResults::Failed) {
            self.results.retain(|r| r.error.is_some());
        }
        self
    }
}

/// One row of an import of companies or reps.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportRowOut {
    /// 0-based index of the data row (as in a contact import's job errors).
    pub row: usize,
    /// The line where the row starts in the file (a CSV header is line 1,
    /// a quoted value spanning lines counts its lines; for a JSON array,
    /// the element's place from 1).
    pub line: u64,
    /// `created`, `updated`, `unchanged` (found and left as it was: nothing
    /// written, `updated_at` kept) or `failed`.
    #[schema(example = "created")]
    pub status: &'static str,
    /// Why the row failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RowErrorOut>,
}

/// The report of an import of companies or reps (`POST /v1/imports`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOut {
    /// `companies` or `reps`.
    pub entity: &'static str,
    /// Data rows in the file.
    pub rows: usize,
    /// Rows created.
    pub created: usize,
    /// Rows updated.
    pub updated: usize,
    /// Rows found and left as they were (nothing written).
    pub unchanged: usize,
    /// Rows that failed.
    pub failed: usize,
    /// One per row, in file order (only the failed ones with `results=failed`).
    pub results: Vec<ImportRowOut>,
}

/// One change of a contact's subscription status.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionChangeOut {
    /// The status set.
    pub status: convene_core::contact::SubscriptionStatus,
    /// The status before (`null` when the contact was created with it).
    pub previous: Option<convene_core::contact::SubscriptionStatus>,
    /// What made the change: `api`, `ingest`, `conversion`, …
    pub source: String,
    /// When.
    pub changed_at: DateTime<Utc>,
}

impl From<convene_core::contact::SubscriptionChange> for SubscriptionChangeOut {
    fn from(c: convene_core::contact::SubscriptionChange) -> Self {
        SubscriptionChangeOut { status: c.status, previous: c.previous, source: c.source, changed_at: c.changed_at }
    }
}

/// A user of the workspace (console user, message operator).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    /// Integer id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Lower-cased email (unique in the workspace).
    pub email: String,
    /// admin, agent or viewer.
    pub role: convene_core::user::Role,
    /// Inactive users cannot be assigned or send messages.
    pub active: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<convene_core::user::User> for UserOut {
    fn from(u: convene_core::user::User) -> Self {
        UserOut {
            id: u.id,
            name: u.name,
            email: u.email,
            role: u.role,
            active: u.active,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// `POST /v1/users` and `POST /v1/workspaces/{ws}/users`: name and email are
/// required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CreateUser {
    /// Display name.
    #[schema(schema_with = schema::display_name)]
    pub name: String,
    /// Email, unique in the workspace.
    #[schema(schema_with = schema::email)]
    pub email: String,
    /// admin, agent (default) or viewer.
    #[schema(schema_with = role)]
    pub role: Option<convene_core::user::Role>,
    /// Default true.
    #[schema(schema_with = boolean)]
    pub active: Option<bool>,
    /// Console password.
    #[schema(schema_with = schema::password)]
    pub password: Option<String>,
}

/// `PATCH /v1/users/{id}`: the parts sent change (none may be `null`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UserIn {
    /// Display name.
    #[schema(schema_with = schema::display_name)]
    pub name: Option<String>,
    /// Email, unique in the workspace.
    #[schema(schema_with = schema::email)]
    pub email: Option<String>,
    /// admin, agent or viewer.
    #[schema(schema_with = role)]
    pub role: Option<convene_core::user::Role>,
    /// Inactive users cannot be assigned or send messages.
    #[schema(schema_with = boolean)]
    pub active: Option<bool>,
    /// Console password.
    #[schema(schema_with = schema::password)]
    pub password: Option<String>,
}

/// A user's role (not `null`).
fn role() -> RefOr<Schema> {
    Ref::from_schema_name(convene_core::user::Role::name()).into()
}

/// `true` or `false` (not `null`).
fn boolean() -> Schema {
    utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::Boolean).into()
}

/// A conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationOut {
    /// UUID.
    pub id: String,
    /// The contact.
    pub contact_id: Option<i64>,
    /// open, pending or resolved.
    pub status: convene_core::conversation::ConversationStatus,
    /// The user it is assigned to.
    pub assignee_id: Option<i64>,
    /// Channel.
    pub channel: String,
    /// Subject.
    pub subject: Option<String>,
    /// Labels, sorted.
    pub labels: Vec<String>,
    /// Messages, activities included.
    pub messages_count: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Time of the last message.
    pub last_message_at: Option<DateTime<Utc>>,
}

impl From<convene_core::conversation::Conversation> for ConversationOut {
    fn from(c: convene_core::conversation::Conversation) -> Self {
        ConversationOut {
            id: c.id,
            contact_id: c.contact_id,
            status: c.status,
            assignee_id: c.assignee_id,
            channel: c.channel,
            subject: c.subject,
            labels: c.labels,
            messages_count: c.messages_count,
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_message_at: c.last_message_at,
        }
    }
}

/// Who sent a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct SenderOut {
    /// `contact`, `user` or `api`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The contact's or user's id, or the API key's id.
    pub id: String,
}

/// A message.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOut {
    /// Integer id.
    pub id: i64,
    /// Its conversation.
    pub conversation_id: String,
    /// incoming, outgoing, note or activity.
    #[serde(rename = "type")]
    pub kind: convene_core::conversation::MessageType,
    /// Text.
    pub content: String,
    /// Sender.
    pub sender: SenderOut,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<convene_core::conversation::Message> for MessageOut {
    fn from(m: convene_core::conversation::Message) -> Self {
        let (kind, id) = m.sender.parts();
        MessageOut {
            id: m.id,
            conversation_id: m.conversation_id,
            kind: m.kind,
            content: m.content,
            sender: SenderOut { kind, id },
            created_at: m.created_at,
        }
    }
}

/// `POST /v1/conversations`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConversationIn {
    /// The contact (required).
    pub contact_id: i64,
    /// Channel (default `api`).
    #[schema(schema_with = schema::channel)]
    pub channel: Option<String>,
    /// Subject.
    #[schema(schema_with = schema::subject_or_null)]
    pub subject: Option<String>,
    /// Labels.
    #[schema(schema_with = schema::labels)]
    pub labels: Option<Vec<String>>,
    /// An active user.
    #[schema(schema_with = schema::id_or_null)]
    pub assignee_id: Option<i64>,
    /// The first message (`type` defaults to outgoing).
    pub message: Option<MessageIn>,
}

/// `PATCH /v1/conversations/{id}`: status and assignment changes write activity messages.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ConversationPatch {
    /// open, pending or resolved.
    pub status: Option<convene_core::conversation::ConversationStatus>,
    /// An active user; `null` unassigns.
    pub assignee_id: Option<i64>,
    /// Replaces the labels.
    #[schema(max_items = 50)]
    pub labels: Option<Vec<String>>,
}

/// `POST /v1/conversations/{id}/messages`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MessageIn {
    /// Text.
    #[schema(schema_with = schema::content)]
    pub content: String,
    /// incoming (from the contact), outgoing (default) or note.
    #[serde(rename = "type")]
    #[schema(schema_with = schema::message_type_or_null)]
    pub kind: Option<String>,
    /// The user sending it (an active user; not with `incoming`); default: the API key.
    #[schema(schema_with = schema::id_or_null)]
    pub operator_id: Option<i64>,
}

/// Filters of `GET /v1/conversations`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationQuery {
    /// open, pending or resolved.
    pub status: Option<String>,
    /// Assigned to this user.
    pub assignee_id: Option<i64>,
    /// This contact's.
    pub contact_id: Option<i64>,
    /// With this label.
    pub label: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Filters of `GET /v1/conversations/{id}/messages`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// Comma-separated types, e.g. `incoming,outgoing` (all by default).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// One entry of a contact's timeline: an event or a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineOut {
    /// `event` or `message`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<EventOut>,
    /// The message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageOut>,
}

impl From<convene_core::conversation::TimelineItem> for TimelineOut {
    fn from(item: convene_core::conversation::TimelineItem) -> Self {
        let at = item.at();
        match item {
            convene_core::conversation::TimelineItem::Event(e) => {
                TimelineOut { kind: "event", at, event: Some(e.into()), message: None }
            }
            convene_core::conversation::TimelineItem::Message(m) => {
                TimelineOut { kind: "message", at, event: None, message: Some(m.into()) }
            }
        }
    }
}
