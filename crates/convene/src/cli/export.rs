//! `convene export ENTITY`: streams `GET /v1/exports/{entity}` of a running
//! server to a file or stdout, with a progress bar (a plain line every few
//! seconds when stderr is not a terminal).
//!
//! Resuming: the CLI writes whole rows only and remembers, beside the
//! output file (`FILE.export-state`, JSON), the key of the last row it
//! wrote, the file's length after that row and the command's entity,
//! format and `since`, every second, when the stream breaks, and on
//! Ctrl-C. `--resume` truncates the file to the saved length (dropping a
//! row cut in half, or rows written after the last save) and asks the
//! server for the rows after the saved key: each row ends up in the file
//! exactly once. The state file is removed when the export completes.
//! To stdout, a broken export prints the `--cursor` to continue with.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use convene_core::export::ExportEntity;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::exports::ExportFormat;
use convene_core::csv_cell::unneutralise;

/// Flags of `convene export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// What to export: contacts, events, conversations, messages, reps or companies.
    pub entity: String,
    /// `ndjson` (one native JSON object per line) or `csv`.
    #[arg(long, default_value = "ndjson")]
    pub format: String,
    /// Only rows changed at or after this time (events: received; messages:
    /// created): RFC 3339 or YYYY-MM-DD.
    #[arg(long)]
    pub since: Option<String>,
    /// Write to FILE instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Continue the interrupted export into --output after the last row
    /// it holds (saved in FILE.export-state); with no saved state, start.
    #[arg(long, requires = "output", conflicts_with = "cursor")]
    pub resume: bool,
    /// Start after the row with this key (`id`; `rep_id` for reps).
    #[arg(long)]
    pub cursor: Option<String>,
    /// The server.
    #[arg(long, env = "CONVENE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key holding the entity's read scope.
    #[arg(long, env = "CONVENE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Bad flags, or a state that does not fit the command.
    #[error("{0}")]
    Usage(String),
    /// The server refused the export.
    #[error("the server answered {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its error message (and field).
        message: String,
    },
    /// The server could not be reached.
    #[error("cannot reach the server: {0}")]
    Connect(reqwest::Error),
    /// The stream broke off (rows written so far are kept).
    #[error("the export broke off after {rows} rows ({reason}); {hint}")]
    Interrupted {
        /// Rows in the output.
        rows: u64,
        /// What happened.
        reason: String,
        /// How to continue.
        hint: String,
    },
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),
}

/// What `--resume` reads back: enough to continue the same command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedExport {
    /// The entity exported.
    pub entity: String,
    /// `ndjson` or `csv`.
    pub format: String,
    /// The `--since` given.
    pub since: Option<String>,
    /// The key of the last row in the file (none yet: `None`).
    pub cursor: Option<String>,
    /// The file's length after that row.
    pub bytes: u64,
    /// Rows in the file.
    pub rows: u64,
    /// The CSV header row written, to check that the columns did not change.
    pub header: Option<String>,
}

/// The state file beside an output file.
pub fn state_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".export-state");
    PathBuf::from(name)
}

