//! `GET /v1/exports/{entity}`: a whole entity streamed from the database
//! as NDJSON (the native API's objects, one per line) or CSV (a header row;
//! traits and attributes one column per registered field), in cursor
//! order, resumable after any row. Decisions: docs/api.md, "Export".
//!
//! Rows are rendered on the store's reader (no domain object per row) by
//! the renderers below into chunks of about 64 KiB, which go to the body
//! as they come: memory stays flat whatever the number of rows. An error
//! before the first chunk is a native JSON error; after it, the body ends
//! early (the client sees a truncated chunked body).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use convene_core::Error;
use convene_core::export::{Cell, Column, ExportCursor, ExportEntity, ExportQuery, ExportRenderer, native_time};
use convene_core::page::PageRequest;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::IntoParams;

use super::CommonErrors;
use crate::http::auth::authenticate;
use crate::http::error::ApiResult;
use crate::http::path::AppPath;
use crate::http::query::AppQuery;
use crate::state::AppState;
use convene_core::csv_cell::write_text;

/// The names of [`ExportEntity::ALL`] (the `entity` of an export's path).
pub struct ExportEntityName;

impl utoipa::PartialSchema for ExportEntityName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(ExportEntity::ALL.map(ExportEntity::as_str)))
            .into()
    }
}

impl utoipa::ToSchema for ExportEntityName {}

/// An export's formats.
pub struct ExportFormatName;

impl utoipa::PartialSchema for ExportFormatName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(["ndjson", "csv"]))
            .into()
    }
}

impl utoipa::ToSchema for ExportFormatName {}

/// Query parameters of an export.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `ndjson` (default) or `csv`.
    #[param(value_type = Option<ExportFormatName>, inline)]
    pub format: Option<String>,
    /// Only rows changed at or after this time (events: received, messages:
    /// created): RFC 3339, or a date (midnight UTC).
    pub since: Option<String>,
    /// The key of the last row already received (`id`; `rep_id` for reps):
    /// the export continues after it.
    pub cursor: Option<String>,
}

/// The wire format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line (`application/x-ndjson`).
    Ndjson,
    /// RFC 4180 CSV with a header row (`text/csv`).
    Csv,
}

impl ExportFormat {
    /// Reads the `format` parameter.
    pub fn parse(raw: Option<&str>) -> Result<Self, Error> {
        match raw.map(str::trim) {
            None | Some("") | Some("ndjson") => Ok(ExportFormat::Ndjson),
            Some("csv") => Ok(ExportFormat::Csv),
            Some(other) => Err(Error::validation("format", format!("unknown format '{other}': use ndjson or csv"))),
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Ndjson => "ndjson",
            ExportFormat::Csv => "csv",
        }
    }
}

/// Reads `since`: RFC 3339, or a date meaning its midnight UTC.
pub fn parse_since(raw: &str) -> Result<DateTime<Utc>, Error> {
    let raw = raw.trim();
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        && let Some(midnight) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(midnight.and_utc());
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Error::validation("since", "since must be an RFC 3339 time or a date (YYYY-MM-DD)"))
}

/// Export an entity, streamed.
///
/// The whole entity in one response, in cursor order (by id; reps and
/// conversations in creation order). `cursor` resumes after a row; `since`
/// keeps recent changes. An error after the first byte ends the body early.
#[utoipa::path(get, path = "/v1/exports/{entity}", tag = "data",
    params(
        ("entity" = inline(ExportEntityName), Path,
            description = "contacts, events, conversations, messages, reps or companies"),
        ExportParams,
    ),
    responses(
        (status = 200, description = "The rows, streamed: NDJSON (`application/x-ndjson`) or CSV (`text/csv`)",
            content((String = "application/x-ndjson"), (String = "text/csv"))),
        CommonErrors,
    ),
    security(
        ("bearer" = ["contacts:read", "events:read", "conversations:read", "reps:read", "companies:read"]),
        ("api_key" = ["contacts:read", "events:read", "conversations:read", "reps:read", "companies:read"]),
    ))]
