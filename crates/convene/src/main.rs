//! The `convene` binary: `serve`, `migrate`, `users create`, `import`, `export`, `backup`,
//! `restore`, `erase`, `healthcheck`, `version`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use convene::app::Application;
use convene::config::{Cli, Command, Database, LogFormat, ServeConfig, UsersCommand};
use convene_store_postgres::PgStore;
use convene_store_sqlite::SqliteStore;

/// mimalloc: the server allocates and frees small objects on many threads
/// (rows read on a reader thread are freed on a request's thread); glibc's
/// allocator spent a quarter of the CPU of a streamed page there, with lock
/// waits between arenas. BENCHMARKS.md has the figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logs(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("CONVENE_LOG").unwrap_or_else(|_| "info,tower_http=info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("convene {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Healthcheck(args) => {
            match convene::healthcheck::check(&args.url, Duration::from_secs(args.timeout)).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("convene healthcheck: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Users(UsersCommand::Create(args)) => match convene::cli::users::create(args).await {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        },
        Command::Import(args) => convene::cli::import::run(args).await,
        Command::Export(args) => convene::cli::export::run(args).await,
        Command::Backup(args) => convene::cli::backup::run(args).await,
        Command::Restore(args) => convene::cli::backup::restore(args).await,
        Command::Erase(args) => convene::cli::erase::run(args).await,
        Command::Migrate(args) => {
            let config = match ServeConfig::resolve(args) {
                Ok(c) => c,
                Err(e) => return fail(&e.to_string()),
            };
            init_logs(config.log_format);
            if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
                return fail(&format!("cannot create {}: {e}", config.data_dir.display()));
            }
            let (result, target) = match &config.database {
                Database::Sqlite(path) => (SqliteStore::migrate(path, &config.sqlite), path.display().to_string()),
                Database::Postgres(url) => {
                    (PgStore::migrate(url.expose(), &config.postgres).await, "the PostgreSQL database".to_string())
                }
            };
            match result {
                Ok(n) => {
                    println!("convene: {n} migration(s) applied to {target}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Serve(args) => {
            let config = match ServeConfig::resolve(args) {
                Ok(c) => c,
                Err(e) => return fail(&e.to_string()),
            };
            init_logs(config.log_format);
            serve(config).await
        }
    }
}

async fn serve(config: ServeConfig) -> ExitCode {
    let data_dir = config.data_dir.clone();
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => return fail(&e.to_string()),
    };
    if let Some(key) = &app.generated_master_key {
        println!("convene: generated a master key (shown once; stored in {}):", data_dir.join("master.key").display());
        println!("  {key}");
    }
    tracing::info!(address = %app.local_addr(), "convene is listening");
    match app.run_until(shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: draining in-flight requests");
}

fn fail(message: &str) -> ExitCode {
    eprintln!("convene: {message}");
    ExitCode::FAILURE
}
