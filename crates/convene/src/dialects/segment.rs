//! Segment's HTTP tracking API at `/compat/segment`: `/v1/identify`,
//! `/v1/track`, `/v1/page`, `/v1/screen`, `/v1/group`, `/v1/alias`,
//! `/v1/batch` (and `/v1/import`, its old name). The write key comes as
//! the HTTP Basic user name or as `writeKey` in the body; bodies may be
//! gzip-compressed; 32 KB per message, 500 KB per request. Success is
//! `{"success": true}`. Decisions: docs/compat/segment.md.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use convene_core::auth::Principal;
use convene_core::contact::ContactChanges;
use convene_core::event::{EventKind, NewEvent, event_time, validate_name, validate_properties};
use convene_core::identity::IdentityKind;
use convene_core::ingest::{IngestItem, Lookups, check_company_traits, validate_message_id};
use convene_core::scope::Scope;
use convene_core::{Error, Result, ids};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tower_http::decompression::RequestDecompressionLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::doc::IdempotencyKey;
use crate::api::ingest::{JOB_HEADER, prefix_row};
use crate::http::auth::{authenticate, authenticate_token, presented_token};
use crate::http::error::{ApiError, ApiResult, ErrorInfo};
use crate::http::json::check_depth;
use crate::state::AppState;

/// Largest request body (after decompression).
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;
/// Largest single message.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// The tag of the dialect's operations in `/openapi.json`.
pub const TAG: &str = "compat: segment";

/// The dialect's routes (each with its OpenAPI entry), with gzip
/// decompression and its error envelope.
pub fn router() -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::with_openapi(openapi())
        .routes(routes!(identify))
        .routes(routes!(track))
        .routes(routes!(page))
        .routes(routes!(screen))
        .routes(routes!(group))
        .routes(routes!(alias))
        .routes(routes!(batch))
        .routes(routes!(import));
    let routes = super::layered(routes, |router| {
        router.layer(RequestDecompressionLayer::new()).layer(axum::middleware::from_fn(gzip_or_plain))
    });
    super::enveloped(routes, super::Envelope::Body(render_error))
}

/// Refuses a body encoding other than gzip before the decompression layer
/// does (its 415 has no body), so the answer carries the dialect's envelope.
async fn gzip_or_plain(req: Request, next: axum::middleware::Next) -> Response {
    let encoding = req.headers().get(axum::http::header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?").trim());
    match encoding {
        None | Some("") => next.run(req).await,
        Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("identity") => next.run(req).await,
        Some(e) => crate::http::error::ApiError::from(Error::UnsupportedMediaType {
            message: format!("Content-Encoding '{e}' is not supported; send the body plain or gzip-compressed"),
        })
        .into_response(),
    }
}

/// The dialect's tag, security scheme and error envelope.
fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(OpenApi)]
    #[openapi(components(schemas(SegmentError, super::doc::ConveneCode)))]
    struct Schemas;
    let scheme = SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Basic)
            .description(Some(
                "The write key (a convene API key) as the HTTP Basic user name, password empty. The key may \
                 instead come as `writeKey` in the body (when no credentials header is sent).",
            ))
            .build(),
    );
    let mut doc = super::doc::frame(
        TAG,
        "Segment's HTTP tracking API: point a Segment library's host `https://api.segment.io` at \
         `http://convene-host/compat/segment` (the paths `/v1/...` stay). Bodies may be gzip-compressed; \
         32 KB per message, 500 KB per request. Errors are `{\"success\": false, \"code\", \"message\"}` \
         with convene's status. Decisions: docs/compat/segment.md.",
        vec![(SECURITY, scheme)],
    );
    doc.merge(Schemas::openapi());
    doc
}

/// The security scheme's name (also spelled out in each operation's `security`).
const SECURITY: &str = "segment_write_key";

/// The dialect's body for an error.
pub fn render_error(info: &ErrorInfo) -> String {
    json!({"success": false, "code": info.code.name(), "message": info.message}).to_string()
}

/// Segment's error body (documentation of what [`render_error`] writes).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct SegmentError {
    /// Always `false`.
    success: bool,
    /// convene's error code.
    code: super::doc::ConveneCode,
    /// A sentence for a person (for an invalid message, `item N: …`).
    message: String,
}

/// The answer to an accepted request.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct SegmentSuccess {
    /// Always `true`.
    success: bool,
}

