//! The ConveYour analytics API at `/compat/conveyour`: `POST
//! /api/analytics/identify` (one object or an array) and `POST
//! /api/analytics/track`. Success is exactly
//! `{"status":"ok","message":"queued","data":[]}`; errors keep that shape
//! with `"status":"error"`. Decisions: docs/compat/conveyour.md.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use convene_core::contact::ContactChanges;
use convene_core::event::{EventKind, NewEvent, event_time, validate_name, validate_properties};
use convene_core::identity::IdentityKind;
use convene_core::ingest::{IngestItem, Lookups, MAX_ITEMS_PER_REQUEST};
use convene_core::{Error, Result, ids};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder, Schema};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoResponses, OpenApi, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::doc::IdempotencyKey;
use crate::api::ingest::{JOB_HEADER, prefix_row};
use crate::http::auth::{Need, scopes};
use crate::http::error::{ApiResult, ErrorInfo};
use crate::http::json::AppJson;
use crate::ingest::idempotency_key;
use crate::state::AppState;

/// The tag of the dialect's operations in `/openapi.json`.
pub const TAG: &str = "compat: conveyour";

/// The dialect's routes (each with its OpenAPI entry), with its error envelope.
pub fn router() -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::with_openapi(openapi()).routes(routes!(identify)).routes(routes!(track));
    super::enveloped(routes, super::Envelope::Body(render_error))
}

/// The dialect's tag, security scheme and envelopes.
fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(OpenApi)]
    #[openapi(components(schemas(ConveyourError)))]
    struct Schemas;
    let scheme = SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
        "x-conveyour-token",
        "A convene API key (an analytics key is enough); an `x-conveyour-appkey` header is accepted and ignored.",
    )));
    let mut doc = super::doc::frame(
        TAG,
        "ConveYour's analytics REST API: change the base URL `https://YOUR-DOMAIN.conveyour.com` to \
         `http://convene-host/compat/conveyour`. Success is exactly \
         `{\"status\":\"ok\",\"message\":\"queued\",\"data\":[]}`; errors keep that shape with \
         `\"status\":\"error\"` and convene's status. Decisions: docs/compat/conveyour.md.",
        vec![("conveyour_token", scheme)],
    );
    doc.merge(Schemas::openapi());
    doc
}

/// ConveYour's error body (documentation of what [`render_error`] writes).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConveyourError {
    /// Always `error`.
    #[schema(example = "error")]
    status: String,
    /// A sentence for a person (for an invalid item, `item N: …`).
    message: String,
    /// Always empty.
    #[schema(max_items = 0, value_type = Vec<Object>)]
    data: Vec<Value>,
}

/// The success body.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConveyourQueued {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: String,
    /// Always `queued`.
    #[schema(example = "queued")]
    message: String,
    /// Always empty.
    #[schema(max_items = 0, value_type = Vec<Object>)]
    data: Vec<Value>,
}

/// The errors both routes may answer, in ConveYour's envelope.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ConveyourErrors {
    /// Malformed JSON, an invalid item (naming it), no items or more than 10,000; nothing is queued.
    #[response(status = 400, description = "Invalid request; nothing is queued")]
    BadRequest(ConveyourError),
    /// No key, or an unknown, expired or revoked one.
    #[response(status = 401, description = "Missing or invalid token")]
    Unauthenticated(ConveyourError),
    /// The key lacks `contacts:write` (identify) or `events:write` (track).
    #[response(status = 403, description = "The key lacks the scope")]
    Forbidden(ConveyourError),
    /// Body over 1 MiB.
    #[response(status = 413, description = "Body too large")]
    TooLarge(ConveyourError),
    /// Body not JSON (`Content-Type: application/json`).
    #[response(status = 415, description = "Not JSON")]
    MediaType(ConveyourError),
    /// Too many requests.
    #[response(status = 429, description = "Rate limited; see Retry-After",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    RateLimited(ConveyourError),
    /// Server fault.
    #[response(status = 500, description = "Internal error")]
    Internal(ConveyourError),
    /// The ingest backlog is full, or the server is shutting down.
    #[response(status = 503, description = "Unavailable; see Retry-After",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(ConveyourError),
}

