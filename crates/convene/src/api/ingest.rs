//! Native ingest: `POST /v1/identify`, `/v1/track`, `/v1/batch` (queued,
//! answered 202 with a job id), `GET /v1/jobs/{id}`, and reading events
//! back (`GET /v1/events`, `GET /v1/contacts/{id}/events`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use convene_core::auth::KeyPrincipal;
use convene_core::contact::ContactChanges;
use convene_core::event::{EventFilter, EventKind, NewEvent, event_time, validate_name, validate_properties};
use convene_core::ids;
use convene_core::ingest::{IngestItem, LOOKUP_ORDER, lookups_of, validate_message_id};
use convene_core::page::PageRequest;
use convene_core::scope::Scope;
use convene_core::{Error, Result};
use serde_json::{Map, Value};

use super::CommonErrors;
use super::dto::{EventOut, EventQuery, JobOut, Paged, QueuedOut};
use crate::http::auth::{Need, scopes};
use crate::http::error::ApiResult;
use crate::http::json::AppJson;
use crate::http::path::AppPath;
use crate::http::query::AppQuery;
use crate::ingest::idempotency_key;
use crate::state::AppState;

/// The response header carrying the job id of a queued request.
pub const JOB_HEADER: &str = "convene-job-id";

fn take_str(body: &mut Map<String, Value>, key: &str) -> Result<Option<String>> {
    match body.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::validation(key, format!("{key} must be a string"))),
    }
}

fn take_time(body: &mut Map<String, Value>, key: &str) -> Result<Option<DateTime<Utc>>> {
    take_str(body, key)?
        .map(|s| ids::parse_time(&s).ok_or_else(|| Error::validation(key, format!("{key} must be an RFC 3339 time"))))
        .transpose()
}

/// Reads a native identify object into an item.
pub fn identify_item(mut body: Map<String, Value>) -> Result<IngestItem> {
    body.remove("type");
    let message_id = take_str(&mut body, "message_id")?.map(|m| validate_message_id(&m)).transpose()?;
    let changes = ContactChanges::from_json(body)?;
    let lookups = lookups_of(&changes);
    if lookups.is_empty() {
        return Err(Error::bad_request("identify needs an identity: external_id, email, mobile or anonymous_id"));
    }
    Ok(IngestItem::Identify { lookups, changes, message_id })
}

/// Reads a native track object into an item.
pub fn track_item(mut body: Map<String, Value>, received_at: DateTime<Utc>) -> Result<IngestItem> {
    body.remove("type");
    let name = take_str(&mut body, "event")?.ok_or_else(|| Error::validation("event", "track needs an event name"))?;
    let name = validate_name(&name)?;
    let properties = match body.remove("properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err(Error::validation("properties", "properties must be an object"));
        }
    };
    validate_properties(&name, &properties)?;
    let message_id = take_str(&mut body, "message_id")?.map(|m| validate_message_id(&m)).transpose()?;
    let timestamp = take_time(&mut body, "timestamp")?;
    let sent_at = take_time(&mut body, "sent_at")?;
    let original = take_time(&mut body, "original_timestamp")?;
    let mut identities = ContactChanges::default();
    for kind in LOOKUP_ORDER {
        if let Some(v) = body.remove(kind.field()) {
            identities.set_identity(kind, &v)?;
        }
    }
    if let Some(other) = body.keys().next() {
        return Err(Error::validation(other.clone(), format!("unknown field '{other}' in a track call")));
    }
    let lookups = lookups_of(&identities);
    if lookups.is_empty() {
        return Err(Error::bad_request("track needs an identity: external_id, email, mobile or anonymous_id"));
    }
    let event = NewEvent {
        name,
        kind: EventKind::Track,
        properties,
        description: None,
        timestamp: event_time(received_at, timestamp, sent_at, original),
        received_at,
        message_id,
    };
    Ok(IngestItem::Track { lookups, event })
}

/// 202 with the job id in the body and the `Convene-Job-Id` header.
pub fn queued(job_id: String) -> Response {
    let mut response =
        (StatusCode::ACCEPTED, Json(QueuedOut { job_id: job_id.clone(), status: "queued" })).into_response();
    if let Ok(v) = HeaderValue::from_str(&job_id) {
        response.headers_mut().insert(JOB_HEADER, v);
    }
    response
}

fn require_for(key: &KeyPrincipal, item: &IngestItem) -> Result<()> {
    let scope = match item {
        IngestItem::Track { .. } => Scope::EventsWrite,
        _ => Scope::ContactsWrite,
    };
    if key.scopes.contains(&scope) { Ok(()) } else { Err(Error::Forbidden { scope }) }
}

/// Queue a create-or-update of one contact.
#[utoipa::path(post, path = "/v1/identify", tag = "ingest", request_body = super::dto::IdentifyIn,
    responses((status = 202, description = "Queued durably", body = QueuedOut), CommonErrors),
    security(("bearer" = ["contacts:write"]), ("api_key" = ["contacts:write"])))]
pub async fn identify(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    headers: HeaderMap,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let item = identify_item(body)?;
    let job = state.ingest.accept(auth.workspace(), vec![item], idempotency_key(&headers)?.as_deref()).await?;
    Ok(queued(job))
}

