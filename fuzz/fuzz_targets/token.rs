//! Credentials as presented: the token parser of every header form
//! (`Authorization: Bearer|Basic`, `X-API-Key`, …), the token shape check
//! and the console session cookie. Nothing panics, and a token the shape
//! check accepts survives every header form it can be sent in.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, header};
use convene::http::auth::presented_token;
use convene_core::{session, token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = token::well_formed(text);
    let _ = session::parse_cookie(text);
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    for name in [header::AUTHORIZATION.as_str(), "x-api-key", "x-conveyour-token"] {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::HeaderName::from_static(name), value.clone());
        let _ = presented_token(&headers);
    }
    if token::well_formed(text) {
        let mut headers = HeaderMap::new();
        let bearer = HeaderValue::from_str(&format!("Bearer {text}")).expect("a token is a header value");
        headers.insert(header::AUTHORIZATION, bearer);
        assert_eq!(presented_token(&headers).ok().flatten().as_deref(), Some(text));
    }
});
