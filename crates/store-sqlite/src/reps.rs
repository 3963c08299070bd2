//! Reps: core's [`RepTx`] over the writer's transaction, the single-rep
//! writes, and the list (paged by cursor, counted, or streamed).

use convene_core::batch::RowResult;
use convene_core::ids::now;
use convene_core::page::{Page, PageRequest};
use convene_core::rep::{
    self, Rep, RepFilter, RepRenderer, RepTx, RepUpsert, RepView, RepWrite, UpsertCounts, WriteMode,
};
use convene_core::store::RENDER_CHUNK_BYTES;
use convene_core::{Error, Result};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, Row, params};

use crate::apply::SqliteIngestTx;
use crate::conn::{WriteCtx, storage};
use crate::rows::{one, t, time};

const COLUMNS: &str = "seq, rep_id, name, email, department, active, attributes, created_at, updated_at";

/// A rep with its sequence number (the list order).
pub(crate) fn rep_from_row(row: &Row) -> rusqlite::Result<(i64, Rep)> {
    let attributes: String = row.get(6)?;
    Ok((
        row.get(0)?,
        Rep {
            rep_id: row.get(1)?,
            name: row.get(2)?,
            email: row.get(3)?,
            department: row.get(4)?,
            active: row.get(5)?,
            attributes: serde_json::from_str(&attributes).unwrap_or_default(),
            created_at: time(row, 7)?,
            updated_at: time(row, 8)?,
        },
    ))
}

fn attributes_text(rep: &Rep) -> String {
    serde_json::to_string(&rep.attributes).unwrap_or_else(|_| "{}".into())
}

impl RepTx for SqliteIngestTx<'_> {
    fn find_rep(&mut self, ws: &str, rep_id: &str) -> Result<Option<Rep>> {
        find(&self.ctx.conn, ws, rep_id)
    }

    fn insert_rep(&mut self, ws: &str, r: &Rep) -> Result<()> {
        self.ctx
            .conn
            .prepare_cached(
                "INSERT INTO reps (workspace_id, rep_id, name, email, department, active, attributes, created_at,
                 updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    ws,
                    r.rep_id,
                    r.name,
                    r.email,
                    r.department,
                    r.active,
                    attributes_text(r),
                    t(&r.created_at),
                    t(&r.updated_at)
                ])
            })
            .map_err(storage)?;
        Ok(())
    }

    fn update_rep(&mut self, ws: &str, r: &Rep) -> Result<()> {
        self.ctx
            .conn
            .prepare_cached(
                "UPDATE reps SET name = ?3, email = ?4, department = ?5, active = ?6, attributes = ?7, updated_at = ?8
                 WHERE workspace_id = ?1 AND rep_id = ?2",
            )
            .and_then(|mut s| {
                s.execute(params![
                    ws,
                    r.rep_id,
                    r.name,
                    r.email,
                    r.department,
                    r.active,
                    attributes_text(r),
                    t(&r.updated_at)
                ])
            })
            .map_err(storage)?;
        Ok(())
    }
}

fn find(conn: &Connection, ws: &str, rep_id: &str) -> Result<Option<Rep>> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM reps WHERE workspace_id = ?1 AND rep_id = ?2"))
        .map_err(storage)?;
    Ok(one(stmt.query_row(params![ws, rep_id], rep_from_row))?.map(|(_, r)| r))
}

/// Core's reps update in the writer's transaction (rolled back by the
/// writer when it fails).
pub(crate) fn upsert(ctx: &mut WriteCtx, ws: &str, rows: &[RepWrite]) -> Result<UpsertCounts> {
    rep::upsert_reps(&mut SqliteIngestTx::new(ctx), ws, rows, now())
}

/// Core's per-row rep upsert in the writer's transaction. A row fails
/// before its first write, so only a storage fault (which fails the whole
/// request, and the writer rolls it back) needs undoing.
pub(crate) fn upsert_rows(ctx: &mut WriteCtx, ws: &str, rows: &[RepUpsert]) -> Result<Vec<RowResult<Rep>>> {
    rep::upsert_rep_rows(&mut SqliteIngestTx::new(ctx), ws, rows, now())
}

/// One rep created, updated or upserted.
pub(crate) fn write(ctx: &mut WriteCtx, ws: &str, w: &RepWrite, mode: WriteMode) -> Result<Rep> {
    rep::upsert_rep(&mut SqliteIngestTx::new(ctx), ws, w, mode, now()).map(|(_, r)| r)
}

pub(crate) fn get(conn: &Connection, ws: &str, rep_id: &str) -> Result<Rep> {
    find(conn, ws, rep_id)?.ok_or(Error::NotFound { entity: "rep" })
}

pub(crate) fn delete(conn: &Connection, ws: &str, rep_id: &str) -> Result<()> {
    let n = conn
        .prepare_cached("DELETE FROM reps WHERE workspace_id = ?1 AND rep_id = ?2")
        .and_then(|mut s| s.execute(params![ws, rep_id]))
        .map_err(storage)?;
    if n == 0 { Err(Error::NotFound { entity: "rep" }) } else { Ok(()) }
}

