//! The console's page frame: head, navigation, notices, and the shared
//! pieces of markup (CSRF field, pager, time stamps).

use std::collections::HashMap;

use axum::response::Html;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::session::{Access, ConsoleUser};

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Contacts list and pages.
    Contacts,
    /// Inbox and threads.
    Conversations,
    /// Reps.
    Reps,
    /// Companies.
    Companies,
    /// The dashboard.
    Reports,
    /// Settings (admins).
    Settings,
}

const SECTIONS: [(Section, &str, &str, Access); 6] = [
    (Section::Contacts, "Contacts", "/console/contacts", Access::Read),
    (Section::Conversations, "Conversations", "/console/conversations", Access::Read),
    (Section::Reps, "Reps", "/console/reps", Access::Read),
    (Section::Companies, "Companies", "/console/companies", Access::Read),
    (Section::Reports, "Reports", "/console/reports", Access::Read),
    (Section::Settings, "Settings", "/console/settings", Access::Admin),
];

/// A notice or error carried by the query string after a form.
#[derive(Debug, Default, Clone)]
pub struct Flash {
    /// Something done.
    pub notice: Option<String>,
    /// Something refused.
    pub error: Option<String>,
}

impl Flash {
    /// Reads `notice` and `error` from the query.
    pub fn from_query(q: &HashMap<String, String>) -> Self {
        let take = |k: &str| q.get(k).map(|v| v.chars().take(500).collect::<String>()).filter(|v| !v.is_empty());
        Flash { notice: take("notice"), error: take("error") }
    }
}

fn head(title: &str) -> Markup {
    html! {
        (DOCTYPE)
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · convene" }
        link rel="stylesheet" href="/console/assets/app.css";
        script src="/console/assets/app.js" defer {}
    }
}

/// A whole page for a logged-in user.
pub fn page(user: &ConsoleUser, section: Section, title: &str, flash: &Flash, body: Markup) -> Html<String> {
    let markup = html! {
        html lang="en" {
            head { (head(title)) }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console" { "convene" }
                    nav aria-label="Main" {
                        @for (s, label, href, access) in SECTIONS {
                            @if user.can(access) {
                                a href=(href) aria-current=[(s == section).then_some("page")] { (label) }
                            }
                        }
                    }
                    span.who { (user.user.name) " · " (user.user.role.as_str()) }
                    form method="post" action="/console/logout" {
                        (csrf(user))
                        button.secondary type="submit" { "Log out" }
                    }
                }
                main #main {
                    @if let Some(n) = &flash.notice { p.notice role="status" { (n) } }
                    @if let Some(e) = &flash.error { p.error role="alert" { (e) } }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string())
}

/// A page without navigation (login, errors).
pub fn bare(title: &str, message: &str) -> Html<String> {
    let markup = html! {
        html lang="en" {
            head { (head(title)) }
            body {
                main #main.login {
                    h1 { (title) }
                    p { (message) }
                    p { a href="/console" { "Back to the console" } }
                }
            }
        }
    };
    Html(markup.into_string())
}

/// A page without navigation around `body` (the login form).
pub fn standalone(title: &str, body: Markup) -> Html<String> {
    let markup = html! {
        html lang="en" {
            head { (head(title)) }
            body { main #main.login { (body) } }
        }
    };
    Html(markup.into_string())
}

/// The hidden CSRF field every form carries.
pub fn csrf(user: &ConsoleUser) -> Markup {
    html! { input type="hidden" name="_csrf" value=(user.csrf); }
}

/// A time for people: `2026-11-29 14:03 UTC`.
pub fn when(t: &DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M UTC")) } }
}

/// An optional time, `—` when absent.
pub fn when_opt(t: &Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => when(t),
        None => html! { span.muted { "—" } },
    }
}

/// "Next page" link when a cursor follows (`base` already holds the filters).
pub fn pager(base: &str, next_cursor: Option<&str>) -> Markup {
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        nav.pager aria-label="Pages" {
            @if let Some(c) = next_cursor {
                a href=(format!("{base}{sep}cursor={}", super::forms::encode(c))) rel="next" { "Next page →" }
            }
        }
    }
}

/// A JSON value as short text.
pub fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    }
}
