//! The Convot API at `/compat/convot`: contacts found-or-created by email or
//! external id, conversations paged by number, typed messages with
//! operators. Errors are `{"error": {"code", "message"}}`, rendered once by
//! this dialect's layer. Decisions: docs/compat/convot.md.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use convene_core::batch::{BatchOptions, ContactUpsert, RowStatus};
use convene_core::contact::{Contact, ContactChanges};
use convene_core::conversation::{
    Conversation, ConversationChanges, ConversationFilter, ConversationId, ConversationStatus, Message, MessageFilter,
    MessageType, NewConversation, NewMessage, require_active_user, sender_for, subject,
};
use convene_core::identity::IdentityKind;
use convene_core::merge::TraitOp;
use convene_core::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, IntoResponses, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// The tag of the dialect's operations in `/openapi.json`.
pub const TAG: &str = "compat: convot";

/// The dialect's routes (each with its OpenAPI entry), with its envelope.
pub fn router() -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::with_openapi(openapi())
        .routes(routes!(upsert_contact))
        .routes(routes!(list_conversations, create_conversation))
        .routes(routes!(get_conversation, update_conversation))
        .routes(routes!(list_messages, create_message));
    super::enveloped(routes, super::Envelope::StatusAndBody(render_error))
}

/// The dialect's tag, security scheme and error envelope.
fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(OpenApi)]
    #[openapi(components(schemas(ConvotError)))]
    struct Schemas;
    let scheme = super::doc::bearer();
    let mut doc = super::doc::frame(
        TAG,
        "The Convot API: change the base URL `https://app.convot.io` to `http://convene-host/compat/convot`. \
         Errors are exactly `{\"error\": {\"code\", \"message\"}}` with the vendor's statuses and codes. \
         Decisions: docs/compat/convot.md.",
        vec![("convot_token", scheme)],
    );
    doc.merge(Schemas::openapi());
    doc
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

/// The vendor's error body (documentation of what [`render_error`] writes).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConvotError {
    /// The error.
    error: ConvotErrorBody,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConvotErrorBody {
    /// The vendor's code.
    code: ConvotCode,
    /// A sentence for a person.
    message: String,
}

/// The vendor's error codes ([`vendor_code`]).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ConvotCode {
    /// 400: an invalid request, or a body that is not JSON.
    BadRequest,
    /// 400: a body over 1 MiB.
    PayloadTooLarge,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 422.
    UnprocessableEntity,
    /// 429.
    RateLimited,
    /// 503.
    Unavailable,
    /// 500.
    InternalError,
}

/// The errors every route may answer, in the vendor's envelope.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ConvotErrors {
    /// An invalid request, a body that is not JSON (or over 1 MiB: `payload_too_large`).
    #[response(status = 400, description = "bad_request (payload_too_large for a body over 1 MiB)")]
    BadRequest(ConvotError),
    /// No key, or an unknown, expired or revoked one.
    #[response(status = 401, description = "unauthorized")]
    Unauthenticated(ConvotError),
    /// The key lacks the route's scope.
    #[response(status = 403, description = "forbidden: the key lacks the scope")]
    Forbidden(ConvotError),
    /// Too many requests.
    #[response(status = 429, description = "rate_limited; see Retry-After",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    RateLimited(ConvotError),
    /// Server fault.
    #[response(status = 500, description = "internal_error")]
    Internal(ConvotError),
    /// Overloaded or shutting down.
    #[response(status = 503, description = "unavailable; see Retry-After",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(ConvotError),
}

/// A contact as the vendor shows it: `name` and `custom_data` are traits.
#[derive(Serialize, ToSchema)]
#[schema(as = ConvotContact)]
pub struct ContactData {
    /// convene's id of the contact.
    id: i64,
    /// Lower-cased email.
    #[schema(required = true)]
    email: Option<String>,
    /// Your system's id.
    #[schema(required = true)]
    external_id: Option<String>,
    /// The trait `name` (any JSON value; `null` when unset).
    #[schema(required = true)]
    name: Option<Value>,
    /// The other traits.
    #[schema(value_type = Object)]
    custom_data: Map<String, Value>,
    /// SUBSCRIBED, UNSUBSCRIBED or PENDING.
    subscription_status: convene_core::contact::SubscriptionStatus,
    /// Creation time.
    created_at: chrono::DateTime<chrono::Utc>,
    /// Last change.
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// `{"contact"}`
#[derive(Serialize, ToSchema)]
#[schema(as = ConvotContactOut)]
pub struct ContactOut {
    /// The contact.
    contact: ContactData,
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

/// Find or create a contact by email, else external id; `custom_data` merges.
#[utoipa::path(post, path = "/v1/contacts", tag = TAG, operation_id = "convot_upsert_contact",
    request_body(content = ConvotContactIn, content_type = "application/json"),
    responses((status = 200, description = "Found (and updated)", body = ContactOut),
        (status = 201, description = "Created", body = ContactOut),
        (status = 422, description = "unprocessable_entity: an identity another contact holds, or a value that \
            does not fit its field", body = ConvotError),
        ConvotErrors),
    security(("convot_token" = ["contacts:write"])))]
