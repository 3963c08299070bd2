//! `GET /v1/reports`: the report engine over conversations (calls among
//! them) and events. The query model is docs/reports.md.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use convene_core::Error;
use convene_core::field::{Entity, FieldType};
use convene_core::page::PageRequest;
use convene_core::report::{Dimension, Metric, ReportQuery, Source};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::CommonErrors;
use crate::http::auth::{Need, scopes};
use crate::http::error::ApiResult;
use crate::http::query::AppQuery;
use crate::state::AppState;

/// Parameters of `GET /v1/reports`. Any other parameter named like a
/// dimension (`rep_id`, `department`, `vendor`, `campaign`, `direction`,
/// `status`, `channel`, `event`, a field) filters on it (values separated by commas).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ReportParams {
    /// `conversations` (default; calls are conversations) or `events`.
    pub source: Option<String>,
    /// Start of the period (inclusive): RFC 3339, Unix seconds, or a date (local midnight).
    pub from: Option<String>,
    /// End of the period (exclusive), as `from`.
    pub to: Option<String>,
    /// IANA time zone of the time buckets and of dates (default UTC).
    pub tz: Option<String>,
    /// Comma-separated: a time bucket (`hour`, `day`, `week`, `month`) and/or dimensions.
    pub group_by: Option<String>,
    /// Comma-separated: `count`, or `sum|avg|min|max|p50|p90` `:` a measure (`duration` or a number field).
    pub metrics: Option<String>,
}

/// A report's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportOut {
    /// One object per group: the bucket, the dimensions, the metrics.
    #[schema(value_type = Vec<Object>)]
    pub data: convene_core::report::ReportRows,
    /// Rows aggregated.
    pub rows: u64,
}

/// The fields of `entity` with their types (for dimensions and measures).
pub async fn field_types(state: &AppState, ws: &str, entity: Entity) -> Result<HashMap<String, FieldType>, Error> {
    let mut out = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::parse(cursor.as_deref(), Some(1000))?;
        let page = state.store.list_fields(ws, Some(entity), page).await?;
        out.extend(page.items.into_iter().map(|f| (f.name, f.field_type)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// Builds a query from parameters shared by every report endpoint: the
/// period, the time zone, `group_by`, and dimension filters (every
/// parameter not in `reserved`). Metrics are the caller's.
pub fn query_from_params(
    source: Source,
    params: &HashMap<String, String>,
    reserved: &[&str],
    fields: &HashMap<String, FieldType>,
) -> Result<ReportQuery, Error> {
    let mut q = ReportQuery::new(source);
    if let Some(tz) = params.get("tz").or_else(|| params.get("timezone")) {
        q.set_tz(tz)?;
    }
    q.from = params.get("from").map(|v| q.time_param(v, "from")).transpose()?;
    q.to = params.get("to").map(|v| q.time_param(v, "to")).transpose()?;
    for name in params.get("group_by").map(String::as_str).unwrap_or("").split(',').map(str::trim) {
        if !name.is_empty() {
            q.group_by(name, fields)?;
        }
    }
    let mut filters: Vec<_> = params
        .iter()
        .filter(|(k, _)| {
            !reserved.contains(&k.as_str()) && !["tz", "timezone", "from", "to", "group_by"].contains(&k.as_str())
        })
        .collect();
    filters.sort();
    for (name, values) in filters {
        let dim = Dimension::parse(name, source, fields)?;
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
        if values.is_empty() {
            return Err(Error::validation(name.as_str(), format!("filter '{name}' needs a value")));
        }
        q.filters.push((dim, values));
    }
    Ok(q)
}

/// Run a report: metrics over conversations or events, grouped by a time
/// bucket and/or dimensions, filtered by period and dimensions.
#[utoipa::path(get, path = "/v1/reports", tag = "reports", params(ReportParams),
    responses((status = 200, description = "The groups", body = ReportOut), CommonErrors),
    security(("bearer" = ["reports:read"]), ("api_key" = ["reports:read"])))]
pub async fn report(
    auth: Need<scopes::ReportsRead>,
    State(state): State<AppState>,
    AppQuery(params): AppQuery<HashMap<String, String>>,
) -> ApiResult<Json<ReportOut>> {
    let source = Source::parse(params.get("source").map(String::as_str).unwrap_or("conversations"))?;
    let fields = match source {
        Source::Conversations => field_types(&state, auth.workspace(), Entity::Conversation).await?,
        Source::Events => HashMap::new(),
    };
    let mut q = query_from_params(source, &params, &["source", "metrics"], &fields)?;
    for spec in params.get("metrics").map(String::as_str).unwrap_or("count").split(',').map(str::trim) {
        if !spec.is_empty() {
            q.metrics.push(Metric::parse(spec, source, &fields)?);
        }
    }
    q.validate()?;
    let result = state.store.report(auth.workspace(), &q).await?;
    let rows = result.rows;
    Ok(Json(ReportOut { data: q.rows(result), rows }))
}
