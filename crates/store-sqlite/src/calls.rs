//! Calls: conversation rows whose call columns are set. core's [`CallTx`]
//! over the writer's transaction, one call by id, and the list by start
//! time (counted or streamed).

use convene_core::call::{self, Call, CallDetails, CallFilter, CallTx, CallWrite};
use convene_core::conversation::{MessageType, Sender};
use convene_core::ids::now;
use convene_core::rep::UpsertCounts;
use convene_core::{Error, Result};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row, params};

use crate::apply::SqliteIngestTx;
use crate::conn::{WriteCtx, storage};
use crate::conversations::{CONV_COLUMNS, conversation_from_row};
use crate::rows::{one, opt_time, t, time};

/// The call columns, after the conversation's.
const CALL_COLUMNS: &str =
    "call_id, rep_id, started_at, ended_at, duration, direction, vendor, campaign, summary, attributes";

fn columns() -> String {
    format!("{CONV_COLUMNS}, {CALL_COLUMNS}")
}

/// Index of the first call column in a row of [`columns`].
const FIRST_CALL_COLUMN: usize = 12;

fn call_from_row(row: &Row) -> rusqlite::Result<Call> {
    let (_, conversation) = conversation_from_row(row)?;
    let i = FIRST_CALL_COLUMN;
    let attributes: Option<String> = row.get(i + 9)?;
    Ok(Call {
        conversation,
        details: CallDetails {
            call_id: row.get(i)?,
            rep_id: row.get(i + 1)?,
            started_at: time(row, i + 2)?,
            ended_at: opt_time(row, i + 3)?,
            duration: row.get(i + 4)?,
            direction: row.get(i + 5)?,
            vendor: row.get(i + 6)?,
            campaign: row.get(i + 7)?,
            summary: row.get(i + 8)?,
            attributes: attributes.and_then(|a| serde_json::from_str(&a).ok()).unwrap_or_default(),
        },
    })
}

fn attributes_text(d: &CallDetails) -> String {
    serde_json::to_string(&d.attributes).unwrap_or_else(|_| "{}".into())
}

fn find(conn: &Connection, ws: &str, call_id: &str) -> Result<Option<Call>> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {} FROM conversations c WHERE workspace_id = ?1 AND call_id = ?2", columns()))
        .map_err(storage)?;
    one(stmt.query_row(params![ws, call_id], call_from_row))
}

impl CallTx for SqliteIngestTx<'_> {
    fn find_call(&mut self, ws: &str, call_id: &str) -> Result<Option<Call>> {
        find(&self.ctx.conn, ws, call_id)
    }

    fn insert_call(&mut self, ws: &str, call: &Call) -> Result<()> {
        let (c, d) = (&call.conversation, &call.details);
        let conn = &self.ctx.conn;
        conn.prepare_cached(
            "INSERT INTO conversations (workspace_id, id, contact_id, status, assignee_id, channel, subject, labels,
             messages_count, created_at, updated_at, last_message_at, call_id, rep_id, started_at, ended_at, duration,
             direction, vendor, campaign, summary, attributes, at_ms)
             VALUES (?1, ?2, ?3, ?4, NULL, ?5, NULL, '[]', 1, ?6, ?7, ?8, ?9, ?10, ?8, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        )
        .and_then(|mut s| {
            s.execute(params![
                ws,
                c.id,
                c.contact_id,
                c.status.as_str(),
                c.channel,
                t(&c.created_at),
                t(&c.updated_at),
                t(&d.started_at),
                d.call_id,
                d.rep_id,
                d.ended_at.as_ref().map(t),
                d.duration,
                d.direction,
                d.vendor,
                d.campaign,
                d.summary,
                attributes_text(d),
                d.started_at.timestamp_millis()
            ])
        })
        .map_err(storage)?;
        let seq = conn.last_insert_rowid();
        let (sender_type, sender_id) = Sender::Api("calls".into()).parts();
        conn.prepare_cached(
            "INSERT INTO messages (workspace_id, conversation, contact_id, type, content, sender_type, sender_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .and_then(|mut s| {
            s.execute(params![
                ws,
                seq,
                c.contact_id,
                MessageType::Activity.as_str(),
                d.activity_text(),
                sender_type,
                sender_id,
                t(&d.started_at)
            ])
        })
        .map_err(storage)?;
        Ok(())
    }

    fn update_call(&mut self, ws: &str, call: &Call) -> Result<()> {
        let (c, d) = (&call.conversation, &call.details);
        self.ctx
            .conn
            .prepare_cached(
                "UPDATE conversations SET contact_id = ?3, status = ?4, updated_at = ?5, rep_id = ?6, started_at = ?7,
                 ended_at = ?8, duration = ?9, direction = ?10, vendor = ?11, campaign = ?12, summary = ?13,
                 attributes = ?14, at_ms = ?15 WHERE workspace_id = ?1 AND call_id = ?2",
            )
            .and_then(|mut s| {
                s.execute(params![
                    ws,
                    d.call_id,
                    c.contact_id,
                    c.status.as_str(),
                    t(&c.updated_at),
                    d.rep_id,
                    t(&d.started_at),
                    d.ended_at.as_ref().map(t),
                    d.duration,
                    d.direction,
                    d.vendor,
                    d.campaign,
                    d.summary,
                    attributes_text(d),
                    d.started_at.timestamp_millis()
                ])
            })
            .map_err(storage)?;
        // The call's messages follow its contact (so the call shows in the new contact's timeline).
        self.ctx
            .conn
            .prepare_cached(
                "UPDATE messages SET contact_id = ?3
                 WHERE conversation = (SELECT seq FROM conversations WHERE workspace_id = ?1 AND call_id = ?2)
                   AND contact_id IS NOT ?3",
            )
            .and_then(|mut s| s.execute(params![ws, d.call_id, c.contact_id]))
            .map_err(storage)?;
        Ok(())
    }
}

