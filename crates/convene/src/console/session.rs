//! Who is using the console: the session cookie, the role check, the CSRF
//! check, and the console's error page.
//!
//! [`ConsoleUser`] is the extractor of every page: no usable session → a
//! redirect to the login page. [`Posted`] is the extractor of every form
//! action: a user plus the form's fields, refused with 403 unless the form's
//! `_csrf` equals the session's token. Roles are checked on the server by
//! [`ConsoleUser::require`] in every handler, whatever the UI shows.

use std::collections::HashMap;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use convene_core::session::{self, SESSION_HOURS};
use convene_core::token::TokenHash;
use convene_core::user::{Role, User};
use convene_core::{Error, ids};
use subtle::ConstantTimeEq;

use super::layout;
use crate::state::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "convene_session";
/// The login form's double-submit CSRF cookie (before any session exists).
pub const LOGIN_CSRF_COOKIE: &str = "convene_login_csrf";
/// Largest form body read (a reply of 150,000 characters fits).
pub const MAX_FORM_BYTES: usize = 1024 * 1024;

/// What a page or action needs of the user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading contacts, conversations, reps, companies, reports: every role.
    Read,
    /// Working contacts and conversations (reply, note, resolve, assign):
    /// admins and agents.
    Work,
    /// Settings (service accounts, keys, fields, users, teams): admins.
    Admin,
}

impl Access {
    /// True when `role` has this access.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Read => true,
            Access::Work => matches!(role, Role::Admin | Role::Agent),
            Access::Admin => role == Role::Admin,
        }
    }
}

/// A logged-in user of a workspace.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    /// The workspace.
    pub ws: String,
    /// The user, role current.
    pub user: User,
    /// The session's CSRF token, for forms.
    pub csrf: String,
    /// The hash of the session cookie's secret (logout deletes it).
    pub session_hash: TokenHash,
}

impl ConsoleUser {
    /// Refuses (403 page) unless the user's role has `access`.
    pub fn require(&self, access: Access) -> Result<(), ConsoleError> {
        if access.allows(self.user.role) { Ok(()) } else { Err(ConsoleError::Forbidden(self.user.role)) }
    }

    /// True when the user's role has `access` (to show or hide controls).
    pub fn can(&self, access: Access) -> bool {
        access.allows(self.user.role)
    }
}

/// Reads one cookie.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// True when the request reached convene over TLS (a proxy in front says
/// so with `X-Forwarded-Proto: https` or `Forwarded: proto=https`).
pub fn behind_tls(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok());
    let forwarded = headers.get("forwarded").and_then(|v| v.to_str().ok()).unwrap_or("");
    forwarded_proto.is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        || forwarded.to_ascii_lowercase().contains("proto=https")
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, path `/console`,
/// `Secure` behind TLS; `max_age` 0 deletes.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The cookie that keeps a new session.
pub fn session_cookie(value: &str, secure: bool) -> HeaderValue {
    set_cookie(SESSION_COOKIE, value, SESSION_HOURS * 3600, secure)
}

/// Where to send someone without a session.
fn login_redirect(parts: &Parts) -> Response {
    let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/console");
    let target = if parts.method == axum::http::Method::GET { next } else { "/console" };
    Redirect::to(&format!("/console/login?next={}", super::forms::encode(target))).into_response()
}

impl<St> FromRequestParts<St> for ConsoleUser
where
    St: Send + Sync,
    AppState: FromRef<St>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Response> {
        let state = AppState::from_ref(state);
        let Some((ws, hash)) = cookie(&parts.headers, SESSION_COOKIE).and_then(session::parse_cookie) else {
            return Err(login_redirect(parts));
        };
        let found = state.store.get_session(ws, &hash).await.map_err(|e| ConsoleError::Core(e).into_response())?;
        match found {
            Some(s) if s.usable(ids::now()) => {
                Ok(ConsoleUser { ws: s.workspace_id, user: s.user, csrf: s.csrf, session_hash: hash })
            }
            _ => Err(login_redirect(parts)),
        }
    }
}

/// A form's fields (repeated names keep every value).
#[derive(Debug, Default, Clone)]
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    /// Parses an `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Self {
        FormData(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, trimmed; `None` when missing or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    /// The first value of `name` as sent (not trimmed), or "".
    pub fn raw(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// Every value of `name` (checkbox groups).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// The fields as a map (last value wins).
    pub fn map(&self) -> HashMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

/// A form posted by a logged-in user whose CSRF token matched.
pub struct Posted {
    /// The user.
    pub user: ConsoleUser,
    /// The fields.
    pub form: FormData,
}

impl<St> FromRequest<St> for Posted
where
    St: Send + Sync,
    AppState: FromRef<St>,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &St) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let user = ConsoleUser::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| ConsoleError::Core(Error::PayloadTooLarge { limit: MAX_FORM_BYTES }).into_response())?;
        let form = FormData::parse(&bytes);
        if !csrf_matches(form.raw("_csrf"), &user.csrf) {
            return Err(ConsoleError::Csrf.into_response());
        }
        Ok(Posted { user, form })
    }
}

/// Constant-time comparison of a form's CSRF token with the expected one.
pub fn csrf_matches(sent: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// Why a console page or action failed; rendered as an HTML page.
#[derive(Debug)]
pub enum ConsoleError {
    /// A core error (its status and message).
    Core(Error),
    /// The user's role lacks the access.
    Forbidden(Role),
    /// The form's CSRF token is missing or wrong.
    Csrf,
}

impl From<Error> for ConsoleError {
    fn from(e: Error) -> Self {
        ConsoleError::Core(e)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            ConsoleError::Core(e) => {
                let status = StatusCode::from_u16(e.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                if status.is_server_error() {
                    tracing::error!(error = %e, "console request failed");
                }
                (status, status.canonical_reason().unwrap_or("Error").to_string(), e.public_message())
            }
            ConsoleError::Forbidden(role) => (
                StatusCode::FORBIDDEN,
                "Not allowed".to_string(),
                format!("Your role ({}) cannot do this. Ask an admin of the workspace.", role.as_str()),
            ),
            ConsoleError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired".to_string(),
                "This form was not sent from this session (CSRF check). Reload the page and try again.".to_string(),
            ),
        };
        (status, layout::bare(&title, &message)).into_response()
    }
}

/// Result of a console handler.
pub type ConsoleResult<T> = Result<T, ConsoleError>;
