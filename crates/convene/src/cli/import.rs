//! `convene import contacts|companies|reps FILE`: a CSV or NDJSON roster,
//! mapped row by row by core's import module, written through a running
//! server's synchronous batch APIs (`--url`, `--token`) or straight into a
//! data directory (`--data-dir` / `--database`, `--workspace`) with the
//! same core batch functions the server uses.
//!
//! A reader thread parses and maps the file into chunks of up to 1,000 rows;
//! up to `--concurrency` chunks are written at once (a chunk naming an id
//! that a chunk in flight names waits for it, so a later row of the file is
//! applied after an earlier one). Refused rows go to the reject file with
//! their line and reason, in file order. Exit code: 0 every row imported,
//! 2 some rows refused, 1 the import failed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use convene_core::batch::{BatchOptions, CompanyUpsert, ContactUpsert, RowStatus};
use convene_core::field::{Entity, FieldRegistry, FieldType};
use convene_core::import::{
    ImportEntity, ImportFormat, ImportReader, ImportRecord, ImportSpec, Mapper, RawRow, check_rep,
};
use convene_core::rep::{RepWrite, UpsertCounts};
use convene_core::{Error, Store};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::{ServeArgs, ServeConfig};

/// Rows per chunk (the batch APIs' maximum).
const CHUNK_ROWS: usize = 1000;
/// Rows per chunk of reps sent one request per row.
const REP_CHUNK_ROWS: usize = 250;
/// JSON bytes after which a chunk is sent early (the batch body limit is 8 MiB).
const CHUNK_JSON_BYTES: usize = 6 * 1024 * 1024;
/// Attempts of a request the server could not take (429, 503, no connection).
const ATTEMPTS: u32 = 6;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EntityArg {
    /// Contacts (found by `--id-column`).
    Contacts,
    /// Companies (found by `external_id`).
    Companies,
    /// Reps (found by `rep_id`).
    Reps,
}

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

/// Flags of `convene import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// What the file holds.
    #[arg(value_enum)]
    pub entity: EntityArg,
    /// The file: CSV with a header row, or NDJSON (`.ndjson`, `.jsonl`).
    pub file: PathBuf,
    /// The file's format [default: NDJSON for .ndjson/.jsonl, else CSV].
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// The column that finds each row: email (default), mobile or
    /// external_id for contacts; external_id for companies; rep_id for reps.
    #[arg(long)]
    pub id_column: Option<String>,
    /// Rename a column, OLD=NEW (repeatable); NEW may be an operation such
    /// as `tags+`; an empty NEW skips the column.
    #[arg(long = "map", value_name = "OLD=NEW")]
    pub map: Vec<String>,
    /// Where refused rows go [default: <FILE>.rejects.csv].
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Base URL of a running server: import through its API.
    #[arg(long, env = "CONVENE_URL")]
    pub url: Option<String>,
    /// An API key of the workspace to import into (with --url).
    #[arg(long, env = "CONVENE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Workspace id or exact name (with --data-dir / --database).
    #[arg(long)]
    pub workspace: Option<String>,
    /// Chunks of rows written at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Where the data lives, to import without a server (the same flags as `serve`).
    #[command(flatten)]
    pub server: ServeArgs,
}

