//! The web console under `/console`: server-rendered HTML (maud), a little
//! plain JavaScript and CSS embedded in the binary, charts drawn as SVG on
//! the server. Nothing is fetched from elsewhere.
//!
//! Every page authenticates with the session cookie ([`session::ConsoleUser`]),
//! checks the role on the server ([`session::Access`]) and every form action
//! checks its CSRF token ([`session::Posted`]). Pages call the same store
//! methods and core functions as the native API: the console holds no
//! business rule of its own.

pub mod contacts;
pub mod conversations;
pub mod forms;
pub mod layout;
pub mod login;
pub mod records;
pub mod reports;
pub mod session;
pub mod settings;
pub mod svg;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::state::AppState;

const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/conversations") }))
        .route("/console/", get(|| async { Redirect::to("/console/conversations") }))
        .route("/console/assets/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .route("/console/assets/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/console/login", get(login::form).post(login::submit))
        .route("/console/logout", post(login::logout))
        .route("/console/contacts", get(contacts::list))
        .route("/console/contacts/{id}", get(contacts::show))
        .route("/console/conversations", get(conversations::inbox))
        .route("/console/conversations/{id}", get(conversations::thread))
        .route("/console/conversations/{id}/messages", post(conversations::post_message))
        .route("/console/conversations/{id}/status", post(conversations::set_status))
        .route("/console/conversations/{id}/assignee", post(conversations::assign))
        .route("/console/reps", get(records::reps))
        .route("/console/reps/{id}", get(records::rep))
        .route("/console/companies", get(records::companies))
        .route("/console/companies/{id}", get(records::company))
        .route("/console/reports", get(reports::dashboard))
        .route("/console/reports/{chart}", get(reports::csv))
        .route("/console/settings", get(|| async { Redirect::to("/console/settings/service-accounts") }))
        .route("/console/settings/service-accounts", get(settings::accounts).post(settings::create_account))
        .route("/console/settings/service-accounts/{id}", get(settings::account).post(settings::update_account))
        .route("/console/settings/keys", get(settings::keys).post(settings::create_key))
        .route("/console/settings/keys/{id}/revoke", post(settings::revoke_key))
        .route("/console/settings/fields", get(settings::fields).post(settings::create_field))
        .route("/console/settings/users", get(settings::users).post(settings::create_user))
        .route("/console/settings/users/{id}", post(settings::update_user))
        .route("/console/settings/teams", get(settings::teams))
        .layer(middleware::from_fn(security_headers))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// Headers of every console response: a strict content security policy
/// (own scripts and styles only, no framing), no sniffing, no referrer
/// leaks, and no caching of pages that show customer data.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
