//! The Converz Data API at `/compat/converz/api/v1`: reps ("users") listed
//! by numbered pages of up to 1,000,000 rows — streamed from the database —
//! and updated in the vendor's columnar or row-wise form; calls (which are
//! conversations) in the same two forms; and the report. `X-API-Key` (or
//! any header form convene accepts). Errors are `{"error": {"code",
//! "message", "field"?, "row"?}}`. Decisions: docs/compat/converz.md.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use convene_core::call::{Call, CallFilter, CallWrite};
use convene_core::field::Entity;
use convene_core::rep::{MAX_REP_ROWS, RepFilter, RepView, RepWrite, UpsertCounts, active_of};
use convene_core::report::{Agg, Measure, Metric, Source};
use convene_core::store::RowStream;
use convene_core::{Error, Result};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoParams, IntoResponses, OpenApi, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::reports::{field_types, query_from_params};
use crate::http::auth::{Need, scopes};
use crate::http::error::{ApiResult, ErrorInfo};
use crate::http::json::{json_bytes, parse_json};
use crate::http::query::AppQuery;
use crate::state::AppState;

/// Default and largest `n_per_page`.
const PER_PAGE: (u64, u64) = (10, 1_000_000);
/// Largest body of a reps or calls update (100,000 rows of a few attributes).
const MAX_TABLE_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Bytes gathered before a chunk of a streamed list is sent.
const CHUNK_BYTES: usize = 64 * 1024;

/// The tag of the dialect's operations in `/openapi.json`.
pub const TAG: &str = "compat: converz";

/// The dialect's routes (each with its OpenAPI entry), with its envelope.
pub fn router() -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::with_openapi(openapi())
        .routes(routes!(list_reps, update_reps))
        .routes(routes!(list_calls, update_calls))
        .routes(routes!(report));
    super::enveloped(routes, super::Envelope::Body(render_error))
}

/// The dialect's tag, security scheme and error envelope.
fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(OpenApi)]
    #[openapi(components(schemas(ConverzError, super::doc::ConveneCode)))]
    struct Schemas;
    let scheme = SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
        "X-API-Key",
        "A convene API key (the other header forms convene accepts work too).",
    )));
    let mut doc = super::doc::frame(
        TAG,
        "The Converz Data API: change the base URL `https://yourdomain.converz.co/api/v1` to \
         `http://convene-host/compat/converz/api/v1`. Lists page by number (up to 1,000,000 rows, streamed); \
         updates take the columnar or the row-wise form. Errors are `{\"error\": {\"code\", \"message\", \
         \"field\"?, \"row\"?}}` with convene's status and code. Decisions: docs/compat/converz.md.",
        vec![("converz_api_key", scheme)],
    );
    doc.merge(Schemas::openapi());
    doc
}

/// The vendor's body for an error (status from convene's table).
pub fn render_error(info: &ErrorInfo) -> String {
    let mut error = json!({"code": info.code.name(), "message": info.message});
    if let Some(field) = &info.field {
        error["field"] = json!(field);
    }
    if let Some(row) = info.row {
        error["row"] = json!(row);
    }
    json!({ "error": error }).to_string()
}

/// The dialect's error body (documentation of what [`render_error`] writes).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConverzError {
    /// The error.
    error: ConverzErrorBody,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConverzErrorBody {
    /// convene's error code.
    code: super::doc::ConveneCode,
    /// A sentence for a person.
    message: String,
    /// The field (column, parameter) concerned, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    field: Option<String>,
    /// The row (from 0) concerned, in an update.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 0)]
    row: Option<usize>,
}

