//! Configuration, declared once: defaults < TOML file (`--config`) <
//! `CONVENE_*` environment < command-line flags. Unknown keys in the file are
//! an error; secrets never appear in `Debug` output.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use convene_core::ratelimit::Quota;
use convene_store_postgres::PgOptions;
use convene_store_sqlite::{SqliteOptions, Synchronous};
use serde::Deserialize;

use crate::http::ratelimit::RateLimitSettings;

/// A secret string: usable, never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for comparison.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// `convene`: a self-hosted engagement data hub.
#[derive(Debug, Parser)]
#[command(name = "convene", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Apply the database migrations and exit.
    Migrate(ServeArgs),
    /// Exit 0 when the server at --url answers /readyz.
    Healthcheck(HealthcheckArgs),
    /// Manage console users straight in the database (the first admin).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Import contacts, reps or companies from CSV or NDJSON.
    Import(crate::cli::import::ImportArgs),
    /// Export an entity as NDJSON or CSV, streamed.
    Export(crate::cli::export::ExportArgs),
    /// Make a consistent online snapshot of a SQLite data directory.
    Backup(crate::cli::backup::BackupArgs),
    /// Restore a data directory from a snapshot made by `convene backup`.
    Restore(crate::cli::backup::RestoreArgs),
    /// Erase a contact and every trace of its identities.
    Erase(crate::cli::erase::EraseArgs),
    /// Print the version.
    Version,
}

/// `convene users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a console user; prompts for the password (twice) on a
    /// terminal, else reads it from the first line of standard input.
    Create(UsersCreateArgs),
}

/// Flags of `convene users create`.
#[derive(Debug, Args)]
pub struct UsersCreateArgs {
    /// Workspace id (`ws_…`) or exact name.
    #[arg(long)]
    pub workspace: String,
    /// The user's email (the login).
    #[arg(long)]
    pub email: String,
    /// Display name [default: the email's local part].
    #[arg(long)]
    pub name: Option<String>,
    /// Make the user an admin (same as `--role admin`).
    #[arg(long, conflicts_with = "role")]
    pub admin: bool,
    /// admin, agent or viewer [default: agent].
    #[arg(long)]
    pub role: Option<String>,
    /// Read the password from standard input even on a terminal.
    #[arg(long)]
    pub password_stdin: bool,
    /// Where the data lives (the same flags as `serve`).
    #[command(flatten)]
    pub server: ServeArgs,
}

/// Flags of `convene healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Base URL of the server.
    #[arg(long, env = "CONVENE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

/// SQLite's durability setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Survives power loss (default).
    Full,
    /// Survives a process crash; may lose the last commits on power loss.
    Normal,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `convene serve` and `convene migrate`; each also read from a
