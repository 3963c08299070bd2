//! Conversations: an inbox filtered by status and assignee; a thread that
//! shows incoming, outgoing, notes and activity distinctly; reply, private
//! note, resolve / reopen, assign. Actions are sent by the logged-in user
//! (`Sender::User`), so activity messages name them.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use convene_core::conversation::{
    Conversation, ConversationChanges, ConversationFilter, ConversationStatus, MessageFilter, MessageType, NewMessage,
    Sender,
};
use convene_core::page::PageRequest;
use convene_core::user::User;
use convene_core::{Error, Store};
use maud::{Markup, html};

use super::forms::{done, failed, query};
use super::layout::{Flash, Section, csrf, page, pager, when};
use super::session::{Access, ConsoleResult, ConsoleUser, Posted};
use crate::state::AppState;

/// Conversations per inbox page.
const PAGE_ROWS: i64 = 50;
/// Messages per thread page.
const THREAD_ROWS: i64 = 200;

/// The workspace's users (first 1,000) by id, for names and the assignee picker.
async fn users(store: &dyn Store, ws: &str) -> Result<Vec<User>, Error> {
    Ok(store.list_users(ws, PageRequest::parse(None, Some(1000))?).await?.items)
}

fn user_name(users: &[User], id: Option<i64>) -> String {
    match id {
        None => "Unassigned".into(),
        Some(id) => users.iter().find(|u| u.id == id).map(|u| u.name.clone()).unwrap_or(format!("user {id}")),
    }
}

fn contact_label(contacts: &HashMap<i64, String>, id: Option<i64>) -> Markup {
    match id {
        Some(id) => {
            html! { a href=(format!("/console/contacts/{id}")) { (contacts.get(&id).cloned().unwrap_or(format!("contact {id}"))) } }
        }
        None => html! { span.muted { "—" } },
    }
}

/// Labels of the contacts on a page (one read each; a page has at most 50).
async fn contact_labels(state: &AppState, ws: &str, items: &[Conversation]) -> HashMap<i64, String> {
    let mut out = HashMap::new();
    for id in items.iter().filter_map(|c| c.contact_id) {
        if out.contains_key(&id) {
            continue;
        }
        if let Ok(c) = state.store.get_contact(ws, id).await {
            let label = c.state.email.or(c.state.mobile).or(c.state.external_id).unwrap_or(format!("contact {id}"));
            out.insert(id, label);
        }
    }
    out
}

/// `GET /console/conversations`: the inbox.
pub async fn inbox(
    user: ConsoleUser,
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Read)?;
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let status = match get("status") {
        "" => None,
        s => Some(
            ConversationStatus::parse(s)
                .ok_or_else(|| Error::validation("status", "status must be open, pending or resolved"))?,
        ),
    };
    let assignee_id = match get("assignee") {
        "" => None,
        "me" => Some(user.user.id),
        s => Some(s.parse::<i64>().map_err(|_| Error::validation("assignee", "assignee must be a user id"))?),
    };
    let filter = ConversationFilter { status, assignee_id, ..Default::default() };
    let page_req = PageRequest::parse(q.get("cursor").map(String::as_str), Some(PAGE_ROWS))?;
    let list = state.store.list_conversations(&user.ws, filter, page_req).await?;
    let users = users(&*state.store, &user.ws).await?;
    let contacts = contact_labels(&state, &user.ws, &list.items).await;
    let base = format!("/console/conversations{}", query(&[("status", get("status")), ("assignee", get("assignee"))]));
    let body = html! {
        h1 { "Conversations" }
        form.filters method="get" action="/console/conversations" {
            div {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "Any" }
                    @for s in ConversationStatus::ALL { option value=(s.as_str()) selected[Some(*s) == status] { (s.as_str()) } }
                }
            }
            div {
                label for="f-assignee" { "Assignee" }
                select #f-assignee name="assignee" {
                    option value="" { "Anyone" }
                    option value="me" selected[get("assignee") == "me"] { "Me" }
                    @for u in &users { option value=(u.id) selected[get("assignee") == u.id.to_string()] { (u.name) } }
                }
            }
            div { button type="submit" { "Filter" } }
        }
        div.table-wrap { table {
            thead { tr { th { "Subject" } th { "Contact" } th { "Status" } th { "Assignee" } th.hide-narrow { "Channel" } th.hide-narrow { "Messages" } th { "Updated" } } }
            tbody {
                @for c in &list.items {
                    tr {
                        td { a href=(format!("/console/conversations/{}", c.id)) { (c.subject.as_deref().filter(|s| !s.is_empty()).unwrap_or("(no subject)")) } }
                        td { (contact_label(&contacts, c.contact_id)) }
                        td { span.pill { (c.status.as_str()) } }
                        td { (user_name(&users, c.assignee_id)) }
                        td.hide-narrow { (c.channel) }
                        td.hide-narrow { (c.messages_count) }
                        td { (when(&c.updated_at)) }
                    }
                }
                @if list.items.is_empty() { tr { td colspan="7" { "No conversations match." } } }
            }
        } }
        (pager(&base, list.next_cursor.as_deref()))
    };
    Ok(page(&user, Section::Conversations, "Conversations", &Flash::from_query(&q), body).into_response())
}

fn sender_label(sender: &Sender, users: &[User], contact: &str) -> String {
    match sender {
        Sender::User(id) => user_name(users, Some(*id)),
        Sender::Contact(_) => contact.to_string(),
        Sender::Api(key) => format!("API ({key})"),
    }
}