/// The errors every route may answer, in the dialect's envelope.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ConverzErrors {
    /// An invalid parameter, body or row (naming it).
    #[response(status = 400, description = "Invalid request (validation_error)")]
    BadRequest(ConverzError),
    /// No key, or an unknown, expired or revoked one.
    #[response(status = 401, description = "Missing or invalid key (unauthenticated)")]
    Unauthenticated(ConverzError),
    /// The key lacks the route's scope.
    #[response(status = 403, description = "The key lacks the scope (forbidden)")]
    Forbidden(ConverzError),
    /// Too many requests.
    #[response(status = 429, description = "Rate limited (rate_limited); see Retry-After",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    RateLimited(ConverzError),
    /// Server fault.
    #[response(status = 500, description = "Internal error (internal_error)")]
    Internal(ConverzError),
    /// Overloaded, shutting down or too slow.
    #[response(status = 503, description = "Unavailable (unavailable); see Retry-After",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(ConverzError),
}

/// The errors an update may answer besides [`ConverzErrors`].
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ConverzUpdateErrors {
    /// The same id twice in one update.
    #[response(status = 409, description = "The same id twice (conflict)")]
    Conflict(ConverzError),
    /// Body over 64 MiB, or more than 100,000 rows.
    #[response(status = 413, description = "Too large (payload_too_large)")]
    TooLarge(ConverzError),
    /// Body not JSON.
    #[response(status = 415, description = "Not JSON (unsupported_media_type)")]
    MediaType(ConverzError),
    /// A value does not fit its field's type.
    #[response(status = 422, description = "A value does not fit its field (invalid_value)")]
    Invalid(ConverzError),
}

/// Reads a reps or calls body into rows with the vendor's null rules.
///
/// Columnar, `{"rep_id": [...], "gender": [...]}`: every value is a list of
/// the same length; a `null` leaves that row's value as it is (the key is
/// dropped from the row). Row-wise, `[{"rep_id", …}, …]`: a key that some
/// rows have and a row lacks is set to `null` for that row.
pub fn table_rows(body: Value, key: &str) -> Result<Vec<Map<String, Value>>> {
    match body {
        Value::Object(columns) => {
            let mut len = match columns.get(key) {
                Some(Value::Array(values)) => Some((key.to_string(), values.len())),
                _ => None,
            };
            for (name, column) in &columns {
                let Value::Array(values) = column else {
                    return Err(Error::validation(
                        name.as_str(),
                        format!("in the columnar form every value is a list; '{name}' is not"),
                    ));
                };
                match len {
                    None => len = Some((name.clone(), values.len())),
                    Some((ref first, n)) if n != values.len() => {
                        return Err(Error::validation(
                            name.as_str(),
                            format!(
                                "columns must have the same length: '{first}' has {n} values, '{name}' has {}",
                                values.len()
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
            if !columns.contains_key(key) {
                return Err(Error::validation(key, format!("the '{key}' column is required")));
            }
            let n = len.map_or(0, |(_, n)| n);
            check_count(n)?;
            check_columns(columns.len())?;
            let mut rows = vec![Map::new(); n];
            for (name, column) in columns {
                if let Value::Array(values) = column {
                    for (row, value) in rows.iter_mut().zip(values) {
                        if !value.is_null() {
                            row.insert(name.clone(), value);
                        }
                    }
                }
            }
            Ok(rows)
        }
        Value::Array(items) => {
            check_count(items.len())?;
            let mut rows = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::Object(m) => rows.push(m),
                    _ => return Err(Error::bad_request("in the row-wise form every row is an object").at_row(i)),
                }
            }
            let mut keys: std::collections::BTreeSet<&String> = std::collections::BTreeSet::new();
            for row in &rows {
                keys.extend(row.keys());
                check_columns(keys.len())?;
            }
            let keys: Vec<String> = keys.into_iter().cloned().collect();
            for row in &mut rows {
                for k in &keys {
                    if !row.contains_key(k) {
                        row.insert(k.clone(), Value::Null);
                    }
                }
            }
            Ok(rows)
        }
        _ => Err(Error::bad_request(format!(
            "send the columnar form {{\"{key}\": [...], …}} or the row-wise form [{{\"{key}\": …}}, …]"
        ))),
    }
}

/// Most distinct keys (columns) one update may name: the built-in columns and
/// as many attributes as one write may carry. (In the row-wise form every
/// row gets every key, so this also bounds the work a request makes.)
const MAX_COLUMNS: usize = convene_core::limits::MAX_TRAITS_PER_WRITE + 16;

fn check_columns(n: usize) -> Result<()> {
    if n > MAX_COLUMNS {
        return Err(Error::bad_request(format!(
            "an update names at most {MAX_COLUMNS} distinct columns; this one names more"
        )));
    }
    Ok(())
}

fn check_count(n: usize) -> Result<()> {
    if n > MAX_REP_ROWS {
        return Err(Error::TooManyRows { limit: MAX_REP_ROWS, rows: n });
    }
    if n == 0 {
        return Err(Error::bad_request("the update holds no rows"));
    }
    Ok(())
}

/// Reads a table body (with its larger limit) into rows.
async fn table_body(req: Request, state: &AppState, key: &str) -> Result<Vec<Map<String, Value>>> {
    let bytes = json_bytes(req, state, MAX_TABLE_BODY_BYTES).await.map_err(|e| e.0)?;
    table_rows(parse_json::<Value>(&bytes).map_err(|e| e.0)?, key)
}

/// Update (or create) reps, all or nothing, in the columnar or the row-wise form.
#[utoipa::path(post, path = "/api/v1/reps", tag = TAG, operation_id = "converz_update_reps",
    request_body(content = ConverzRepsIn, content_type = "application/json"),
    responses((status = 200, description = "Every row written", body = Counts), ConverzUpdateErrors,
        ConverzErrors),
    security(("converz_api_key" = ["reps:write"])))]
async fn update_reps(
    auth: Need<scopes::RepsWrite>,
    State(state): State<AppState>,
    req: Request,
) -> ApiResult<Response> {
    let writes = each_row(table_body(req, &state, "rep_id").await?, |row| RepWrite::from_row(row, None))?;
    let counts = state.store.upsert_reps(auth.workspace(), writes).await?;
    Ok(counts_response(counts))
}

/// Update (or create) calls by `call_id`, all or nothing, in the columnar or the row-wise form.
#[utoipa::path(post, path = "/api/v1/calls", tag = TAG, operation_id = "converz_update_calls",
    request_body(content = ConverzCallsIn, content_type = "application/json"),
    responses((status = 200, description = "Every row written", body = Counts), ConverzUpdateErrors,
        ConverzErrors),
    security(("converz_api_key" = ["conversations:write"])))]