/// `CONVENE_*` variable, and from the TOML file under the same name.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "CONVENE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (created if missing) [default: ./convene-data].
    #[arg(long, env = "CONVENE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "CONVENE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The operator credential (at least 16 bytes).
    #[arg(long, env = "CONVENE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<Secret>,
    /// Database URL [default: SQLite file convene.db in the data directory].
    #[arg(long, env = "CONVENE_DATABASE_URL")]
    pub database: Option<String>,
    /// SQLite synchronous setting [default: full].
    #[arg(long, env = "CONVENE_SQLITE_SYNCHRONOUS", value_enum)]
    pub sqlite_synchronous: Option<SyncMode>,
    /// SQLite page cache of the writer, in MiB [default: 32].
    #[arg(long, env = "CONVENE_SQLITE_CACHE_MIB")]
    pub sqlite_cache_mib: Option<u32>,
    /// PostgreSQL: most connections this node opens [default: 16].
    #[arg(long, env = "CONVENE_PG_MAX_CONNECTIONS")]
    pub pg_max_connections: Option<u32>,
    /// PostgreSQL: longest a statement may run, in milliseconds; 0 = no limit [default: 30000].
    #[arg(long, env = "CONVENE_PG_STATEMENT_TIMEOUT_MS")]
    pub pg_statement_timeout_ms: Option<u64>,
    /// PostgreSQL: longest a request waits for a connection, in milliseconds [default: 5000].
    #[arg(long, env = "CONVENE_PG_ACQUIRE_TIMEOUT_MS")]
    pub pg_acquire_timeout_ms: Option<u64>,
    /// PostgreSQL: times a transaction is retried after a serialization failure or deadlock [default: 5].
    #[arg(long, env = "CONVENE_PG_RETRIES")]
    pub pg_retries: Option<u32>,
    /// PostgreSQL: apply steps of one lane this node runs at once [default: 3].
    #[arg(long, env = "CONVENE_PG_APPLY_PARALLELISM")]
    pub pg_apply_parallelism: Option<usize>,
    /// Log format [default: text].
    #[arg(long, env = "CONVENE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Seconds a request may take before 503 [default: 30].
    #[arg(long, env = "CONVENE_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,
    /// Seconds in-flight requests get to finish at shutdown [default: 30].
    #[arg(long, env = "CONVENE_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Rate limit of each full key, RATE/BURST in requests per second [default: 10000/20000].
    #[arg(long, env = "CONVENE_RATE_LIMIT_FULL")]
    pub rate_limit_full: Option<String>,
    /// Rate limit of each analytics key, RATE/BURST [default: 20000/40000].
    #[arg(long, env = "CONVENE_RATE_LIMIT_ANALYTICS")]
    pub rate_limit_analytics: Option<String>,
    /// Failed authentications allowed per client address, RATE/BURST [default: 20/200].
    #[arg(long, env = "CONVENE_RATE_LIMIT_FAILED_AUTH")]
    pub rate_limit_failed_auth: Option<String>,
    /// Console login attempts allowed per account (email), RATE/BURST [default: 0.0333/10].
    #[arg(long, env = "CONVENE_RATE_LIMIT_LOGIN")]
    pub rate_limit_login: Option<String>,
    /// Ingest pipeline flags.
    #[command(flatten)]
    pub ingest: IngestArgs,
}

fn rate_limits(args: &ServeArgs, file: &FileConfig) -> Result<RateLimitSettings, ConfigError> {
    let defaults = RateLimitSettings::default();
    let quota = |flag: &Option<String>, key: &Option<String>, name: &str, default| -> Result<Quota, ConfigError> {
        match flag.as_ref().or(key.as_ref()) {
            Some(s) => Quota::parse(s).map_err(|e| ConfigError::Invalid(format!("{name}: {e}"))),
            None => Ok(default),
        }
    };
    Ok(RateLimitSettings {
        full: quota(&args.rate_limit_full, &file.rate_limit_full, "rate_limit_full", defaults.full)?,
        analytics: quota(
            &args.rate_limit_analytics,
            &file.rate_limit_analytics,
            "rate_limit_analytics",
            defaults.analytics,
        )?,
        failed_auth: quota(
            &args.rate_limit_failed_auth,
            &file.rate_limit_failed_auth,
            "rate_limit_failed_auth",
            defaults.failed_auth,
        )?,
        login: quota(&args.rate_limit_login, &file.rate_limit_login, "rate_limit_login", defaults.login)?,
    })
}

/// Flags of the ingest pipeline.
#[derive(Debug, Default, Args)]
pub struct IngestArgs {
    /// Unapplied items beyond which ingest answers 503 [default: 1000000].
    #[arg(long, env = "CONVENE_INGEST_MAX_BACKLOG")]
    pub ingest_max_backlog: Option<u64>,
    /// Items applied per transaction [default: 5000].
    #[arg(long, env = "CONVENE_INGEST_APPLY_BATCH")]
    pub ingest_apply_batch: Option<usize>,
    /// Days job results are kept [default: 7].
    #[arg(long, env = "CONVENE_JOB_RETENTION_DAYS")]
    pub job_retention_days: Option<u64>,
    /// Days message ids are remembered for deduplication (at least 7) [default: 7].
    #[arg(long, env = "CONVENE_DEDUPE_WINDOW_DAYS")]
    pub dedupe_window_days: Option<u64>,
}

