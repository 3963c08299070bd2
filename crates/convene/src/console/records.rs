//! Reps and companies: lists with filters and cursor paging, and detail
//! pages (a rep's calls of the last 30 days; a company's contacts).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use convene_core::call::CallFilter;
use convene_core::company::CompanyFilter;
use convene_core::contact::ContactFilter;
use convene_core::page::PageRequest;
use convene_core::rep::RepFilter;
use convene_core::{Error, ids};
use futures::StreamExt;
use maud::html;

use super::forms::query;
use super::layout::{Flash, Section, page, pager, value_text, when};
use super::session::{Access, ConsoleResult, ConsoleUser};
use crate::state::AppState;

/// Rows per list page.
const PAGE_ROWS: i64 = 50;
/// Calls shown on a rep's page.
const REP_CALLS: u64 = 50;

fn get<'a>(q: &'a HashMap<String, String>, k: &str) -> &'a str {
    q.get(k).map(|v| v.trim()).unwrap_or("")
}

/// `GET /console/reps`.
pub async fn reps(
    user: ConsoleUser,
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Read)?;
    let active = match get(&q, "active") {
        "" => None,
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => return Err(Error::validation("active", "active must be 1 or 0").into()),
    };
    let department = Some(get(&q, "department").to_string()).filter(|d| !d.is_empty());
    let filter = RepFilter { department, rep_id: None, active };
    let page_req = PageRequest::parse(q.get("cursor").map(String::as_str), Some(PAGE_ROWS))?;
    let list = state.store.list_reps(&user.ws, filter, page_req).await?;
    let base =
        format!("/console/reps{}", query(&[("department", get(&q, "department")), ("active", get(&q, "active"))]));
    let body = html! {
        h1 { "Reps" }
        form.filters method="get" action="/console/reps" {
            div { label for="r-dep" { "Department" } input #r-dep type="text" name="department" value=(get(&q, "department")); }
            div {
                label for="r-active" { "Active" }
                select #r-active name="active" {
                    option value="" { "Any" }
                    option value="1" selected[active == Some(true)] { "Active" }
                    option value="0" selected[active == Some(false)] { "Inactive" }
                }
            }
            div { button type="submit" { "Filter" } }
        }
        div.table-wrap { table {
            thead { tr { th { "Rep id" } th { "Name" } th.hide-narrow { "Email" } th { "Department" } th { "Active" } } }
            tbody {
                @for r in &list.items {
                    tr {
                        td { a href=(format!("/console/reps/{}", super::forms::encode(&r.rep_id))) { (r.rep_id) } }
                        td { (r.name.as_deref().unwrap_or("—")) }
                        td.hide-narrow { (r.email.as_deref().unwrap_or("—")) }
                        td { (r.department.as_deref().unwrap_or("—")) }
                        td { (if r.active { "yes" } else { "no" }) }
                    }
                }
                @if list.items.is_empty() { tr { td colspan="5" { "No reps match." } } }
            }
        } }
        (pager(&base, list.next_cursor.as_deref()))
    };
    Ok(page(&user, Section::Reps, "Reps", &Flash::from_query(&q), body).into_response())
}

/// `GET /console/reps/{id}`.
pub async fn rep(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Read)?;
    let rep = state.store.get_rep(&user.ws, &id).await?;
    let filter =
        CallFilter { from: Some(ids::now() - chrono::Duration::days(30)), to: None, rep_id: Some(rep.rep_id.clone()) };
    let total = state.store.count_calls(&user.ws, filter.clone()).await?;
    let mut calls = Vec::new();
    let mut stream = state.store.stream_calls(&user.ws, filter, 0, REP_CALLS);
    while let Some(call) = stream.next().await {
        calls.push(call?);
    }
    let body = html! {
        h1 { (rep.name.as_deref().unwrap_or(&rep.rep_id)) }
        section.card {
            dl.props {
                dt { "Rep id" } dd { (rep.rep_id) }
                dt { "Email" } dd { (rep.email.as_deref().unwrap_or("—")) }
                dt { "Department" } dd { (rep.department.as_deref().unwrap_or("—")) }
                dt { "Active" } dd { (if rep.active { "yes" } else { "no" }) }
                @for (k, v) in &rep.attributes { dt { (k) } dd { (value_text(v)) } }
                dt { "Created" } dd { (when(&rep.created_at)) }
            }
        }
        h2 { "Calls in the last 30 days (" (total) ")" }
        div.table-wrap { table {
            thead { tr { th { "Started" } th { "Call id" } th { "Duration (s)" } th.hide-narrow { "Direction" } th.hide-narrow { "Campaign" } th { "Summary" } } }
            tbody {
                @for c in &calls {
                    tr {
                        td { a href=(format!("/console/conversations/{}", c.conversation.id)) { (when(&c.details.started_at)) } }
                        td { (c.details.call_id) }
                        td { (c.details.duration.map(|d| format!("{d:.0}")).unwrap_or("—".into())) }
                        td.hide-narrow { (c.details.direction.as_deref().unwrap_or("—")) }
                        td.hide-narrow { (c.details.campaign.as_deref().unwrap_or("—")) }
                        td { (c.details.summary.as_deref().unwrap_or("").chars().take(160).collect::<String>()) }
                    }
                }
                @if calls.is_empty() { tr { td colspan="6" { "No calls in the last 30 days." } } }
            }
        } }
        @if total > REP_CALLS { p.muted { "The first " (REP_CALLS) " are shown; the reports page aggregates them all." } }
    };
    Ok(page(&user, Section::Reps, &rep.rep_id, &Flash::from_query(&q), body).into_response())
}