/// The errors every Segment route may answer, in Segment's envelope.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum SegmentErrors {
    /// Malformed JSON, a body over 500 KB or a message over 32 KB, an invalid message (naming its item).
    #[response(status = 400, description = "Invalid request (validation_error); nothing is queued")]
    BadRequest(SegmentError),
    /// No write key, or an unknown, expired or revoked one.
    #[response(status = 401, description = "Missing or invalid write key (unauthenticated)")]
    Unauthenticated(SegmentError),
    /// The key lacks `contacts:write` (identify, group, alias) or `events:write` (track, page, screen).
    #[response(status = 403, description = "The key lacks the scope a message needs (forbidden)")]
    Forbidden(SegmentError),
    /// Too many requests.
    #[response(status = 429, description = "Rate limited (rate_limited); see Retry-After",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    RateLimited(SegmentError),
    /// Server fault.
    #[response(status = 500, description = "Internal error (internal_error)")]
    Internal(SegmentError),
    /// The ingest backlog is full, or the server is shutting down.
    #[response(status = 503, description = "Unavailable (unavailable); see Retry-After",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(SegmentError),
}

/// Queue an identify: traits onto the contact found by `userId`, else `anonymousId`.
#[utoipa::path(post, path = "/v1/identify", tag = TAG, operation_id = "segment_identify",
    params(IdempotencyKey),
    request_body(content = SegmentIdentify, content_type = "application/json"),
    responses((status = 200, description = "Queued durably", body = SegmentSuccess,
        headers(("Convene-Job-Id" = String, description = "The job (GET /v1/jobs/{id})"))), SegmentErrors),
    security(("segment_write_key" = ["contacts:write"])))]
async fn identify(state: State<AppState>, req: Request) -> ApiResult<Response> {
    ingest(state, req, Some("identify")).await
}

/// Queue a track: an event on the contact found by `userId`, else `anonymousId`.
#[utoipa::path(post, path = "/v1/track", tag = TAG, operation_id = "segment_track",
    params(IdempotencyKey),
    request_body(content = SegmentTrack, content_type = "application/json"),
    responses((status = 200, description = "Queued durably", body = SegmentSuccess,
        headers(("Convene-Job-Id" = String, description = "The job (GET /v1/jobs/{id})"))), SegmentErrors),
    security(("segment_write_key" = ["events:write"])))]
async fn track(state: State<AppState>, req: Request) -> ApiResult<Response> {
    ingest(state, req, Some("track")).await
}

/// Queue a page view: an event of kind `page` (`name`, or "Loaded a Page").
#[utoipa::path(post, path = "/v1/page", tag = TAG, operation_id = "segment_page",
    params(IdempotencyKey),
    request_body(content = SegmentPage, content_type = "application/json"),
    responses((status = 200, description = "Queued durably", body = SegmentSuccess,
        headers(("Convene-Job-Id" = String, description = "The job (GET /v1/jobs/{id})"))), SegmentErrors),
    security(("segment_write_key" = ["events:write"])))]
async fn page(state: State<AppState>, req: Request) -> ApiResult<Response> {
    ingest(state, req, Some("page")).await
}

/// Queue a screen view: an event of kind `screen` (`name`, or "Loaded a Screen").
#[utoipa::path(post, path = "/v1/screen", tag = TAG, operation_id = "segment_screen",
    params(IdempotencyKey),
    request_body(content = SegmentPage, content_type = "application/json"),
    responses((status = 200, description = "Queued durably", body = SegmentSuccess,
        headers(("Convene-Job-Id" = String, description = "The job (GET /v1/jobs/{id})"))), SegmentErrors),
    security(("segment_write_key" = ["events:write"])))]
async fn screen(state: State<AppState>, req: Request) -> ApiResult<Response> {
    ingest(state, req, Some("screen")).await
}

/// Queue a group: the company with external id `groupId` (created if needed,
/// traits merged); the contact joins it.
#[utoipa::path(post, path = "/v1/group", tag = TAG, operation_id = "segment_group",
    params(IdempotencyKey),
    request_body(content = SegmentGroup, content_type = "application/json"),
    responses((status = 200, description = "Queued durably", body = SegmentSuccess,
        headers(("Convene-Job-Id" = String, description = "The job (GET /v1/jobs/{id})"))), SegmentErrors),
    security(("segment_write_key" = ["contacts:write"])))]
async fn group(state: State<AppState>, req: Request) -> ApiResult<Response> {
    ingest(state, req, Some("group")).await
}

