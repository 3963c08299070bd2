//! Settings (admins only): service accounts and their permissions, API
//! keys (the token shown once), fields, users and roles, teams.
//!
//! Every write goes through the same functions as the native API
//! (`api::accounts::new_account`, `api::keys::mint_key`, `api::fields::add_field`,
//! `api::users::create_with_password`); a failed form comes back to its page
//! with the error, which names the field.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, TimeZone, Utc};
use convene_core::field::{Entity, Field, FieldType};
use convene_core::page::{Page, PageRequest};
use convene_core::scope::{KeyKind, Scope};
use convene_core::user::{Role, User, UserChanges};
use convene_core::workspace::{ApiKey, ServiceAccount};
use convene_core::{Error, Store, ids};
use maud::{Markup, html};

use super::forms::{done, failed};
use super::layout::{Flash, Section, csrf, page, pager, when, when_opt};
use super::session::{Access, ConsoleResult, ConsoleUser, FormData, Posted};
use crate::api::dto::{CreateField, CreateKey, CreateServiceAccount, UpdateServiceAccount};
use crate::state::AppState;

/// Rows per settings list page.
const PAGE_ROWS: i64 = 50;

fn tabs(current: &str) -> Markup {
    let items = [
        ("service-accounts", "Service accounts"),
        ("keys", "API keys"),
        ("fields", "Fields"),
        ("users", "Users & roles"),
        ("teams", "Teams"),
    ];
    html! {
        nav.filters aria-label="Settings" {
            @for (slug, label) in items {
                a href=(format!("/console/settings/{slug}")) aria-current=[(slug == current).then_some("page")] { (label) }
            }
        }
    }
}

fn page_request(q: &HashMap<String, String>) -> Result<PageRequest, Error> {
    PageRequest::parse(q.get("cursor").map(String::as_str), Some(PAGE_ROWS))
}

/// Every service account (for pickers and the teams page), at most 10 pages.
async fn all_accounts(store: &dyn Store, ws: &str) -> Result<Vec<ServiceAccount>, Error> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = store.list_service_accounts(ws, PageRequest::parse(cursor.as_deref(), Some(1000))?).await?;
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(out)
}

fn scope_boxes(checked: &[Scope]) -> Markup {
    html! {
        fieldset {
            legend { "Permissions" }
            @for scope in Scope::ALL {
                label.inline {
                    input type="checkbox" name="scopes" value=(scope.as_str()) checked[checked.contains(&scope)];
                    (scope.as_str())
                }
            }
        }
    }
}

fn teams_text(form: &FormData) -> Vec<String> {
    form.get("teams").unwrap_or("").split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect()
}