/// ConveYour's error shape, keys in the vendor's order.
pub fn render_error(info: &ErrorInfo) -> String {
    let message = Value::String(info.message.clone());
    format!(r#"{{"status":"error","message":{message},"data":[]}}"#)
}

/// The success body, byte for byte as the vendor sends it.
pub const QUEUED_BODY: &str = r#"{"status":"ok","message":"queued","data":[]}"#;

fn ok(job_id: String) -> Response {
    let mut response = ([(axum::http::header::CONTENT_TYPE, "application/json")], QUEUED_BODY).into_response();
    if let Ok(v) = HeaderValue::from_str(&job_id) {
        response.headers_mut().insert(JOB_HEADER, v);
    }
    response
}

/// The identity an `id` names: `$email` / `$mobile` take it from that
/// trait (any other `$…` is refused); a literal with `@` is an email
/// address (and must be a valid one); anything else an external id.
fn lookup_of(id: &Value, traits: &Map<String, Value>) -> Result<(IdentityKind, String)> {
    let id = match id {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err(Error::validation("id", "id is required: \"$email\", \"$mobile\" or your own id")),
    };
    let from_trait = |kind: IdentityKind| {
        let value = traits.get(kind.field()).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let value = value.ok_or_else(|| {
            Error::validation(
                kind.field(),
                format!("id is \"${}\" but traits.{} is missing", kind.field(), kind.field()),
            )
        })?;
        Ok::<_, Error>((kind, kind.normalise(&value)?))
    };
    match id.as_str() {
        "$email" => from_trait(IdentityKind::Email),
        "$mobile" => from_trait(IdentityKind::Mobile),
        "" => Err(Error::validation("id", "id must not be empty")),
        // Only the two documented forms name a trait; any other `$…` would
        // become one literal id shared by every contact sent with it.
        other if other.starts_with('$') => Err(Error::validation(
            "id",
            format!(
                "id \"{other}\" is not supported: \"$email\" and \"$mobile\" take the identity from that trait; \
                 any other id is sent as the value itself"
            ),
        )),
        literal if literal.contains('@') => Ok((IdentityKind::Email, IdentityKind::Email.normalise(literal)?)),
        literal => Ok((IdentityKind::ExternalId, IdentityKind::ExternalId.normalise(literal)?)),
    }
}

fn identify_item(value: Value) -> Result<IngestItem> {
    let Value::Object(mut object) = value else {
        return Err(Error::bad_request("each identify item must be an object with \"id\" and \"traits\""));
    };
    let traits = match object.remove("traits") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(t)) => t,
        Some(_) => return Err(Error::validation("traits", "traits must be an object")),
    };
    let lookup = lookup_of(object.get("id").unwrap_or(&Value::Null), &traits)?;
    let mut changes = ContactChanges::default();
    changes.add_traits(traits)?;
    let lookups: Lookups = vec![lookup];
    Ok(IngestItem::Identify { lookups, changes, message_id: None })
}

/// Identify one contact or an array of them; queued.
#[utoipa::path(post, path = "/api/analytics/identify", tag = TAG, operation_id = "conveyour_identify",
    request_body(content = ConveyourIdentifyBody, content_type = "application/json"),
    params(IdempotencyKey),
    responses((status = 200, description = "Queued durably", body = ConveyourQueued,
        headers(("Convene-Job-Id" = String, description = "The job (GET /v1/jobs/{id})"))), ConveyourErrors),
    security(("conveyour_token" = ["contacts:write"])))]
pub async fn identify(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    headers: HeaderMap,
    AppJson(body): AppJson<Value>,
) -> ApiResult<Response> {
    let raw = match body {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => return Err(Error::bad_request("the body must be an identify object or an array of them").into()),
    };
    let items = raw
        .into_iter()
        .enumerate()
        .map(|(i, v)| identify_item(v).map_err(|e| prefix_row(e, i)))
        .collect::<Result<Vec<_>>>()?;
    let job = state.ingest.accept(auth.workspace(), items, idempotency_key(&headers)?.as_deref()).await?;
    Ok(ok(job))
}

/// Record events on a contact; queued.
#[utoipa::path(post, path = "/api/analytics/track", tag = TAG, operation_id = "conveyour_track",
    request_body(content = ConveyourTrack, content_type = "application/json"),
    params(IdempotencyKey),
    responses((status = 200, description = "Queued durably", body = ConveyourQueued,
        headers(("Convene-Job-Id" = String, description = "The job (GET /v1/jobs/{id})"))), ConveyourErrors),
    security(("conveyour_token" = ["events:write"])))]
