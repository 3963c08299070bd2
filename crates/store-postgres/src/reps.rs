//! Reps: core's [`RepTx`] on the write-behind [`Applier`] (the reps a write
//! names are loaded and locked with one query first; new and changed reps
//! are written by one set-based statement each when the applier flushes),
//! and the native reads.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use convene_core::batch::RowResult;
use convene_core::ids::now;
use convene_core::page::{Page, PageRequest};
use convene_core::rep::{
    self, Rep, RepFilter, RepRenderer, RepTx, RepUpsert, RepView, RepWrite, UpsertCounts, WriteMode,
};
use convene_core::store::{RENDER_CHUNK_BYTES, RowStream};
use convene_core::{Error, Result};
use deadpool_postgres::{ClientWrapper, Pool};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::apply::{Applier, block, race, with_applier};
use crate::db::{conn, execute, query, query_one, query_opt};
use crate::pending;
use crate::rows::{get, object};
use crate::stream::{self, Param, bigint};

/// Columns read by [`rep_from_row`].
pub(crate) const REP_COLUMNS: &str = "seq, rep_id, name, email, department, active, attributes, created_at, updated_at";

/// Reads a rep row (with its seq, the list order).
pub(crate) fn rep_from_row(row: &Row) -> Result<(i64, Rep)> {
    Ok((
        get(row, "seq")?,
        Rep {
            rep_id: get(row, "rep_id")?,
            name: get(row, "name")?,
            email: get(row, "email")?,
            department: get(row, "department")?,
            active: get(row, "active")?,
            attributes: object(row, "attributes")?,
            created_at: get(row, "created_at")?,
            updated_at: get(row, "updated_at")?,
        },
    ))
}

/// Column arrays of reps to write, bound to `unnest`.
struct Columns<'a> {
    ids: Vec<&'a str>,
    names: Vec<Option<&'a str>>,
    emails: Vec<Option<&'a str>>,
    departments: Vec<Option<&'a str>>,
    active: Vec<bool>,
    attributes: Vec<String>,
    created: Vec<DateTime<Utc>>,
    updated: Vec<DateTime<Utc>>,
}

impl<'a> Columns<'a> {
    fn of(reps: &[&'a Rep]) -> Self {
        Columns {
            ids: reps.iter().map(|r| r.rep_id.as_str()).collect(),
            names: reps.iter().map(|r| r.name.as_deref()).collect(),
            emails: reps.iter().map(|r| r.email.as_deref()).collect(),
            departments: reps.iter().map(|r| r.department.as_deref()).collect(),
            active: reps.iter().map(|r| r.active).collect(),
            attributes: reps
                .iter()
                .map(|r| serde_json::to_string(&r.attributes).unwrap_or_else(|_| "{}".into()))
                .collect(),
            created: reps.iter().map(|r| r.created_at).collect(),
            updated: reps.iter().map(|r| r.updated_at).collect(),
        }
    }
}

/// Inserts new reps in the order given (their seq follows it). The one INSERT of reps.
pub(crate) async fn insert_rows(cw: &ClientWrapper, ws: &str, reps: &[&Rep]) -> Result<()> {
    if reps.is_empty() {
        return Ok(());
    }
    let c = Columns::of(reps);
    execute(
        cw,
        "INSERT INTO reps (workspace_id, rep_id, name, email, department, active, attributes, created_at, updated_at)
         SELECT $1, v.r, v.n, v.e, v.d, v.a, v.t::jsonb, v.c, v.u
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::text[], $8::timestamptz[],
                     $9::timestamptz[]) WITH ORDINALITY AS v(r, n, e, d, a, t, c, u, o)
         ORDER BY v.o",
        &[&ws, &c.ids, &c.names, &c.emails, &c.departments, &c.active, &c.attributes, &c.created, &c.updated],
    )
    .await?;
    Ok(())
}