/// `GET /console/settings/service-accounts`.
pub async fn accounts(
    user: ConsoleUser,
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Admin)?;
    let list: Page<ServiceAccount> = state.store.list_service_accounts(&user.ws, page_request(&q)?).await?;
    let body = html! {
        h1 { "Settings" }
        (tabs("service-accounts"))
        h2 { "Service accounts" }
        div.table-wrap { table {
            thead { tr { th { "Name" } th { "Description" } th { "Teams" } th { "Permissions" } th.hide-narrow { "Created" } } }
            tbody {
                @for a in &list.items {
                    tr {
                        td { a href=(format!("/console/settings/service-accounts/{}", a.id)) { (a.name) } }
                        td { (a.description) }
                        td { (a.teams.join(", ")) }
                        td { (a.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
                        td.hide-narrow { (when(&a.created_at)) }
                    }
                }
                @if list.items.is_empty() { tr { td colspan="5" { "No service accounts yet." } } }
            }
        } }
        (pager("/console/settings/service-accounts", list.next_cursor.as_deref()))
        h2 #create { "Create service account" }
        form method="post" action="/console/settings/service-accounts" {
            (csrf(&user))
            label for="sa-name" { "Name" }
            input #sa-name type="text" name="name" required maxlength="200";
            label for="sa-description" { "Description" }
            input #sa-description type="text" name="description" maxlength="2000";
            label for="sa-teams" { "Teams (comma-separated)" }
            input #sa-teams type="text" name="teams";
            (scope_boxes(&[]))
            p { button type="submit" { "Create service account" } }
        }
    };
    Ok(page(&user, Section::Settings, "Service accounts", &Flash::from_query(&q), body).into_response())
}

/// `POST /console/settings/service-accounts`.
pub async fn create_account(State(state): State<AppState>, posted: Posted) -> ConsoleResult<Response> {
    let Posted { user, form } = posted;
    user.require(Access::Admin)?;
    let body = CreateServiceAccount {
        name: form.get("name").unwrap_or("").to_string(),
        description: form.get("description").unwrap_or("").to_string(),
        teams: teams_text(&form),
        scopes: form.all("scopes"),
    };
    match crate::api::accounts::new_account(&state, &user.ws, body, None).await {
        Ok(a) => Ok(done(&format!("/console/settings/service-accounts/{}", a.id), "Service account created.")),
        Err(e) => Ok(failed("/console/settings/service-accounts", &e.public_message())),
    }
}

/// `GET /console/settings/service-accounts/{id}`: details and "Edit permissions".
pub async fn account(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Admin)?;
    let a = state.store.get_service_account(&user.ws, &id).await?;
    let body = html! {
        h1 { "Service account: " (a.name) }
        (tabs("service-accounts"))
        p.muted { "Id " code { (a.id) } " · created " (when(&a.created_at)) " · changed " (when(&a.updated_at)) }
        h2 { "Edit permissions" }
        form method="post" action=(format!("/console/settings/service-accounts/{}", a.id)) {
            (csrf(&user))
            label for="sa-name" { "Name" }
            input #sa-name type="text" name="name" value=(a.name) required maxlength="200";
            label for="sa-description" { "Description" }
            input #sa-description type="text" name="description" value=(a.description) maxlength="2000";
            label for="sa-teams" { "Teams (comma-separated)" }
            input #sa-teams type="text" name="teams" value=(a.teams.join(", "));
            (scope_boxes(&a.scopes))
            p { button type="submit" { "Save" } }
        }
        p { a href=(format!("/console/settings/keys?account={}", a.id)) { "Create an API key for this account" } }
    };
    Ok(page(&user, Section::Settings, &a.name, &Flash::from_query(&q), body).into_response())
}

/// `POST /console/settings/service-accounts/{id}`.
pub async fn update_account(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult<Response> {
    let Posted { user, form } = posted;
    user.require(Access::Admin)?;
    let path = format!("/console/settings/service-accounts/{id}");
    let body = UpdateServiceAccount {
        name: Some(form.get("name").unwrap_or("").to_string()),
        description: Some(form.get("description").unwrap_or("").to_string()),
        teams: Some(teams_text(&form)),
        scopes: Some(form.all("scopes")),
    };
    match crate::api::accounts::change_account(&state, &user.ws, &id, body, None).await {
        Ok(_) => Ok(done(&path, "Permissions saved.")),
        Err(e @ Error::NotFound { .. }) => Err(e.into()),
        Err(e) => Ok(failed(&path, &e.public_message())),
    }
}

fn key_status(k: &ApiKey) -> &'static str {
    k.status(ids::now())
}

