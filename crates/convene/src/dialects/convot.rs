//! The Convot API at `/compat/convot`: contacts found-or-created by email or
//! external id, conversations paged by number, typed messages with
//! operators. Errors are `{"error": {"code", "message"}}`, rendered once by
//! this dialect's layer. Decisions: docs/compat/convot.md.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use convene_core::batch::{BatchOptions, ContactUpsert, RowStatus};
use convene_core::contact::{Contact, ContactChanges};
use convene_core::conversation::{
    Conversation, ConversationChanges, ConversationFilter, ConversationStatus, Message, MessageFilter, MessageType,
    NewConversation, NewMessage, sender_for,
};
use convene_core::identity::IdentityKind;
use convene_core::merge::TraitOp;
use convene_core::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::api::dto::{ConversationOut, MessageOut};
use crate::http::auth::{Need, scopes};
use crate::http::error::{ApiResult, ErrorInfo};
use crate::http::json::AppJson;
use crate::http::path::AppPath;
use crate::http::query::AppQuery;
use crate::state::AppState;

/// What changes made through this dialect record as their source.
const SOURCE: &str = "convot";
/// Default and largest `per_page`.
const PER_PAGE: (usize, usize) = (30, 100);
/// Deepest item a numbered page may reach.
const MAX_OFFSET: usize = 1_000_000;

/// The dialect's routes, with its envelope.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/contacts", axum::routing::post(upsert_contact))
        .route("/v1/conversations", get(list_conversations).post(create_conversation))
        .route("/v1/conversations/{id}", get(get_conversation).patch(update_conversation))
        .route("/v1/conversations/{id}/messages", get(list_messages).post(create_message))
        .fallback(crate::api::ops::not_found)
        .method_not_allowed_fallback(crate::api::ops::method_not_allowed)
        .layer(middleware::from_fn(|req, next| super::rewrite_errors_and_status(req, next, render_error)))
}

/// The status and code sent for each of core's codes.
pub fn vendor_code(code: ErrorCode) -> (u16, &'static str) {
    match code {
        ErrorCode::Validation | ErrorCode::UnsupportedMediaType => (400, "bad_request"),
        ErrorCode::PayloadTooLarge => (400, "payload_too_large"),
        ErrorCode::Unauthenticated => (401, "unauthorized"),
        ErrorCode::Forbidden => (403, "forbidden"),
        ErrorCode::NotFound => (404, "not_found"),
        ErrorCode::MethodNotAllowed => (405, "method_not_allowed"),
        ErrorCode::InvalidValue | ErrorCode::Conflict => (422, "unprocessable_entity"),
        ErrorCode::RateLimited => (429, "rate_limited"),
        ErrorCode::Unavailable => (503, "unavailable"),
        ErrorCode::Internal => (500, "internal_error"),
    }
}

/// The vendor's status and body for an error.
pub fn render_error(info: &ErrorInfo) -> (u16, String) {
    let (status, code) = vendor_code(info.code);
    (status, json!({"error": {"code": code, "message": info.message}}).to_string())
}

