//! Embedded migrations in PostgreSQL's SQL, applied at start and by
//! `convene migrate`. Nodes starting together take an advisory lock, so
//! exactly one applies each migration.

use convene_core::Result;
use deadpool_postgres::Pool;

use crate::db::{conn, execute, query_one};
use crate::error::db;

/// How many migrations this build carries.
pub const MIGRATION_COUNT: usize = MIGRATIONS.len();

/// (version, name, SQL) in order; never edit a released one, add a new one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "schema", include_str!("../migrations/0001_schema.sql")),
    (2, "companies", include_str!("../migrations/0002_companies.sql")),
    (3, "conversations", include_str!("../migrations/0003_conversations.sql")),
    (4, "apply_speed", include_str!("../migrations/0004_apply_speed.sql")),
    (5, "reps_calls", include_str!("../migrations/0005_reps_calls.sql")),
    (6, "console", include_str!("../migrations/0006_console.sql")),
    (7, "erasure", include_str!("../migrations/0007_erasure.sql")),
];

/// Advisory lock key of the migrator ("convene" in ASCII).
const MIGRATION_LOCK: i64 = 0x0063_6f6e_7665_6e65;

/// Applies the migrations not yet applied; returns how many ran.
pub(crate) async fn apply(pool: &Pool) -> Result<usize> {
    let c = conn(pool).await?;
    execute(&c, "SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let result = apply_locked(&c).await;
    execute(&c, "SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await?;
    result
}

async fn apply_locked(c: &deadpool_postgres::ClientWrapper) -> Result<usize> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS convene_migrations (
            version bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(db)?;
    let mut ran = 0;
    for (version, name, sql) in MIGRATIONS {
        let done: bool =
            query_one(c, "SELECT EXISTS (SELECT 1 FROM convene_migrations WHERE version = $1)", &[version])
                .await?
                .try_get(0)
                .map_err(db)?;
        if done {
            continue;
        }
        let script = format!(
            "BEGIN;\n{sql}\n;INSERT INTO convene_migrations (version, name) VALUES ({version}, '{name}');\nCOMMIT;"
        );
        if let Err(e) = c.batch_execute(&script).await {
            let _ = c.batch_execute("ROLLBACK").await;
            return Err(convene_core::Error::Storage(format!("migration {version} ({name}) failed: {e}")));
        }
        tracing::info!(version, name, "applied migration");
        ran += 1;
    }
    Ok(ran)
}