async fn update_calls(
    auth: Need<scopes::ConversationsWrite>,
    State(state): State<AppState>,
    req: Request,
) -> ApiResult<Response> {
    let writes = each_row(table_body(req, &state, "call_id").await?, CallWrite::from_row)?;
    let counts = state.store.upsert_calls(auth.workspace(), writes).await?;
    Ok(counts_response(counts))
}

/// Reads every row with `parse`; the first failure names its row.
fn each_row<T>(rows: Vec<Map<String, Value>>, parse: impl Fn(Map<String, Value>) -> Result<T>) -> Result<Vec<T>> {
    rows.into_iter().enumerate().map(|(i, row)| parse(row).map_err(|e| e.at_row(i))).collect()
}

/// The answer of an update.
#[derive(Serialize, ToSchema)]
#[schema(as = ConverzCounts)]
pub struct Counts {
    /// Rows that created a rep or call.
    created: usize,
    /// Rows that found one (changed or left as it was).
    updated: usize,
    /// Rows in the update.
    rows: usize,
}

fn counts_response(c: UpsertCounts) -> Response {
    // The vendor knows created and updated only: a row left as it was is updated.
    let updated = c.updated + c.unchanged;
    axum::Json(Counts { created: c.created, updated, rows: c.created + updated }).into_response()
}

