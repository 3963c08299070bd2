//! The reports dashboard (placeholder).

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};

use super::session::{Access, ConsoleResult, ConsoleUser};

/// `GET /console/reports`.
pub async fn dashboard(user: ConsoleUser, Query(_q): Query<HashMap<String, String>>) -> ConsoleResult<Response> {
    user.require(Access::Read)?;
    Ok("reports".into_response())
}

/// `GET /console/reports/{chart}`: a chart's data as CSV.
pub async fn csv(user: ConsoleUser, Path(_chart): Path<String>) -> ConsoleResult<Response> {
    user.require(Access::Read)?;
    Ok("".into_response())
}
