//! `AppJson<T>`: the JSON body extractor of the native API. Wrong media
//! type (415), bodies over the limit (413), nesting deeper than 32 levels and
//! malformed JSON (400) all answer in convene's own error envelope.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use convene_core::Error;
use convene_core::limits::{MAX_BODY_BYTES, MAX_JSON_DEPTH};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body parsed into `T`, or a JSON error response.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state, MAX_BODY_BYTES).await?;
        parse_json(&bytes).map(AppJson)
    }
}

/// A batch upsert's JSON body: as [`AppJson`] with the larger limit of
/// [`convene_core::limits::MAX_BATCH_BODY_BYTES`].
pub struct BatchJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for BatchJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state, convene_core::limits::MAX_BATCH_BODY_BYTES).await?;
        parse_json(&bytes).map(BatchJson)
    }
}

/// The body length a request announces (`Content-Length`), if any: a body
/// announced over a limit is refused before any of it is read.
pub fn announced_length(headers: &axum::http::HeaderMap) -> Option<usize> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
}

/// Reads a JSON body: checks the media type and the size limit.
pub async fn json_bytes<S: Send + Sync>(req: Request, state: &S, limit: usize) -> Result<Bytes, ApiError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !(mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))) {
        return Err(Error::UnsupportedMediaType {
            message: format!(
                "expected a JSON body with Content-Type: application/json, got '{}'",
                if content_type.is_empty() { "nothing" } else { content_type }
            ),
        }
        .into());
    }
    if announced_length(req.headers()).is_some_and(|len| len > limit) {
        return Err(Error::PayloadTooLarge { limit }.into());
    }
    let _ = state;
    axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| ApiError(Error::PayloadTooLarge { limit }))
}

/// Parses JSON after checking its depth, mapping every failure to a 400
/// that says where the problem is: the line and column of a syntax error,
/// the field (its path, `traits.plan`) of a shape error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    check_depth(bytes, MAX_JSON_DEPTH)?;
    // The fast path: most bodies are well formed, and tracking the path of
    // every value costs a fifth of an ingest request's CPU. Only a body that
    // fails is parsed again, with the path tracked, to say where.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let syntax = |e: serde_json::Error| {
        ApiError(Error::bad_request(format!("malformed JSON at line {} column {}: {e}", e.line(), e.column())))
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => syntax(inner),
            _ => {
                let message = format!("invalid request body: {inner}");
                ApiError(match field_of(&path, &inner.to_string()) {
                    Some(field) => Error::validation(field, message),
                    None => Error::bad_request(message),
                })
            }
        }
    })?;
    de.end().map_err(syntax)?;
    Ok(value)
}

/// The field a shape error is about: the unknown or missing field serde
/// names (under its parent's path), else the path where it happened.
fn field_of(path: &str, message: &str) -> Option<String> {
    let parent = if path == "." { "" } else { path };
    for lead in ["unknown field `", "missing field `"] {
        if let Some(rest) = message.strip_prefix(lead)
            && let Some((name, _)) = rest.split_once('`')
        {
            return Some(if parent.is_empty() { name.to_string() } else { format!("{parent}.{name}") });
        }
    }
    (!parent.is_empty()).then(|| parent.to_string())
}

/// Refuses JSON nested deeper than `max` levels, in one pass over the bytes
/// and before any parsing (so a 100,000-deep array costs microseconds).
pub fn check_depth(bytes: &[u8], max: usize) -> Result<(), Error> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(Error::bad_request(format!("JSON nested deeper than {max} levels")));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

impl<T: serde::Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert!(check_depth(br#"{"a": "[[[[[[[[["}"#, 2).is_ok());
        assert!(check_depth(b"[[[]]]", 3).is_ok());
        assert!(check_depth(b"[[[[]]]]", 3).is_err());
        assert!(check_depth(br#"{"a\"[": [[1]]}"#, 3).is_ok());
    }
}