/// Writes reps' new states. The one UPDATE of reps.
pub(crate) async fn update_rows(cw: &ClientWrapper, ws: &str, reps: &[&Rep]) -> Result<()> {
    if reps.is_empty() {
        return Ok(());
    }
    let c = Columns::of(reps);
    execute(
        cw,
        "UPDATE reps x SET name = v.n, email = v.e, department = v.d, active = v.a, attributes = v.t::jsonb,
                updated_at = v.u
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::text[], $8::timestamptz[])
              AS v(r, n, e, d, a, t, u)
         WHERE x.workspace_id = $1 AND x.rep_id = v.r",
        &[&ws, &c.ids, &c.names, &c.emails, &c.departments, &c.active, &c.attributes, &c.updated],
    )
    .await?;
    Ok(())
}

impl Applier {
    /// Loads and locks, with one query, the reps of `ws` named by `ids`
    /// that this transaction has not seen yet; the others are remembered as
    /// missing.
    pub(crate) fn prefetch_reps(&mut self, ws: &str, ids: &[&str]) -> Result<()> {
        let known = self.reps.get(ws);
        let mut wanted: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !known.is_some_and(|m| m.contains_key(*id)))
            .collect::<HashSet<&str>>()
            .into_iter()
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        wanted.sort_unstable();
        let sql = format!(
            "SELECT {REP_COLUMNS} FROM reps WHERE workspace_id = $1 AND rep_id = ANY($2) ORDER BY seq FOR UPDATE"
        );
        let rows = block(&self.rt, query(self.tx.c(), &sql, &[&ws, &wanted]))?;
        let known = self.reps.entry(ws.to_string()).or_default();
        known.reserve(wanted.len());
        for id in wanted {
            known.insert(id.to_string(), None);
        }
        for row in &rows {
            let (_, rep) = rep_from_row(row)?;
            known.insert(rep.rep_id.clone(), pending::loaded(rep));
        }
        Ok(())
    }

    /// Writes the new and changed reps of `ws`: inserts in creation order,
    /// then updates.
    pub(crate) fn flush_reps(&mut self, ws: &str) -> Result<()> {
        let Some(known) = self.reps.get_mut(ws) else { return Ok(()) };
        let (inserts, updates) = pending::writes(known);
        block(&self.rt, insert_rows(self.tx.c(), ws, &inserts))?;
        block(&self.rt, update_rows(self.tx.c(), ws, &updates))?;
        pending::mark_clean(known);
        Ok(())
    }
}

impl RepTx for Applier {
    fn find_rep(&mut self, ws: &str, rep_id: &str) -> Result<Option<Rep>> {
        if !self.reps.get(ws).is_some_and(|m| m.contains_key(rep_id)) {
            self.prefetch_reps(ws, &[rep_id])?;
        }
        Ok(pending::get(self.reps.get(ws), rep_id).cloned())
    }

    fn insert_rep(&mut self, ws: &str, rep: &Rep) -> Result<()> {
        self.order += 1;
        pending::insert(self.reps.entry(ws.to_string()).or_default(), rep.rep_id.clone(), rep.clone(), self.order);
        Ok(())
    }

    fn update_rep(&mut self, ws: &str, rep: &Rep) -> Result<()> {
        pending::update(self.reps.entry(ws.to_string()).or_default(), rep.rep_id.clone(), rep.clone());
        Ok(())
    }
}

/// Updates reps in one transaction with core's [`rep::upsert_reps`]: one
/// prefetch, writes flushed set-based; all or nothing.
pub(crate) async fn upsert(pool: &Pool, ws: &str, rows: Arc<Vec<RepWrite>>) -> Result<UpsertCounts> {
    rep::check_rows(&rows)?;
    let ws = ws.to_string();
    with_applier(pool, move |applier| {
        let ids: Vec<&str> = rows.iter().map(|r| r.rep_id.as_str()).collect();
        applier.prefetch_reps(&ws, &ids)?;
        let counts = rep::upsert_reps(applier, &ws, &rows, now())?;
        applier.flush().map_err(race)?;
        Ok(counts)
    })
    .await
}