pub async fn upsert_contact(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let (contact, created) = find_or_create(&state, auth.workspace(), contact_row(body)?).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(ContactOut { contact: ContactData::from(contact) })).into_response())
}

/// Query of `GET /v1/conversations`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationQuery {
    /// The page, counting from 1 (pages reach at most item 1,000,000).
    #[param(minimum = 1, maximum = 1000001)]
    page: Option<i64>,
    /// Conversations per page (default 30).
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<i64>,
    /// Only this status.
    #[param(value_type = Option<ConversationStatus>, inline)]
    status: Option<String>,
    /// Only those assigned to this user.
    assignee_id: Option<i64>,
    /// Only this contact's.
    contact_id: Option<i64>,
    /// Only those with this label.
    label: Option<String>,
}

/// Query of `GET /v1/conversations/{id}/messages`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// The page, counting from 1 (pages reach at most item 1,000,000).
    #[param(minimum = 1, maximum = 1000001)]
    page: Option<i64>,
    /// Messages per page (default 30).
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<i64>,
    /// Comma-separated types among `incoming`, `outgoing`, `note`, `activity` (all by default).
    #[serde(rename = "type")]
    #[param(
        rename = "type",
        pattern = r"^\s*(incoming|outgoing|note|activity)?\s*(,\s*(incoming|outgoing|note|activity)?\s*)*$"
    )]
    kind: Option<String>,
}

/// (offset, per_page, page) of `page` (from 1) and `per_page` (1 to 100,
/// default 30), checked.
fn window(page: Option<i64>, per_page: Option<i64>) -> Result<(usize, usize, usize)> {
    let page = page.unwrap_or(1);
    if page < 1 {
        return Err(Error::validation("page", "page counts from 1"));
    }
    let per_page = per_page.unwrap_or(PER_PAGE.0 as i64);
    if !(1..=PER_PAGE.1 as i64).contains(&per_page) {
        return Err(Error::validation("per_page", format!("per_page must be between 1 and {}", PER_PAGE.1)));
    }
    let offset = (page as usize - 1).saturating_mul(per_page as usize);
    if offset > MAX_OFFSET {
        return Err(Error::validation("page", format!("pages reach at most item {MAX_OFFSET}")));
    }
    Ok((offset, per_page as usize, page as usize))
}

/// Where a page is.
#[derive(Serialize, ToSchema)]
#[schema(as = ConvotMeta)]
pub struct Meta {
    /// This page (from 1).
    page: usize,
    /// Items per page.
    per_page: usize,
    /// Whether a later page has items.
    has_more: bool,
}

/// A page of conversations.
#[derive(Serialize, ToSchema)]
#[schema(as = ConvotConversationList)]
pub struct ConversationList {
    /// In creation order.
    conversations: Vec<ConversationOut>,
    /// Where the page is.
    meta: Meta,
}

/// `{"conversation"}`
#[derive(Serialize, ToSchema)]
#[schema(as = ConvotConversationOut)]
pub struct ConversationBody {
    /// The conversation.
    conversation: ConversationOut,
}

/// List conversations by numbered pages.
#[utoipa::path(get, path = "/v1/conversations", tag = TAG, operation_id = "convot_list_conversations",
    params(ConversationQuery),
    responses((status = 200, description = "A page", body = ConversationList), ConvotErrors),
    security(("convot_token" = ["conversations:read"])))]
pub async fn list_conversations(
    auth: Need<scopes::ConversationsRead>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<ConversationQuery>,
) -> ApiResult<Response> {
    let (offset, per_page, page) = window(q.page, q.per_page)?;
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
    Ok(axum::Json(ConversationList { conversations, meta: Meta { page, per_page, has_more } }).into_response())
}

fn conversation_body(c: Conversation) -> ConversationBody {
    ConversationBody { conversation: ConversationOut::from(c) }
}