/// Why an import failed as a whole (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Bad flags.
    #[error("{0}")]
    Usage(String),
    /// The file or its header cannot be read, or the store refused.
    #[error("{0}")]
    Core(#[from] Error),
    /// A file cannot be opened or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The reject file cannot be written.
    #[error("cannot write the reject file: {0}")]
    Rejects(#[from] csv::Error),
    /// The server refused the import as a whole or cannot be reached.
    #[error("{0}")]
    Server(String),
}

/// Runs `convene import`.
pub async fn run(args: ImportArgs) -> ExitCode {
    match import(args).await {
        Ok(summary) => {
            println!("{summary}");
            if summary.rejected > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS }
        }
        Err(e) => {
            eprintln!("convene import: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Rows read.
    pub rows: u64,
    /// Objects created.
    pub created: u64,
    /// Objects updated.
    pub updated: u64,
    /// Objects found and left as they were (nothing written).
    pub unchanged: u64,
    /// Rows refused.
    pub rejected: u64,
    /// The reject file.
    pub rejects: PathBuf,
    /// Time taken.
    pub elapsed: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "convene import: {} rows in {secs:.1} s ({:.0} rows/s): {} created, {} updated, {} unchanged, {} rejected",
            self.rows,
            self.rows as f64 / secs.max(1e-3),
            self.created,
            self.updated,
            self.unchanged,
            self.rejected
        )?;
        if self.rejected > 0 {
            write!(f, " (see {})", self.rejects.display())?;
        }
        Ok(())
    }
}

/// Where rows are written.
#[derive(Clone)]
enum Sink {
    /// A running server's API; `batch` is the batch URL of the entity.
    Http { client: reqwest::Client, base: String, token: String, batch: String },
    /// A store opened here.
    Store { store: Arc<dyn Store>, ws: String },
}

/// A row refused, for the reject file.
struct Reject {
    line: u64,
    field: String,
    reason: String,
    raw: Option<RawRow>,
}

/// A row sent, awaiting its outcome.
struct Pending {
    line: u64,
    raw: Option<RawRow>,
}

/// The rows of a chunk, in the form the sink takes.
enum Payload {
    /// A batch API's JSON body being built (`{"contacts":[…`).
    Json(Vec<u8>),
    /// Rep bodies, one request each.
    Bodies(Vec<Map<String, Value>>),
    /// Contact writes for the store.
    Contacts(Vec<ContactUpsert>),
    /// Company writes for the store.
    Companies(Vec<CompanyUpsert>),
    /// Rep writes for the store, checked against the registry.
    Reps(Vec<RepWrite>),
}

/// Up to [`CHUNK_ROWS`] rows read in a row, written together.
struct Chunk {
    seq: u64,
    bytes: u64,
    rows: Vec<Pending>,
    rejects: Vec<Reject>,
    keys: HashSet<u64>,
    payload: Payload,
}

/// What became of a chunk's rows.
#[derive(Default)]
struct Outcome {
    /// Rows created, updated and left unchanged.
    counts: UpsertCounts,
    /// Per sent row: `None` when written, else (field, reason).
    failures: Vec<Option<(String, String)>>,
}

/// Counters shown while the import runs.
#[derive(Default)]
struct Progress {
    rows: AtomicU64,
    rejected: AtomicU64,
    bytes: AtomicU64,
}

fn error_row(e: &Error) -> (String, String) {
    (e.field().unwrap_or("").to_string(), e.public_message())
}

/// The format of `file`: given, else NDJSON for `.ndjson`/`.jsonl`, else CSV.
fn format_of(file: &Path, given: Option<FormatArg>) -> ImportFormat {
    match given {
        Some(FormatArg::Csv) => ImportFormat::Csv,
        Some(FormatArg::Ndjson) => ImportFormat::Ndjson,
        None => match file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("ndjson" | "jsonl") => ImportFormat::Ndjson,
            _ => ImportFormat::Csv,
        },
    }
}

/// The default reject file: `<FILE>.rejects.csv`.
fn default_rejects(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".rejects.csv");
    PathBuf::from(name)
}

