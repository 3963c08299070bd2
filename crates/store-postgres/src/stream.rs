//! Rows streamed from a pooled connection: the statement runs with
//! `query_raw` and rows are read as the stream is consumed (tokio-postgres
//! stops reading the socket while a row waits), so memory stays flat
//! whatever the number of rows.

use std::pin::Pin;

use convene_core::Result;
use convene_core::store::RowStream;
use deadpool_postgres::{Object, Pool};
use futures::StreamExt;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::db::conn;
use crate::error::db;

/// An owned query parameter.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// A statement being read: the connection lives as long as its rows. Dropped
/// before the last row (the consumer stopped), the connection is closed
/// rather than returned to the pool with a result still coming.
pub(crate) struct Open {
    conn: Option<Object>,
    rows: Pin<Box<tokio_postgres::RowStream>>,
}

impl Open {
    /// Runs `sql` on a connection of `pool` and returns its rows unread.
    pub(crate) async fn start(pool: &Pool, sql: &str, params: Vec<Param>) -> Result<Open> {
        let c = conn(pool).await?;
        let stmt = c.prepare_cached(sql).await.map_err(db)?;
        let rows = c.query_raw(&stmt, params).await.map_err(db)?;
        Ok(Open { conn: Some(c), rows: Box::pin(rows) })
    }

    /// The next row; `None` after the last (the connection then returns to
    /// the pool).
    pub(crate) async fn next(&mut self) -> Result<Option<Row>> {
        match self.rows.next().await {
            Some(Ok(row)) => Ok(Some(row)),
            Some(Err(e)) => Err(db(e)),
            None => {
                // Every row was read: the connection is clean.
                drop(self.conn.take());
                Ok(None)
            }
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            drop(Object::take(c));
        }
    }
}

enum State {
    Start { pool: Pool, sql: String, params: Vec<Param> },
    Open(Open),
    Done,
}

/// Streams the rows of `sql`, each read by `map`. The connection is taken
/// when the stream is first polled; the first error ends the stream.
pub(crate) fn rows<T: Send + 'static>(
    pool: Pool,
    sql: String,
    params: Vec<Param>,
    map: fn(&Row) -> Result<T>,
) -> RowStream<T> {
    let stream = futures::stream::unfold(State::Start { pool, sql, params }, move |state| async move {
        let mut open = match state {
            State::Start { pool, sql, params } => match Open::start(&pool, &sql, params).await {
                Ok(open) => open,
                Err(e) => return Some((Err(e), State::Done)),
            },
            State::Open(open) => open,
            State::Done => return None,
        };
        match open.next().await {
            Ok(Some(row)) => match map(&row) {
                Ok(item) => Some((Ok(item), State::Open(open))),
                Err(e) => Some((Err(e), State::Done)),
            },
            Ok(None) => None,
            Err(e) => Some((Err(e), State::Done)),
        }
    });
    Box::pin(stream)
}

/// An offset or limit as PostgreSQL's bigint.
pub(crate) fn bigint(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