/// One conversation.
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = TAG, operation_id = "convot_get_conversation",
    params(("id" = String, Path, description = "The conversation's UUID")),
    responses((status = 200, description = "The conversation", body = ConversationBody),
        (status = 404, description = "not_found", body = ConvotError), ConvotErrors),
    security(("convot_token" = ["conversations:read"])))]
pub async fn get_conversation(
    auth: Need<scopes::ConversationsRead>,
    State(state): State<AppState>,
    AppPath(ConversationId(id)): AppPath<ConversationId>,
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

/// Open a conversation with a contact (created by email if needed), seeded
/// with an outgoing message.
#[utoipa::path(post, path = "/v1/conversations", tag = TAG, operation_id = "convot_create_conversation",
    request_body(content = ConvotConversationIn, content_type = "application/json"),
    responses((status = 201, description = "Opened", body = ConversationBody),
        (status = 422, description = "unprocessable_entity: an unknown contact_id, or an unknown or inactive \
            operator", body = ConvotError),
        ConvotErrors),
    security(("convot_token" = ["conversations:write"])))]
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
    let subject = match body.get("subject") {
        None => None,
        Some(v) => subject(v)?,
    };
    // An outgoing message's sender never is the contact: it can be built first.
    let first_message = NewMessage::new(
        MessageType::Outgoing,
        &content,
        sender_for(MessageType::Outgoing, operator, 0, &auth.key.key_id)?,
    )?;
    let contact_id = match (body.get("contact_id"), body.get("email")) {
        (Some(Value::Number(n)), None) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
        (None, Some(Value::String(_))) => {
            // Everything that can refuse the request is checked before the
            // contact is created by email, so a refused request writes
            // nothing; the operator too, with core's rule (the store checks
            // it again when it writes the conversation).
            if let Some(id) = operator {
                let user = match state.store.get_user(auth.workspace(), id).await {
                    Ok(user) => Some(user),
                    Err(Error::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                };
                require_active_user(user.as_ref(), id, "operator_id")?;
            }
            let mut row = Map::new();
            row.insert("email".into(), body["email"].clone());
            find_or_create(&state, auth.workspace(), contact_row(row)?).await?.0.id
        }
        (Some(_), Some(_)) => return Err(Error::validation("email", "send email or contact_id, not both").into()),
        _ => return Err(Error::validation("email", "email or contact_id is required").into()),
    };
    let mut new = NewConversation::new(contact_id);
    new.subject = subject;
    new.first_message = Some(first_message);
    let c = state.store.create_conversation(auth.workspace(), new).await?;
    Ok((StatusCode::CREATED, axum::Json(conversation_body(c))).into_response())
}

/// Change a conversation's status or assignee (writing activity messages).
#[utoipa::path(patch, path = "/v1/conversations/{id}", tag = TAG, operation_id = "convot_update_conversation",
    params(("id" = String, Path, description = "The conversation's UUID")),
    request_body(content = ConvotConversationPatch, content_type = "application/json"),
    responses((status = 200, description = "The conversation", body = ConversationBody),
        (status = 404, description = "not_found", body = ConvotError),
        (status = 422, description = "unprocessable_entity: an unknown or inactive assignee", body = ConvotError),
        ConvotErrors),
    security(("convot_token" = ["conversations:write"])))]
pub async fn update_conversation(
    auth: Need<scopes::ConversationsWrite>,
    State(state): State<AppState>,
    AppPath(ConversationId(id)): AppPath<ConversationId>,
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

/// Post a message (`outgoing` by default, or a private `note`).
#[utoipa::path(post, path = "/v1/conversations/{id}/messages", tag = TAG, operation_id = "convot_create_message",
    params(("id" = String, Path, description = "The conversation's UUID")),
    request_body(content = ConvotMessageIn, content_type = "application/json"),
    responses((status = 201, description = "Posted", body = MessageBody),
        (status = 404, description = "not_found", body = ConvotError),
        (status = 422, description = "unprocessable_entity: an unknown or inactive operator", body = ConvotError),
        ConvotErrors),
    security(("convot_token" = ["conversations:write"])))]
pub async fn create_message(
    auth: Need<scopes::ConversationsWrite>,
    State(state): State<AppState>,
    AppPath(ConversationId(id)): AppPath<ConversationId>,
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
    Ok((StatusCode::CREATED, axum::Json(MessageBody { message: m.into() })).into_response())
}

/// A message, with `operator_id` when a user sent it.
#[derive(Serialize, ToSchema)]
#[schema(as = ConvotMessage)]
pub struct MessageData {
    /// The message.
    #[serde(flatten)]
    message: MessageOut,
    /// The user who sent it (`null` when the contact or an API key did).
    #[schema(required = true)]
    operator_id: Option<i64>,
}

