//! Small helpers shared by the console's pages: URL encoding, redirects
//! after a form (post/redirect/get with a notice), query strings of
//! filters.

use axum::response::{IntoResponse, Redirect, Response};

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A query string from pairs, skipping empty values; `""` when none.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.append_pair(k, v);
        any = true;
    }
    if any { format!("?{}", out.finish()) } else { String::new() }
}

/// 303 to `path` with a notice shown on the next page.
pub fn done(path: &str, notice: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{sep}notice={}", encode(notice))).into_response()
}

/// 303 to `path` with an error shown on the next page (a form that failed
/// validation: its message names the field).
pub fn failed(path: &str, message: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{sep}error={}", encode(message))).into_response()
}

/// A safe place to go after login: a console path only (no open redirect).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/console") && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/console",
    }
}
