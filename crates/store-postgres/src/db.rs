//! Connections: the pool, cached prepared statements, and [`Tx`], a
//! transaction that owns its pooled connection.

use std::time::Duration;

use convene_core::{Error, Result};
use deadpool_postgres::{ClientWrapper, Object, Pool, PoolError, TimeoutType, Timeouts};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::db;

/// Query parameters.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A connection from the pool.
pub(crate) async fn conn(pool: &Pool) -> Result<Object> {
    pool.get().await.map_err(pool_error)
}

/// Maps a pool error: waiting too long or failing to connect is a 503.
pub(crate) fn pool_error(e: PoolError) -> Error {
    match e {
        PoolError::Backend(e) => db(e),
        other => {
            tracing::warn!(error = %other, "no database connection available");
            Error::Unavailable { message: "the database is unavailable; retry shortly".into(), retry_after_secs: 2 }
        }
    }
}

/// Rows of a statement (prepared once per connection and cached).
pub(crate) async fn query(c: &ClientWrapper, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
    let stmt = c.prepare_cached(sql).await.map_err(db)?;
    c.query(&stmt, params).await.map_err(db)
}

/// At most one row.
pub(crate) async fn query_opt(c: &ClientWrapper, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
    let stmt = c.prepare_cached(sql).await.map_err(db)?;
    c.query_opt(&stmt, params).await.map_err(db)
}

/// Exactly one row.
pub(crate) async fn query_one(c: &ClientWrapper, sql: &str, params: Params<'_>) -> Result<Row> {
    let stmt = c.prepare_cached(sql).await.map_err(db)?;
    c.query_one(&stmt, params).await.map_err(db)
}

/// Rows changed.
pub(crate) async fn execute(c: &ClientWrapper, sql: &str, params: Params<'_>) -> Result<u64> {
    let stmt = c.prepare_cached(sql).await.map_err(db)?;
    c.execute(&stmt, params).await.map_err(db)
}

/// How a read-only transaction in one snapshot begins (see [`Tx::begin_snapshot`]).
const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// A transaction on a pooled connection. Dropped without [`Tx::commit`]
/// or [`Tx::rollback`] (an error path, a cancelled request), its
/// connection is closed instead of going back to the pool, so PostgreSQL
/// rolls the transaction back and no one reuses a connection mid-transaction.
pub(crate) struct Tx {
    conn: Option<Object>,
}

impl Tx {
    /// Begins a transaction.
    pub async fn begin(pool: &Pool) -> Result<Tx> {
        Tx::begin_on(conn(pool).await?, "BEGIN").await
    }

    /// Begins a read-only transaction that sees one snapshot throughout
    /// (`REPEATABLE READ`), as exporting or importing a snapshot requires.
    pub async fn begin_snapshot(pool: &Pool) -> Result<Tx> {
        Tx::begin_on(conn(pool).await?, SNAPSHOT).await
    }

    /// [`Tx::begin_snapshot`] on a connection free right now; `None` when
    /// every connection is in use (nothing is waited for: a caller that
    /// already holds one must not wait for another).
    pub async fn try_begin_snapshot(pool: &Pool) -> Result<Option<Tx>> {
        let now = Timeouts { wait: Some(Duration::ZERO), ..pool.timeouts() };
        match pool.timeout_get(&now).await {
            Ok(conn) => Tx::begin_on(conn, SNAPSHOT).await.map(Some),
            Err(PoolError::Timeout(TimeoutType::Wait)) => Ok(None),
            Err(e) => Err(pool_error(e)),
        }
    }

    /// Held by the `Tx` before `begin` is sent: cancelled or failed while
    /// it runs, the connection is closed, never pooled mid-transaction.
    async fn begin_on(conn: Object, begin: &str) -> Result<Tx> {
        let tx = Tx { conn: Some(conn) };
        tx.c().batch_execute(begin).await.map_err(db)?;
        Ok(tx)
    }

    /// The connection.
    pub fn c(&self) -> &ClientWrapper {
        self.conn.as_ref().expect("a transaction holds its connection until it ends")
    }

    /// Commits.
    pub async fn commit(mut self) -> Result<()> {
        if let Some(conn) = self.conn.take() {
            conn.batch_execute("COMMIT").await.map_err(db)?;
        }
        Ok(())
    }

    /// Rolls back; the connection returns to the pool when that works.
    pub async fn rollback(mut self) {
        if let Some(conn) = self.conn.take()
            && conn.batch_execute("ROLLBACK").await.is_err()
        {
            drop(Object::take(conn));
        }
    }

    /// Commits when `result` is Ok, rolls back otherwise; returns `result`.
    pub async fn finish<T>(self, result: Result<T>) -> Result<T> {
        match result {
            Ok(v) => {
                self.commit().await?;
                Ok(v)
            }
            Err(e) => {
                self.rollback().await;
                Err(e)
            }
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }
}