/// `GET /console/settings/keys`.
pub async fn keys(
    user: ConsoleUser,
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Admin)?;
    let list = state.store.list_keys(&user.ws, page_request(&q)?).await?;
    let accounts = all_accounts(&*state.store, &user.ws).await?;
    let names: HashMap<&str, &str> = accounts.iter().map(|a| (a.id.as_str(), a.name.as_str())).collect();
    let preselected = q.get("account").map(String::as_str).unwrap_or("");
    let body = html! {
        h1 { "Settings" }
        (tabs("keys"))
        h2 { "API keys" }
        div.table-wrap { table {
            thead { tr { th { "Name" } th { "Preview" } th { "Kind" } th { "Service account" } th { "Expires" } th { "Last used" } th { "Status" } th { span.muted { "Action" } } } }
            tbody {
                @for k in &list.items {
                    tr {
                        td { (k.name) }
                        td { code { (k.preview) } }
                        td { (k.kind.as_str()) }
                        td { (k.service_account_id.as_deref().and_then(|id| names.get(id).copied()).unwrap_or("—")) }
                        td { (when_opt(&k.expires_at)) }
                        td { (when_opt(&k.last_used_at)) }
                        td { span.pill { (key_status(k)) } }
                        td {
                            @if k.revoked_at.is_none() {
                                form method="post" action=(format!("/console/settings/keys/{}/revoke", k.id)) {
                                    (csrf(&user))
                                    button.danger type="submit" data-confirm=(format!("Revoke the key '{}'? Integrations using it stop at once.", k.name)) { "Revoke" }
                                }
                            }
                        }
                    }
                }
                @if list.items.is_empty() { tr { td colspan="8" { "No keys yet." } } }
            }
        } }
        (pager("/console/settings/keys", list.next_cursor.as_deref()))
        h2 #create { "Create API key" }
        form method="post" action="/console/settings/keys" {
            (csrf(&user))
            label for="key-name" { "Name" }
            input #key-name type="text" name="name" required maxlength="200";
            fieldset {
                legend { "Kind" }
                label.inline { input type="radio" name="kind" value="analytics" checked; "Analytics (write contacts and events only)" }
                label.inline { input type="radio" name="kind" value="full"; "Full (the service account's permissions)" }
            }
            label for="key-account" { "Service account (a full key takes its permissions; a full key without one holds them all)" }
            select #key-account name="service_account_id" {
                option value="" { "None" }
                @for a in &accounts { option value=(a.id) selected[a.id == preselected] { (a.name) } }
            }
            label for="key-expires" { "Expires on (optional)" }
            input #key-expires type="date" name="expires_on";
            p { button type="submit" { "Create API key" } }
        }
    };
    Ok(page(&user, Section::Settings, "API keys", &Flash::from_query(&q), body).into_response())
}

/// `POST /console/settings/keys`: creates the key and shows its token once.
pub async fn create_key(State(state): State<AppState>, posted: Posted) -> ConsoleResult<Response> {
    let Posted { user, form } = posted;
    user.require(Access::Admin)?;
    let kind = match form.get("kind").unwrap_or("analytics").parse::<KeyKind>() {
        Ok(k) => k,
        Err(()) => return Ok(failed("/console/settings/keys", "kind must be analytics or full")),
    };
    let expires_at = match form.get("expires_on") {
        None => None,
        Some(d) => match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
            Ok(date) => date.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t)),
            Err(_) => return Ok(failed("/console/settings/keys", "expires_on must be a date (YYYY-MM-DD)")),
        },
    };
    let body = CreateKey {
        name: form.get("name").unwrap_or("").to_string(),
        kind,
        service_account_id: form.get("service_account_id").map(str::to_string),
        scopes: None,
        expires_at,
    };
    let (key, token) = match crate::api::keys::mint_key(&state, &user.ws, body, None).await {
        Ok(k) => k,
        Err(e) => return Ok(failed("/console/settings/keys", &e.public_message())),
    };
    let body = html! {
        h1 { "Settings" }
        (tabs("keys"))
        h2 { "API key created: " (key.name) }
        p.warning role="alert" { strong { "Copy this token now. " } "It will not be shown again: convene keeps only its hash." }
        code.token #new-token { (token) }
        p { button.secondary type="button" data-copy="new-token" { "Copy" } }
        p { "Kind " (key.kind.as_str()) " · preview " code { (key.preview) } " · expires " (when_opt(&key.expires_at)) }
        p { a href="/console/settings/keys" { "Back to API keys" } }
    };
    Ok(page(&user, Section::Settings, "API key created", &Flash::default(), body).into_response())
}

/// `POST /console/settings/keys/{id}/revoke`.
pub async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult<Response> {
    posted.user.require(Access::Admin)?;
    let key = state.store.revoke_key(&posted.user.ws, &id).await?;
    state.key_cache.clear();
    Ok(done("/console/settings/keys", &format!("Key '{}' revoked.", key.name)))
}

