//! `POST /v1/imports`: a CSV or NDJSON file of contacts queued as one
//! ingest job. Core's import module maps the rows (the same mapping as
//! `convene import`); each good row becomes an identify item found by the
//! id column, each bad one an item that reports its error, so
//! `GET /v1/jobs/{id}` lists every refused row with the others applied.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use convene_core::field::{Entity, FieldRegistry};
use convene_core::import::{
    ImportEntity, ImportFormat, ImportReader, ImportSpec, MAX_IMPORT_BODY_BYTES, MAX_IMPORT_ROWS, Mapper,
};
use convene_core::ingest::{IngestItem, RowError};
use convene_core::page::PageRequest;
use convene_core::{Error, Result, Store};
use serde::Deserialize;
use utoipa::IntoParams;

use super::CommonErrors;
use super::dto::QueuedOut;
use crate::http::auth::{Need, scopes};
use crate::http::error::ApiResult;
use crate::http::query::AppQuery;
use crate::ingest::idempotency_key;
use crate::state::AppState;

/// Parameters of `POST /v1/imports`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// What the file holds: `contacts` (companies and reps are imported
    /// with `convene import` or their batch APIs).
    pub entity: Option<String>,
    /// The column that finds each contact: `email` (default), `mobile` or `external_id`.
    pub id_column: Option<String>,
}

/// A workspace's fields of one entity, as a registry (every page).
pub async fn load_registry(store: &dyn Store, ws: &str, entity: Entity) -> Result<FieldRegistry> {
    let mut registry = FieldRegistry::builtin_contact();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list_fields(ws, Some(entity), PageRequest::parse(cursor.as_deref(), Some(1000))?).await?;
        for field in page.items {
            registry.insert(field.name, field.field_type);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(registry),
        }
    }
}

/// The format a media type names: CSV, or NDJSON (`application/json` is
/// read as NDJSON, or as one array of objects).
fn format_of(headers: &HeaderMap) -> Result<(ImportFormat, bool)> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "text/csv" => Ok((ImportFormat::Csv, false)),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Ok((ImportFormat::Ndjson, false)),
        "application/json" => Ok((ImportFormat::Ndjson, true)),
        _ => Err(Error::UnsupportedMediaType {
            message: format!(
                "an import is Content-Type: text/csv or application/x-ndjson, got '{}'",
                if content_type.is_empty() { "nothing" } else { content_type }
            ),
        }),
    }
}

/// A JSON array of objects rewritten as NDJSON (one object per line).
fn array_as_ndjson(body: &[u8]) -> Result<Vec<u8>> {
    let rows: Vec<serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("the body is not a JSON array of objects: {e}")))?;
    let mut out = Vec::with_capacity(body.len());
    for row in rows {
        serde_json::to_writer(&mut out, &row).map_err(|e| Error::Internal(e.to_string()))?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Maps every row of the body to an item: good rows identify, bad ones
/// carry their error.
pub fn import_items(
    spec: ImportSpec,
    registry: FieldRegistry,
    format: ImportFormat,
    body: &[u8],
) -> Result<Vec<IngestItem>> {
    let mut reader = ImportReader::new(format, body, Mapper::new(spec.clone(), registry), false)?;
    let mut items = Vec::new();
    while let Some(record) = reader.next_record() {
        let record = record?;
        let index = items.len();
        if index == MAX_IMPORT_ROWS {
            let mut rows = index + 1;
            while reader.next_record().is_some() {
                rows += 1;
            }
            return Err(Error::TooManyRows { limit: MAX_IMPORT_ROWS, rows });
        }
        let item = match record.body.and_then(|body| spec.contact_write(index, body)) {
            Ok(upsert) => IngestItem::Identify { lookups: upsert.lookups, changes: upsert.changes, message_id: None },
            Err(e) => IngestItem::Rejected { error: RowError::of(index, &e) },
        };
        items.push(item);
    }
    if items.is_empty() {
        return Err(Error::bad_request("the file has no rows to import"));
    }
    Ok(items)
}

/// Import contacts from a CSV (`text/csv`, with a header row) or NDJSON
/// (`application/x-ndjson`) body of up to 32 MiB and 100,000 rows, queued
/// as one job: `GET /v1/jobs/{id}` reports each refused row (`row` is the
/// 0-based index of the data row) and the other rows are applied. Rows are
/// upserted by the id column, so importing a file again changes nothing.
#[utoipa::path(post, path = "/v1/imports", tag = "data", params(ImportQuery),
    request_body(content(
        (String = "text/csv"),
        (String = "application/x-ndjson"),
    ), description = "The file: a CSV with a header row, or one JSON object per line"),
    responses((status = 202, description = "Queued durably", body = QueuedOut), CommonErrors),
    security(("bearer" = ["contacts:write"]), ("api_key" = ["contacts:write"])))]
pub async fn import(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<ImportQuery>,
    req: Request,
) -> ApiResult<Response> {
    let entity = ImportEntity::parse(q.entity.as_deref().unwrap_or(""))?;
    if entity != ImportEntity::Contacts {
        return Err(Error::validation(
            "entity",
            format!(
                "POST /v1/imports takes contacts; import {} with `convene import {}` or their batch API",
                entity.as_str(),
                entity.as_str()
            ),
        )
        .into());
    }
    let spec = ImportSpec::new(entity, q.id_column.as_deref(), &[])?;
    let (format, json) = format_of(req.headers())?;
    let key = idempotency_key(req.headers())?;
    let limit = MAX_IMPORT_BODY_BYTES;
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        && len > limit
    {
        return Err(Error::PayloadTooLarge { limit }.into());
    }
    let body = axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| Error::PayloadTooLarge { limit })?;
    let registry = load_registry(&*state.store, auth.workspace(), entity.field_entity()).await?;
    let items = tokio::task::spawn_blocking(move || {
        let trimmed = body.iter().position(|b| !b.is_ascii_whitespace()).map_or(&body[..0], |i| &body[i..]);
        if json && trimmed.first() == Some(&b'[') {
            import_items(spec, registry, format, &array_as_ndjson(trimmed)?)
        } else {
            import_items(spec, registry, format, &body)
        }
    })
    .await
    .map_err(|e| Error::Internal(format!("the import task failed: {e}")))??;
    let job = state.ingest.accept_up_to(auth.workspace(), items, key.as_deref(), MAX_IMPORT_ROWS).await?;
    Ok(super::ingest::queued(job))
}