/// Queue an alias: the profile known by `previousId` merges into the one of `userId`.
#[utoipa::path(post, path = "/v1/alias", tag = TAG, operation_id = "segment_alias",
    params(IdempotencyKey),
    request_body(content = SegmentAlias, content_type = "application/json"),
    responses((status = 200, description = "Queued durably", body = SegmentSuccess,
        headers(("Convene-Job-Id" = String, description = "The job (GET /v1/jobs/{id})"))), SegmentErrors),
    security(("segment_write_key" = ["contacts:write"])))]
async fn alias(state: State<AppState>, req: Request) -> ApiResult<Response> {
    ingest(state, req, Some("alias")).await
}

/// Queue many messages as one job; one invalid message refuses the whole request.
#[utoipa::path(post, path = "/v1/batch", tag = TAG, operation_id = "segment_batch",
    params(IdempotencyKey),
    request_body(content = SegmentBatch, content_type = "application/json"),
    responses((status = 200, description = "Queued durably", body = SegmentSuccess,
        headers(("Convene-Job-Id" = String, description = "The job (GET /v1/jobs/{id})"))), SegmentErrors),
    security(("segment_write_key" = ["contacts:write", "events:write"])))]
async fn batch(state: State<AppState>, req: Request) -> ApiResult<Response> {
    ingest(state, req, None).await
}

/// The old name of `/v1/batch`.
#[utoipa::path(post, path = "/v1/import", tag = TAG, operation_id = "segment_import",
    params(IdempotencyKey),
    request_body(content = SegmentBatch, content_type = "application/json"),
    responses((status = 200, description = "Queued durably", body = SegmentSuccess,
        headers(("Convene-Job-Id" = String, description = "The job (GET /v1/jobs/{id})"))), SegmentErrors),
    security(("segment_write_key" = ["contacts:write", "events:write"])))]
async fn import(state: State<AppState>, req: Request) -> ApiResult<Response> {
    ingest(state, req, None).await
}

/// Reads the body (≤ 500 KB), authenticates (header, or `writeKey` in the
/// body), turns every message into an item and queues them as one job.
async fn ingest(State(state): State<AppState>, req: Request, kind: Option<&'static str>) -> ApiResult<Response> {
    let headers = req.headers().clone();
    // An uncompressed body announced over the limit is refused before it is read.
    if crate::http::json::announced_length(&headers).is_some_and(|n| n > MAX_REQUEST_BYTES)
        && !headers.contains_key(axum::http::header::CONTENT_ENCODING)
    {
        return Err(Error::bad_request(format!("the request is larger than {MAX_REQUEST_BYTES} bytes")).into());
    }
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), MAX_REQUEST_BYTES).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        ApiError(if too_large {
            Error::bad_request(format!("the request is larger than {MAX_REQUEST_BYTES} bytes"))
        } else {
            Error::bad_request(format!("the request body could not be read or decompressed: {e}"))
        })
    })?;
    check_depth(&bytes, convene_core::limits::MAX_JSON_DEPTH)?;
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::bad_request(format!("malformed JSON at line {} column {}: {e}", e.line(), e.column())))?;
    let Value::Object(mut body) = body else {
        return Err(Error::bad_request("the body must be a JSON object").into());
    };
    let key = authenticate_segment(&state, &headers, &body).await?;
    let received_at = ids::now();
    // Each message with its size as sent (before the batch's defaults are
    // copied into it: the 32 KB limit is on the message the client wrote).
    let size_of = |m: &Map<String, Value>| serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
    let messages: Vec<(String, Map<String, Value>, usize)> = match kind {
        Some(kind) => {
            let size = size_of(&body);
            vec![(kind.to_string(), body, size)]
        }
        None => {
            let sent_at = body.remove("sentAt");
            let context = body.remove("context");
            let Some(Value::Array(batch)) = body.remove("batch") else {
                return Err(Error::validation("batch", "the body must be {\"batch\": [ … ]}").into());
            };
            let mut out = Vec::with_capacity(batch.len());
            for (i, m) in batch.into_iter().enumerate() {
                let Value::Object(mut m) = m else {
                    return Err(prefix_row(Error::bad_request("each batch message must be an object"), i).into());
                };
                let size = size_of(&m);
                if let (Some(s), false) = (&sent_at, m.contains_key("sentAt")) {
                    m.insert("sentAt".into(), s.clone());
                }
                if let (Some(c), false) = (&context, m.contains_key("context")) {
                    m.insert("context".into(), c.clone());
                }
                let t = m.get("type").and_then(Value::as_str).unwrap_or("").to_string();
                out.push((t, m, size));
            }
            out
        }
    };
    let mut items = Vec::with_capacity(messages.len());
    for (i, (kind, message, size)) in messages.into_iter().enumerate() {
        if size > MAX_MESSAGE_BYTES {
            return Err(prefix_row(
                Error::bad_request(format!("the message is larger than {MAX_MESSAGE_BYTES} bytes")),
                i,
            )
            .into());
        }
        let item = message_item(&kind, message, received_at).map_err(|e| prefix_row(e, i))?;
        let scope = if matches!(item, IngestItem::Track { .. }) { Scope::EventsWrite } else { Scope::ContactsWrite };
        key.require(scope)?;
        items.push(item);
    }
    let ws = key.require(Scope::ContactsWrite).or_else(|_| key.require(Scope::EventsWrite))?.workspace_id.clone();
    let job = state.ingest.accept(&ws, items, crate::ingest::idempotency_key(&headers)?.as_deref()).await?;
    let mut response = axum::Json(json!({"success": true})).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&job) {
        response.headers_mut().insert(JOB_HEADER, v);
    }
    Ok(response)
}