/// A contact as the vendor shows it: `name` and `custom_data` are traits.
#[derive(Serialize)]
struct ContactData {
    id: i64,
    email: Option<String>,
    external_id: Option<String>,
    name: Option<Value>,
    custom_data: Map<String, Value>,
    subscription_status: convene_core::contact::SubscriptionStatus,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Contact> for ContactData {
    fn from(c: Contact) -> Self {
        let mut custom_data = c.state.traits;
        let name = custom_data.remove("name");
        ContactData {
            id: c.id,
            email: c.state.email,
            external_id: c.state.external_id,
            name,
            custom_data,
            subscription_status: c.state.subscription_status,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// Reads `{"email"?, "external_id"?, "name"?, "custom_data"?}` into a
/// find-or-create row (by email, else external id).
fn contact_row(mut body: Map<String, Value>) -> Result<ContactUpsert> {
    let mut changes = ContactChanges { source: Some(SOURCE.into()), ..Default::default() };
    let mut lookups = Vec::new();
    for kind in [IdentityKind::Email, IdentityKind::ExternalId] {
        match body.remove(kind.field()) {
            None | Some(Value::Null) => {}
            Some(v) => {
                changes.set_identity(kind, &v)?;
                if let Some((_, Some(value))) = changes.identities.iter().find(|(k, _)| *k == kind) {
                    lookups.push((kind, value.clone()));
                }
            }
        }
    }
    if lookups.is_empty() {
        return Err(Error::validation("email", "email or external_id is required"));
    }
    let mut traits = match body.remove("custom_data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Error::validation("custom_data", "custom_data must be an object")),
    };
    match body.remove("name") {
        None => {}
        Some(v @ (Value::String(_) | Value::Null)) => {
            traits.insert("name".into(), v);
        }
        Some(_) => return Err(Error::validation("name", "name must be a string")),
    }
    if let Some(k) = body.keys().next() {
        return Err(Error::validation(
            k.as_str(),
            format!("unknown field '{k}'; a contact has email, external_id, name and custom_data"),
        ));
    }
    changes.traits = TraitOp::parse_plain_map(&traits)?;
    Ok(ContactUpsert { row: 0, lookups, changes, create: true })
}

/// Finds or creates one contact; true when created.
async fn find_or_create(state: &AppState, ws: &str, row: ContactUpsert) -> Result<(Contact, bool)> {
    let outcome = state.store.upsert_contacts(ws, vec![row], BatchOptions::default()).await?;
    match outcome.rows.into_iter().next().map(|r| r.outcome) {
        Some(Ok((status, contact))) => Ok((contact, status == RowStatus::Created)),
        Some(Err(e)) => Err(e),
        None => Err(Error::Internal("a one-row batch answered no row".into())),
    }
}

/// `POST /v1/contacts`: 201 when created, 200 when found.
pub async fn upsert_contact(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let (contact, created) = find_or_create(&state, auth.workspace(), contact_row(body)?).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(json!({"contact": ContactData::from(contact)}))).into_response())
}

/// `page` (from 1) and `per_page` (1 to 100, default 30).
#[derive(Debug, Deserialize)]
pub struct Paging {
    page: Option<i64>,
    per_page: Option<i64>,
    status: Option<String>,
    assignee_id: Option<i64>,
    contact_id: Option<i64>,
    label: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl Paging {
    /// (offset, per_page, page), checked.
    fn window(&self) -> Result<(usize, usize, usize)> {
        let page = self.page.unwrap_or(1);
        if page < 1 {
            return Err(Error::validation("page", "page counts from 1"));
        }
        let per_page = self.per_page.unwrap_or(PER_PAGE.0 as i64);
        if !(1..=PER_PAGE.1 as i64).contains(&per_page) {
            return Err(Error::validation("per_page", format!("per_page must be between 1 and {}", PER_PAGE.1)));
        }
        let offset = (page as usize - 1).saturating_mul(per_page as usize);
        if offset > MAX_OFFSET {
            return Err(Error::validation("page", format!("pages reach at most item {MAX_OFFSET}")));
        }
        Ok((offset, per_page as usize, page as usize))
    }
}

#[derive(Serialize)]
struct Meta {
    page: usize,
    per_page: usize,
    has_more: bool,
}

/// `GET /v1/conversations`
pub async fn list_conversations(
    auth: Need<scopes::ConversationsRead>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<Paging>,
) -> ApiResult<Response> {
    let (offset, per_page, page) = q.window()?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            ConversationStatus::parse(s)
                .ok_or_else(|| Error::validation("status", "status must be open, pending or resolved"))
        })
        .transpose()?;
    let filter = ConversationFilter { status, assignee_id: q.assignee_id, contact_id: q.contact_id, label: q.label };
    let (items, has_more) = state.store.conversations_at(auth.workspace(), filter, offset, per_page).await?;
    let conversations: Vec<ConversationOut> = items.into_iter().map(Conversation::into).collect();
    Ok(axum::Json(json!({"conversations": conversations, "meta": Meta { page, per_page, has_more }})).into_response())
}

fn conversation_body(c: Conversation) -> Value {
    json!({ "conversation": ConversationOut::from(c) })
}

/// `GET /v1/conversations/{id}`
pub async fn get_conversation(
    auth: Need<scopes::ConversationsRead>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> ApiResult<Response> {
    let c = state.store.get_conversation(auth.workspace(), &id).await?;
    Ok(axum::Json(conversation_body(c)).into_response())
}

fn operator_of(body: &mut Map<String, Value>) -> Result<Option<i64>> {
    match body.remove("operator_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(_) => Err(Error::validation("operator_id", "operator_id must be a user's id")),
    }
}

fn content_of(body: &Map<String, Value>) -> Result<&str> {
    match body.get("content") {
        Some(Value::String(s)) => Ok(s),
        _ => Err(Error::validation("content", "content (text) is required")),
    }
}

/// `POST /v1/conversations {"email" | "contact_id", "content", "operator_id"?, "subject"?}`:
/// the contact is created by email if needed; the conversation is seeded
/// with an outgoing message.
pub async fn create_conversation(
    auth: Need<scopes::ConversationsWrite>,
    State(state): State<AppState>,
    AppJson(mut body): AppJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let operator = operator_of(&mut body)?;
    if let Some(k) = body.keys().find(|k| !["email", "contact_id", "content", "subject"].contains(&k.as_str())) {
        return Err(Error::validation(
            k.as_str(),
            format!("unknown field '{k}'; a conversation takes email or contact_id, content, subject and operator_id"),
        )
        .into());
    }
    let content = content_of(&body)?.to_string();
    let contact_id = match (body.get("contact_id"), body.get("email")) {
        (Some(Value::Number(n)), None) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
        (None, Some(Value::String(_))) => {
            let mut row = Map::new();
            row.insert("email".into(), body["email"].clone());
            find_or_create(&state, auth.workspace(), contact_row(row)?).await?.0.id
        }
        (Some(_), Some(_)) => return Err(Error::validation("email", "send email or contact_id, not both").into()),
        _ => return Err(Error::validation("email", "email or contact_id is required").into()),
    };
    let mut new = NewConversation::new(contact_id);
    new.subject = match body.get("subject") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(_) => return Err(Error::validation("subject", "subject must be text").into()),
    };
    let sender = sender_for(MessageType::Outgoing, operator, contact_id, &auth.key.key_id)?;
    new.first_message = Some(NewMessage::new(MessageType::Outgoing, &content, sender)?);
    let c = state.store.create_conversation(auth.workspace(), new).await?;
    Ok((StatusCode::CREATED, axum::Json(conversation_body(c))).into_response())
}

/// `PATCH /v1/conversations/{id} {"status"?, "assignee_id"?}`
pub async fn update_conversation(
    auth: Need<scopes::ConversationsWrite>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<Response> {
    if let Some(k) = body.keys().find(|k| !["status", "assignee_id"].contains(&k.as_str())) {
        return Err(Error::validation(k.as_str(), format!("unknown field '{k}'; send status or assignee_id")).into());
    }
    let changes = ConversationChanges::from_json(body)?;
    let actor = convene_core::conversation::Sender::Api(auth.key.key_id.clone());
    let c = state.store.update_conversation(auth.workspace(), &id, changes, actor).await?;
    Ok(axum::Json(conversation_body(c)).into_response())
}

/// `POST /v1/conversations/{id}/messages {"content", "type"?, "operator_id"?}`
pub async fn create_message(
    auth: Need<scopes::ConversationsWrite>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    AppJson(mut body): AppJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let operator = operator_of(&mut body)?;
    if let Some(k) = body.keys().find(|k| !["content", "type"].contains(&k.as_str())) {
        return Err(Error::validation(
            k.as_str(),
            format!("unknown field '{k}'; a message has content, type and operator_id"),
        )
        .into());
    }
    let kind = match body.get("type") {
        None | Some(Value::Null) => MessageType::Outgoing,
        Some(Value::String(t)) if t == "outgoing" => MessageType::Outgoing,
        Some(Value::String(t)) if t == "note" => MessageType::Note,
        Some(_) => return Err(Error::validation("type", "type must be outgoing or note").into()),
    };
    // Outgoing and note messages come from an operator or the key, never the
    // contact: no need to read the conversation before the write.
    let sender = sender_for(kind, operator, 0, &auth.key.key_id)?;
    let message = NewMessage::new(kind, content_of(&body)?, sender)?;
    let m: Message = state.store.add_message(auth.workspace(), &id, message).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({"message": message_json(m)}))).into_response())
}