async fn import(args: ImportArgs) -> Result<Summary, ImportError> {
    let started = Instant::now();
    let entity = match args.entity {
        EntityArg::Contacts => ImportEntity::Contacts,
        EntityArg::Companies => ImportEntity::Companies,
        EntityArg::Reps => ImportEntity::Reps,
    };
    let spec = ImportSpec::new(entity, args.id_column.as_deref(), &args.map)?;
    let format = format_of(&args.file, args.format);
    let rejects_path = args.rejects.clone().unwrap_or_else(|| default_rejects(&args.file));
    let concurrency = args.concurrency.clamp(1, 64);
    let file = std::fs::File::open(&args.file)
        .map_err(|e| ImportError::Usage(format!("cannot open {}: {e}", args.file.display())))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);

    let direct = args.server.data_dir.is_some() || args.server.database.is_some() || args.server.config.is_some();
    let sink = match (&args.url, direct) {
        (Some(url), _) => {
            let token =
                args.token.clone().ok_or_else(|| ImportError::Usage("--url needs --token (an API key)".into()))?;
            if args.workspace.is_some() {
                return Err(ImportError::Usage(
                    "--workspace is for --data-dir / --database; with --url the key's workspace is used".into(),
                ));
            }
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .pool_max_idle_per_host(concurrency)
                .build()
                .map_err(|e| ImportError::Server(e.to_string()))?;
            let base = url.trim_end_matches('/').to_string();
            let batch = match entity {
                ImportEntity::Contacts => {
                    format!("{base}/v1/contacts/batch?results=failed&id_column={}", spec.id_column)
                }
                _ => format!("{base}/v1/companies/batch?results=failed"),
            };
            Sink::Http { client, base, token, batch }
        }
        (None, true) => {
            let wanted = args.workspace.clone().ok_or_else(|| {
                ImportError::Usage("--data-dir / --database needs --workspace (id or exact name)".into())
            })?;
            let config = ServeConfig::resolve(args.server).map_err(|e| ImportError::Usage(e.to_string()))?;
            let store = super::users::open_store(&config).await.map_err(|e| ImportError::Usage(e.to_string()))?;
            let ws = super::users::workspace(&*store, &wanted).await.map_err(|e| ImportError::Usage(e.to_string()))?;
            Sink::Store { store, ws }
        }
        (None, false) => {
            return Err(ImportError::Usage(
                "say where to import: --url and --token (a running server), or --data-dir / --database and --workspace"
                    .into(),
            ));
        }
    };

    let registry = registry(&sink, entity.field_entity()).await?;
    let mapper = Mapper::new(spec.clone(), registry.clone());
    let reader = ImportReader::new(format, BufReader::with_capacity(256 * 1024, file), mapper, true)?;
    let mut rejects = csv::Writer::from_path(&rejects_path)?;
    let mut head: Vec<String> = ["row", "field", "reason"].iter().map(|s| s.to_string()).collect();
    match format {
        ImportFormat::Csv => head.extend(reader.header().iter().cloned()),
        ImportFormat::Ndjson => head.push("line".into()),
    }
    rejects.write_record(&head)?;

    let build = match (&sink, entity) {
        (Sink::Http { .. }, ImportEntity::Reps) => Build::RepBodies,
        (Sink::Http { .. }, _) => Build::Json(entity),
        (Sink::Store { .. }, ImportEntity::Contacts) => Build::Contacts,
        (Sink::Store { .. }, ImportEntity::Companies) => Build::Companies,
        (Sink::Store { .. }, ImportEntity::Reps) => Build::Reps(registry),
    };
    let (tx, rx) = mpsc::channel(concurrency * 2);
    let reading = std::thread::spawn(move || read_chunks(reader, spec, build, tx));

    let progress = Arc::new(Progress::default());
    let ticker = tokio::spawn(show_progress(progress.clone(), size, started));
    let result = dispatch(rx, sink, concurrency, &progress, &mut rejects).await;
    ticker.abort();
    let _ = ticker.await;
    rejects.flush()?;
    if reading.join().is_err() {
        return Err(ImportError::Core(Error::Internal("the file reader stopped unexpectedly".into())));
    }
    let counts = result?;
    Ok(Summary {
        rows: progress.rows.load(Ordering::Relaxed),
        created: counts.created as u64,
        updated: counts.updated as u64,
        unchanged: counts.unchanged as u64,
        rejected: progress.rejected.load(Ordering::Relaxed),
        rejects: rejects_path,
        elapsed: started.elapsed(),
    })
}