/// Reads `n_per_page` (1..=1,000,000, default 10) and `page` (from 0).
fn paging(params: &HashMap<String, String>) -> Result<(u64, u64)> {
    let n = match params.get("n_per_page") {
        None => PER_PAGE.0,
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if (1..=PER_PAGE.1).contains(&n) => n,
            _ => {
                return Err(Error::validation(
                    "n_per_page",
                    format!("n_per_page must be a whole number from 1 to {}", PER_PAGE.1),
                ));
            }
        },
    };
    let page = match params.get("page") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| Error::validation("page", "page must be a whole number, counting from 0"))?,
    };
    page.checked_mul(n).ok_or_else(|| Error::validation("page", "page is too large"))?;
    Ok((n, page))
}

/// A streamed list: `{"data": [rows…], "page", "n_per_page", "total"}`,
/// written as rows come from the database.
fn stream_body(
    rows: impl futures::Stream<Item = Result<Bytes>> + Send + 'static,
    page: u64,
    n: u64,
    total: u64,
) -> Response {
    let head = Bytes::from_static(b"{\"data\":[");
    let tail = Bytes::from(format!("],\"page\":{page},\"n_per_page\":{n},\"total\":{total}}}"));
    let body = rows.map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())));
    let stream = futures::stream::once(async move { Ok(head) })
        .chain(body)
        .chain(futures::stream::once(async move { Ok::<_, std::io::Error>(tail) }));
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A streamed list of domain objects, each rendered by `render`.
fn stream_list<T: Send + 'static, R: serde::Serialize + 'static>(
    rows: RowStream<T>,
    render: fn(T) -> R,
    page: u64,
    n: u64,
    total: u64,
) -> Response {
    let mut first = true;
    let chunks = rows
        .ready_chunks(256)
        .map(move |items| {
            let mut buf = Vec::with_capacity(CHUNK_BYTES);
            for item in items {
                if !first {
                    buf.push(b',');
                }
                first = false;
                serde_json::to_writer(&mut buf, &render(item?)).map_err(|e| Error::Internal(e.to_string()))?;
            }
            Ok(Bytes::from(buf))
        })
        .filter(|chunk| futures::future::ready(!matches!(chunk, Ok(b) if b.is_empty())));
    stream_body(chunks, page, n, total)
}

/// A rep as the vendor shows it: `rep_id`, `name`, `email`, `department`,
/// `active` as 0/1, then its attributes beside them (the stored JSON object's
/// members, spliced in as they are: core keeps built-in keys out of it).
fn render_rep(r: &RepView<'_>, out: &mut Vec<u8>) {
    fn field(out: &mut Vec<u8>, name: &[u8], value: Option<&str>) {
        out.extend_from_slice(name);
        match value {
            Some(v) => {
                let _ = serde_json::to_writer(&mut *out, v);
            }
            None => out.extend_from_slice(b"null"),
        }
    }
    field(out, b"{\"rep_id\":", Some(r.rep_id));
    field(out, b",\"name\":", r.name);
    field(out, b",\"email\":", r.email);
    field(out, b",\"department\":", r.department);
    out.extend_from_slice(if r.active { b",\"active\":1" } else { b",\"active\":0" });
    let members = r.attributes_json.trim().strip_prefix('{').and_then(|m| m.strip_suffix('}')).unwrap_or("");
    if !members.trim().is_empty() {
        out.push(b',');
        out.extend_from_slice(members.as_bytes());
    }
    out.push(b'}');
}

/// List reps by numbered pages (creation order), streamed.
#[utoipa::path(get, path = "/api/v1/reps", tag = TAG, operation_id = "converz_list_reps", params(RepQuery),
    responses((status = 200, description = "A page (streamed)", body = ConverzRepList), ConverzErrors),
    security(("converz_api_key" = ["reps:read"])))]
async fn list_reps(
    auth: Need<scopes::RepsRead>,
    State(state): State<AppState>,
    AppQuery(params): AppQuery<HashMap<String, String>>,
) -> ApiResult<Response> {
    let (n, page) = paging(&params)?;
    let filter = RepFilter {
        department: params.get("department").cloned(),
        rep_id: params.get("rep_id").cloned(),
        active: params.get("active").map(|a| active_of(&Value::String(a.clone()))).transpose()?.flatten(),
    };
    let total = state.store.count_reps(auth.workspace(), filter.clone()).await?;
    let chunks = state.store.stream_reps_rendered(auth.workspace(), filter, page * n, n, render_rep, b",");
    Ok(stream_body(chunks.map(|c| c.map(Bytes::from)), page, n, total))
}