/// `GET /console/companies`.
pub async fn companies(
    user: ConsoleUser,
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Read)?;
    let filter = CompanyFilter {
        external_id: Some(get(&q, "external_id").to_string()).filter(|v| !v.is_empty()),
        domain: Some(get(&q, "domain").to_lowercase()).filter(|v| !v.is_empty()),
    };
    let page_req = PageRequest::parse(q.get("cursor").map(String::as_str), Some(PAGE_ROWS))?;
    let list = state.store.list_companies(&user.ws, filter, page_req).await?;
    let base = format!(
        "/console/companies{}",
        query(&[("external_id", get(&q, "external_id")), ("domain", get(&q, "domain"))])
    );
    let body = html! {
        h1 { "Companies" }
        form.filters method="get" action="/console/companies" {
            div { label for="co-ext" { "External id" } input #co-ext type="text" name="external_id" value=(get(&q, "external_id")); }
            div { label for="co-dom" { "Domain" } input #co-dom type="text" name="domain" value=(get(&q, "domain")); }
            div { button type="submit" { "Filter" } }
        }
        div.table-wrap { table {
            thead { tr { th { "External id" } th { "Domain" } th.hide-narrow { "Updated" } } }
            tbody {
                @for c in &list.items {
                    tr {
                        td { a href=(format!("/console/companies/{}", c.id)) { (c.external_id) } }
                        td { (c.domain.as_deref().unwrap_or("—")) }
                        td.hide-narrow { (when(&c.updated_at)) }
                    }
                }
                @if list.items.is_empty() { tr { td colspan="3" { "No companies match." } } }
            }
        } }
        (pager(&base, list.next_cursor.as_deref()))
    };
    Ok(page(&user, Section::Companies, "Companies", &Flash::from_query(&q), body).into_response())
}

/// `GET /console/companies/{id}`: its traits and contacts.
pub async fn company(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Read)?;
    let id: i64 = id.parse().map_err(|_| Error::NotFound { entity: "company" })?;
    let company = state.store.get_company(&user.ws, id).await?;
    let page_req = PageRequest::parse(q.get("cursor").map(String::as_str), Some(PAGE_ROWS))?;
    let contacts = state
        .store
        .list_contacts(&user.ws, ContactFilter { company_id: Some(id), ..Default::default() }, page_req)
        .await?;
    let body = html! {
        h1 { (company.external_id) }
        section.card {
            dl.props {
                dt { "Domain" } dd { (company.domain.as_deref().unwrap_or("—")) }
                @for (k, v) in &company.traits { dt { (k) } dd { (value_text(v)) } }
                dt { "Created" } dd { (when(&company.created_at)) }
            }
        }
        h2 { "Contacts" }
        ul {
            @for c in &contacts.items {
                li { a href=(format!("/console/contacts/{}", c.id)) { (c.state.email.as_deref().or(c.state.external_id.as_deref()).unwrap_or("contact")) " (" (c.id) ")" } }
            }
            @if contacts.items.is_empty() { li.muted { "No contacts." } }
        }
        (pager(&format!("/console/companies/{id}"), contacts.next_cursor.as_deref()))
    };
    Ok(page(&user, Section::Companies, &company.external_id, &Flash::from_query(&q), body).into_response())
}
