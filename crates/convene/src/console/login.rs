//! Login and logout.
//!
//! A login checks the client address's failed-authentication bucket and
//! the account's login bucket first (429 when used up), then the password
//! against every user with that email (argon2id, off the async threads; an
//! unknown email costs the same time as a wrong password). One match starts
//! a session; the same email and password in several workspaces asks which
//! one. The login form is protected from cross-site posting by a
//! double-submit cookie, as there is no session yet.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use convene_core::identity::normalise_email;
use convene_core::session::{self, UserLogin, random_token};
use convene_core::{Error, ids, password};
use maud::html;

use super::forms::safe_next;
use super::layout::standalone;
use super::session::{
    ConsoleError, FormData, LOGIN_CSRF_COOKIE, Posted, SESSION_COOKIE, behind_tls, cookie, csrf_matches,
    session_cookie, set_cookie,
};
use crate::state::AppState;

fn login_page(next: &str, csrf: &str, email: &str, error: Option<&str>, choices: &[(String, String)]) -> Response {
    let body = html! {
        h1 { "Log in to convene" }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form method="post" action="/console/login" {
            input type="hidden" name="_csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            label for="email" { "Email" }
            input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password" required;
            @if !choices.is_empty() {
                label for="workspace" { "Workspace" }
                select #workspace name="workspace" required {
                    @for (id, name) in choices { option value=(id) { (name) " (" (id) ")" } }
                }
            }
            p { button type="submit" { "Log in" } }
        }
    };
    standalone("Log in", body).into_response()
}

/// `GET /console/login`: the form (or straight in with a live session).
pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let next = safe_next(q.get("next").map(String::as_str)).to_string();
    if let Some((ws, hash)) = cookie(&headers, SESSION_COOKIE).and_then(session::parse_cookie)
        && let Ok(Some(s)) = state.store.get_session(ws, &hash).await
        && s.usable(ids::now())
    {
        return Redirect::to(&next).into_response();
    }
    let csrf = random_token();
    let mut response = login_page(&next, &csrf, "", None, &[]);
    response.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600, behind_tls(&headers)));
    response
}

/// `POST /console/login`.
pub async fn submit(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = FormData::parse(&body);
    let next = safe_next(form.get("next")).to_string();
    let cookie_csrf = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if !csrf_matches(form.raw("_csrf"), cookie_csrf) {
        return ConsoleError::Csrf.into_response();
    }
    let email_text = form.get("email").unwrap_or("").to_string();
    let again = |status: StatusCode, message: &str, choices: &[(String, String)]| {
        let mut r = login_page(&next, cookie_csrf, &email_text, Some(message), choices);
        *r.status_mut() = status;
        r
    };
    if let Err(e) = state.limits.check_address() {
        return again(StatusCode::TOO_MANY_REQUESTS, &too_many(&e), &[]);
    }
    let Ok(email) = normalise_email(&email_text) else {
        state.limits.failed();
        return again(StatusCode::UNAUTHORIZED, "Wrong email or password.", &[]);
    };
    if let Err(e) = state.limits.check_login(&email) {
        return again(StatusCode::TOO_MANY_REQUESTS, &too_many(&e), &[]);
    }
    let logins = match state.store.find_logins(&email).await {
        Ok(l) => l,
        Err(e) => return ConsoleError::Core(e).into_response(),
    };
    let password_text = form.raw("password").to_string();
    let matched = match tokio::task::spawn_blocking(move || matching(logins, &password_text)).await {
        Ok(m) => m,
        Err(_) => return ConsoleError::Core(Error::Internal("password check failed".into())).into_response(),
    };
    let chosen: Vec<&UserLogin> = match form.get("workspace") {
        Some(ws) => matched.iter().filter(|l| l.workspace_id == ws).collect(),
        None => matched.iter().collect(),
    };
    let login = match chosen.as_slice() {
        [one] => *one,
        [] => {
            state.limits.failed();
            tracing::info!(reason = "wrong email or password", "console login refused");
            return again(StatusCode::UNAUTHORIZED, "Wrong email or password.", &[]);
        }
        several => {
            let mut choices = Vec::new();
            for l in several {
                let name = state.store.get_workspace(&l.workspace_id).await.map(|w| w.name).unwrap_or_default();
                choices.push((l.workspace_id.clone(), name));
            }
            return again(StatusCode::OK, "This account is in several workspaces: choose one.", &choices);
        }
    };
    let (value, new) = session::start(&login.workspace_id, login.user.id, ids::now());
    if let Err(e) = state.store.create_session(new).await {
        return ConsoleError::Core(e).into_response();
    }
    tracing::info!(user_id = login.user.id, workspace = %login.workspace_id, "console login");
    let secure = behind_tls(&headers);
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().append(header::SET_COOKIE, session_cookie(&value, secure));
    response.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure));
    response
}

/// The active users whose password matches (every hash is checked, so the
/// time does not tell how many accounts share the email).
fn matching(logins: Vec<UserLogin>, candidate: &str) -> Vec<UserLogin> {
    if logins.iter().all(|l| l.password_hash.is_none()) {
        password::verify_nothing(candidate);
    }
    logins
        .into_iter()
        .filter(|l| l.password_hash.as_deref().is_some_and(|h| password::verify(h, candidate)) && l.user.active)
        .collect()
}

fn too_many(e: &Error) -> String {
    let secs = e.retry_after_secs().unwrap_or(30);
    format!("Too many login attempts. Try again in {secs} seconds.")
}

/// `POST /console/logout`: ends the session.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap, posted: Posted) -> Response {
    if let Err(e) = state.store.delete_session(&posted.user.ws, &posted.user.session_hash).await {
        return ConsoleError::Core(e).into_response();
    }
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0, behind_tls(&headers)));
    response
}