/// Core's calls update in the writer's transaction (rolled back by the
/// writer when it fails).
pub(crate) fn upsert(ctx: &mut WriteCtx, ws: &str, rows: &[CallWrite]) -> Result<UpsertCounts> {
    call::upsert_calls(&mut SqliteIngestTx::new(ctx), ws, rows, now())
}

pub(crate) fn get(conn: &Connection, ws: &str, call_id: &str) -> Result<Call> {
    find(conn, ws, call_id)?.ok_or(Error::NotFound { entity: "call" })
}

fn where_clause(ws: &str, filter: &CallFilter) -> (String, Vec<SqlValue>) {
    let mut sql = "workspace_id = ?1 AND call_id IS NOT NULL".to_string();
    let mut args: Vec<SqlValue> = vec![ws.to_string().into()];
    if let Some(from) = filter.from {
        args.push(from.timestamp_millis().into());
        sql.push_str(&format!(" AND at_ms >= ?{}", args.len()));
    }
    if let Some(to) = filter.to {
        args.push(to.timestamp_millis().into());
        sql.push_str(&format!(" AND at_ms < ?{}", args.len()));
    }
    if let Some(rep) = &filter.rep_id {
        args.push(rep.clone().into());
        sql.push_str(&format!(" AND rep_id = ?{}", args.len()));
    }
    (sql, args)
}

pub(crate) fn count(conn: &Connection, ws: &str, filter: &CallFilter) -> Result<u64> {
    let (cond, args) = where_clause(ws, filter);
    let mut stmt = conn.prepare_cached(&format!("SELECT count(*) FROM conversations WHERE {cond}")).map_err(storage)?;
    let n: i64 = stmt.query_row(rusqlite::params_from_iter(args), |r| r.get(0)).map_err(storage)?;
    Ok(n as u64)
}

/// Streams calls `offset..offset + limit` by start time through `send`
/// (false: the reader has gone, stop).
pub(crate) fn stream(
    conn: &Connection,
    ws: &str,
    filter: &CallFilter,
    offset: u64,
    limit: u64,
    send: &mut dyn FnMut(Call) -> bool,
) -> Result<()> {
    let (cond, mut args) = where_clause(ws, filter);
    args.push((limit.min(i64::MAX as u64) as i64).into());
    args.push((offset.min(i64::MAX as u64) as i64).into());
    let sql = format!(
        "SELECT {} FROM conversations c WHERE {cond} ORDER BY at_ms, seq LIMIT ?{} OFFSET ?{}",
        columns(),
        args.len() - 1,
        args.len()
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(storage)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args)).map_err(storage)?;
    while let Some(row) = rows.next().map_err(storage)? {
        if !send(call_from_row(row).map_err(storage)?) {
            break;
        }
    }
    Ok(())
}