/// A call as the vendor shows it.
fn call_row(c: Call) -> Map<String, Value> {
    let (conv, d) = (c.conversation, c.details);
    let mut row = Map::new();
    row.insert("call_id".into(), d.call_id.into());
    row.insert("rep_id".into(), d.rep_id.into());
    row.insert("start_time".into(), convene_core::ids::fmt_time(&d.started_at).into());
    row.insert("end_time".into(), d.ended_at.map(|t| convene_core::ids::fmt_time(&t)).into());
    row.insert("duration".into(), d.duration.into());
    row.insert("direction".into(), d.direction.into());
    row.insert("vendor".into(), d.vendor.into());
    row.insert("campaign".into(), d.campaign.into());
    row.insert("summary".into(), d.summary.into());
    row.insert("status".into(), conv.status.as_str().into());
    row.insert("conversation_id".into(), conv.id.into());
    row.insert("contact_id".into(), conv.contact_id.into());
    for (k, v) in d.attributes {
        row.entry(k).or_insert(v);
    }
    row
}

/// List calls by start time, by numbered pages, streamed.
#[utoipa::path(get, path = "/api/v1/calls", tag = TAG, operation_id = "converz_list_calls", params(CallQuery),
    responses((status = 200, description = "A page (streamed)", body = ConverzCallList), ConverzErrors),
    security(("converz_api_key" = ["conversations:read"])))]
async fn list_calls(
    auth: Need<scopes::ConversationsRead>,
    State(state): State<AppState>,
    AppQuery(params): AppQuery<HashMap<String, String>>,
) -> ApiResult<Response> {
    let (n, page) = paging(&params)?;
    let q = convene_core::report::ReportQuery::new(Source::Conversations);
    let filter = CallFilter {
        from: params.get("from").map(|v| q.time_param(v, "from")).transpose()?,
        to: params.get("to").map(|v| q.time_param(v, "to")).transpose()?,
        rep_id: params.get("rep_id").cloned(),
    };
    let total = state.store.count_calls(auth.workspace(), filter.clone()).await?;
    let rows = state.store.stream_calls(auth.workspace(), filter, page * n, n);
    Ok(stream_list(rows, call_row, page, n, total))
}

/// A Converz metric name: `calls`, `total_duration`, `avg_duration`, …,
/// `AGG_FIELD` for a number field (`avg_sentiment`), or convene's `AGG:FIELD`.
fn metric(name: &str, fields: &HashMap<String, convene_core::field::FieldType>) -> Result<Metric> {
    let unknown = || {
        Error::validation(
            name,
            format!(
                "unknown metric '{name}'; use calls, total_duration, avg_duration, min_duration, max_duration, \
                 p50_duration, p90_duration, or total_|avg_|min_|max_|p50_|p90_ followed by a number field"
            ),
        )
    };
    if name == "calls" || name == "count" {
        return Ok(Metric { name: name.into(), agg: Agg::Count, measure: None });
    }
    if name.contains(':') {
        return Metric::parse(name, Source::Conversations, fields);
    }
    let (agg, field) = name.split_once('_').ok_or_else(unknown)?;
    let agg = match agg {
        "total" | "sum" => Agg::Sum,
        other => Agg::parse(other).ok_or_else(unknown)?,
    };
    let measure = Measure::parse(field, Source::Conversations, fields).map_err(|_| unknown())?;
    Ok(Metric { name: name.into(), agg, measure: Some(measure) })
}

/// The report's answer, in this order.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = ConverzReport)]
pub struct ReportAnswer {
    /// One object per group: the bucket, the dimensions, then the metrics by name.
    #[schema(value_type = Vec<Object>)]
    data: convene_core::report::ReportRows,
    /// Start of the period (RFC 3339), when given.
    #[schema(required = true, format = DateTime)]
    from: Option<String>,
    /// End of the period (RFC 3339), when given.
    #[schema(required = true, format = DateTime)]
    to: Option<String>,
    /// The bucket and dimensions grouped by.
    group_by: Vec<String>,
    /// The metrics' names.
    metrics: Vec<String>,
    /// Groups.
    total: usize,
}