/// `GET /console/settings/fields`: by entity, with type, underlying name, inferred or not.
pub async fn fields(
    user: ConsoleUser,
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Admin)?;
    let entity = match q.get("entity").filter(|e| !e.is_empty()) {
        Some(e) => Some(e.parse::<Entity>().map_err(|_| Error::validation("entity", "unknown entity"))?),
        None => None,
    };
    let list: Page<Field> = state.store.list_fields(&user.ws, entity, page_request(&q)?).await?;
    let base = super::forms::query(&[("entity", entity.map(|e| e.as_str()).unwrap_or(""))]);
    let body = html! {
        h1 { "Settings" }
        (tabs("fields"))
        form.filters method="get" action="/console/settings/fields" {
            div {
                label for="f-entity" { "Entity" }
                select #f-entity name="entity" {
                    option value="" { "All" }
                    @for e in Entity::ALL { option value=(e.as_str()) selected[Some(e) == entity] { (e.as_str()) } }
                }
            }
            div { button type="submit" { "Show" } }
        }
        div.table-wrap { table {
            thead { tr { th { "Entity" } th { "Label" } th { "Underlying name" } th { "Type" } th { "Origin" } } }
            tbody {
                @for f in &list.items {
                    tr {
                        td { (f.entity.as_str()) }
                        td { (f.label) }
                        td { code { (f.name) } }
                        td { (f.field_type.as_str()) }
                        td { @if f.builtin { "built in" } @else if f.inferred { span.pill { "inferred" } } @else { "created" } }
                    }
                }
                @if list.items.is_empty() { tr { td colspan="5" { "No fields." } } }
            }
        } }
        (pager(&format!("/console/settings/fields{base}"), list.next_cursor.as_deref()))
        h2 #create { "Create field" }
        form method="post" action="/console/settings/fields" {
            (csrf(&user))
            label for="nf-entity" { "Entity" }
            select #nf-entity name="entity" { @for e in Entity::ALL { option value=(e.as_str()) { (e.as_str()) } } }
            label for="nf-name" { "Underlying name" }
            input #nf-name type="text" name="name" required maxlength="128";
            label for="nf-label" { "Label" }
            input #nf-label type="text" name="label" maxlength="200";
            label for="nf-type" { "Type" }
            select #nf-type name="type" { @for t in FieldType::ALL { option value=(t.as_str()) { (t.as_str()) } } }
            p { button type="submit" { "Create field" } }
        }
    };
    Ok(page(&user, Section::Settings, "Fields", &Flash::from_query(&q), body).into_response())
}

/// `POST /console/settings/fields`.
pub async fn create_field(State(state): State<AppState>, posted: Posted) -> ConsoleResult<Response> {
    let Posted { user, form } = posted;
    user.require(Access::Admin)?;
    let path = "/console/settings/fields";
    let (Ok(entity), Ok(field_type)) = (
        form.get("entity").unwrap_or("contact").parse::<Entity>(),
        form.get("type").unwrap_or("").parse::<FieldType>(),
    ) else {
        return Ok(failed(path, "choose an entity and a type"));
    };
    let body = CreateField {
        name: form.get("name").unwrap_or("").to_string(),
        label: form.get("label").map(str::to_string),
        field_type,
        entity,
    };
    match crate::api::fields::add_field(&state, &user.ws, body).await {
        Ok(f) => Ok(done(path, &format!("Field '{}' created.", f.name))),
        Err(e) => Ok(failed(path, &e.public_message())),
    }
}

fn role_select(id: &str, current: Role) -> Markup {
    html! {
        select id=(id) name="role" {
            @for r in [Role::Admin, Role::Agent, Role::Viewer] { option value=(r.as_str()) selected[r == current] { (r.as_str()) } }
        }
    }
}

