//! `AppQuery<T>`: query-string extractor whose failures are native JSON 400s
//! naming the parameter.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use convene_core::Error;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Query parameters parsed into `T`.
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| AppQuery(v))
            .map_err(|e| ApiError(Error::bad_request(format!("invalid query string: {}", e.body_text()))))
    }
}