/// Metrics over calls, grouped by a time bucket and dimensions.
#[utoipa::path(get, path = "/api/v1/report", tag = TAG, operation_id = "converz_report", params(ReportQuery),
    responses((status = 200, description = "The groups", body = ReportAnswer), ConverzErrors),
    security(("converz_api_key" = ["reports:read"])))]
async fn report(
    auth: Need<scopes::ReportsRead>,
    State(state): State<AppState>,
    AppQuery(params): AppQuery<HashMap<String, String>>,
) -> ApiResult<Response> {
    let fields = field_types(&state, auth.workspace(), Entity::Conversation).await?;
    let mut q = query_from_params(Source::Conversations, &params, &["metrics"], &fields)?;
    for name in params.get("metrics").map(String::as_str).unwrap_or("calls").split(',').map(str::trim) {
        if !name.is_empty() {
            q.metrics.push(metric(name, &fields)?);
        }
    }
    q.validate()?;
    let result = state.store.report(auth.workspace(), &q).await?;
    let group_by: Vec<String> = q
        .bucket
        .iter()
        .map(|b| b.as_str().to_string())
        .chain(q.dimensions.iter().map(|d| d.key().to_string()))
        .collect();
    let metrics: Vec<String> = q.metrics.iter().map(|m| m.name.clone()).collect();
    let (from, to) = (q.from.map(|t| convene_core::ids::fmt_time(&t)), q.to.map(|t| convene_core::ids::fmt_time(&t)));
    let total = result.groups.len();
    Ok(axum::Json(ReportAnswer { data: q.rows(result), from, to, group_by, metrics, total }).into_response())
}

/// Query of `GET /api/v1/reps`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RepQuery {
    /// Reps per page (default 10).
    #[param(minimum = 1, maximum = 1000000)]
    n_per_page: Option<u64>,
    /// The page, counting from 0.
    #[param(minimum = 0)]
    page: Option<u64>,
    /// Only this department.
    department: Option<String>,
    /// Only this rep.
    rep_id: Option<String>,
    /// Only active (`1`, `true`) or inactive (`0`, `false`) reps.
    #[param(value_type = Option<String>, pattern = r"^\s*(0|1|true|false)\s*$")]
    active: Option<String>,
}

/// Query of `GET /api/v1/calls`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CallQuery {
    /// Calls that started at or after: RFC 3339, Unix seconds, or a date (midnight UTC).
    from: Option<String>,
    /// Calls that started before, as `from`.
    to: Option<String>,
    /// Only this rep's calls.
    rep_id: Option<String>,
    /// Calls per page (default 10).
    #[param(minimum = 1, maximum = 1000000)]
    n_per_page: Option<u64>,
    /// The page, counting from 0.
    #[param(minimum = 0)]
    page: Option<u64>,
}

/// Query of `GET /api/v1/report`. Any other parameter named like a dimension
/// (`rep_id`, `department`, `vendor`, `campaign`, `direction`, `status`,
/// `channel`, a conversation field) filters on it (values separated by commas).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ReportQuery {
    /// Start of the period (inclusive): RFC 3339, Unix seconds, or a date (midnight in `tz`).
    from: Option<String>,
    /// End of the period (exclusive), as `from`.
    to: Option<String>,
    /// Comma-separated: a time bucket (`hour`, `day`, `week`, `month`) and/or dimensions.
    group_by: Option<String>,
    /// Comma-separated (default `calls`): `calls`, `total_duration`, `avg_duration`, `min_duration`,
    /// `max_duration`, `p50_duration`, `p90_duration`, `total_|avg_|min_|max_|p50_|p90_` + a number field, or
    /// convene's `agg:measure`.
    metrics: Option<String>,
    /// IANA time zone of the buckets and of dates (default UTC).
    tz: Option<String>,
}