/// `GET /console/settings/users`.
pub async fn users(
    user: ConsoleUser,
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Admin)?;
    let list: Page<User> = state.store.list_users(&user.ws, page_request(&q)?).await?;
    let body = html! {
        h1 { "Settings" }
        (tabs("users"))
        p.muted { "Admins can do everything; agents work contacts and conversations; viewers read only." }
        div.table-wrap { table {
            thead { tr { th { "Name" } th { "Email" } th { "Role and status" } } }
            tbody {
                @for u in &list.items {
                    tr {
                        td { (u.name) }
                        td { (u.email) }
                        td {
                            form.filters method="post" action=(format!("/console/settings/users/{}", u.id)) {
                                (csrf(&user))
                                div { label for=(format!("role-{}", u.id)) { "Role" } (role_select(&format!("role-{}", u.id), u.role)) }
                                div { label.inline { input type="checkbox" name="active" value="true" checked[u.active]; "Active" } }
                                div { button.secondary type="submit" { "Save" } }
                            }
                        }
                    }
                }
            }
        } }
        (pager("/console/settings/users", list.next_cursor.as_deref()))
        h2 #create { "Add user" }
        form method="post" action="/console/settings/users" {
            (csrf(&user))
            label for="nu-name" { "Name" }
            input #nu-name type="text" name="name" required maxlength="200";
            label for="nu-email" { "Email" }
            input #nu-email type="email" name="email" required;
            label for="nu-role" { "Role" }
            (role_select("nu-role", Role::Agent))
            label for="nu-password" { "Password (8 characters or more)" }
            input #nu-password type="password" name="password" autocomplete="new-password" minlength="8" required;
            p { button type="submit" { "Add user" } }
        }
    };
    Ok(page(&user, Section::Settings, "Users & roles", &Flash::from_query(&q), body).into_response())
}

fn user_changes(form: &FormData, with_identity: bool) -> Result<UserChanges, Error> {
    let mut body = serde_json::Map::new();
    if with_identity {
        body.insert("name".into(), form.get("name").unwrap_or("").into());
        body.insert("email".into(), form.get("email").unwrap_or("").into());
        body.insert("password".into(), form.raw("password").into());
    }
    body.insert("role".into(), form.get("role").unwrap_or("").into());
    body.insert("active".into(), (form.get("active") == Some("true") || with_identity).into());
    UserChanges::from_json(body)
}

/// `POST /console/settings/users`.
pub async fn create_user(State(state): State<AppState>, posted: Posted) -> ConsoleResult<Response> {
    let Posted { user, form } = posted;
    user.require(Access::Admin)?;
    let path = "/console/settings/users";
    let created = match user_changes(&form, true) {
        Ok(changes) => crate::api::users::create_with_password(&*state.store, &user.ws, changes).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(u) => Ok(done(path, &format!("User {} added as {}.", u.email, u.role.as_str()))),
        Err(e) => Ok(failed(path, &e.public_message())),
    }
}

/// `POST /console/settings/users/{id}`: role and active flag. An admin
/// cannot demote or deactivate themself (the workspace keeps an admin).
pub async fn update_user(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted,
) -> ConsoleResult<Response> {
    let Posted { user, form } = posted;
    user.require(Access::Admin)?;
    let path = "/console/settings/users";
    let changes = match user_changes(&form, false) {
        Ok(c) => c,
        Err(e) => return Ok(failed(path, &e.public_message())),
    };
    if id == user.user.id && (changes.role != Some(Role::Admin) || changes.active != Some(true)) {
        return Ok(failed(path, "you cannot remove your own admin role or deactivate yourself"));
    }
    let changed = state.store.update_user(&user.ws, id, changes).await?;
    Ok(done(
        path,
        &format!(
            "{} is now {}{}.",
            changed.email,
            changed.role.as_str(),
            if changed.active { "" } else { " (inactive)" }
        ),
    ))
}

/// `GET /console/settings/teams`: each team with its service accounts.
pub async fn teams(
    user: ConsoleUser,
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Admin)?;
    let accounts = all_accounts(&*state.store, &user.ws).await?;
    let mut teams: BTreeMap<&str, Vec<&ServiceAccount>> = BTreeMap::new();
    for a in &accounts {
        for t in &a.teams {
            teams.entry(t.as_str()).or_default().push(a);
        }
    }
    let body = html! {
        h1 { "Settings" }
        (tabs("teams"))
        p.muted { "A team groups service accounts; set an account's teams on its page." }
        @if teams.is_empty() { p { "No teams yet." } }
        div.cards {
            @for (team, members) in &teams {
                section.card {
                    h2 { (team) }
                    ul { @for a in members { li { a href=(format!("/console/settings/service-accounts/{}", a.id)) { (a.name) } } } }
                }
            }
        }
    };
    Ok(page(&user, Section::Settings, "Teams", &Flash::from_query(&q), body).into_response())
}