pub async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppPath(entity): AppPath<String>,
    AppQuery(params): AppQuery<ExportParams>,
) -> ApiResult<Response> {
    let principal = authenticate(&state, &headers).await?;
    let entity: ExportEntity = entity.parse()?;
    let ws = principal.require(entity.scope())?.workspace_id.clone();
    let format = ExportFormat::parse(params.format.as_deref())?;
    let since = params.since.as_deref().map(parse_since).transpose()?;
    let after = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(ExportCursor::parse(entity, raw)?),
    };
    let (head, render) = match format {
        ExportFormat::Ndjson => (Vec::new(), ndjson_renderer(entity)),
        ExportFormat::Csv => {
            let layout = CsvLayout::new(entity, &csv_fields(&state, &ws, entity).await?);
            (layout.header(), layout.renderer())
        }
    };
    // Fused: the stream is polled again after the first item, which may be its end.
    let mut rows = state.store.export_rendered(&ws, ExportQuery { entity, since, after }, render).fuse();
    // Errors found before the first chunk (an unknown cursor, the database
    // unavailable) are still answered with a status and the JSON envelope.
    let first = match rows.next().await {
        Some(Err(e)) => return Err(e.into()),
        first => first,
    };
    let body = futures::stream::iter((!head.is_empty()).then_some(Ok(head)))
        .chain(futures::stream::iter(first))
        .chain(rows)
        .map(move |chunk| {
            chunk.map(Bytes::from).map_err(|e| {
                tracing::warn!(error = %e, entity = entity.as_str(), "an export failed after it began: body cut short");
                std::io::Error::other(e.to_string())
            })
        });
    let content_type = match format {
        ExportFormat::Ndjson => "application/x-ndjson",
        ExportFormat::Csv => "text/csv; charset=utf-8",
    };
    let mut response = Body::from_stream(body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename=\"{}.{}\"", entity.as_str(), format.extension()))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// The registered fields of the entity whose JSON object CSV flattens, by
