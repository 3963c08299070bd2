//! `convene backup DEST` and `convene restore SRC`.
//!
//! A backup is a directory: the database and its inbox copied online with
//! `VACUUM INTO` (the server keeps running; see
//! `convene_store_sqlite::backup`), the master key file, and
//! `manifest.json` (when, which version, which files, their sizes). It is
//! as sensitive as the data directory: files are written with mode 0600.
//! A restore refuses a data directory that a running server holds (its
//! lock file) and, unless `--force`, one that already has a database; with
//! `--force` the files it replaces are kept beside, renamed. PostgreSQL
//! deployments use pg_dump (docs/operations.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use convene_store_sqlite::backup::{inbox_path, integrity_check, snapshot};
use serde_json::json;

use crate::app::lock_data_dir;
use crate::config::{Database, ServeArgs, ServeConfig};

/// Flags of `convene backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The directory to write the snapshot into (created; must not hold a snapshot).
    pub dest: PathBuf,
    /// Where the data lives (the same flags as `serve`).
    #[command(flatten)]
    pub server: ServeArgs,
}

/// Flags of `convene restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A directory written by `convene backup`.
    pub source: PathBuf,
    /// Replace an existing database (the replaced files are kept, renamed).
    #[arg(long)]
    pub force: bool,
    /// Where the data lives (the same flags as `serve`).
    #[command(flatten)]
    pub server: ServeArgs,
}

fn sqlite_path(server: ServeArgs) -> Result<(PathBuf, PathBuf), String> {
    let config = ServeConfig::resolve(server).map_err(|e| e.to_string())?;
    match config.database {
        Database::Sqlite(path) => Ok((config.data_dir, path)),
        Database::Postgres(_) => {
            Err("backup and restore handle SQLite data directories; for PostgreSQL use pg_dump and pg_restore \
                 (docs/operations.md)"
                .into())
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(unix)]
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn make_private(_: &Path) -> std::io::Result<()> {
    Ok(())
}

fn backup(args: BackupArgs) -> Result<String, String> {
    let (data_dir, db) = sqlite_path(args.server)?;
    std::fs::create_dir_all(&args.dest).map_err(|e| format!("{}: {e}", args.dest.display()))?;
    if args.dest.join("manifest.json").exists() {
        return Err(format!("{} already holds a backup: choose an empty directory", args.dest.display()));
    }
    let started = std::time::Instant::now();
    let files = snapshot(&db, &args.dest).map_err(|e| e.to_string())?;
    let mut listed: Vec<serde_json::Value> = Vec::new();
    for f in &files {
        make_private(&args.dest.join(&f.name)).map_err(|e| e.to_string())?;
        listed.push(json!({"name": f.name, "bytes": f.bytes, "kind": "sqlite"}));
    }
    let key = data_dir.join("master.key");
    if let Ok(bytes) = std::fs::read(&key) {
        write_private(&args.dest.join("master.key"), &bytes).map_err(|e| e.to_string())?;
        listed.push(json!({"name": "master.key", "bytes": bytes.len(), "kind": "master key"}));
    }
    let manifest = json!({
        "convene": env!("CARGO_PKG_VERSION"),
        "created_at": convene_core::ids::fmt_time(&convene_core::ids::now()),
        "migrations": convene_store_sqlite::MIGRATION_COUNT,
        "files": listed,
    });
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    write_private(&args.dest.join("manifest.json"), &text).map_err(|e| e.to_string())?;
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    Ok(format!(
        "convene: backed up {} ({:.1} MB) into {} in {:.1} s",
        db.display(),
        bytes as f64 / 1e6,
        args.dest.display(),
        started.elapsed().as_secs_f64()
    ))
}

fn restore_files(args: RestoreArgs) -> Result<String, String> {
    let (data_dir, db) = sqlite_path(args.server)?;
    let manifest: serde_json::Value = std::fs::read(args.source.join("manifest.json"))
        .map_err(|e| format!("{} is not a convene backup (manifest.json: {e})", args.source.display()))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("manifest.json: {e}")))?;
    let db_name = db.file_name().and_then(|n| n.to_str()).unwrap_or("convene.db").to_string();
    let inbox = inbox_path(&db);
    let names: Vec<String> = manifest["files"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if !names.contains(&db_name) {
        return Err(format!("the backup has no {db_name}"));
    }
    integrity_check(&args.source.join(&db_name)).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
    let Some(_lock) = lock_data_dir(&data_dir).map_err(|e| e.to_string())? else {
        return Err(format!("a convene server is running on {}: stop it first", data_dir.display()));
    };
    if db.exists() && !args.force {
        return Err(format!(
            "{} already exists: pass --force to replace it (the old files are kept, renamed)",
            db.display()
        ));
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let inbox_name = inbox.file_name().and_then(|n| n.to_str()).unwrap_or("convene.inbox.db").to_string();
    for target in [db.clone(), inbox.clone(), data_dir.join("master.key")] {
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", target.display()));
            if path.exists() {
                let aside = PathBuf::from(format!("{}.replaced-{stamp}", path.display()));
                std::fs::rename(&path, &aside).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
    }
    for (name, target) in
        [(db_name.clone(), db.clone()), (inbox_name.clone(), inbox), ("master.key".into(), data_dir.join("master.key"))]
    {
        if !names.contains(&name) {
            continue;
        }
        let bytes = std::fs::read(args.source.join(&name)).map_err(|e| format!("{name}: {e}"))?;
        write_private(&target, &bytes).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    integrity_check(&db).map_err(|e| e.to_string())?;
    Ok(format!(
        "convene: restored {} from {} (made {})",
        db.display(),
        args.source.display(),
        manifest["created_at"].as_str().unwrap_or("?")
    ))
}

fn report(result: Result<String, String>, what: &str) -> ExitCode {
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("convene {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `convene backup`.
pub async fn run(args: BackupArgs) -> ExitCode {
    report(tokio::task::spawn_blocking(move || backup(args)).await.unwrap_or_else(|e| Err(e.to_string())), "backup")
}

/// Runs `convene restore`.
pub async fn restore(args: RestoreArgs) -> ExitCode {
    report(
        tokio::task::spawn_blocking(move || restore_files(args)).await.unwrap_or_else(|e| Err(e.to_string())),
        "restore",
    )
}