/// A rep as listed: the built-in columns, then its attributes beside them.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConverzRep {
    /// Your id of the rep.
    rep_id: String,
    /// Display name.
    #[schema(required = true)]
    name: Option<String>,
    /// Email, lower-cased.
    #[schema(required = true)]
    email: Option<String>,
    /// Department.
    #[schema(required = true)]
    department: Option<String>,
    /// 1 when active, else 0.
    #[schema(minimum = 0, maximum = 1)]
    active: u8,
}

/// A page of reps.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConverzRepList {
    /// The reps (each with its attributes beside the built-in columns).
    data: Vec<ConverzRep>,
    /// This page (from 0).
    page: u64,
    /// Rows per page.
    n_per_page: u64,
    /// Reps matching the filters, on every page.
    total: u64,
}

/// A call as listed: the built-in columns, then its attributes beside them.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConverzCall {
    /// Your id of the call.
    call_id: String,
    /// The rep.
    #[schema(required = true)]
    rep_id: Option<String>,
    /// When it started (RFC 3339).
    start_time: DateTime<Utc>,
    /// When it ended.
    #[schema(required = true)]
    end_time: Option<DateTime<Utc>>,
    /// Seconds.
    #[schema(required = true)]
    duration: Option<f64>,
    /// As sent (`inbound`, `outbound`, …).
    #[schema(required = true)]
    direction: Option<String>,
    /// The system it came from.
    #[schema(required = true)]
    vendor: Option<String>,
    /// The campaign.
    #[schema(required = true)]
    campaign: Option<String>,
    /// The summary.
    #[schema(required = true)]
    summary: Option<String>,
    /// The conversation's status.
    status: convene_core::conversation::ConversationStatus,
    /// The conversation (UUID) the call is.
    conversation_id: String,
    /// The contact.
    #[schema(required = true)]
    contact_id: Option<i64>,
}

/// A page of calls.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConverzCallList {
    /// The calls (each with its attributes beside the built-in columns).
    data: Vec<ConverzCall>,
    /// This page (from 0).
    page: u64,
    /// Rows per page.
    n_per_page: u64,
    /// Calls matching the filters, on every page.
    total: u64,
}

/// One rep of a row-wise update: a key some rows carry and this one lacks is
/// set to `null` (cleared) for it. Other keys are attributes.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConverzRepRow {
    /// Text or a number, 1 to 255 characters.
    #[schema(schema_with = rep_id_schema)]
    rep_id: String,
    /// At most 500 characters; `null` clears.
    #[schema(max_length = 500)]
    name: Option<String>,
    /// An email; `null` clears.
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    /// At most 500 characters; `null` clears.
    #[schema(max_length = 500)]
    department: Option<String>,
    /// `0`/`1`/`true`/`false` (also as text); `null` leaves it.
    #[schema(schema_with = active_schema)]
    active: Option<Value>,
}

/// One call of a row-wise update: a key some rows carry and this one lacks is
/// set to `null` for it. Other keys are attributes (entity `conversation`).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConverzCallRow {
    /// Text or a number, 1 to 255 characters.
    #[schema(schema_with = rep_id_schema)]
    call_id: String,
    /// The rep (created when unknown): text or a number, 1 to 255 characters; `null` clears.
    #[schema(schema_with = nullable_rep_id_schema)]
    rep_id: Option<String>,
    /// Required for a new call: RFC 3339, `YYYY-MM-DD`, or Unix seconds; `null` leaves an existing call's start as it is.
    #[schema(schema_with = start_time_schema)]
    start_time: Option<Value>,
    /// As `start_time`; `null` clears.
    #[schema(schema_with = end_time_schema)]
    end_time: Option<Value>,
    /// Seconds, 0 or more and under 1,000,000,000 (a number or its text); `null` clears.
    #[schema(schema_with = duration_schema)]
    duration: Option<Value>,
    /// At most 150,000 characters.
    #[schema(max_length = 150000)]
    summary: Option<String>,
    /// At most 200 characters.
    #[schema(max_length = 200)]
    vendor: Option<String>,
    /// At most 200 characters.
    #[schema(max_length = 200)]
    campaign: Option<String>,
    /// At most 200 characters.
    #[schema(max_length = 200)]
    direction: Option<String>,
    /// `open`, `pending` or `resolved` (default `resolved`).
    status: Option<convene_core::conversation::ConversationStatus>,
    /// The contact's email (found or created).
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    /// The contact's phone (found or created; 5 to 20 digits).
    #[schema(max_length = 64)]
    phone: Option<String>,
}