/// Upserts rep rows with core's [`rep::upsert_rep_rows`], each with its
/// own result: one prefetch, writes flushed set-based; the good rows are
/// committed.
pub(crate) async fn upsert_rows(pool: &Pool, ws: &str, rows: Arc<Vec<RepUpsert>>) -> Result<Vec<RowResult<Rep>>> {
    let ws = ws.to_string();
    with_applier(pool, move |applier| {
        let ids: Vec<&str> = rows.iter().map(|r| r.write.rep_id.as_str()).collect();
        applier.prefetch_reps(&ws, &ids)?;
        let results = rep::upsert_rep_rows(applier, &ws, &rows, now())?;
        applier.flush().map_err(race)?;
        Ok(results)
    })
    .await
}

/// Creates, updates or upserts one rep (core's [`rep::upsert_rep`]).
pub(crate) async fn write(pool: &Pool, ws: &str, write: Arc<RepWrite>, mode: WriteMode) -> Result<Rep> {
    let ws = ws.to_string();
    with_applier(pool, move |applier| {
        let (_, rep) = rep::upsert_rep(applier, &ws, &write, mode, now())?;
        applier.flush().map_err(race)?;
        Ok(rep)
    })
    .await
}

/// One rep.
pub(crate) async fn get_one(pool: &Pool, ws: &str, rep_id: &str) -> Result<Rep> {
    let c = conn(pool).await?;
    let sql = format!("SELECT {REP_COLUMNS} FROM reps WHERE workspace_id = $1 AND rep_id = $2");
    let row = query_opt(&c, &sql, &[&ws, &rep_id]).await?.ok_or(Error::NotFound { entity: "rep" })?;
    rep_from_row(&row).map(|(_, rep)| rep)
}

/// Deletes a rep (its calls keep the rep id).
pub(crate) async fn delete(pool: &Pool, ws: &str, rep_id: &str) -> Result<()> {
    let c = conn(pool).await?;
    let n = execute(&c, "DELETE FROM reps WHERE workspace_id = $1 AND rep_id = $2", &[&ws, &rep_id]).await?;
    if n == 0 {
        return Err(Error::NotFound { entity: "rep" });
    }
    Ok(())
}

/// The WHERE clause of a filter after `workspace_id = $1` (and whatever
/// the caller adds), with its parameters numbered from `first`.
fn filter_sql(filter: &RepFilter, first: usize) -> (String, Vec<Param>) {
    let mut sql = String::new();
    let mut params: Vec<Param> = Vec::new();
    if let Some(d) = &filter.department {
        params.push(Box::new(d.clone()));
        sql.push_str(&format!(" AND department = ${}", first + params.len() - 1));
    }
    if let Some(id) = &filter.rep_id {
        params.push(Box::new(id.clone()));
        sql.push_str(&format!(" AND rep_id = ${}", first + params.len() - 1));
    }
    if let Some(active) = filter.active {
        params.push(Box::new(active));
        sql.push_str(&format!(" AND active = ${}", first + params.len() - 1));
    }
    (sql, params)
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
}

/// Lists reps in creation order, paged by seq.
pub(crate) async fn list(pool: &Pool, ws: &str, filter: &RepFilter, page: &PageRequest) -> Result<Page<Rep>> {
    let after = page.after_i64()?.unwrap_or(0);
    let (where_sql, mut params) = filter_sql(filter, 3);
    let n = params.len();
    params.push(Box::new(page.limit as i64 + 1));
    let sql = format!(
        "SELECT {REP_COLUMNS} FROM reps WHERE workspace_id = $1 AND seq > $2{where_sql} ORDER BY seq LIMIT ${}",
        n + 3
    );
    let mut all: Vec<&(dyn ToSql + Sync)> = vec![&ws, &after];
    all.extend(refs(&params));
    let c = conn(pool).await?;
    let rows = query(&c, &sql, &all).await?;
    let items = rows.iter().map(rep_from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |(seq, _)| seq.to_string()).map(|(_, rep)| rep))
}

