//! The ConveYour analytics API at `/compat/conveyour`: `POST
//! /api/analytics/identify` (one object or an array) and `POST
//! /api/analytics/track`. Success is exactly
//! `{"status":"ok","message":"queued","data":[]}`; errors keep that shape
//! with `"status":"error"`. Decisions: docs/compat/conveyour.md.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use convene_core::contact::ContactChanges;
use convene_core::event::{EventKind, NewEvent, event_time, validate_name, validate_properties};
use convene_core::identity::IdentityKind;
use convene_core::ingest::{IngestItem, Lookups};
use convene_core::{Error, Result, ids};
use serde_json::{Map, Value};

use crate::api::ingest::{JOB_HEADER, prefix_row};
use crate::http::auth::{Need, scopes};
use crate::http::error::{ApiResult, ErrorInfo};
use crate::http::json::AppJson;
use crate::ingest::idempotency_key;
use crate::state::AppState;

/// The dialect's routes, with its error envelope.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/analytics/identify", post(identify))
        .route("/api/analytics/track", post(track))
        .fallback(crate::api::ops::not_found)
        .method_not_allowed_fallback(crate::api::ops::method_not_allowed)
        .layer(middleware::from_fn(|req, next| super::rewrite_errors(req, next, envelope)))
}

/// ConveYour's error shape, keys in the vendor's order.
fn envelope(info: &ErrorInfo) -> String {
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
/// trait; a literal email address is an email; anything else an external id.
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
pub async fn track(
    auth: Need<scopes::EventsWrite>,
    State(state): State<AppState>,
    headers: HeaderMap,
    AppJson(body): AppJson<Value>,
) -> ApiResult<Response> {
    let Value::Object(mut body) = body else {
        return Err(Error::bad_request("the body must be {\"id\", \"events\": [ … ]}").into());
    };
    let lookup = lookup_of(body.get("id").unwrap_or(&Value::Null), &Map::new())?;
    let Some(Value::Array(events)) = body.remove("events") else {
        return Err(Error::validation("events", "events must be an array of {\"event\", \"properties\"}").into());
    };
    let received_at = ids::now();
    let mut items = Vec::with_capacity(events.len());
    for (i, e) in events.into_iter().enumerate() {
        let item = event_item(e, &lookup, received_at).map_err(|e| prefix_row(e, i))?;
        items.push(item);
    }
    let job = state.ingest.accept(auth.workspace(), items, idempotency_key(&headers)?.as_deref()).await?;
    Ok(ok(job))
}

fn event_item(
    value: Value,
    lookup: &(IdentityKind, String),
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
    let timestamp = match e.remove("timestamp") {
        Some(Value::String(s)) => Some(
            ids::parse_time(&s).ok_or_else(|| Error::validation("timestamp", "timestamp must be an RFC 3339 time"))?,
        ),
        _ => None,
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
    Ok(IngestItem::Track { lookups: vec![lookup.clone()], event })
}