fn typed(t: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::Type(t))
}

fn active_schema() -> Schema {
    OneOfBuilder::new()
        .item(typed(Type::Integer).enum_values(Some([0, 1])))
        .item(typed(Type::Boolean))
        .item(typed(Type::String).enum_values(Some(["0", "1", "true", "false"])))
        .item(typed(Type::Null))
        .into()
}

/// A call's time: RFC 3339, a date (midnight UTC), `YYYY-MM-DD HH:MM:SS`, or Unix seconds.
fn time_schema(nullable: bool) -> Schema {
    let mut one_of = OneOfBuilder::new()
        .item(typed(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
        .item(typed(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))))
        .item(typed(Type::Number));
    if nullable {
        one_of = one_of.item(typed(Type::Null));
    }
    one_of.into()
}

fn start_time_schema() -> Schema {
    time_schema(false)
}

fn end_time_schema() -> Schema {
    time_schema(true)
}

fn duration_schema() -> Schema {
    OneOfBuilder::new()
        .item(typed(Type::Number).minimum(Some(0)).exclusive_maximum(Some(1e9)))
        .item(typed(Type::String))
        .item(typed(Type::Null))
        .into()
}

fn nullable_rep_id_schema() -> Schema {
    super::doc::nullable(rep_id_schema())
}

fn rep_id_schema() -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)).max_length(Some(255)))
        .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Number)))
        .description(Some("Text or a number: 1 to 255 characters after trimming, no control characters."))
        .into()
}

/// A table body: the columnar form (every value a list of the same length,
/// `key` required; `null` leaves a value) or the row-wise form (1 to 100,000
/// rows of `row`).
fn table_schema(key: &str, row: &str) -> RefOr<Schema> {
    let column = || ArrayBuilder::new().min_items(Some(1)).max_items(Some(MAX_REP_ROWS));
    let columnar = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Object))
        .property(key, column())
        .required(key)
        .additional_properties(Some(column()))
        .max_properties(Some(MAX_COLUMNS))
        .description(Some(format!(
            "Columnar: every value is a list of the same length (1 to 100,000); a `null` leaves that row's value \
             as it is. At most {MAX_COLUMNS} columns."
        )));
    let rows = ArrayBuilder::new()
        .items(Ref::from_schema_name(row))
        .min_items(Some(1))
        .max_items(Some(MAX_REP_ROWS))
        .description(Some("Row-wise: 1 to 100,000 rows."));
    OneOfBuilder::new().item(columnar).item(rows).into()
}

/// The body of `POST /api/v1/reps` (at most 64 MiB).
pub struct ConverzRepsIn;

impl utoipa::PartialSchema for ConverzRepsIn {
    fn schema() -> RefOr<Schema> {
        table_schema("rep_id", &ConverzRepRow::name())
    }
}

impl ToSchema for ConverzRepsIn {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ConverzRepRow::name().into(), ConverzRepRow::schema()));
    }
}

/// The body of `POST /api/v1/calls` (at most 64 MiB).
pub struct ConverzCallsIn;

impl utoipa::PartialSchema for ConverzCallsIn {
    fn schema() -> RefOr<Schema> {
        table_schema("call_id", &ConverzCallRow::name())
    }
}

impl ToSchema for ConverzCallsIn {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ConverzCallRow::name().into(), ConverzCallRow::schema()));
    }
}
