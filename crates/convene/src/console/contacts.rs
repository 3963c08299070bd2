//! Contacts: a searchable, filterable list (identity prefix, tag, any
//! field), paged by cursor; a contact's page with its traits, tags,
//! subscription status, company and timeline of events and conversations.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use convene_core::contact::{Contact, ContactFilter};
use convene_core::conversation::TimelineItem;
use convene_core::page::PageRequest;
use convene_core::{Error, field::validate_field_name};
use maud::{Markup, html};

use super::forms::query;
use super::layout::{Flash, Section, page, pager, value_text, when};
use super::session::{Access, ConsoleResult, ConsoleUser};
use crate::state::AppState;

/// Rows per page of the list and the timeline.
const PAGE_ROWS: i64 = 50;
/// Longest text accepted in a filter box.
const MAX_FILTER_CHARS: usize = 200;

fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Result<&'a str, Error> {
    let v = q.get(name).map(|v| v.trim()).unwrap_or("");
    if v.chars().count() > MAX_FILTER_CHARS {
        return Err(Error::validation(name, format!("{name} must be at most {MAX_FILTER_CHARS} characters")));
    }
    Ok(v)
}

fn tags(c: &Contact) -> Vec<String> {
    match c.state.traits.get("tags") {
        Some(serde_json::Value::Array(items)) => items.iter().map(value_text).collect(),
        _ => Vec::new(),
    }
}

fn filter_from(q: &HashMap<String, String>) -> Result<ContactFilter, Error> {
    let (search, tag, field, value) = (param(q, "q")?, param(q, "tag")?, param(q, "field")?, param(q, "value")?);
    let field = if field.is_empty() {
        None
    } else {
        validate_field_name(field).map_err(|_| Error::validation("field", "field: not a valid field name"))?;
        Some((field.to_string(), value.to_string()))
    };
    Ok(ContactFilter {
        search: (!search.is_empty()).then(|| search.to_string()),
        tag: (!tag.is_empty()).then(|| tag.to_string()),
        field,
        ..Default::default()
    })
}