/// Queue one event.
#[utoipa::path(post, path = "/v1/track", tag = "ingest", request_body = super::dto::TrackIn,
    responses((status = 202, description = "Queued durably", body = QueuedOut), CommonErrors),
    security(("bearer" = ["events:write"]), ("api_key" = ["events:write"])))]
pub async fn track(
    auth: Need<scopes::EventsWrite>,
    State(state): State<AppState>,
    headers: HeaderMap,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let item = track_item(body, ids::now())?;
    let job = state.ingest.accept(auth.workspace(), vec![item], idempotency_key(&headers)?.as_deref()).await?;
    Ok(queued(job))
}

/// Queue many identify and track items as one job; one invalid item refuses
/// the whole request (400 naming its index).
#[utoipa::path(post, path = "/v1/batch", tag = "ingest", request_body = super::dto::BatchIn,
    responses((status = 202, description = "Queued durably", body = QueuedOut), CommonErrors),
    security(("bearer" = ["contacts:write", "events:write"]), ("api_key" = ["contacts:write", "events:write"])))]
pub async fn batch(
    auth: Need<scopes::IngestWrite>,
    State(state): State<AppState>,
    headers: HeaderMap,
    AppJson(mut body): AppJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let Some(Value::Array(raw)) = body.remove("batch") else {
        return Err(Error::validation("batch", "the body must be {\"batch\": [ … ]}").into());
    };
    let received_at = ids::now();
    let mut items = Vec::with_capacity(raw.len());
    for (i, value) in raw.into_iter().enumerate() {
        let item = batch_item(value, received_at).map_err(|e| prefix_row(e, i))?;
        require_for(&auth.key, &item)?;
        items.push(item);
    }
    let job = state.ingest.accept(auth.workspace(), items, idempotency_key(&headers)?.as_deref()).await?;
    Ok(queued(job))
}

fn batch_item(value: Value, received_at: DateTime<Utc>) -> Result<IngestItem> {
    let Value::Object(object) = value else {
        return Err(Error::bad_request("each batch item must be an object"));
    };
    match object.get("type").and_then(Value::as_str) {
        Some("identify") => identify_item(object),
        Some("track") => track_item(object, received_at),
        _ => Err(Error::validation("type", "each batch item needs \"type\": \"identify\" or \"track\"")),
    }
}

/// Names the batch row in the error (field and message).
pub fn prefix_row(e: Error, row: usize) -> Error {
    match e {
        Error::Validation { message, field, .. } => {
            Error::Validation { message: format!("item {row}: {message}"), field, row: Some(row) }
        }
        Error::InvalidValue { message, field, .. } => {
            Error::InvalidValue { message: format!("item {row}: {message}"), field, row: Some(row) }
        }
        other => other.at_row(row),
    }
}

/// A job's state and per-row errors.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "ingest", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = JobOut), CommonErrors),
    security(("bearer" = ["contacts:write"]), ("api_key" = ["events:write"])))]
pub async fn get_job(
    auth: Need<scopes::IngestWrite>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<JobOut>> {
    Ok(Json(state.store.get_job(auth.workspace(), &id).await?.into()))
}

fn event_filter(q: &EventQuery) -> Result<EventFilter> {
    let time = |s: &Option<String>, field: &str| {
        s.as_deref()
            .map(|s| {
                ids::parse_time(s).ok_or_else(|| Error::validation(field, format!("{field} must be an RFC 3339 time")))
            })
            .transpose()
    };
    Ok(EventFilter {
        name: q.name.clone(),
        contact_id: q.contact_id,
        from: time(&q.from, "from")?,
        to: time(&q.to, "to")?,
    })
}

/// List events in arrival order.
#[utoipa::path(get, path = "/v1/events", tag = "ingest", params(EventQuery),
    responses((status = 200, description = "A page of events", body = Paged<EventOut>), CommonErrors),
    security(("bearer" = ["events:read"]), ("api_key" = ["events:read"])))]
pub async fn list_events(
    auth: Need<scopes::EventsRead>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<EventQuery>,
) -> ApiResult<Json<Paged<EventOut>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let page = state.store.list_events(auth.workspace(), event_filter(&q)?, page).await?;
    Ok(Json(Paged::from_page(page, EventOut::from)))
}

/// A contact's events in arrival order.
#[utoipa::path(get, path = "/v1/contacts/{id}/events", tag = "ingest",
    params(("id" = i64, Path, description = "Contact id"), EventQuery),
    responses((status = 200, description = "A page of events", body = Paged<EventOut>), CommonErrors),
    security(("bearer" = ["events:read"]), ("api_key" = ["events:read"])))]
pub async fn contact_events(
    auth: Need<scopes::EventsRead>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<EventQuery>,
) -> ApiResult<Json<Paged<EventOut>>> {
    let id: i64 = id.parse().map_err(|_| Error::NotFound { entity: "contact" })?;
    state.store.get_contact(auth.workspace(), id).await?;
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let mut filter = event_filter(&q)?;
    filter.contact_id = Some(id);
    let page = state.store.list_events(auth.workspace(), filter, page).await?;
    Ok(Json(Paged::from_page(page, EventOut::from)))
}