/// `WHERE …` for a filter, with its arguments after `ws` (?1).
fn where_clause(filter: &RepFilter) -> (String, Vec<SqlValue>) {
    let mut sql = "workspace_id = ?1".to_string();
    let mut args: Vec<SqlValue> = Vec::new();
    let mut add = |col: &str, v: SqlValue, args: &mut Vec<SqlValue>| {
        args.push(v);
        sql.push_str(&format!(" AND {col} = ?{}", args.len() + 1));
    };
    if let Some(d) = &filter.department {
        add("department", d.clone().into(), &mut args);
    }
    if let Some(r) = &filter.rep_id {
        add("rep_id", r.clone().into(), &mut args);
    }
    if let Some(a) = filter.active {
        add("active", i64::from(a).into(), &mut args);
    }
    (sql, args)
}

fn with_ws(ws: &str, args: Vec<SqlValue>) -> Vec<SqlValue> {
    std::iter::once(SqlValue::from(ws.to_string())).chain(args).collect()
}

pub(crate) fn list(conn: &Connection, ws: &str, filter: &RepFilter, page: &PageRequest) -> Result<Page<Rep>> {
    let after = page.after_i64()?.unwrap_or(0);
    let (cond, args) = where_clause(filter);
    let mut args = with_ws(ws, args);
    args.push(after.into());
    let after_mark = args.len();
    args.push((page.limit as i64 + 1).into());
    let sql =
        format!("SELECT {COLUMNS} FROM reps WHERE {cond} AND seq > ?{after_mark} ORDER BY seq LIMIT ?{}", args.len());
    let mut stmt = conn.prepare_cached(&sql).map_err(storage)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), rep_from_row)
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    Ok(Page::from_overfetch(rows, page.limit, |(seq, _)| seq.to_string()).map(|(_, r)| r))
}

pub(crate) fn count(conn: &Connection, ws: &str, filter: &RepFilter) -> Result<u64> {
    let (cond, args) = where_clause(filter);
    let mut stmt = conn.prepare_cached(&format!("SELECT count(*) FROM reps WHERE {cond}")).map_err(storage)?;
    let n: i64 = stmt.query_row(rusqlite::params_from_iter(with_ws(ws, args)), |r| r.get(0)).map_err(storage)?;
    Ok(n as u64)
}

/// Streams reps `offset..offset + limit` in creation order through `send`
/// (false: the reader has gone, stop).
pub(crate) fn stream(
    conn: &Connection,
    ws: &str,
    filter: &RepFilter,
    offset: u64,
    limit: u64,
    send: &mut dyn FnMut(Rep) -> bool,
) -> Result<()> {
    let (cond, args) = where_clause(filter);
    let mut args = with_ws(ws, args);
    args.push((limit.min(i64::MAX as u64) as i64).into());
    args.push((offset.min(i64::MAX as u64) as i64).into());
    let sql = format!(
        "SELECT {COLUMNS} FROM reps WHERE {cond} ORDER BY seq LIMIT ?{} OFFSET ?{}",
        args.len() - 1,
        args.len()
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(storage)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args)).map_err(storage)?;
    while let Some(row) = rows.next().map_err(storage)? {
        let (_, rep) = rep_from_row(row).map_err(storage)?;
        if !send(rep) {
            break;
        }
    }
    Ok(())
}

/// Streams reps `offset..offset + limit` in creation order, written by
/// `render` straight from the row (no [`Rep`] built), `sep` between two, in
/// chunks of about [`RENDER_CHUNK_BYTES`] through `send`.
pub(crate) fn stream_rendered(
    conn: &Connection,
    ws: &str,
    filter: &RepFilter,
    (offset, limit): (u64, u64),
    (render, sep): (RepRenderer, &[u8]),
    send: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<()> {
    let (cond, args) = where_clause(filter);
    let mut args = with_ws(ws, args);
    args.push((limit.min(i64::MAX as u64) as i64).into());
    args.push((offset.min(i64::MAX as u64) as i64).into());
    let sql = format!(
        "SELECT rep_id, name, email, department, active, attributes FROM reps WHERE {cond} ORDER BY seq \
         LIMIT ?{} OFFSET ?{}",
        args.len() - 1,
        args.len()
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(storage)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args)).map_err(storage)?;
    let mut buf = Vec::with_capacity(RENDER_CHUNK_BYTES + 4096);
    let mut first = true;
    while let Some(row) = rows.next().map_err(storage)? {
        let text = |i: usize| -> Result<Option<&str>> {
            match row.get_ref(i).map_err(storage)? {
                ValueRef::Text(t) => Ok(Some(std::str::from_utf8(t).map_err(|e| Error::Storage(e.to_string()))?)),
                _ => Ok(None),
            }
        };
        let view = RepView {
            rep_id: text(0)?.unwrap_or_default(),
            name: text(1)?,
            email: text(2)?,
            department: text(3)?,
            active: row.get::<_, bool>(4).map_err(storage)?,
            attributes_json: text(5)?.unwrap_or("{}"),
        };
        if !first {
            buf.extend_from_slice(sep);
        }
        first = false;
        render(&view, &mut buf);
        if buf.len() >= RENDER_CHUNK_BYTES
            && !send(std::mem::replace(&mut buf, Vec::with_capacity(RENDER_CHUNK_BYTES + 4096)))
        {
            return Ok(());
        }
    }
    if !buf.is_empty() {
        send(buf);
    }
    Ok(())
}