/// A message, with `operator_id` when a user sent it.
fn message_json(m: Message) -> Value {
    let operator = m.sender.user();
    let mut v = serde_json::to_value(MessageOut::from(m)).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.insert("operator_id".into(), operator.map_or(Value::Null, Value::from));
    }
    v
}

/// `GET /v1/conversations/{id}/messages?type=incoming,outgoing`: oldest first.
pub async fn list_messages(
    auth: Need<scopes::ConversationsRead>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<Paging>,
) -> ApiResult<Response> {
    let (offset, per_page, page) = q.window()?;
    let filter = MessageFilter::parse(q.kind.as_deref())?;
    let (items, has_more) = state.store.messages_at(auth.workspace(), &id, filter, offset, per_page).await?;
    let messages: Vec<Value> = items.into_iter().map(message_json).collect();
    Ok(axum::Json(json!({"messages": messages, "meta": Meta { page, per_page, has_more }})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_code_has_a_status_the_vendor_lists_or_a_server_one() {
        for code in ErrorCode::ALL {
            let (status, name) = vendor_code(code);
            assert!([400, 401, 403, 404, 405, 422, 429, 500, 503].contains(&status), "{code:?}");
            assert!(!name.is_empty());
        }
        let info = ErrorInfo { code: ErrorCode::RateLimited, message: "slow down".into(), field: None, row: None };
        assert_eq!(render_error(&info), (429, r#"{"error":{"code":"rate_limited","message":"slow down"}}"#.into()));
    }
}