/// `GET /console/conversations/{id}`: the thread and its actions.
pub async fn thread(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Read)?;
    let conv = state.store.get_conversation(&user.ws, &id).await?;
    let page_req = PageRequest::parse(q.get("cursor").map(String::as_str), Some(THREAD_ROWS))?;
    let messages = state.store.list_messages(&user.ws, &id, MessageFilter::default(), page_req).await?;
    let users = users(&*state.store, &user.ws).await?;
    let contacts = contact_labels(&state, &user.ws, std::slice::from_ref(&conv)).await;
    let contact_text = conv.contact_id.and_then(|c| contacts.get(&c).cloned()).unwrap_or("Contact".into());
    let subject = conv.subject.clone().filter(|s| !s.is_empty()).unwrap_or("(no subject)".into());
    let action = |what: &str| format!("/console/conversations/{}/{what}", conv.id);
    let body = html! {
        h1 { (subject) }
        p {
            "With " (contact_label(&contacts, conv.contact_id)) " · " span.pill #status { (conv.status.as_str()) }
            " · " @if conv.assignee_id.is_some() { "assigned to " } strong #assignee { (user_name(&users, conv.assignee_id)) } " · " (conv.channel)
            " · opened " (when(&conv.created_at))
        }
        ol.thread aria-label="Messages" {
            @for m in &messages.items {
                li class=(m.kind.as_str()) {
                    div.meta {
                        (match m.kind { MessageType::Incoming => "Incoming", MessageType::Outgoing => "Reply", MessageType::Note => "Private note", MessageType::Activity => "Activity" })
                        " · " (sender_label(&m.sender, &users, &contact_text)) " · " (when(&m.created_at))
                    }
                    div { (m.content) }
                }
            }
            @if messages.items.is_empty() { li.activity { "No messages yet." } }
        }
        (pager(&format!("/console/conversations/{}", conv.id), messages.next_cursor.as_deref()))
        @if user.can(Access::Work) {
            form method="post" action=(action("messages")) {
                (csrf(&user))
                label for="m-content" { "Message" }
                textarea #m-content name="content" required maxlength="150000" {}
                div.actions {
                    button type="submit" name="type" value="outgoing" { "Send reply" }
                    button.secondary type="submit" name="type" value="note" { "Add private note" }
                }
            }
            div.actions {
                form method="post" action=(action("status")) {
                    (csrf(&user))
                    @if conv.status == ConversationStatus::Resolved {
                        button type="submit" name="status" value="open" { "Reopen" }
                    } @else {
                        button type="submit" name="status" value="resolved" { "Resolve" }
                    }
                }
                form.filters method="post" action=(action("assignee")) {
                    (csrf(&user))
                    div {
                        label for="a-user" { "Assign to" }
                        select #a-user name="assignee" {
                            option value="" { "Nobody" }
                            @for u in users.iter().filter(|u| u.active) { option value=(u.id) selected[Some(u.id) == conv.assignee_id] { (u.name) } }
                        }
                    }
                    div { button.secondary type="submit" { "Assign" } }
                }
            }
        } @else {
            p.muted { "Your role can read this conversation but not answer it." }
        }
    };
    Ok(page(&user, Section::Conversations, &subject, &Flash::from_query(&q), body).into_response())
}

/// `POST /console/conversations/{id}/messages`: a reply or a private note.
pub async fn post_message(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult<Response> {
    let Posted { user, form } = posted;
    user.require(Access::Work)?;
    let path = format!("/console/conversations/{id}");
    let kind = match form.get("type") {
        Some("note") => MessageType::Note,
        _ => MessageType::Outgoing,
    };
    let message = match NewMessage::new(kind, form.raw("content"), Sender::User(user.user.id)) {
        Ok(m) => m,
        Err(e) => return Ok(failed(&path, &e.public_message())),
    };
    match state.store.add_message(&user.ws, &id, message).await {
        Ok(_) => Ok(done(&path, if kind == MessageType::Note { "Note added." } else { "Reply sent." })),
        Err(e @ Error::NotFound { .. }) => Err(e.into()),
        Err(e) => Ok(failed(&path, &e.public_message())),
    }
}

async fn change(
    state: &AppState,
    user: &ConsoleUser,
    id: &str,
    changes: ConversationChanges,
    notice: &str,
) -> ConsoleResult<Response> {
    let path = format!("/console/conversations/{id}");
    match state.store.update_conversation(&user.ws, id, changes, Sender::User(user.user.id)).await {
        Ok(_) => Ok(done(&path, notice)),
        Err(e @ Error::NotFound { entity: "conversation" }) => Err(e.into()),
        Err(e) => Ok(failed(&path, &e.public_message())),
    }
}

/// `POST /console/conversations/{id}/status`: resolve or reopen.
pub async fn set_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult<Response> {
    let Posted { user, form } = posted;
    user.require(Access::Work)?;
    let Some(status) = form.get("status").and_then(ConversationStatus::parse) else {
        return Ok(failed(&format!("/console/conversations/{id}"), "status must be open, pending or resolved"));
    };
    let notice =
        if status == ConversationStatus::Resolved { "Conversation resolved." } else { "Conversation reopened." };
    change(&state, &user, &id, ConversationChanges { status: Some(status), ..Default::default() }, notice).await
}

/// `POST /console/conversations/{id}/assignee`.
pub async fn assign(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> ConsoleResult<Response> {
    let Posted { user, form } = posted;
    user.require(Access::Work)?;
    let assignee = match form.get("assignee") {
        None => None,
        Some(s) => match s.parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => return Ok(failed(&format!("/console/conversations/{id}"), "assignee must be a user")),
        },
    };
    change(
        &state,
        &user,
        &id,
        ConversationChanges { assignee: Some(assignee), ..Default::default() },
        "Assignment saved.",
    )
    .await
}