async fn authenticate_segment(state: &AppState, headers: &HeaderMap, body: &Map<String, Value>) -> Result<Principal> {
    if presented_token(headers)?.is_none()
        && let Some(key) = body.get("writeKey").and_then(Value::as_str)
    {
        return authenticate_token(state, key).await;
    }
    authenticate(state, headers).await
}

fn string_id(m: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(Error::validation(key, format!("{key} must be a string"))),
    }
}

/// `userId` → external id, `anonymousId` → anonymous id.
fn lookups(m: &Map<String, Value>) -> Result<Lookups> {
    let mut out = Vec::new();
    if let Some(user) = string_id(m, "userId")? {
        out.push((
            IdentityKind::ExternalId,
            IdentityKind::ExternalId
                .normalise(&user)
                .map_err(|_| Error::validation("userId", "userId must have 1 to 254 characters"))?,
        ));
    }
    if let Some(anon) = string_id(m, "anonymousId")? {
        out.push((
            IdentityKind::AnonymousId,
            IdentityKind::AnonymousId
                .normalise(&anon)
                .map_err(|_| Error::validation("anonymousId", "anonymousId must have 1 to 254 characters"))?,
        ));
    }
    if out.is_empty() {
        return Err(Error::validation("userId", "a message needs a userId or an anonymousId"));
    }
    Ok(out)
}

fn object(m: &mut Map<String, Value>, key: &str) -> Result<Map<String, Value>> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(o)) => Ok(o),
        Some(_) => Err(Error::validation(key, format!("{key} must be an object"))),
    }
}

/// An ISO-8601 time as Segment's libraries and hand-written clients send
/// it: RFC 3339, an offset without its colon (`+0000`), no zone (UTC), or a
/// date alone (midnight UTC).
fn iso_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    ids::parse_time(s)
        .or_else(|| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z").ok().map(|t| t.with_timezone(&Utc)))
        .or_else(|| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|t| t.and_utc()))
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

fn time(m: &Map<String, Value>, key: &str) -> Result<Option<DateTime<Utc>>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            iso_time(s).map(Some).ok_or_else(|| Error::validation(key, format!("{key} must be an ISO-8601 time")))
        }
        Some(_) => Err(Error::validation(key, format!("{key} must be an ISO-8601 time"))),
    }
}

fn message_id(m: &Map<String, Value>) -> Result<Option<String>> {
    string_id(m, "messageId")?
        .map(|id| {
            validate_message_id(&id)
                .map_err(|_| Error::validation("messageId", "messageId must have 1 to 200 characters"))
        })
        .transpose()
}

