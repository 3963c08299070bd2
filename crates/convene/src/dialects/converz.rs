//! The Converz Data API at `/compat/converz/api/v1`: reps ("users") listed
//! by numbered pages of up to 1,000,000 rows — streamed from the database —
//! and updated in the vendor's columnar or row-wise form; calls (which are
//! conversations) in the same two forms; and the report. `X-API-Key` (or
//! any header form convene accepts). Errors are `{"error": {"code",
//! "message", "field"?, "row"?}}`. Decisions: docs/compat/converz.md.

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use convene_core::call::{Call, CallFilter, CallWrite};
use convene_core::field::Entity;
use convene_core::rep::{MAX_REP_ROWS, RepFilter, RepView, RepWrite, UpsertCounts, active_of};
use convene_core::report::{Agg, Measure, Metric, Source};
use convene_core::store::RowStream;
use convene_core::{Error, Result};
use futures::StreamExt;
use serde_json::{Map, Value, json};

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

/// The dialect's routes, with its envelope.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/reps", get(list_reps).post(update_reps))
        .route("/api/v1/calls", get(list_calls).post(update_calls))
        .route("/api/v1/report", get(report))
        .fallback(crate::api::ops::not_found)
        .method_not_allowed_fallback(crate::api::ops::method_not_allowed)
        .layer(middleware::from_fn(|req, next| super::rewrite_errors(req, next, render_error)))
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

/// `POST /api/v1/reps`: update (or create) reps, all or nothing.
async fn update_reps(
    auth: Need<scopes::RepsWrite>,
    State(state): State<AppState>,
    req: Request,
) -> ApiResult<Response> {
    let writes = each_row(table_body(req, &state, "rep_id").await?, |row| RepWrite::from_row(row, None))?;
    let counts = state.store.upsert_reps(auth.workspace(), writes).await?;
    Ok(counts_response(counts))
}

/// `POST /api/v1/calls`: update (or create) calls by `call_id`, all or nothing.
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

fn counts_response(c: UpsertCounts) -> Response {
    axum::Json(json!({"created": c.created, "updated": c.updated, "rows": c.created + c.updated})).into_response()
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

/// `GET /api/v1/reps?n_per_page=&page=&department=&rep_id=&active=`
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

/// `GET /api/v1/calls?from=&to=&rep_id=&n_per_page=&page=`, by start time.
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
#[derive(serde::Serialize)]
struct ReportAnswer {
    data: convene_core::report::ReportRows,
    from: Option<String>,
    to: Option<String>,
    group_by: Vec<String>,
    metrics: Vec<String>,
    total: usize,
}

/// `GET /api/v1/report?from=&to=&group_by=rep_id,day&metrics=calls,total_duration,avg_duration`
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