/// How many reps match.
pub(crate) async fn count(pool: &Pool, ws: &str, filter: &RepFilter) -> Result<u64> {
    let (where_sql, params) = filter_sql(filter, 2);
    let sql = format!("SELECT count(*) AS n FROM reps WHERE workspace_id = $1{where_sql}");
    let mut all: Vec<&(dyn ToSql + Sync)> = vec![&ws];
    all.extend(refs(&params));
    let c = conn(pool).await?;
    let n: i64 = get(&query_one(&c, &sql, &all).await?, "n")?;
    Ok(n.max(0) as u64)
}

/// Reps `offset..offset + limit` in creation order, streamed.
pub(crate) fn stream(pool: &Pool, ws: &str, filter: &RepFilter, offset: u64, limit: u64) -> RowStream<Rep> {
    let (where_sql, filter_params) = filter_sql(filter, 2);
    let n = filter_params.len();
    let mut params: Vec<Param> = vec![Box::new(ws.to_string())];
    params.extend(filter_params);
    params.push(Box::new(bigint(offset)));
    params.push(Box::new(bigint(limit)));
    let sql = format!(
        "SELECT {REP_COLUMNS} FROM reps WHERE workspace_id = $1{where_sql} ORDER BY seq OFFSET ${} LIMIT ${}",
        n + 2,
        n + 3
    );
    stream::rows(pool.clone(), sql, params, |row| rep_from_row(row).map(|(_, rep)| rep))
}

/// Reps `offset..offset + limit` written by `render` as they are read (no
/// [`Rep`] built), `sep` between two, in chunks of about
/// [`RENDER_CHUNK_BYTES`].
pub(crate) fn stream_rendered(
    pool: &Pool,
    ws: &str,
    filter: &RepFilter,
    (offset, limit): (u64, u64),
    render: RepRenderer,
    sep: &'static [u8],
) -> RowStream<Vec<u8>> {
    let (where_sql, filter_params) = filter_sql(filter, 2);
    let n = filter_params.len();
    let mut params: Vec<Param> = vec![Box::new(ws.to_string())];
    params.extend(filter_params);
    params.push(Box::new(bigint(offset)));
    params.push(Box::new(bigint(limit)));
    let sql = format!(
        "SELECT rep_id, name, email, department, active, attributes::text FROM reps WHERE workspace_id = $1{where_sql} \
         ORDER BY seq OFFSET ${} LIMIT ${}",
        n + 2,
        n + 3
    );
    enum State {
        Start(Pool, String, Vec<Param>),
        Open(stream::Open, bool),
        Done,
    }
    let chunks = futures::stream::unfold(State::Start(pool.clone(), sql, params), move |state| async move {
        let (mut open, mut first) = match state {
            State::Start(pool, sql, params) => match stream::Open::start(&pool, &sql, params).await {
                Ok(open) => (open, true),
                Err(e) => return Some((Err(e), State::Done)),
            },
            State::Open(open, first) => (open, first),
            State::Done => return None,
        };
        let mut buf = Vec::with_capacity(RENDER_CHUNK_BYTES + 4096);
        loop {
            match open.next().await {
                Ok(Some(row)) => {
                    let view = match view_of(&row) {
                        Ok(v) => v,
                        Err(e) => return Some((Err(e), State::Done)),
                    };
                    if !first {
                        buf.extend_from_slice(sep);
                    }
                    first = false;
                    render(&view, &mut buf);
                    if buf.len() >= RENDER_CHUNK_BYTES {
                        return Some((Ok(buf), State::Open(open, first)));
                    }
                }
                Ok(None) if buf.is_empty() => return None,
                Ok(None) => return Some((Ok(buf), State::Done)),
                Err(e) => return Some((Err(e), State::Done)),
            }
        }
    });
    Box::pin(chunks)
}

fn view_of(row: &Row) -> Result<RepView<'_>> {
    let text = |i: usize| row.try_get::<_, Option<&str>>(i).map_err(crate::error::db);
    Ok(RepView {
        rep_id: text(0)?.unwrap_or_default(),
        name: text(1)?,
        email: text(2)?,
        department: text(3)?,
        active: row.try_get::<_, bool>(4).map_err(crate::error::db)?,
        attributes_json: text(5)?.unwrap_or("{}"),
    })
}
