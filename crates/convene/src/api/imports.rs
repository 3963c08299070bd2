//! `POST /v1/imports`: a CSV or NDJSON file of contacts, companies or reps.
//! Core's import module maps the rows (the same mapping as `convene
//! import`).
//!
//! - Contacts are queued as one ingest job: each good row becomes an
//!   identify item found by the id column, each bad one an item that
//!   reports its error, so `GET /v1/jobs/{id}` lists every refused row with
//!   the others applied.
//! - Companies and reps are written at once, in chunks of up to
//!   [`MAX_BATCH_ROWS`] rows, by the store's per-row batch upserts (core's
//!   `batch::upsert_companies` and `rep::upsert_rep_rows`, each chunk one
//!   transaction); the answer reports every row: created, updated,
//!   unchanged or failed with its reason.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use convene_core::batch::{BatchOptions, MAX_BATCH_ROWS, RowStatus};
use convene_core::field::{Entity, FieldRegistry};
use convene_core::import::{
    ImportEntity, ImportFormat, ImportReader, ImportRow, ImportSpec, MAX_IMPORT_BODY_BYTES, MAX_IMPORT_ROWS, Mapper,
};
use convene_core::ingest::{IngestItem, RowError};
use convene_core::page::PageRequest;
use convene_core::{Error, Result, Store};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::IntoParams;

use super::CommonErrors;
use super::dto::{BatchResults, ImportOut, ImportRowOut, QueuedOut, RowErrorOut};
use crate::http::auth::authenticate;
use crate::http::error::ApiResult;
use crate::http::query::AppQuery;
use crate::ingest::idempotency_key;
use crate::state::AppState;

/// Parameters of `POST /v1/imports`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// What the file holds: `contacts` (queued as a job), `companies` or
    /// `reps` (written at once, with a result per row).
    pub entity: Option<String>,
    /// The column that finds each row: for contacts `email` (default),
    /// `mobile` or `external_id`; `external_id` for companies; `rep_id`
    /// for reps.
    pub id_column: Option<String>,
    /// Companies and reps: `failed` lists only the failed rows in
    /// `results` (the counts stay).
    pub results: Option<BatchResults>,
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

/// Reads every row of the body (a JSON array as NDJSON) and maps each good
/// one with `write`.
fn read_rows<T>(
    spec: ImportSpec,
    registry: FieldRegistry,
    format: ImportFormat,
    json: bool,
    body: &[u8],
    write: impl FnMut(usize, Map<String, Value>) -> Result<T>,
) -> Result<Vec<ImportRow<T>>> {
    let trimmed = body.iter().position(|b| !b.is_ascii_whitespace()).map_or(&body[..0], |i| &body[i..]);
    let array;
    let input = if json && trimmed.first() == Some(&b'[') {
        array = array_as_ndjson(trimmed)?;
        &array[..]
    } else {
        body
    };
    ImportReader::new(format, input, Mapper::new(spec, registry), false)?.read_all(write)
}

/// The ingest item of a contact row: a good row identifies, a bad one
/// carries its error.
fn contact_item(row: ImportRow<convene_core::batch::ContactUpsert>) -> IngestItem {
    match row.write {
        Ok(upsert) => IngestItem::Identify { lookups: upsert.lookups, changes: upsert.changes, message_id: None },
        Err(e) => IngestItem::Rejected { error: RowError::of(row.row, &e) },
    }
}

/// Import a file of contacts, companies or reps.
///
/// A CSV (`text/csv`, with a header row) or NDJSON (`application/x-ndjson`;
/// `application/json` is read the same way, or as one array of objects) body
/// of up to 32 MiB and 100,000 rows, upserted by the id column, so importing
/// a file again changes nothing (a row that leaves its object as it was is
/// not written and keeps its `updated_at`).
///
/// - `entity=contacts` (`contacts:write`) is queued as one job: 202 with the
///   job id; `GET /v1/jobs/{id}` reports each refused row (`row` is the
///   0-based index of the data row) and the other rows are applied.
/// - `entity=companies` (`companies:write`) and `entity=reps` (`reps:write`)
///   are written at once, in transactions of up to 1,000 rows: 200 with a
///   result per row (`row`, `line` where it starts in the file, `status`
///   `created`, `updated`, `unchanged` or `failed` with `error`). A failed
///   row fails alone; rows naming the same object apply in file order. An
///   error of the whole request (503) may come after some chunks were
///   written: import the file again.
#[utoipa::path(post, path = "/v1/imports", tag = "data", params(ImportQuery),
    request_body(content(
        (String = "text/csv"),
        (String = "application/x-ndjson"),
    ), description = "The file: a CSV with a header row, or one JSON object per line"),
    responses(
        (status = 200, description = "Companies or reps written: a result per row", body = ImportOut),
        (status = 202, description = "Contacts queued durably", body = QueuedOut),
        CommonErrors,
    ),
    security(
        ("bearer" = ["contacts:write", "companies:write", "reps:write"]),
        ("api_key" = ["contacts:write", "companies:write", "reps:write"]),
    ))]