/// The workspace's fields of `entity` (types of columns, which are lists).
/// A key that may not read fields (`contacts:read`) gets the built-ins.
async fn registry(sink: &Sink, entity: Entity) -> Result<FieldRegistry, ImportError> {
    match sink {
        Sink::Store { store, ws } => Ok(crate::api::imports::load_registry(&**store, ws, entity).await?),
        Sink::Http { client, base, token, .. } => {
            #[derive(Deserialize)]
            struct FieldRow {
                name: String,
                #[serde(rename = "type")]
                field_type: FieldType,
            }
            #[derive(Deserialize)]
            struct FieldPage {
                data: Vec<FieldRow>,
                next_cursor: Option<String>,
            }
            let mut registry = FieldRegistry::builtin_contact();
            let mut cursor: Option<String> = None;
            loop {
                let mut query = vec![("entity", entity.as_str().to_string()), ("limit", "1000".to_string())];
                if let Some(c) = &cursor {
                    query.push(("cursor", c.clone()));
                }
                let response = client
                    .get(format!("{base}/v1/fields"))
                    .bearer_auth(token)
                    .query(&query)
                    .send()
                    .await
                    .map_err(|e| ImportError::Server(format!("cannot reach {base}: {e}")))?;
                match response.status().as_u16() {
                    200 => {}
                    401 => return Err(ImportError::Server(server_error(response).await)),
                    _ => {
                        eprintln!(
                            "convene import: note: the key cannot read /v1/fields ({}); columns are typed by the server alone",
                            server_error(response).await
                        );
                        return Ok(FieldRegistry::builtin_contact());
                    }
                }
                let page: FieldPage = response.json().await.map_err(|e| ImportError::Server(e.to_string()))?;
                for f in page.data {
                    registry.insert(f.name, f.field_type);
                }
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => return Ok(registry),
                }
            }
        }
    }
}

/// How the reader thread turns mapped rows into a payload.
enum Build {
    /// A batch API's JSON (`contacts` or `companies`).
    Json(ImportEntity),
    /// Rep bodies for the reps API.
    RepBodies,
    /// Contact writes for a store.
    Contacts,
    /// Company writes for a store.
    Companies,
    /// Rep writes for a store, checked against the registry first.
    Reps(FieldRegistry),
}

impl Build {
    fn empty(&self) -> Payload {
        match self {
            Build::Json(entity) => {
                let mut out = Vec::with_capacity(256 * 1024);
                out.extend_from_slice(format!("{{\"{}\":[", entity.as_str()).as_bytes());
                Payload::Json(out)
            }
            Build::RepBodies => Payload::Bodies(Vec::new()),
            Build::Contacts => Payload::Contacts(Vec::new()),
            Build::Companies => Payload::Companies(Vec::new()),
            Build::Reps(_) => Payload::Reps(Vec::new()),
        }
    }

    fn limit(&self) -> usize {
        if matches!(self, Build::RepBodies) { REP_CHUNK_ROWS } else { CHUNK_ROWS }
    }

    /// Adds a mapped row as payload row `index`.
    fn add(
        &mut self,
        spec: &ImportSpec,
        payload: &mut Payload,
        index: usize,
        body: Map<String, Value>,
    ) -> Result<(), Error> {
        match (self, payload) {
            (Build::Json(_), Payload::Json(out)) => {
                if index > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, &body).map_err(|e| Error::Internal(e.to_string()))
            }
            (Build::RepBodies, Payload::Bodies(rows)) => {
                rows.push(body);
                Ok(())
            }
            (Build::Contacts, Payload::Contacts(rows)) => {
                rows.push(spec.contact_write(index, body)?);
                Ok(())
            }
            (Build::Companies, Payload::Companies(rows)) => {
                rows.push(spec.company_write(index, body)?);
                Ok(())
            }
            (Build::Reps(registry), Payload::Reps(rows)) => {
                let write = spec.rep_write(body)?;
                check_rep(&write, registry)?;
                rows.push(write);
                Ok(())
            }
            _ => Err(Error::Internal("a payload of the wrong kind".into())),
        }
    }
}

/// A hash of the id of a mapped row, for ordering chunks (compared
/// case-insensitively; two ids with one hash only make a chunk wait).
fn key_of(body: &Map<String, Value>, id: &str) -> u64 {
    // FNV-1a: cheap, and a collision costs nothing but a wait.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(b.to_ascii_lowercase());
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    match body.get(id) {
        Some(Value::String(s)) => eat(s.trim().as_bytes()),
        Some(other) => eat(other.to_string().as_bytes()),
        None => {}
    }
    hash
}