pub async fn track(
    auth: Need<scopes::EventsWrite>,
    State(state): State<AppState>,
    headers: HeaderMap,
    AppJson(body): AppJson<Value>,
) -> ApiResult<Response> {
    let Value::Object(mut body) = body else {
        return Err(Error::bad_request("the body must be {\"id\", \"events\": [ … ]}").into());
    };
    // `$email` / `$mobile` read `traits` when a client sends them with a track.
    let traits = match body.remove("traits") {
        Some(Value::Object(t)) => t,
        _ => Map::new(),
    };
    // The contact: the top-level `id`, else each event's `properties.id`
    // (the vendor text asks that it match the identify id).
    let lookup = match body.get("id") {
        None | Some(Value::Null) => None,
        Some(id) => Some(lookup_of(id, &traits)?),
    };
    let Some(Value::Array(events)) = body.remove("events") else {
        return Err(Error::validation("events", "events must be an array of {\"event\", \"properties\"}").into());
    };
    let received_at = ids::now();
    let mut items = Vec::with_capacity(events.len());
    for (i, e) in events.into_iter().enumerate() {
        let item = event_item(e, lookup.as_ref(), &traits, received_at).map_err(|e| prefix_row(e, i))?;
        items.push(item);
    }
    let job = state.ingest.accept(auth.workspace(), items, idempotency_key(&headers)?.as_deref()).await?;
    Ok(ok(job))
}

fn event_item(
    value: Value,
    lookup: Option<&(IdentityKind, String)>,
    traits: &Map<String, Value>,
    received_at: chrono::DateTime<chrono::Utc>,
) -> Result<IngestItem> {
    let Value::Object(mut e) = value else {
        return Err(Error::bad_request("each event must be an object with \"event\" and \"properties\""));
    };
    let name = match e.remove("event") {
        Some(Value::String(s)) => validate_name(&s)?,
        _ => return Err(Error::validation("event", "each event needs an \"event\" name")),
    };
    let properties = match e.remove("properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err(Error::validation("properties", format!("the properties of event '{name}' must be an object")));
        }
    };
    validate_properties(&name, &properties)?;
    let lookup = match (lookup, properties.get("id")) {
        (Some(lookup), _) => lookup.clone(),
        (None, Some(id)) if !id.is_null() => lookup_of(id, traits)?,
        (None, _) => {
            return Err(Error::validation("id", "id is required: at the top level, or as properties.id of each event"));
        }
    };
    let timestamp = match e.remove("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            ids::parse_time(&s).ok_or_else(|| Error::validation("timestamp", "timestamp must be an RFC 3339 time"))?,
        ),
        // A number is Unix seconds.
        Some(n @ Value::Number(_)) => convene_core::call::time_of(&n, "timestamp")?,
        Some(_) => {
            return Err(Error::validation("timestamp", "timestamp must be an RFC 3339 time or Unix seconds"));
        }
    };
    let event = NewEvent {
        name,
        kind: EventKind::Track,
        properties,
        description: None,
        timestamp: event_time(received_at, timestamp, None, None),
        received_at,
        message_id: None,
    };
    Ok(IngestItem::Track { lookups: vec![lookup], event })
}

/// One contact to identify.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConveyourIdentify {
    /// `"$email"` (the identity is `traits.email`), `"$mobile"` (`traits.mobile`), or a literal: an email
    /// address identifies by email, anything else is the contact's external id (1 to 254 bytes).
    #[schema(schema_with = super::doc::any_id)]
    id: String,
    /// Trait operations: a value sets, `null` unsets, `{"add": [...], "remove": [...]}` edits a list,
    /// `{"$inc": n}` increments, `{"$set_once": v}` sets when empty.
    #[schema(schema_with = super::doc::traits_or_null)]
    traits: Option<Map<String, Value>>,
}

/// The body of identify: one contact, or an array of 1 to 10,000.
pub struct ConveyourIdentifyBody;

impl utoipa::PartialSchema for ConveyourIdentifyBody {
    fn schema() -> RefOr<Schema> {
        let one = || Ref::from_schema_name(ConveyourIdentify::name());
        OneOfBuilder::new()
            .item(one())
            .item(ArrayBuilder::new().items(one()).min_items(Some(1)).max_items(Some(MAX_ITEMS_PER_REQUEST)))
            .description(Some("One contact, or an array of 1 to 10,000 queued as one job."))
            .into()
    }
}

impl ToSchema for ConveyourIdentifyBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ConveyourIdentify::name().into(), ConveyourIdentify::schema()));
        ConveyourIdentify::schemas(schemas);
    }
}

/// One event.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConveyourEvent {
    /// The event's name: 1 to 200 characters after trimming, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    event: String,
    /// At most 15 key/value pairs and 32 KiB.
    #[schema(schema_with = super::doc::event_properties)]
    properties: Option<Map<String, Value>>,
    /// When it happened (RFC 3339); default: when received.
    timestamp: Option<chrono::DateTime<chrono::Utc>>,
}

/// The body of track: events of one contact.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConveyourTrack {
    /// The contact, as identify's `id` (`$email` and `$mobile` do not apply: there are no traits).
    #[schema(schema_with = super::doc::any_id)]
    id: String,
    /// 1 to 10,000 events.
    #[schema(min_items = 1, max_items = 10000)]
    events: Vec<ConveyourEvent>,
}
