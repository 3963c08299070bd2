//! Segment's HTTP tracking API at `/compat/segment`: `/v1/identify`,
//! `/v1/track`, `/v1/page`, `/v1/screen`, `/v1/group`, `/v1/alias`,
//! `/v1/batch` (and `/v1/import`, its old name). The write key comes as
//! the HTTP Basic user name or as `writeKey` in the body; bodies may be
//! gzip-compressed; 32 KB per message, 500 KB per request. Success is
//! `{"success": true}`. Decisions: docs/compat/segment.md.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use convene_core::auth::Principal;
use convene_core::contact::ContactChanges;
use convene_core::event::{EventKind, NewEvent, event_time, validate_name, validate_properties};
use convene_core::identity::IdentityKind;
use convene_core::ingest::{IngestItem, Lookups, check_company_traits, validate_message_id};
use convene_core::scope::Scope;
use convene_core::{Error, Result, ids};
use serde_json::{Map, Value, json};
use tower_http::decompression::RequestDecompressionLayer;

use crate::api::ingest::{JOB_HEADER, prefix_row};
use crate::http::auth::{authenticate, authenticate_token, presented_token};
use crate::http::error::{ApiError, ApiResult, ErrorInfo};
use crate::http::json::check_depth;
use crate::state::AppState;

/// Largest request body (after decompression).
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;
/// Largest single message.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// The dialect's routes, with gzip decompression and its error envelope.
pub fn router() -> Router<AppState> {
    let single = |kind: &'static str| post(move |state: State<AppState>, req: Request| ingest(state, req, Some(kind)));
    Router::new()
        .route("/v1/identify", single("identify"))
        .route("/v1/track", single("track"))
        .route("/v1/page", single("page"))
        .route("/v1/screen", single("screen"))
        .route("/v1/group", single("group"))
        .route("/v1/alias", single("alias"))
        .route("/v1/batch", post(|state: State<AppState>, req: Request| ingest(state, req, None)))
        .route("/v1/import", post(|state: State<AppState>, req: Request| ingest(state, req, None)))
        .layer(RequestDecompressionLayer::new())
        .fallback(crate::api::ops::not_found)
        .method_not_allowed_fallback(crate::api::ops::method_not_allowed)
        .layer(middleware::from_fn(|req, next| super::rewrite_errors(req, next, envelope)))
}

fn envelope(info: &ErrorInfo) -> String {
    json!({"success": false, "code": info.code.name(), "message": info.message}).to_string()
}

/// Reads the body (≤ 500 KB), authenticates (header, or `writeKey` in the
/// body), turns every message into an item and queues them as one job.
async fn ingest(State(state): State<AppState>, req: Request, kind: Option<&'static str>) -> ApiResult<Response> {
    let headers = req.headers().clone();
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
    let messages: Vec<(String, Map<String, Value>)> = match kind {
        Some(kind) => vec![(kind.to_string(), body)],
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
                if let (Some(s), false) = (&sent_at, m.contains_key("sentAt")) {
                    m.insert("sentAt".into(), s.clone());
                }
                if let (Some(c), false) = (&context, m.contains_key("context")) {
                    m.insert("context".into(), c.clone());
                }
                let t = m.get("type").and_then(Value::as_str).unwrap_or("").to_string();
                out.push((t, m));
            }
            out
        }
    };
    let mut items = Vec::with_capacity(messages.len());
    for (i, (kind, message)) in messages.into_iter().enumerate() {
        let size = serde_json::to_vec(&message).map(|v| v.len()).unwrap_or(usize::MAX);
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

fn time(m: &Map<String, Value>, key: &str) -> Result<Option<DateTime<Utc>>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => ids::parse_time(s)
            .map(Some)
            .ok_or_else(|| Error::validation(key, format!("{key} must be an ISO-8601 time"))),
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
            let previous = string_id(&m, "previousId")?
                .ok_or_else(|| Error::validation("previousId", "alias needs a previousId"))?;
            let user = string_id(&m, "userId")?.ok_or_else(|| Error::validation("userId", "alias needs a userId"))?;
            let previous = vec![(IdentityKind::AnonymousId, previous.clone()), (IdentityKind::ExternalId, previous)];
            Ok(IngestItem::Alias { previous, lookups: vec![(IdentityKind::ExternalId, user)], message_id })
        }
        other => Err(Error::validation(
            "type",
            format!("unknown message type '{other}'; known: identify, track, page, screen, group, alias"),
        )),
    }
}