/// The reader thread: maps rows and sends chunks until the file ends, the
/// input fails (an `Err` is sent) or the receiver is gone.
fn read_chunks(
    mut reader: ImportReader<BufReader<std::fs::File>>,
    spec: ImportSpec,
    mut build: Build,
    tx: mpsc::Sender<Result<Chunk, ImportError>>,
) {
    let new_chunk = |seq: u64, build: &Build| Chunk {
        seq,
        bytes: 0,
        rows: Vec::new(),
        rejects: Vec::new(),
        keys: HashSet::new(),
        payload: build.empty(),
    };
    let mut chunk = new_chunk(0, &build);
    let mut position = reader.position();
    let limit = build.limit();
    let send = |mut chunk: Chunk, position: &mut u64, now: u64| -> bool {
        if let Payload::Json(out) = &mut chunk.payload {
            out.extend_from_slice(b"]}");
        }
        chunk.bytes = now.saturating_sub(*position);
        *position = now;
        tx.blocking_send(Ok(chunk)).is_ok()
    };
    loop {
        let record = match reader.next_record() {
            None => break,
            Some(Ok(record)) => record,
            Some(Err(e)) => {
                let _ = tx.blocking_send(Err(e.into()));
                return;
            }
        };
        let ImportRecord { line, raw, body } = record;
        let body = match body {
            Ok(body) => body,
            Err(e) => {
                let (field, reason) = error_row(&e);
                chunk.rejects.push(Reject { line, field, reason, raw });
                continue;
            }
        };
        let key = key_of(&body, &spec.id_column);
        if chunk.keys.contains(&key) {
            let next = new_chunk(chunk.seq + 1, &build);
            if !send(std::mem::replace(&mut chunk, next), &mut position, reader.position()) {
                return;
            }
        }
        match build.add(&spec, &mut chunk.payload, chunk.rows.len(), body) {
            Ok(()) => {
                chunk.rows.push(Pending { line, raw });
                chunk.keys.insert(key);
            }
            Err(e) => {
                let (field, reason) = error_row(&e);
                chunk.rejects.push(Reject { line, field, reason, raw });
            }
        }
        let full = chunk.rows.len() >= limit
            || chunk.rows.len() + chunk.rejects.len() >= 2 * CHUNK_ROWS
            || matches!(&chunk.payload, Payload::Json(out) if out.len() >= CHUNK_JSON_BYTES);
        if full {
            let next = new_chunk(chunk.seq + 1, &build);
            if !send(std::mem::replace(&mut chunk, next), &mut position, reader.position()) {
                return;
            }
        }
    }
    let end = reader.position();
    send(chunk, &mut position, end);
}

/// A chunk's rows and rejects kept while its payload is written.
struct InFlight {
    rows: Vec<Pending>,
    rejects: Vec<Reject>,
    keys: HashSet<u64>,
    bytes: u64,
}

/// Writes chunks as they come, `concurrency` at once, and the refused rows
/// in file order; returns the rows created, updated and left unchanged.
async fn dispatch(
    mut rx: mpsc::Receiver<Result<Chunk, ImportError>>,
    sink: Sink,
    concurrency: usize,
    progress: &Progress,
    rejects: &mut csv::Writer<std::fs::File>,
) -> Result<UpsertCounts, ImportError> {
    let mut running: JoinSet<(u64, Result<Outcome, ImportError>)> = JoinSet::new();
    let mut flight: HashMap<u64, InFlight> = HashMap::new();
    let mut finished: BTreeMap<u64, Vec<Reject>> = BTreeMap::new();
    let mut next_out = 0u64;
    let mut totals = UpsertCounts::default();
    let mut finish = |seq: u64,
                      outcome: Result<Outcome, ImportError>,
                      flight: &mut HashMap<u64, InFlight>,
                      rejects: &mut csv::Writer<std::fs::File>|
     -> Result<(), ImportError> {
        let outcome = outcome?;
        let Some(done) = flight.remove(&seq) else {
            return Err(ImportError::Core(Error::Internal(format!("chunk {seq} finished twice"))));
        };
        totals.created += outcome.counts.created;
        totals.updated += outcome.counts.updated;
        totals.unchanged += outcome.counts.unchanged;
        progress.rows.fetch_add((done.rows.len() + done.rejects.len()) as u64, Ordering::Relaxed);
        let mut refused = done.rejects;
        for (pending, failure) in done.rows.into_iter().zip(outcome.failures) {
            if let Some((field, reason)) = failure {
                refused.push(Reject { line: pending.line, field, reason, raw: pending.raw });
            }
        }
        refused.sort_by_key(|r| r.line);
        progress.rejected.fetch_add(refused.len() as u64, Ordering::Relaxed);
        progress.bytes.fetch_add(done.bytes, Ordering::Relaxed);
        finished.insert(seq, refused);
        while let Some(list) = finished.remove(&next_out) {
            for r in list {
                write_reject(rejects, &r)?;
            }
            next_out += 1;
        }
        Ok(())
    };
    while let Some(message) = rx.recv().await {
        let chunk = message?;
        loop {
            let busy = flight.values().any(|f| f.keys.iter().any(|k| chunk.keys.contains(k)));
            if running.len() < concurrency && !busy {
                break;
            }
            match running.join_next().await {
                Some(Ok((seq, outcome))) => finish(seq, outcome, &mut flight, rejects)?,
                Some(Err(e)) => return Err(ImportError::Core(Error::Internal(format!("a writer task failed: {e}")))),
                None => break,
            }
        }
        let Chunk { seq, bytes, rows, rejects: refused, keys, payload } = chunk;
        let sent = rows.len();
        flight.insert(seq, InFlight { rows, rejects: refused, keys, bytes });
        let sink = sink.clone();
        running.spawn(async move { (seq, write(&sink, payload, sent).await) });
    }
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok((seq, outcome)) => finish(seq, outcome, &mut flight, rejects)?,
            Err(e) => return Err(ImportError::Core(Error::Internal(format!("a writer task failed: {e}")))),
        }
    }
    Ok(totals)
}

