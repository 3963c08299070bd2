//! `/v1/conversations`: conversations and their messages, and a contact's
//! timeline (`/v1/contacts/{id}/timeline`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convene_core::Error;
use convene_core::conversation::{
    ConversationChanges, ConversationFilter, ConversationId, ConversationStatus, MessageFilter, MessageType,
    NewConversation, NewMessage, Sender, sender_for,
};
use convene_core::page::PageRequest;
use convene_core::scope::Scope;
use serde_json::{Map, Value};

use super::CommonErrors;
use super::dto::{
    ConversationIn, ConversationOut, ConversationPatch, ConversationQuery, MessageIn, MessageOut, MessageQuery,
    PageParams, Paged, TimelineOut,
};
use crate::http::auth::{Need, scopes};
use crate::http::error::ApiResult;
use crate::http::json::AppJson;
use crate::http::path::AppPath;
use crate::http::query::AppQuery;
use crate::state::AppState;

/// Open a conversation for a contact, optionally with its first message.
#[utoipa::path(post, path = "/v1/conversations", tag = "conversations", request_body = ConversationIn,
    responses((status = 201, description = "The new conversation", body = ConversationOut), CommonErrors),
    security(("bearer" = ["conversations:write"]), ("api_key" = ["conversations:write"])))]
pub async fn create_conversation(
    auth: Need<scopes::ConversationsWrite>,
    State(state): State<AppState>,
    AppJson(mut body): AppJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<ConversationOut>)> {
    // The first message's sender follows the same rule as a posted message.
    let contact_id = body.get("contact_id").and_then(Value::as_i64).unwrap_or_default();
    let first = match body.remove("message") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(message_in(m, contact_id, &auth.key.key_id)?),
        Some(_) => return Err(Error::validation("message", "message must be {\"content\", \"type\"?}").into()),
    };
    let mut new = NewConversation::from_json(body, Sender::Api(auth.key.key_id.clone()))?;
    new.first_message = first;
    let conversation = state.store.create_conversation(auth.workspace(), new).await?;
    Ok((StatusCode::CREATED, Json(conversation.into())))
}

/// Reads a posted message: `content`, `type` (default outgoing), `operator_id`.
fn message_in(mut m: Map<String, Value>, contact_id: i64, key_id: &str) -> Result<NewMessage, Error> {
    let operator = match m.remove("operator_id") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
        Some(_) => return Err(Error::validation("operator_id", "operator_id must be a user's id")),
    };
    if let Some(k) = m.keys().find(|k| !["content", "type"].contains(&k.as_str())) {
        return Err(Error::validation(
            k.as_str(),
            format!("unknown field '{k}'; a message has content, type and operator_id"),
        ));
    }
    let kind = match m.get("type") {
        None | Some(Value::Null) => MessageType::Outgoing,
        Some(v) => v
            .as_str()
            .and_then(MessageType::parse)
            .filter(|t| *t != MessageType::Activity)
            .ok_or_else(|| Error::validation("type", "type must be incoming, outgoing or note"))?,
    };
    let sender = sender_for(kind, operator, contact_id, key_id)?;
    convene_core::conversation::message_of(&m, sender, kind)
}

/// List conversations in creation order, filtered by status, assignee, contact or label.
#[utoipa::path(get, path = "/v1/conversations", tag = "conversations", params(ConversationQuery),
    responses((status = 200, description = "A page of conversations", body = Paged<ConversationOut>), CommonErrors),
    security(("bearer" = ["conversations:read"]), ("api_key" = ["conversations:read"])))]
pub async fn list_conversations(
    auth: Need<scopes::ConversationsRead>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<ConversationQuery>,
) -> ApiResult<Json<Paged<ConversationOut>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            ConversationStatus::parse(s)
                .ok_or_else(|| Error::validation("status", "status must be open, pending or resolved"))
        })
        .transpose()?;
    let filter = ConversationFilter { status, assignee_id: q.assignee_id, contact_id: q.contact_id, label: q.label };
    let page = state.store.list_conversations(auth.workspace(), filter, page).await?;
    Ok(Json(Paged::from_page(page, ConversationOut::from)))
}

/// One conversation.
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "Conversation UUID")),
    responses((status = 200, description = "The conversation", body = ConversationOut), CommonErrors),
    security(("bearer" = ["conversations:read"]), ("api_key" = ["conversations:read"])))]