impl From<Message> for MessageData {
    fn from(m: Message) -> Self {
        let operator_id = m.sender.user();
        MessageData { message: MessageOut::from(m), operator_id }
    }
}

/// `{"message"}`
#[derive(Serialize, ToSchema)]
#[schema(as = ConvotMessageOut)]
pub struct MessageBody {
    /// The message.
    message: MessageData,
}

/// A page of messages.
#[derive(Serialize, ToSchema)]
#[schema(as = ConvotMessageList)]
pub struct MessageList {
    /// Oldest first.
    messages: Vec<MessageData>,
    /// Where the page is.
    meta: Meta,
}

/// List a conversation's messages, oldest first (`type` filters).
#[utoipa::path(get, path = "/v1/conversations/{id}/messages", tag = TAG, operation_id = "convot_list_messages",
    params(("id" = String, Path, description = "The conversation's UUID"), MessageQuery),
    responses((status = 200, description = "A page", body = MessageList),
        (status = 404, description = "not_found", body = ConvotError), ConvotErrors),
    security(("convot_token" = ["conversations:read"])))]
pub async fn list_messages(
    auth: Need<scopes::ConversationsRead>,
    State(state): State<AppState>,
    AppPath(ConversationId(id)): AppPath<ConversationId>,
    AppQuery(q): AppQuery<MessageQuery>,
) -> ApiResult<Response> {
    let (offset, per_page, page) = window(q.page, q.per_page)?;
    let filter = MessageFilter::parse(q.kind.as_deref())?;
    let (items, has_more) = state.store.messages_at(auth.workspace(), &id, filter, offset, per_page).await?;
    let messages: Vec<MessageData> = items.into_iter().map(MessageData::from).collect();
    Ok(axum::Json(MessageList { messages, meta: Meta { page, per_page, has_more } }).into_response())
}

/// `POST /v1/contacts`: an email or an external id is required.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConvotContactIn {
    /// Found first (one `@`, a dot in the domain, no spaces; at most 254 bytes).
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    /// Found next.
    #[schema(schema_with = super::doc::identity)]
    external_id: Option<String>,
    /// The trait `name` (`null` removes it).
    name: Option<String>,
    /// Other traits, each set as given (`null` removes one).
    #[schema(schema_with = super::doc::variables)]
    custom_data: Option<Map<String, Value>>,
}

/// `POST /v1/conversations`: `email` or `contact_id` (not both) and `content`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ConvotConversationIn {
    /// With the contact's email.
    ByEmail(ConvotConversationByEmail),
    /// With the contact's id.
    ByContact(ConvotConversationByContact),
}

/// A conversation with the contact holding an email (created when none does).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConvotConversationByEmail {
    /// The contact's email (one `@`, a dot in the domain, no spaces; at most 254 bytes).
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// The first (outgoing) message: 1 to 150,000 characters, not only white space.
    #[schema(min_length = 1, max_length = 150000)]
    content: String,
    /// Subject (at most 1,000 characters).
    #[schema(max_length = 1000)]
    subject: Option<String>,
    /// The user sending the first message (an active user); default: the API key.
    operator_id: Option<i64>,
}

/// A conversation with a contact by its id.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConvotConversationByContact {
    /// The contact's id.
    contact_id: i64,
    /// The first (outgoing) message: 1 to 150,000 characters, not only white space.
    #[schema(min_length = 1, max_length = 150000)]
    content: String,
    /// Subject (at most 1,000 characters).
    #[schema(max_length = 1000)]
    subject: Option<String>,
    /// The user sending the first message (an active user); default: the API key.
    operator_id: Option<i64>,
}

/// `PATCH /v1/conversations/{id}`: parts left out stay as they are.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConvotConversationPatch {
    /// The new status.
    #[schema(nullable = false)]
    status: Option<ConversationStatus>,
    /// An active user; `null` unassigns.
    assignee_id: Option<i64>,
}

/// The types a message may be posted with.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ConvotPostedType {
    /// To the contact (default).
    Outgoing,
    /// Private to the team.
    Note,
}

/// `POST /v1/conversations/{id}/messages`
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConvotMessageIn {
    /// 1 to 150,000 characters, not only white space.
    #[schema(min_length = 1, max_length = 150000)]
    content: String,
    /// `outgoing` (default) or `note`.
    #[serde(rename = "type")]
    kind: Option<ConvotPostedType>,
    /// The user sending it (an active user); default: the API key.
    operator_id: Option<i64>,
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