fn ingest_settings(args: &IngestArgs, file: &FileConfig) -> crate::ingest::IngestSettings {
    let day = 24 * 3600;
    let defaults = crate::ingest::IngestSettings::default();
    crate::ingest::IngestSettings {
        max_backlog: args.ingest_max_backlog.or(file.ingest_max_backlog).unwrap_or(defaults.max_backlog),
        apply_batch: args.ingest_apply_batch.or(file.ingest_apply_batch).unwrap_or(defaults.apply_batch).max(1),
        job_retention: args
            .job_retention_days
            .or(file.job_retention_days)
            .map(|d| std::time::Duration::from_secs(d * day))
            .unwrap_or(defaults.job_retention),
        dedupe_window: args
            .dedupe_window_days
            .or(file.dedupe_window_days)
            .map(|d| std::time::Duration::from_secs(d.max(7) * day))
            .unwrap_or(defaults.dedupe_window),
    }
}

/// The TOML file: the same keys as the flags, all optional; unknown keys
/// are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    master_key: Option<Secret>,
    database: Option<String>,
    sqlite_synchronous: Option<SyncMode>,
    sqlite_cache_mib: Option<u32>,
    pg_max_connections: Option<u32>,
    pg_statement_timeout_ms: Option<u64>,
    pg_acquire_timeout_ms: Option<u64>,
    pg_retries: Option<u32>,
    pg_apply_parallelism: Option<usize>,
    log_format: Option<LogFormat>,
    request_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    ingest_max_backlog: Option<u64>,
    ingest_apply_batch: Option<usize>,
    job_retention_days: Option<u64>,
    dedupe_window_days: Option<u64>,
    rate_limit_full: Option<String>,
    rate_limit_analytics: Option<String>,
    rate_limit_failed_auth: Option<String>,
    rate_limit_login: Option<String>,
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server (`postgres://…`; the URL may hold a password).
    Postgres(Secret),
}

/// A configuration error, said plainly.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What is wrong (unknown keys are named).
        message: String,
    },
    /// A value is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

/// The resolved configuration of a server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Master key, if configured (else generated on loopback).
    pub master_key: Option<Secret>,
    /// Database.
    pub database: Database,
    /// SQLite tuning.
    pub sqlite: SqliteOptions,
    /// PostgreSQL tuning.
    pub postgres: PgOptions,
    /// Log format.
    pub log_format: LogFormat,
    /// Request timeout.
    pub request_timeout_secs: u64,
    /// Shutdown grace.
    pub shutdown_grace_secs: u64,
    /// Ingest pipeline tuning.
    pub ingest: crate::ingest::IngestSettings,
    /// Rate limits.
    pub rate_limits: RateLimitSettings,
}

/// Smallest master key accepted.
pub const MIN_MASTER_KEY_BYTES: usize = 16;

impl ServeConfig {
    /// Resolves flags/env (`args`, already merged by clap) over the file
    /// over the defaults.
    pub fn resolve(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let ingest = ingest_settings(&args.ingest, &file);
        let rate_limits = rate_limits(&args, &file)?;
        let data_dir = args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./convene-data"));
        let database = parse_database(args.database.or(file.database).as_deref(), &data_dir)?;
        let synchronous = match args.sqlite_synchronous.or(file.sqlite_synchronous).unwrap_or(SyncMode::Full) {
            SyncMode::Full => Synchronous::Full,
            SyncMode::Normal => Synchronous::Normal,
        };
        let mut sqlite = SqliteOptions { synchronous, ..SqliteOptions::default() };
        if let Some(mib) = args.sqlite_cache_mib.or(file.sqlite_cache_mib) {
            sqlite.writer_cache_mib = mib;
        }
        let pg_defaults = PgOptions::default();
        let postgres = PgOptions {
            max_connections: args
                .pg_max_connections
                .or(file.pg_max_connections)
                .unwrap_or(pg_defaults.max_connections)
                .max(2),
            statement_timeout_ms: args
                .pg_statement_timeout_ms
                .or(file.pg_statement_timeout_ms)
                .unwrap_or(pg_defaults.statement_timeout_ms),
            acquire_timeout_ms: args
                .pg_acquire_timeout_ms
                .or(file.pg_acquire_timeout_ms)
                .unwrap_or(pg_defaults.acquire_timeout_ms)
                .max(1),
            retries: args.pg_retries.or(file.pg_retries).unwrap_or(pg_defaults.retries),
            apply_parallelism: args
                .pg_apply_parallelism
                .or(file.pg_apply_parallelism)
                .unwrap_or(pg_defaults.apply_parallelism)
                .max(1),
        };
        Ok(ServeConfig {
            data_dir,
            listen: args.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            master_key: args.master_key.or(file.master_key),
            database,
            sqlite,
            postgres,
            log_format: args.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
            request_timeout_secs: args.request_timeout_secs.or(file.request_timeout_secs).unwrap_or(30),
            shutdown_grace_secs: args.shutdown_grace_secs.or(file.shutdown_grace_secs).unwrap_or(30),
            ingest,
            rate_limits,
        })
    }

