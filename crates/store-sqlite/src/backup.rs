//! Online snapshots of a SQLite data directory, and restoring one.
//!
//! `VACUUM INTO` copies a database as one read transaction sees it, while
//! the server goes on writing (WAL readers never block the writer). The
//! inbox is copied before the main database: an entry applied between the
//! two copies is then in the inbox copy and, the main copy's cursor not
//! covering it, applied again after a restore; an entry applied before both
//! is skipped by the cursor. Nothing acknowledged is missing from a
//! snapshot.

use std::path::{Path, PathBuf};

use convene_core::{Error, Result};
use rusqlite::{Connection, OpenFlags};

use crate::conn::storage;

/// The inbox file that belongs beside a database file.
pub fn inbox_path(db: &Path) -> PathBuf {
    db.with_file_name(format!("{}.inbox.db", db.file_stem().and_then(|s| s.to_str()).unwrap_or("convene")))
}

/// One file of a snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    /// Its name in the snapshot directory.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
}

fn vacuum_into(source: &Path, dest: &Path) -> Result<u64> {
    let conn = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(storage)?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(storage)?;
    let target = dest.to_str().ok_or_else(|| Error::bad_request("the backup path is not valid UTF-8"))?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(storage)?;
    let size = std::fs::metadata(dest).map_err(|e| Error::Internal(format!("{}: {e}", dest.display())))?.len();
    Ok(size)
}

/// Checks a database file: `PRAGMA integrity_check` must say `ok`.
pub fn integrity_check(path: &Path) -> Result<()> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(storage)?;
    let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(storage)?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(Error::Internal(format!("{}: integrity check failed: {verdict}", path.display())))
    }
}

/// Snapshots the database at `db` and its inbox into the directory `dest`
/// (which must not hold them yet); returns the files written, each checked.
pub fn snapshot(db: &Path, dest: &Path) -> Result<Vec<SnapshotFile>> {
    if !db.exists() {
        return Err(Error::bad_request(format!("no database at {}", db.display())));
    }
    let name = db.file_name().and_then(|n| n.to_str()).unwrap_or("convene.db").to_string();
    let inbox = inbox_path(db);
    let inbox_name = inbox.file_name().and_then(|n| n.to_str()).unwrap_or("convene.inbox.db").to_string();
    for n in [&name, &inbox_name] {
        if dest.join(n).exists() {
            return Err(Error::bad_request(format!(
                "{} already exists: choose an empty directory",
                dest.join(n).display()
            )));
        }
    }
    let mut files = Vec::new();
    if inbox.exists() {
        let bytes = vacuum_into(&inbox, &dest.join(&inbox_name))?;
        files.push(SnapshotFile { name: inbox_name, bytes });
    }
    let bytes = vacuum_into(db, &dest.join(&name))?;
    files.push(SnapshotFile { name, bytes });
    for f in &files {
        integrity_check(&dest.join(&f.name))?;
    }
    Ok(files)
}
