//! `AppPath<T>`: path-parameter extractor whose failures are native JSON
//! errors (axum's own rejection is plain text).

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use convene_core::Error;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Path parameters parsed into `T`.
pub struct AppPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state).await.map(|Path(v)| AppPath(v)).map_err(|e| {
            if e.status().is_server_error() {
                ApiError(Error::Internal(e.body_text()))
            } else {
                ApiError(Error::bad_request(format!("invalid path: {}", e.body_text())))
            }
        })
    }
}