/// `GET /console/contacts`.
pub async fn list(
    user: ConsoleUser,
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Read)?;
    let mut flash = Flash::from_query(&q);
    let (filter, problem) = match filter_from(&q) {
        Ok(f) => (f, None),
        Err(e) => (ContactFilter::default(), Some(e.public_message())),
    };
    let page_req = PageRequest::parse(q.get("cursor").map(String::as_str), Some(PAGE_ROWS))?;
    let contacts =
        if problem.is_some() { None } else { Some(state.store.list_contacts(&user.ws, filter, page_req).await?) };
    flash.error = flash.error.or(problem);
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let base = format!(
        "/console/contacts{}",
        query(&[("q", get("q")), ("tag", get("tag")), ("field", get("field")), ("value", get("value"))])
    );
    let body = html! {
        h1 { "Contacts" }
        form.filters method="get" action="/console/contacts" role="search" {
            div { label for="c-q" { "Email, mobile or external id starts with" } input #c-q type="search" name="q" value=(get("q")); }
            div { label for="c-tag" { "Tag" } input #c-tag type="text" name="tag" value=(get("tag")); }
            div { label for="c-field" { "Field" } input #c-field type="text" name="field" value=(get("field")) placeholder="plan"; }
            div { label for="c-value" { "equals" } input #c-value type="text" name="value" value=(get("value")) placeholder="pro"; }
            div { button type="submit" { "Filter" } " " a href="/console/contacts" { "Clear" } }
        }
        @if let Some(page) = &contacts {
            div.table-wrap { table {
                thead { tr { th { "Id" } th { "Email" } th { "Mobile" } th.hide-narrow { "External id" } th { "Tags" } th.hide-narrow { "Subscription" } th.hide-narrow { "Updated" } } }
                tbody {
                    @for c in &page.items {
                        tr {
                            td { a href=(format!("/console/contacts/{}", c.id)) { (c.id) } }
                            td { a href=(format!("/console/contacts/{}", c.id)) { (c.state.email.as_deref().unwrap_or("—")) } }
                            td { (c.state.mobile.as_deref().unwrap_or("—")) }
                            td.hide-narrow { (c.state.external_id.as_deref().unwrap_or("—")) }
                            td { @for t in tags(c) { span.pill { (t) } " " } }
                            td.hide-narrow { (c.state.subscription_status.as_str()) }
                            td.hide-narrow { (when(&c.updated_at)) }
                        }
                    }
                    @if page.items.is_empty() { tr { td colspan="7" { "No contacts match." } } }
                }
            } }
            (pager(&base, page.next_cursor.as_deref()))
        }
    };
    Ok(page(&user, Section::Contacts, "Contacts", &flash, body).into_response())
}

fn timeline_item(item: &TimelineItem) -> Markup {
    match item {
        TimelineItem::Event(e) => html! {
            li.incoming {
                div.meta { (when(&e.event.timestamp)) " · " (e.event.kind.as_str()) }
                strong { (e.event.name) }
                @if let Some(d) = &e.event.description { " — " (d) }
                @if !e.event.properties.is_empty() {
                    div.muted { (serde_json::Value::Object(e.event.properties.clone()).to_string().chars().take(300).collect::<String>()) }
                }
            }
        },
        TimelineItem::Message(m) => html! {
            li class=(m.kind.as_str()) {
                div.meta {
                    (when(&m.created_at)) " · " (m.kind.as_str()) " · "
                    a href=(format!("/console/conversations/{}", m.conversation_id)) { "conversation" }
                }
                (m.content.chars().take(500).collect::<String>())
            }
        },
    }
}

/// `GET /console/contacts/{id}`.
pub async fn show(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Read)?;
    let id: i64 = id.parse().map_err(|_| Error::NotFound { entity: "contact" })?;
    let contact = state.store.get_contact(&user.ws, id).await?;
    let company = match contact.company_id {
        Some(cid) => state.store.get_company(&user.ws, cid).await.ok(),
        None => None,
    };
    let page_req = PageRequest::parse(q.get("cursor").map(String::as_str), Some(PAGE_ROWS))?;
    let timeline = state.store.timeline(&user.ws, id, page_req).await?;
    let title = contact.state.email.clone().or(contact.state.external_id.clone()).unwrap_or(format!("Contact {id}"));
    let body = html! {
        h1 { (title) }
        div.cards {
            section.card {
                h2 { "Identity" }
                dl.props {
                    dt { "Id" } dd { (contact.id) }
                    dt { "Email" } dd { (contact.state.email.as_deref().unwrap_or("—")) }
                    dt { "Mobile" } dd { (contact.state.mobile.as_deref().unwrap_or("—")) }
                    dt { "External id" } dd { (contact.state.external_id.as_deref().unwrap_or("—")) }
                    dt { "Subscription" } dd { span.pill { (contact.state.subscription_status.as_str()) } }
                    dt { "Company" } dd {
                        @match &company {
                            Some(c) => a href=(format!("/console/companies/{}", c.id)) { (c.external_id) @if let Some(d) = &c.domain { " (" (d) ")" } },
                            None => span.muted { "—" },
                        }
                    }
                    dt { "Created" } dd { (when(&contact.created_at)) }
                    dt { "Updated" } dd { (when(&contact.updated_at)) }
                }
            }
            section.card {
                h2 { "Tags" }
                @let tags = tags(&contact);
                @if tags.is_empty() { p.muted { "No tags." } }
                @for t in tags { span.pill { (t) } " " }
                h2 { "Traits" }
                dl.props {
                    @for (k, v) in contact.state.traits.iter().filter(|(k, _)| k.as_str() != "tags") {
                        dt { (k) } dd { (value_text(v)) }
                    }
                }
            }
        }
        h2 { "Timeline" }
        ol.thread {
            @for item in &timeline.items { (timeline_item(item)) }
            @if timeline.items.is_empty() { li.activity { "Nothing yet." } }
        }
        (pager(&format!("/console/contacts/{id}"), timeline.next_cursor.as_deref()))
    };
    Ok(page(&user, Section::Contacts, &title, &Flash::from_query(&q), body).into_response())
}