fn write_reject(out: &mut csv::Writer<std::fs::File>, r: &Reject) -> Result<(), ImportError> {
    let line = r.line.to_string();
    let mut record: Vec<&[u8]> = vec![line.as_bytes(), r.field.as_bytes(), r.reason.as_bytes()];
    match &r.raw {
        Some(RawRow::Csv(cells)) => record.extend(cells.iter()),
        Some(RawRow::Line(text)) => record.push(text.as_bytes()),
        None => {}
    }
    out.write_record(&record)?;
    Ok(())
}

/// Writes one chunk's payload of `rows` rows.
async fn write(sink: &Sink, payload: Payload, rows: usize) -> Result<Outcome, ImportError> {
    if rows == 0 {
        return Ok(Outcome::default());
    }
    match (sink, payload) {
        (Sink::Http { client, token, batch, .. }, Payload::Json(body)) => {
            post_batch(client, batch, token, Bytes::from(body), rows).await
        }
        (Sink::Http { client, base, token, .. }, Payload::Bodies(bodies)) => {
            let mut outcome = Outcome::default();
            for body in bodies {
                let failure = match put_rep(client, base, token, body).await? {
                    Ok(status) => {
                        outcome.counts.add(status);
                        None
                    }
                    Err(failure) => Some(failure),
                };
                outcome.failures.push(failure);
            }
            Ok(outcome)
        }
        (Sink::Store { store, ws }, Payload::Contacts(upserts)) => {
            let result = retry_store(|| store.upsert_contacts(ws, upserts.clone(), BatchOptions::default())).await?;
            Ok(outcome_of(result.rows.into_iter().map(|r| (r.row, r.outcome.map(|(s, _)| s))), rows))
        }
        (Sink::Store { store, ws }, Payload::Companies(upserts)) => {
            let result = retry_store(|| store.upsert_companies(ws, upserts.clone(), BatchOptions::default())).await?;
            Ok(outcome_of(result.rows.into_iter().map(|r| (r.row, r.outcome.map(|(s, _)| s))), rows))
        }
        (Sink::Store { store, ws }, Payload::Reps(writes)) => write_reps(&**store, ws, writes).await,
        _ => Err(ImportError::Core(Error::Internal("a payload of the wrong kind".into()))),
    }
}

fn outcome_of(results: impl Iterator<Item = (usize, Result<RowStatus, Error>)>, rows: usize) -> Outcome {
    let mut outcome = Outcome { failures: vec![None; rows], ..Default::default() };
    for (row, result) in results {
        match result {
            Ok(status) => outcome.counts.add(status),
            Err(e) => {
                if let Some(slot) = outcome.failures.get_mut(row) {
                    *slot = Some(error_row(&e));
                }
            }
        }
    }
    outcome
}