/// Runs `convene export`.
pub async fn run(args: ExportArgs) -> ExitCode {
    let quiet = args.quiet;
    match export(args).await {
        Ok(summary) => {
            if !quiet {
                eprintln!("convene export: {summary}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("convene export: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whole rows cut out of the arriving bytes: a row ends at a newline (in
/// CSV, one outside quotes).
struct Rows {
    csv: bool,
    pending: Vec<u8>,
    in_quotes: bool,
    scanned: usize,
}

impl Rows {
    /// Adds arrived bytes; returns the complete rows now held (their bytes)
    /// and the end of each.
    fn push(&mut self, data: &[u8]) -> Option<(Vec<u8>, Vec<usize>)> {
        self.pending.extend_from_slice(data);
        let mut ends = Vec::new();
        for (i, &b) in self.pending.iter().enumerate().skip(self.scanned) {
            if self.csv && b == b'"' {
                self.in_quotes = !self.in_quotes;
            } else if b == b'\n' && !self.in_quotes {
                ends.push(i + 1);
            }
        }
        self.scanned = self.pending.len();
        let last = *ends.last()?;
        let rest = self.pending.split_off(last);
        self.scanned = rest.len();
        Some((std::mem::replace(&mut self.pending, rest), ends))
    }
}

/// The key (first column) of one NDJSON or CSV row.
fn row_key(row: &[u8], csv: bool, key: &str) -> Option<String> {
    if csv {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(row);
        let record = reader.records().next()?.ok()?;
        return record.get(0).map(|v| unneutralise(v).to_string());
    }
    match serde_json::from_slice::<serde_json::Map<String, Value>>(row).ok()?.remove(key)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Where rows go.
enum Sink {
    File(BufWriter<File>),
    Stdout(BufWriter<std::io::Stdout>),
}

impl Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.write_all(bytes),
            Sink::Stdout(s) => s.write_all(bytes),
        }
    }

    /// Everything written so far is on disk (or handed to stdout).
    fn sync(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File(f) => {
                f.flush()?;
                f.get_ref().sync_data()
            }
            Sink::Stdout(s) => s.flush(),
        }
    }
}

/// Progress on stderr: a bar on a terminal, else a line every 5 seconds.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    plain: bool,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    fn new(quiet: bool, entity: ExportEntity) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} {prefix} {human_pos} rows, {msg} ({per_sec}) {elapsed}",
            ) {
                bar.set_style(style);
            }
            bar.set_prefix(entity.as_str());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let now = Instant::now();
        Progress { bar, plain: !quiet && !terminal, started: now, last_line: now }
    }

    fn update(&mut self, rows: u64, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(rows);
            bar.set_message(format!("{:.1} MB", bytes as f64 / 1e6));
        } else if self.plain && self.last_line.elapsed() >= Duration::from_secs(5) {
            self.last_line = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(1e-3);
            eprintln!("convene export: {rows} rows, {:.0} rows/s, {:.1} MB", rows as f64 / secs, bytes as f64 / 1e6);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn read_state(path: &Path) -> Result<Option<SavedExport>, ExportError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ExportError::Usage(format!("{} is not an export state: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes the state atomically (a new file renamed over the old one).
fn write_state(path: &Path, state: &SavedExport) -> Result<(), ExportError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let text = serde_json::to_vec(state).map_err(|e| ExportError::Usage(e.to_string()))?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Where an export starts: the sink and the state to continue from.
fn open_output(args: &ExportArgs, fresh: SavedExport) -> Result<(Sink, Option<PathBuf>, SavedExport), ExportError> {
    let Some(output) = &args.output else {
        return Ok((Sink::Stdout(BufWriter::new(std::io::stdout())), None, fresh));
    };
    let state_file = state_path(output);
    let saved = if args.resume { read_state(&state_file)? } else { None };
    let Some(saved) = saved else {
        if args.resume && std::fs::metadata(output).is_ok_and(|m| m.len() > 0) {
            return Err(ExportError::Usage(format!(
                "{} exists but no export into it is in progress (no {}): remove it, or run without --resume to \
                 overwrite it",
                output.display(),
                state_file.display()
            )));
        }
        let _ = std::fs::remove_file(&state_file);
        let file = File::create(output)?;
        return Ok((Sink::File(BufWriter::with_capacity(256 * 1024, file)), Some(state_file), fresh));
    };
    if (&saved.entity, &saved.format, &saved.since) != (&fresh.entity, &fresh.format, &fresh.since) {
        return Err(ExportError::Usage(format!(
            "{} holds an export of {} as {} (since {}): run that same command to continue it",
            output.display(),
            saved.entity,
            saved.format,
            saved.since.as_deref().unwrap_or("the beginning")
        )));
    }
    let mut file = OpenOptions::new().read(true).write(true).open(output)?;
    if file.metadata()?.len() < saved.bytes {
        return Err(ExportError::Usage(format!(
            "{} is shorter than the {} bytes its saved state says it holds: it was changed; start again without \
             --resume",
            output.display(),
            saved.bytes
        )));
    }
    // Drops a row cut in half and the rows written after the last save.
    file.set_len(saved.bytes)?;
    file.seek(SeekFrom::End(0))?;
    Ok((Sink::File(BufWriter::with_capacity(256 * 1024, file)), Some(state_file), saved))
}

async fn export(args: ExportArgs) -> Result<String, ExportError> {
    let entity: ExportEntity =
        args.entity.parse().map_err(|e: convene_core::Error| ExportError::Usage(e.to_string()))?;
    let format = ExportFormat::parse(Some(&args.format)).map_err(|e| ExportError::Usage(e.to_string()))?;
    let csv = format == ExportFormat::Csv;
    let fresh = SavedExport {
        entity: entity.as_str().to_string(),
        format: format.extension().to_string(),
        since: args.since.clone(),
        cursor: args.cursor.clone(),
        bytes: 0,
        rows: 0,
        header: None,
    };
    let (mut sink, state_file, mut state) = open_output(&args, fresh)?;

    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| ExportError::Usage(e.to_string()))?;
    let mut query: Vec<(&str, &str)> = vec![("format", format.extension())];
    if let Some(since) = &state.since {
        query.push(("since", since));
    }
    if let Some(cursor) = &state.cursor {
        query.push(("cursor", cursor));
    }
    let url = format!("{}/v1/exports/{}", args.url.trim_end_matches('/'), entity.as_str());
    let mut response =
        client.get(url).bearer_auth(&args.token).query(&query).send().await.map_err(ExportError::Connect)?;
    if !response.status().is_success() {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let error = &body["error"];
        let mut message = error["message"].as_str().unwrap_or("no error message").to_string();
        if let Some(field) = error["field"].as_str() {
            message.push_str(&format!(" (field '{field}')"));
        }
        return Err(ExportError::Refused { status, message });
    }

    let key = entity.columns()[0].name;
    let mut rows = Rows { csv, pending: Vec::new(), in_quotes: false, scanned: 0 };
    let mut header_due = csv;
    let mut progress = Progress::new(args.quiet, entity);
    let (mut rows_now, mut bytes_now) = (0u64, 0u64);
    let mut last_save: Option<Instant> = None;
    let broke = loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk,
            _ = tokio::signal::ctrl_c() => break Some("interrupted".to_string()),
        };
        let data = match chunk {
            Ok(Some(data)) => data,
            Ok(None) if rows.pending.is_empty() => break None,
            Ok(None) => break Some("the stream ended inside a row".to_string()),
            Err(e) => break Some(e.to_string()),
        };
        let Some((mut block, mut ends)) = rows.push(&data) else { continue };
        if std::mem::replace(&mut header_due, false) {
            let header_end = ends.remove(0);
            let header = String::from_utf8_lossy(&block[..header_end]).into_owned();
            match &state.header {
                Some(saved) if *saved != header => {
                    return Err(ExportError::Usage(format!(
                        "the CSV columns changed since the export began (fields were added): start again without \
                         --resume\n  was: {}\n  now: {}",
                        saved.trim_end(),
                        header.trim_end()
                    )));
                }
                Some(_) => {
                    block.drain(..header_end);
                    ends.iter_mut().for_each(|e| *e -= header_end);
                }
                None => {
                    sink.write(&block[..header_end])?;
                    state.bytes += header_end as u64;
                    state.header = Some(header);
                    block.drain(..header_end);
                    ends.iter_mut().for_each(|e| *e -= header_end);
                }
            }
        }
        if let Some(&end) = ends.last() {
            let start = if ends.len() > 1 { ends[ends.len() - 2] } else { 0 };
            let cursor = row_key(&block[start..end], csv, key).ok_or_else(|| ExportError::Interrupted {
                rows: state.rows,
                reason: "a row without its key".into(),
                hint: "the server sent something this version does not read".into(),
            })?;
            sink.write(&block)?;
            state.cursor = Some(cursor);
            state.rows += ends.len() as u64;
            state.bytes += block.len() as u64;
            rows_now += ends.len() as u64;
            bytes_now += block.len() as u64;
        }
        progress.update(rows_now, bytes_now);
        if let Some(path) = &state_file
            && last_save.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            sink.sync()?;
            write_state(path, &state)?;
            last_save = Some(Instant::now());
        }
    };
    progress.finish();
    sink.sync()?;
    if let Some(reason) = broke {
        let hint = match (&state_file, &state.cursor) {
            (Some(_), _) => "run the same command with --resume to continue".to_string(),
            (None, Some(cursor)) => format!("continue with --cursor '{cursor}'"),
            (None, None) => "run it again".to_string(),
        };
        if let Some(path) = &state_file {
            write_state(path, &state)?;
        }
        return Err(ExportError::Interrupted { rows: state.rows, reason, hint });
    }
    if let Some(path) = &state_file {
        let _ = std::fs::remove_file(path);
    }
    let target = args.output.as_ref().map_or("stdout".to_string(), |p| p.display().to_string());
    Ok(format!("{} {} rows written to {target} ({} in this run)", state.rows, entity.as_str(), rows_now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_end_at_newlines_outside_csv_quotes() {
        let mut rows = Rows { csv: true, pending: Vec::new(), in_quotes: false, scanned: 0 };
        assert!(rows.push(b"id,name\r\n1,\"a\nb").is_some_and(|(b, e)| b == b"id,name\r\n" && e == [9]));
        assert!(rows.push(b"\"\"c").is_none());
        let (block, ends) = rows.push(b"\"\r\n2,x\r\n3").unwrap();
        assert_eq!(block, b"1,\"a\nb\"\"c\"\r\n2,x\r\n");
        assert_eq!(ends, [12, 17]);
        assert_eq!(row_key(&block[12..17], true, "id").as_deref(), Some("2"));
        assert_eq!(row_key(b"'=x,1\r\n", true, "id").as_deref(), Some("=x"));
        assert_eq!(row_key(b"{\"rep_id\":\"r\\\"1\",\"n\":1}\n", false, "rep_id").as_deref(), Some("r\"1"));
        assert_eq!(row_key(b"{\"id\":42}\n", false, "id").as_deref(), Some("42"));
    }
}