    /// A configuration for tests: a data directory, port 0 on loopback, a
    /// given master key.
    pub fn for_tests(data_dir: &Path, master_key: &str) -> Self {
        ServeConfig {
            data_dir: data_dir.to_path_buf(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            master_key: Some(Secret::new(master_key)),
            database: Database::Sqlite(data_dir.join("convene.db")),
            sqlite: SqliteOptions::default(),
            postgres: PgOptions::default(),
            log_format: LogFormat::Text,
            request_timeout_secs: 30,
            shutdown_grace_secs: 5,
            ingest: crate::ingest::IngestSettings::default(),
            rate_limits: RateLimitSettings::default(),
        }
    }
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.message().to_string() })
}

/// Chooses the backend from the URL scheme.
pub fn parse_database(url: Option<&str>, data_dir: &Path) -> Result<Database, ConfigError> {
    let Some(url) = url else {
        return Ok(Database::Sqlite(data_dir.join("convene.db")));
    };
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(ConfigError::Invalid(
                "--database sqlite:// needs a file path, e.g. sqlite:///var/lib/convene/convene.db".into(),
            ));
        }
        return Ok(Database::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Database::Postgres(Secret::new(url)));
    }
    let scheme = url.split("://").next().unwrap_or(url);
    Err(ConfigError::Invalid(format!(
        "unknown database URL scheme '{scheme}': use postgres://user:password@host:port/database or \
         sqlite:///path/to/file.db (or omit --database for the embedded SQLite default)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("super-secret-value");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let args = ServeArgs { master_key: Some(s), ..Default::default() };
        assert!(!format!("{args:?}").contains("super-secret-value"));
    }

    #[test]
    fn database_schemes() {
        let d = Path::new("/d");
        assert_eq!(parse_database(None, d).unwrap(), Database::Sqlite("/d/convene.db".into()));
        assert_eq!(parse_database(Some("sqlite:///x.db"), d).unwrap(), Database::Sqlite("/x.db".into()));
        let pg = parse_database(Some("postgres://u:pw@h/db"), d).unwrap();
        assert!(matches!(&pg, Database::Postgres(url) if url.expose() == "postgres://u:pw@h/db"));
        assert!(!format!("{pg:?}").contains("pw"), "the URL's password never reaches a log");
        assert!(
            parse_database(Some("mysql://h"), d)
                .unwrap_err()
                .to_string()
                .contains("unknown database URL scheme 'mysql'")
        );
    }

    #[test]
    fn precedence_is_defaults_file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from/file\"\n").unwrap();
        let args = ServeArgs { config: Some(path.clone()), data_dir: Some("/from/flag".into()), ..Default::default() };
        let c = ServeConfig::resolve(args).unwrap();
        assert_eq!(c.listen.port(), 9000, "file over default");
        assert_eq!(c.data_dir, PathBuf::from("/from/flag"), "flag over file");
        assert_eq!(c.request_timeout_secs, 30, "default");
        std::fs::write(&path, "listne = \"127.0.0.1:9000\"\n").unwrap();
        let err = ServeConfig::resolve(ServeArgs { config: Some(path), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
    }
}