/// Runs a store call again while the store is unavailable (busy).
async fn retry_store<T, F, Fut>(mut call: F) -> Result<T, ImportError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(Error::Unavailable { retry_after_secs, .. }) if attempt + 1 < ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(retry_after_secs.clamp(1, 30))).await;
            }
            other => return other.map_err(ImportError::Core),
        }
    }
}

/// Writes reps in one all-or-nothing store call; a row the store refuses
/// (its error names it) is set aside and the others are written again.
async fn write_reps(store: &dyn Store, ws: &str, writes: Vec<RepWrite>) -> Result<Outcome, ImportError> {
    let mut outcome = Outcome { failures: vec![None; writes.len()], ..Default::default() };
    let mut left: Vec<(usize, RepWrite)> = writes.into_iter().enumerate().collect();
    while !left.is_empty() {
        let batch: Vec<RepWrite> = left.iter().map(|(_, w)| w.clone()).collect();
        match retry_store(|| store.upsert_reps(ws, batch.clone())).await {
            Ok(counts) => {
                outcome.counts = counts;
                break;
            }
            Err(ImportError::Core(e)) if e.row().is_some_and(|r| r < left.len()) => {
                let at = e.row().unwrap_or_default();
                let (index, _) = left.remove(at);
                outcome.failures[index] = Some(error_row(&e));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(outcome)
}

/// A batch API's answer (the objects themselves are skipped).
#[derive(Deserialize)]
struct BatchReply {
    created: usize,
    updated: usize,
    #[serde(default)]
    unchanged: usize,
    results: Vec<ReplyRow>,
}

#[derive(Deserialize)]
struct ReplyRow {
    row: usize,
    error: Option<ReplyError>,
}

#[derive(Deserialize)]
struct ReplyError {
    message: String,
    field: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    error: ReplyError,
}

/// The message of an error answer.
async fn server_error(response: reqwest::Response) -> String {
    let status = response.status();
    match response.json::<Envelope>().await {
        Ok(e) => format!("{status}: {}", e.error.message),
        Err(_) => format!("{status}"),
    }
}

/// Seconds to wait before retrying an answer that asks for it.
fn retry_after(response: &reqwest::Response, attempt: u32) -> Duration {
    let asked =
        response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    Duration::from_secs(asked.unwrap_or(1 << attempt.min(4)).clamp(1, 30))
}

/// Sends a request again after 429, 503 or a failed connection.
async fn send_retrying(make: impl Fn() -> reqwest::RequestBuilder) -> Result<reqwest::Response, ImportError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match make().send().await {
            Ok(r) if matches!(r.status().as_u16(), 429 | 503) && attempt < ATTEMPTS => {
                tokio::time::sleep(retry_after(&r, attempt)).await;
            }
            Ok(r) if matches!(r.status().as_u16(), 401 | 403) => {
                return Err(ImportError::Server(server_error(r).await));
            }
            Ok(r) => return Ok(r),
            Err(_) if attempt < ATTEMPTS => tokio::time::sleep(Duration::from_secs(1 << attempt.min(4))).await,
            Err(e) => return Err(ImportError::Server(format!("the server cannot be reached: {e}"))),
        }
    }
}

/// Sends one batch body; each row's result comes back.
async fn post_batch(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: Bytes,
    rows: usize,
) -> Result<Outcome, ImportError> {
    let response = send_retrying(|| {
        client.post(url).bearer_auth(token).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone())
    })
    .await?;
    if response.status().as_u16() != 200 {
        // Not one row's fault: every row of the chunk is refused with the reason.
        let reason = server_error(response).await;
        return Ok(Outcome { failures: vec![Some((String::new(), reason)); rows], ..Default::default() });
    }
    let bytes = response.bytes().await.map_err(|e| ImportError::Server(format!("reading the answer failed: {e}")))?;
    let reply: BatchReply = serde_json::from_slice(&bytes)
        .map_err(|e| ImportError::Server(format!("the server's answer is not a batch report: {e}")))?;
    let counts = UpsertCounts { created: reply.created, updated: reply.updated, unchanged: reply.unchanged };
    let mut outcome = Outcome { counts, failures: vec![None; rows] };
    for r in reply.results {
        if let (Some(e), Some(slot)) = (r.error, outcome.failures.get_mut(r.row)) {
            *slot = Some((e.field.unwrap_or_default(), e.message));
        }
    }
    Ok(outcome)
}