/// name (none for an entity without one).
async fn csv_fields(state: &AppState, ws: &str, entity: ExportEntity) -> Result<Vec<String>, Error> {
    let Some(fields) = entity.columns().iter().find_map(|c| c.fields) else { return Ok(Vec::new()) };
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page =
            state.store.list_fields(ws, Some(fields), PageRequest::parse(cursor.as_deref(), Some(1000))?).await?;
        names.extend(page.items.into_iter().map(|f| f.name));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Appends `n` in decimal.
fn write_i64(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

/// Whether a byte is escaped in a JSON string.
fn escaped(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Appends UTF-8 text as a JSON string, escaped as serde_json escapes it.
fn write_json_str(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    // Most values need no escape: one pass without branches, then a copy.
    if !bytes.iter().fold(false, |any, &b| any | escaped(b)) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends a stored time as the native API writes it.
fn write_time(out: &mut Vec<u8>, stored: &[u8]) {
    let (text, z) = native_time(stored);
    out.extend_from_slice(text);
    if z {
        out.push(b'Z');
    }
}

/// One column of an NDJSON row: the bytes before and after its value.
struct JsonColumn {
    prefix: Vec<u8>,
    suffix: &'static [u8],
    omit_null: bool,
}

/// The group (`a` of `a.b`) and member of a column name.
fn split_name(name: &str) -> (Option<&str>, &str) {
    match name.split_once('.') {
        Some((group, member)) => (Some(group), member),
        None => (None, name),
    }
}

fn json_layout(columns: &[Column]) -> Vec<JsonColumn> {
    let group = |i: usize| columns.get(i).and_then(|c| split_name(c.name).0);
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (g, member) = split_name(c.name);
            let mut prefix = Vec::new();
            let opens = g.is_some() && (i == 0 || group(i - 1) != g);
            if i > 0 {
                prefix.push(b',');
            }
            if let (true, Some(g)) = (opens, g) {
                write_json_str(&mut prefix, g.as_bytes());
                prefix.extend_from_slice(b":{");
            }
            write_json_str(&mut prefix, member.as_bytes());
            prefix.push(b':');
            let closes = g.is_some() && group(i + 1) != g;
            JsonColumn { prefix, suffix: if closes { b"}" } else { b"" }, omit_null: c.omit_null }
        })
        .collect()
}

/// Renders rows as the native API's objects, one per line.
pub fn ndjson_renderer(entity: ExportEntity) -> ExportRenderer {
    let layout = json_layout(entity.columns());
    Box::new(move |cells: &[Cell<'_>], out: &mut Vec<u8>| {
        out.push(b'{');
        for (column, cell) in layout.iter().zip(cells) {
            if column.omit_null && *cell == Cell::Null {
                continue;
            }
            out.extend_from_slice(&column.prefix);
            match *cell {
                Cell::Null => out.extend_from_slice(b"null"),
                Cell::Int(n) => write_i64(out, n),
                Cell::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
                Cell::Text(t) => write_json_str(out, t),
                Cell::Json(j) => out.extend_from_slice(j),
                Cell::Time(t) => {
                    out.push(b'"');
                    write_time(out, t);
                    out.push(b'"');
                }
            }
            out.extend_from_slice(column.suffix);
        }
        out.extend_from_slice(b"}\n");
    })
}

/// The CSV columns of an entity: its columns, a JSON object of registered
/// fields spread over one column per field (`traits.plan`).
pub struct CsvLayout {
    columns: Vec<(Column, Option<Vec<String>>)>,
}

impl CsvLayout {
    /// The layout with `fields` (the names of the registry the entity's
    /// object column holds, sorted).
    pub fn new(entity: ExportEntity, fields: &[String]) -> Self {
        let columns = entity.columns().iter().map(|c| (*c, c.fields.map(|_| fields.to_vec()))).collect::<Vec<_>>();
        CsvLayout { columns }
    }

    /// The header row, CRLF-terminated.
    pub fn header(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !std::mem::replace(&mut first, false) {
                out.push(b',');
            }
        };
        for (column, fields) in &self.columns {
            match fields {
                Some(fields) => {
                    for f in fields {
                        sep(&mut out);
                        write_text(&mut out, &format!("{}.{f}", column.name));
                    }
                }
                None => {
                    sep(&mut out);
                    write_text(&mut out, column.name);
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Renders rows as CSV records matching [`CsvLayout::header`].
    pub fn renderer(self) -> ExportRenderer {
        Box::new(move |cells: &[Cell<'_>], out: &mut Vec<u8>| {
            let mut first = true;
            for ((_, fields), cell) in self.columns.iter().zip(cells) {
                match fields {
                    Some(fields) => {
                        let object: Map<String, Value> = match cell {
                            Cell::Json(j) => serde_json::from_slice(j).unwrap_or_default(),
                            _ => Map::new(),
                        };
                        for f in fields {
                            if !std::mem::replace(&mut first, false) {
                                out.push(b',');
                            }
                            write_csv_value(out, object.get(f));
                        }
                    }
                    None => {
                        if !std::mem::replace(&mut first, false) {
                            out.push(b',');
                        }
                        write_csv_cell(out, cell);
                    }
                }
            }
            out.extend_from_slice(b"\r\n");
        })
    }
}

/// A cell as CSV: null empty, text neutralised and quoted as needed, JSON
/// compact.
fn write_csv_cell(out: &mut Vec<u8>, cell: &Cell<'_>) {
    match *cell {
        Cell::Null => {}
        Cell::Int(n) => write_i64(out, n),
        Cell::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Cell::Text(t) => write_text(out, &String::from_utf8_lossy(t)),
        // Compact whatever the store's spacing (PostgreSQL's jsonb text has spaces).
        Cell::Json(j) => match serde_json::from_slice::<Value>(j) {
            Ok(v) => write_text(out, &v.to_string()),
            Err(_) => write_text(out, &String::from_utf8_lossy(j)),
        },
        Cell::Time(t) => write_time(out, t),
    }
}

/// A field's value as CSV: text as text, numbers and flags as written,
/// lists and objects as their JSON.
fn write_csv_value(out: &mut Vec<u8>, value: Option<&Value>) {
    match value {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => write_text(out, s),
        Some(Value::Number(n)) => out.extend_from_slice(n.to_string().as_bytes()),
        Some(Value::Bool(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Some(other) => write_text(out, &other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(mut r: ExportRenderer, cells: &[Cell<'_>]) -> String {
        let mut out = Vec::new();
        r(cells, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_strings_and_numbers_are_written_as_serde_json_writes_them() {
        for s in ["plain", "a \"q\" \\ b", "line\nbreak\ttab\r", "\u{1}\u{1f}\u{7f}", "é ☃ 𝄞", ""] {
            let mut out = Vec::new();
            write_json_str(&mut out, s.as_bytes());
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(s).unwrap());
        }
        for n in [0, 7, -7, 1234567890, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            write_i64(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn ndjson_rows_nest_dotted_columns_and_skip_omitted_nulls() {
        let row = render(
            ndjson_renderer(ExportEntity::Messages),
            &[
                Cell::Int(3),
                Cell::Text(b"c-1"),
                Cell::Text(b"note"),
                Cell::Text(b"hi \"you\""),
                Cell::Text(b"user"),
                Cell::Text(b"7"),
                Cell::Time(b"2026-01-02T03:04:05.000Z"),
            ],
        );
        assert_eq!(
            row,
            "{\"id\":3,\"conversation_id\":\"c-1\",\"type\":\"note\",\"content\":\"hi \\\"you\\\"\",\
             \"sender\":{\"type\":\"user\",\"id\":\"7\"},\"created_at\":\"2026-01-02T03:04:05Z\"}\n"
        );
        let row = render(
            ndjson_renderer(ExportEntity::Events),
            &[
                Cell::Int(1),
                Cell::Int(2),
                Cell::Text(b"Signed Up"),
                Cell::Text(b"track"),
                Cell::Json(b"{\"a\":1}"),
                Cell::Null,
                Cell::Time(b"2026-01-02T03:04:05.120Z"),
                Cell::Time(b"2026-01-02T03:04:05.121Z"),
                Cell::Null,
            ],
        );
        let v: Value = serde_json::from_str(&row).unwrap();
        assert!(v.get("description").is_none(), "{row}");
        assert_eq!(v["properties"]["a"], 1);
        assert_eq!(v["timestamp"], "2026-01-02T03:04:05.120Z");
    }

    #[test]
    fn csv_spreads_registered_fields_and_neutralises_text() {
        let layout = CsvLayout::new(ExportEntity::Companies, &["plan".into(), "seats".into(), "tags".into()]);
        assert_eq!(
            String::from_utf8(layout.header()).unwrap(),
            "id,external_id,domain,traits.plan,traits.seats,traits.tags,created_at,updated_at\r\n"
        );
        let row = render(
            layout.renderer(),
            &[
                Cell::Int(1),
                Cell::Text(b"=cmd"),
                Cell::Null,
                Cell::Json(b"{\"plan\":\"a, b\",\"seats\":-3,\"tags\":[\"x\",\"y\"],\"gone\":1}"),
                Cell::Time(b"2026-01-02T03:04:05.000Z"),
                Cell::Time(b"2026-01-02T03:04:05.500Z"),
            ],
        );
        assert_eq!(
            row,
            "1,'=cmd,,\"a, b\",-3,\"[\"\"x\"\",\"\"y\"\"]\",2026-01-02T03:04:05Z,2026-01-02T03:04:05.500Z\r\n"
        );
    }

    #[test]
    fn since_takes_a_date_or_a_time() {
        assert_eq!(parse_since("2026-03-01").unwrap().to_rfc3339(), "2026-03-01T00:00:00+00:00");
        assert_eq!(parse_since("2026-03-01T10:00:00+02:00").unwrap().to_rfc3339(), "2026-03-01T08:00:00+00:00");
        assert_eq!(parse_since("yesterday").unwrap_err().field(), Some("since"));
        assert_eq!(ExportFormat::parse(Some("xml")).unwrap_err().field(), Some("format"));
    }
}