/// Translates one Segment message into a core item.
fn message_item(kind: &str, mut m: Map<String, Value>, received_at: DateTime<Utc>) -> Result<IngestItem> {
    let message_id = message_id(&m)?;
    match kind {
        "identify" => {
            let lookups = lookups(&m)?;
            let traits = object(&mut m, "traits")?;
            let mut changes = ContactChanges::default();
            changes.add_traits(traits)?;
            Ok(IngestItem::Identify { lookups, changes, message_id })
        }
        "track" | "page" | "screen" => {
            let lookups = lookups(&m)?;
            let (event_kind, name) = match kind {
                "track" => (
                    EventKind::Track,
                    string_id(&m, "event")?.ok_or_else(|| Error::validation("event", "track needs an event name"))?,
                ),
                "page" => (EventKind::Page, string_id(&m, "name")?.unwrap_or_else(|| "Loaded a Page".into())),
                _ => (EventKind::Screen, string_id(&m, "name")?.unwrap_or_else(|| "Loaded a Screen".into())),
            };
            let name = validate_name(&name)?;
            let properties = object(&mut m, "properties")?;
            validate_properties(&name, &properties)?;
            let timestamp =
                event_time(received_at, time(&m, "timestamp")?, time(&m, "sentAt")?, time(&m, "originalTimestamp")?);
            let event =
                NewEvent { name, kind: event_kind, properties, description: None, timestamp, received_at, message_id };
            Ok(IngestItem::Track { lookups, event })
        }
        "group" => {
            let lookups = lookups(&m)?;
            let company =
                string_id(&m, "groupId")?.ok_or_else(|| Error::validation("groupId", "group needs a groupId"))?;
            let company = IdentityKind::ExternalId
                .normalise(&company)
                .map_err(|_| Error::validation("groupId", "groupId must have 1 to 254 characters"))?;
            let traits = object(&mut m, "traits")?;
            check_company_traits(&traits)?;
            Ok(IngestItem::Group { lookups, company, traits, message_id })
        }
        "alias" => {
            // The same ids as every other message: trimmed, 1 to 254 characters.
            let id = |key: &str, kind: IdentityKind| -> Result<String> {
                let raw = string_id(&m, key)?.ok_or_else(|| Error::validation(key, format!("alias needs a {key}")))?;
                kind.normalise(&raw).map_err(|_| Error::validation(key, format!("{key} must have 1 to 254 characters")))
            };
            let previous_anonymous = id("previousId", IdentityKind::AnonymousId)?;
            let previous_external = id("previousId", IdentityKind::ExternalId)?;
            let user = id("userId", IdentityKind::ExternalId)?;
            let previous =
                vec![(IdentityKind::AnonymousId, previous_anonymous), (IdentityKind::ExternalId, previous_external)];
            Ok(IngestItem::Alias { previous, lookups: vec![(IdentityKind::ExternalId, user)], message_id })
        }
        other => Err(Error::validation(
            "type",
            format!("unknown message type '{other}'; known: identify, track, page, screen, group, alias"),
        )),
    }
}

/// `POST /v1/identify`: a message needs `userId` or `anonymousId`; unknown
/// keys are ignored. At most 32 KB.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct SegmentIdentify {
    /// The contact's external id (found first).
    #[schema(schema_with = super::doc::identity)]
    user_id: Option<String>,
    /// The contact's anonymous id.
    #[schema(schema_with = super::doc::identity)]
    anonymous_id: Option<String>,
    /// Traits merged into the contact; `email` and `mobile` are identities.
    #[schema(schema_with = super::doc::traits_or_null)]
    traits: Option<Map<String, Value>>,
    /// Deduplicates retries (1 to 200 bytes; empty is absent).
    #[schema(max_length = 200)]
    message_id: Option<String>,
    /// The write key, when no credentials header is sent.
    write_key: Option<String>,
    /// Accepted and not stored.
    context: Option<Value>,
    /// Accepted and not stored.
    integrations: Option<Value>,
}

/// `POST /v1/track`: an event on the contact. At most 32 KB.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct SegmentTrack {
    /// The contact's external id (found first).
    #[schema(schema_with = super::doc::identity)]
    user_id: Option<String>,
    /// The contact's anonymous id.
    #[schema(schema_with = super::doc::identity)]
    anonymous_id: Option<String>,
    /// The event's name.
    #[schema(schema_with = super::doc::event_name)]
    event: String,
    /// The event's properties.
    #[schema(schema_with = super::doc::event_properties)]
    properties: Option<Map<String, Value>>,
    /// When it happened (ISO 8601); default: when received.
    timestamp: Option<DateTime<Utc>>,
    /// When the client sent it (with `originalTimestamp`, corrects clock skew).
    sent_at: Option<DateTime<Utc>>,
    /// The client's own event time.
    original_timestamp: Option<DateTime<Utc>>,
    /// Deduplicates retries (1 to 200 bytes; empty is absent).
    #[schema(max_length = 200)]
    message_id: Option<String>,
    /// The write key, when no credentials header is sent.
    write_key: Option<String>,
    /// Accepted and not stored.
    context: Option<Value>,
    /// Accepted and not stored.
    integrations: Option<Value>,
}