pub async fn get_conversation(
    auth: Need<scopes::ConversationsRead>,
    State(state): State<AppState>,
    AppPath(ConversationId(id)): AppPath<ConversationId>,
) -> ApiResult<Json<ConversationOut>> {
    Ok(Json(state.store.get_conversation(auth.workspace(), &id).await?.into()))
}

/// Change status, assignee or labels; status and assignment changes write activity messages.
#[utoipa::path(patch, path = "/v1/conversations/{id}", tag = "conversations", request_body = ConversationPatch,
    params(("id" = String, Path, description = "Conversation UUID")),
    responses((status = 200, description = "The conversation after the change", body = ConversationOut), CommonErrors),
    security(("bearer" = ["conversations:write"]), ("api_key" = ["conversations:write"])))]
pub async fn update_conversation(
    auth: Need<scopes::ConversationsWrite>,
    State(state): State<AppState>,
    AppPath(ConversationId(id)): AppPath<ConversationId>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<Json<ConversationOut>> {
    let changes = ConversationChanges::from_json(body)?;
    let actor = Sender::Api(auth.key.key_id.clone());
    Ok(Json(state.store.update_conversation(auth.workspace(), &id, changes, actor).await?.into()))
}

/// A conversation's messages, oldest first, optionally of some types.
#[utoipa::path(get, path = "/v1/conversations/{id}/messages", tag = "conversations",
    params(("id" = String, Path, description = "Conversation UUID"), MessageQuery),
    responses((status = 200, description = "A page of messages", body = Paged<MessageOut>), CommonErrors),
    security(("bearer" = ["conversations:read"]), ("api_key" = ["conversations:read"])))]
pub async fn list_messages(
    auth: Need<scopes::ConversationsRead>,
    State(state): State<AppState>,
    AppPath(ConversationId(id)): AppPath<ConversationId>,
    AppQuery(q): AppQuery<MessageQuery>,
) -> ApiResult<Json<Paged<MessageOut>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let filter = MessageFilter::parse(q.kind.as_deref())?;
    let page = state.store.list_messages(auth.workspace(), &id, filter, page).await?;
    Ok(Json(Paged::from_page(page, MessageOut::from)))
}

/// Add a message: `incoming` comes from the contact, others from the named
/// operator (an active user) or the API key.
#[utoipa::path(post, path = "/v1/conversations/{id}/messages", tag = "conversations", request_body = MessageIn,
    params(("id" = String, Path, description = "Conversation UUID")),
    responses((status = 201, description = "The message", body = MessageOut), CommonErrors),
    security(("bearer" = ["conversations:write"]), ("api_key" = ["conversations:write"])))]
pub async fn create_message(
    auth: Need<scopes::ConversationsWrite>,
    State(state): State<AppState>,
    AppPath(ConversationId(id)): AppPath<ConversationId>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<MessageOut>)> {
    // Only an incoming message needs the conversation first (its sender is
    // the contact); the others go straight to the write, which finds it.
    let contact_id = if body.get("type").and_then(Value::as_str) == Some(MessageType::Incoming.as_str()) {
        state.store.get_conversation(auth.workspace(), &id).await?.contact_id.ok_or_else(|| {
            Error::validation("type", "this conversation has no contact, so it cannot take incoming messages")
        })?
    } else {
        0
    };
    let message = message_in(body, contact_id, &auth.key.key_id)?;
    let message = state.store.add_message(auth.workspace(), &id, message).await?;
    Ok((StatusCode::CREATED, Json(message.into())))
}

/// A contact's events and conversation messages, oldest first. It shows
/// both, so the key needs `conversations:read` and `events:read`.
#[utoipa::path(get, path = "/v1/contacts/{id}/timeline", tag = "contacts",
    params(("id" = i64, Path, description = "Contact id"), PageParams),
    responses((status = 200, description = "A page of the timeline", body = Paged<TimelineOut>), CommonErrors),
    security(("bearer" = ["conversations:read", "events:read"]), ("api_key" = ["conversations:read", "events:read"])))]
pub async fn timeline(
    auth: Need<scopes::ConversationsRead>,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<PageParams>,
) -> ApiResult<Json<Paged<TimelineOut>>> {
    if !auth.key.scopes.contains(&Scope::EventsRead) {
        return Err(Error::Forbidden { scope: Scope::EventsRead }.into());
    }
    let id: i64 = id.parse().map_err(|_| Error::NotFound { entity: "contact" })?;
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let page = state.store.timeline(auth.workspace(), id, page).await?;
    Ok(Json(Paged::from_page(page, TimelineOut::from)))
}
