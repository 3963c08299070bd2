//! Embedded migrations, applied in order at start and by `convene migrate`.

use rusqlite::Connection;

use convene_core::Result;

use crate::conn::storage;

/// How many migrations this build carries.
pub const MIGRATION_COUNT: usize = MIGRATIONS.len();

/// (version, name, SQL) in order; never edit a released one, add a new one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "foundation", include_str!("../migrations/0001_foundation.sql")),
    (2, "ingestion", include_str!("../migrations/0002_ingestion.sql")),
    (3, "companies", include_str!("../migrations/0003_companies.sql")),
    (4, "conversations", include_str!("../migrations/0004_conversations.sql")),
    (5, "reps and calls", include_str!("../migrations/0005_reps_calls.sql")),
    (6, "console logins and sessions", include_str!("../migrations/0006_console.sql")),
    (7, "erasure and suppressions", include_str!("../migrations/0007_erasure.sql")),
];

/// Applies the migrations not yet applied; returns how many ran.
pub(crate) fn apply(conn: &mut Connection) -> Result<usize> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS convene_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .map_err(storage)?;
    let mut ran = 0;
    for (version, name, sql) in MIGRATIONS {
        let done: bool = conn
            .query_row("SELECT EXISTS (SELECT 1 FROM convene_migrations WHERE version = ?1)", [version], |r| r.get(0))
            .map_err(storage)?;
        if done {
            continue;
        }
        let tx = conn.transaction().map_err(storage)?;
        tx.execute_batch(sql).map_err(storage)?;
        tx.execute(
            "INSERT INTO convene_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, convene_core::ids::fmt_time(&convene_core::ids::now())],
        )
        .map_err(storage)?;
        tx.commit().map_err(storage)?;
        tracing::info!(version, name, "applied migration");
        ran += 1;
    }
    Ok(ran)
}