/// `POST /v1/page` and `/v1/screen`. At most 32 KB.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct SegmentPage {
    /// The contact's external id (found first).
    #[schema(schema_with = super::doc::identity)]
    user_id: Option<String>,
    /// The contact's anonymous id.
    #[schema(schema_with = super::doc::identity)]
    anonymous_id: Option<String>,
    /// The page's or screen's name (the event name; default "Loaded a Page" / "Loaded a Screen").
    #[schema(schema_with = super::doc::optional_event_name)]
    name: Option<String>,
    /// The event's properties.
    #[schema(schema_with = super::doc::event_properties)]
    properties: Option<Map<String, Value>>,
    /// When it happened (ISO 8601); default: when received.
    timestamp: Option<DateTime<Utc>>,
    /// When the client sent it (with `originalTimestamp`, corrects clock skew).
    sent_at: Option<DateTime<Utc>>,
    /// The client's own event time.
    original_timestamp: Option<DateTime<Utc>>,
    /// Deduplicates retries (1 to 200 bytes; empty is absent).
    #[schema(max_length = 200)]
    message_id: Option<String>,
    /// The write key, when no credentials header is sent.
    write_key: Option<String>,
    /// Accepted and not stored.
    context: Option<Value>,
    /// Accepted and not stored.
    integrations: Option<Value>,
}

/// `POST /v1/group`. At most 32 KB.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct SegmentGroup {
    /// The contact's external id (found first).
    #[schema(schema_with = super::doc::identity)]
    user_id: Option<String>,
    /// The contact's anonymous id.
    #[schema(schema_with = super::doc::identity)]
    anonymous_id: Option<String>,
    /// The company's external id.
    #[schema(schema_with = super::doc::required_identity)]
    group_id: String,
    /// Company traits, merged.
    #[schema(schema_with = super::doc::traits_or_null)]
    traits: Option<Map<String, Value>>,
    /// Deduplicates retries (1 to 200 bytes; empty is absent).
    #[schema(max_length = 200)]
    message_id: Option<String>,
    /// The write key, when no credentials header is sent.
    write_key: Option<String>,
    /// Accepted and not stored.
    context: Option<Value>,
    /// Accepted and not stored.
    integrations: Option<Value>,
}

/// `POST /v1/alias`. At most 32 KB.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct SegmentAlias {
    /// The profile that goes away: its anonymous id, else its external id.
    #[schema(schema_with = super::doc::any_id)]
    previous_id: String,
    /// The external id of the profile that stays.
    #[schema(schema_with = super::doc::any_id)]
    user_id: String,
    /// Deduplicates retries (1 to 200 bytes; empty is absent).
    #[schema(max_length = 200)]
    message_id: Option<String>,
    /// The write key, when no credentials header is sent.
    write_key: Option<String>,
    /// Accepted and not stored.
    context: Option<Value>,
    /// Accepted and not stored.
    integrations: Option<Value>,
}

/// One message of a batch, by its `type`: the fields of that type's route
/// (a message's own `writeKey` is ignored). At most 32 KB.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
#[allow(dead_code)]
pub enum SegmentBatchMessage {
    /// As `/v1/identify`.
    Identify(SegmentIdentify),
    /// As `/v1/track`.
    Track(SegmentTrack),
    /// As `/v1/page`.
    Page(SegmentPage),
    /// As `/v1/screen`.
    Screen(SegmentPage),
    /// As `/v1/group`.
    Group(SegmentGroup),
    /// As `/v1/alias`.
    Alias(SegmentAlias),
}

/// `POST /v1/batch`: 1 to 10,000 messages, at most 500 KB in all.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct SegmentBatch {
    /// The messages, queued as one job.
    #[schema(min_items = 1, max_items = 10000)]
    batch: Vec<SegmentBatchMessage>,
    /// Default `sentAt` of the messages.
    sent_at: Option<DateTime<Utc>>,
    /// Default `context` of the messages.
    context: Option<Value>,
    /// The write key, when no credentials header is sent.
    write_key: Option<String>,
}