pub async fn import(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<ImportQuery>,
    req: Request,
) -> ApiResult<Response> {
    let principal = authenticate(&state, req.headers()).await?;
    let entity = ImportEntity::parse(q.entity.as_deref().unwrap_or(""))?;
    let ws = principal.require(entity.scope())?.workspace_id.clone();
    let spec = ImportSpec::new(entity, q.id_column.as_deref(), &[])?;
    let (format, json) = format_of(req.headers())?;
    let key = idempotency_key(req.headers())?;
    let limit = MAX_IMPORT_BODY_BYTES;
    if crate::http::json::announced_length(req.headers()).is_some_and(|len| len > limit) {
        return Err(Error::PayloadTooLarge { limit }.into());
    }
    let body = axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| Error::PayloadTooLarge { limit })?;
    let registry = load_registry(&*state.store, &ws, entity.field_entity()).await?;
    let rows = tokio::task::spawn_blocking(move || -> Result<Rows> {
        let s = &spec;
        Ok(match entity {
            ImportEntity::Contacts => Rows::Contacts(
                read_rows(s.clone(), registry, format, json, &body, |i, b| s.contact_write(i, b))?
                    .into_iter()
                    .map(contact_item)
                    .collect(),
            ),
            ImportEntity::Companies => {
                Rows::Companies(read_rows(s.clone(), registry, format, json, &body, |i, b| s.company_write(i, b))?)
            }
            ImportEntity::Reps => {
                Rows::Reps(read_rows(s.clone(), registry, format, json, &body, |i, b| s.rep_upsert(i, b))?)
            }
        })
    })
    .await
    .map_err(|e| Error::Internal(format!("the import task failed: {e}")))??;
    let report = match rows {
        Rows::Contacts(items) => {
            let job = state.ingest.accept_up_to(&ws, items, key.as_deref(), MAX_IMPORT_ROWS).await?;
            return Ok(super::ingest::queued(job));
        }
        Rows::Companies(rows) => {
            write_chunks(rows, |chunk| async {
                let outcome = state.store.upsert_companies(&ws, chunk, BatchOptions::default()).await?;
                Ok(outcome.rows.into_iter().map(|r| (r.row, r.outcome.map(|(s, _)| s))).collect())
            })
            .await?
        }
        Rows::Reps(rows) => {
            write_chunks(rows, |chunk| async {
                let results = state.store.upsert_rep_rows(&ws, chunk).await?;
                Ok(results.into_iter().map(|r| (r.row, r.outcome.map(|(s, _)| s))).collect())
            })
            .await?
        }
    };
    Ok(Json(ImportOut::of(entity.as_str(), report).listing(q.results)).into_response())
}

/// A file's rows, mapped for their entity.
enum Rows {
    /// Ingest items (bad rows as rejected items).
    Contacts(Vec<IngestItem>),
    /// Company upserts.
    Companies(Vec<ImportRow<convene_core::batch::CompanyUpsert>>),
    /// Rep upserts.
    Reps(Vec<ImportRow<convene_core::rep::RepUpsert>>),
}

/// Each row's (row, line, outcome), in file order.
pub type RowReport = Vec<(usize, u64, Result<RowStatus>)>;

/// Writes the good rows in chunks of up to [`MAX_BATCH_ROWS`], one call
/// of `write` each (its results name rows by their index), and reports
/// every row in file order.
async fn write_chunks<T, F, Fut>(rows: Vec<ImportRow<T>>, mut write: F) -> Result<RowReport>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<(usize, Result<RowStatus>)>>>,
{
    // `read_all` numbers rows from 0 in file order: a row's index is its place here.
    let mut places: Vec<(usize, u64)> = Vec::with_capacity(rows.len());
    let mut outcomes: Vec<Option<Result<RowStatus>>> = Vec::with_capacity(rows.len());
    let mut good: Vec<T> = Vec::with_capacity(rows.len());
    for row in rows {
        places.push((row.row, row.line));
        match row.write {
            Ok(write) => {
                good.push(write);
                outcomes.push(None);
            }
            Err(e) => outcomes.push(Some(Err(e))),
        }
    }
    let mut good = good.into_iter().peekable();
    while good.peek().is_some() {
        let chunk: Vec<T> = good.by_ref().take(MAX_BATCH_ROWS).collect();
        for (index, outcome) in write(chunk).await? {
            if let Some(slot) = outcomes.get_mut(index) {
                *slot = Some(outcome);
            }
        }
    }
    Ok(places
        .into_iter()
        .zip(outcomes)
        .map(|((row, line), outcome)| {
            let outcome = outcome.unwrap_or_else(|| Err(Error::Internal(format!("row {row} got no result"))));
            (row, line, outcome)
        })
        .collect())
}

impl ImportOut {
    /// The report of a synchronous import.
    pub fn of(entity: &'static str, report: RowReport) -> Self {
        let mut out = ImportOut {
            entity,
            rows: report.len(),
            created: 0,
            updated: 0,
            unchanged: 0,
            failed: 0,
            results: Vec::with_capacity(report.len()),
        };
        for (row, line, outcome) in report {
            let (status, error) = match outcome {
                Ok(status) => {
                    match status {
                        RowStatus::Created => out.created += 1,
                        RowStatus::Updated => out.updated += 1,
                        RowStatus::Unchanged => out.unchanged += 1,
                    }
                    (status.as_str(), None)
                }
                Err(e) => {
                    out.failed += 1;
                    ("failed", Some(RowErrorOut::of(&e)))
                }
            };
            out.results.push(ImportRowOut { row, line, status, error });
        }
        out
    }

    /// Keeps only the failed rows in `results` when asked.
    pub fn listing(mut self, which: Option<BatchResults>) -> Self {
        if which == Some(BatchResults::Failed) {
            self.results.retain(|r| r.error.is_some());
        }
        self
    }
}