/// Percent-encodes a path segment.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Changes a rep, or creates it when it does not exist.
async fn put_rep(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    mut body: Map<String, Value>,
) -> Result<Result<RowStatus, (String, String)>, ImportError> {
    let rep_id = match body.get("rep_id") {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => other.to_string(),
        None => return Ok(Err(("rep_id".into(), "rep_id is required".into()))),
    };
    let full = Value::Object(body.clone());
    body.remove("rep_id");
    let changes = Value::Object(body);
    let url = format!("{base}/v1/reps/{}", segment(&rep_id));
    for _ in 0..2 {
        let r = send_retrying(|| client.patch(&url).bearer_auth(token).json(&changes)).await?;
        match r.status().as_u16() {
            200 => return Ok(Ok(RowStatus::Updated)),
            404 => {}
            _ => return Ok(Err(row_error(r).await)),
        }
        let r = send_retrying(|| client.post(format!("{base}/v1/reps")).bearer_auth(token).json(&full)).await?;
        match r.status().as_u16() {
            201 => return Ok(Ok(RowStatus::Created)),
            // Created meanwhile by someone else: change it.
            409 => continue,
            _ => return Ok(Err(row_error(r).await)),
        }
    }
    Ok(Err(("rep_id".into(), format!("rep '{rep_id}' keeps appearing and disappearing; try again"))))
}

/// A refused request as a row's (field, reason).
async fn row_error(response: reqwest::Response) -> (String, String) {
    let status = response.status();
    match response.json::<Envelope>().await {
        Ok(e) => (e.error.field.unwrap_or_default(), e.error.message),
        Err(_) => (String::new(), format!("the server answered {status}")),
    }
}

/// Shows progress until aborted: a bar with rows/s and ETA on a terminal,
/// else a line every 5 seconds.
async fn show_progress(progress: Arc<Progress>, size: u64, started: Instant) {
    let rate = |rows: u64| rows as f64 / started.elapsed().as_secs_f64().max(1e-3);
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(size.max(1));
        let style = indicatif::ProgressStyle::with_template(
            "{bar:30.cyan/blue} {percent:>3}% {msg} elapsed {elapsed_precise} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        let _guard = FinishOnDrop(bar.clone());
        loop {
            let rows = progress.rows.load(Ordering::Relaxed);
            bar.set_position(progress.bytes.load(Ordering::Relaxed));
            bar.set_message(format!(
                "{rows} rows, {:.0} rows/s, {} rejected",
                rate(rows),
                progress.rejected.load(Ordering::Relaxed)
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let rows = progress.rows.load(Ordering::Relaxed);
            let bytes = progress.bytes.load(Ordering::Relaxed);
            eprintln!(
                "convene import: {rows} rows, {:.0} rows/s, {} rejected, {:.0}% of the file",
                rate(rows),
                progress.rejected.load(Ordering::Relaxed),
                bytes as f64 * 100.0 / size.max(1) as f64
            );
        }
    }
}

/// Clears the bar when the progress task ends.
struct FinishOnDrop(indicatif::ProgressBar);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_reject_paths_follow_the_file() {
        assert_eq!(format_of(Path::new("a/b.NDJSON"), None), ImportFormat::Ndjson);
        assert_eq!(format_of(Path::new("b.jsonl"), None), ImportFormat::Ndjson);
        assert_eq!(format_of(Path::new("b.txt"), None), ImportFormat::Csv);
        assert_eq!(format_of(Path::new("b.ndjson"), Some(FormatArg::Csv)), ImportFormat::Csv);
        assert_eq!(default_rejects(Path::new("/x/people.csv")), PathBuf::from("/x/people.csv.rejects.csv"));
        assert_eq!(segment("a b/é"), "a%20b%2F%C3%A9");
    }
}
