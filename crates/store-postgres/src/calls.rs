//! Calls: conversations rows whose call columns are set. core's [`CallTx`]
//! on the write-behind [`Applier`] (the calls, reps and contacts a write
//! names are loaded and locked first, one query each; new and changed calls
//! are written by one set-based statement each when the applier flushes),
//! and the native reads.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use convene_core::call::{self, Call, CallDetails, CallFilter, CallTx, CallWrite};
use convene_core::contact::ContactChanges;
use convene_core::conversation::{MessageType, Sender};
use convene_core::ids::now;
use convene_core::ingest::{IngestItem, QueuedJob};
use convene_core::rep::UpsertCounts;
use convene_core::store::RowStream;
use convene_core::{Error, Result};
use deadpool_postgres::{ClientWrapper, Pool};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::apply::{Applier, block, race, with_applier};
use crate::conversations::{CONV_COLUMNS, conversation_from_row};
use crate::db::{conn, execute, query, query_one, query_opt};
use crate::pending;
use crate::rows::get;
use crate::stream::{self, Param, bigint};

/// The call columns of a conversation row.
const DETAIL_COLUMNS: &str = "call_id, rep_id, started_at, ended_at, duration, direction, vendor, campaign, summary, \
                              attributes AS call_attributes";

/// Columns read by [`call_from_row`].
fn call_columns() -> String {
    format!("{CONV_COLUMNS}, {DETAIL_COLUMNS}")
}

/// Reads a call (a conversation row with its call columns), with its seq.
pub(crate) fn call_from_row(row: &Row) -> Result<(i64, Call)> {
    let (seq, conversation) = conversation_from_row(row)?;
    let attributes = match get::<Option<serde_json::Value>>(row, "call_attributes")? {
        Some(serde_json::Value::Object(map)) => map,
        _ => Default::default(),
    };
    let details = CallDetails {
        call_id: get(row, "call_id")?,
        rep_id: get(row, "rep_id")?,
        started_at: get(row, "started_at")?,
        ended_at: get(row, "ended_at")?,
        duration: get(row, "duration")?,
        direction: get(row, "direction")?,
        vendor: get(row, "vendor")?,
        campaign: get(row, "campaign")?,
        summary: get(row, "summary")?,
        attributes,
    };
    Ok((seq, Call { conversation, details }))
}

/// Column arrays of calls to write, bound to `unnest`.
struct Columns<'a> {
    ids: Vec<&'a str>,
    contacts: Vec<Option<i64>>,
    statuses: Vec<&'static str>,
    updated: Vec<DateTime<Utc>>,
    call_ids: Vec<&'a str>,
    reps: Vec<Option<&'a str>>,
    started: Vec<DateTime<Utc>>,
    ended: Vec<Option<DateTime<Utc>>>,
    durations: Vec<Option<f64>>,
    directions: Vec<Option<&'a str>>,
    vendors: Vec<Option<&'a str>>,
    campaigns: Vec<Option<&'a str>>,
    summaries: Vec<Option<&'a str>>,
    attributes: Vec<String>,
    at_ms: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn of(calls: &[&'a Call]) -> Self {
        let d = |c: &&'a Call| -> &'a CallDetails { &c.details };
        Columns {
            ids: calls.iter().map(|c| c.conversation.id.as_str()).collect(),
            contacts: calls.iter().map(|c| c.conversation.contact_id).collect(),
            statuses: calls.iter().map(|c| c.conversation.status.as_str()).collect(),
            updated: calls.iter().map(|c| c.conversation.updated_at).collect(),
            call_ids: calls.iter().map(|c| d(c).call_id.as_str()).collect(),
            reps: calls.iter().map(|c| d(c).rep_id.as_deref()).collect(),
            started: calls.iter().map(|c| d(c).started_at).collect(),
            ended: calls.iter().map(|c| d(c).ended_at).collect(),
            durations: calls.iter().map(|c| d(c).duration).collect(),
            directions: calls.iter().map(|c| d(c).direction.as_deref()).collect(),
            vendors: calls.iter().map(|c| d(c).vendor.as_deref()).collect(),
            campaigns: calls.iter().map(|c| d(c).campaign.as_deref()).collect(),
            summaries: calls.iter().map(|c| d(c).summary.as_deref()).collect(),
            attributes: calls
                .iter()
                .map(|c| serde_json::to_string(&d(c).attributes).unwrap_or_else(|_| "{}".into()))
                .collect(),
            at_ms: calls.iter().map(|c| d(c).started_at.timestamp_millis()).collect(),
        }
    }
}

/// Inserts new calls (conversation rows with their call columns) in the
/// order given, each with the activity message that records it (dated at
/// the call's start, so it shows in its contact's timeline; counted in
/// `messages_count`). The one INSERT of calls.
pub(crate) async fn insert_rows(cw: &ClientWrapper, ws: &str, calls: &[&Call]) -> Result<()> {
    if calls.is_empty() {
        return Ok(());
    }
    let c = Columns::of(calls);
    let assignees: Vec<Option<i64>> = calls.iter().map(|c| c.conversation.assignee_id).collect();
    let channels: Vec<&str> = calls.iter().map(|c| c.conversation.channel.as_str()).collect();
    let subjects: Vec<Option<&str>> = calls.iter().map(|c| c.conversation.subject.as_deref()).collect();
    let labels: Vec<String> =
        calls.iter().map(|c| serde_json::to_string(&c.conversation.labels).unwrap_or_else(|_| "[]".into())).collect();
    let created: Vec<DateTime<Utc>> = calls.iter().map(|c| c.conversation.created_at).collect();
    let texts: Vec<String> = calls.iter().map(|c| c.details.activity_text()).collect();
    let (sender_type, sender_id) = activity_sender().parts();
    execute(
        cw,
        "WITH v AS (
             SELECT * FROM unnest($2::text[], $3::bigint[], $4::text[], $5::timestamptz[], $6::text[], $7::text[],
                                  $8::timestamptz[], $9::timestamptz[], $10::float8[], $11::text[], $12::text[],
                                  $13::text[], $14::text[], $15::text[], $16::bigint[], $17::bigint[], $18::text[],
                                  $19::text[], $20::text[], $21::timestamptz[], $22::text[])
                  WITH ORDINALITY AS v(id, contact, status, u, call, rep, s, e, dur, dir, ven, cam, sum, attr, at,
                                       assignee, channel, subject, labels, c, activity, o)
         ), inserted AS (
             INSERT INTO conversations (workspace_id, id, contact_id, status, updated_at, call_id, rep_id, started_at,
                     ended_at, duration, direction, vendor, campaign, summary, attributes, at_ms, assignee_id,
                     channel, subject, labels, messages_count, created_at, last_message_at)
             SELECT $1, v.id, v.contact, v.status, v.u, v.call, v.rep, v.s, v.e, v.dur, v.dir, v.ven, v.cam, v.sum,
                    v.attr::jsonb, v.at, v.assignee, v.channel, v.subject,
                    ARRAY(SELECT jsonb_array_elements_text(v.labels::jsonb)), 1, v.c, v.s
             FROM v ORDER BY v.o
             RETURNING seq, id, contact_id, started_at
         )
         INSERT INTO messages (workspace_id, conversation_seq, contact_id, type, content, sender_type, sender_id,
                               created_at)
         SELECT $1, i.seq, i.contact_id, $23, v.activity, $24, $25, i.started_at
         FROM inserted i JOIN v ON v.id = i.id
         ORDER BY i.seq",
        &[
            &ws,
            &c.ids,
            &c.contacts,
            &c.statuses,
            &c.updated,
            &c.call_ids,
            &c.reps,
            &c.started,
            &c.ended,
            &c.durations,
            &c.directions,
            &c.vendors,
            &c.campaigns,
            &c.summaries,
            &c.attributes,
            &c.at_ms,
            &assignees,
            &channels,
            &subjects,
            &labels,
            &created,
            &texts,
            &MessageType::Activity.as_str(),
            &sender_type,
            &sender_id,
        ],
    )
    .await?;
    Ok(())
}

/// Who sends a call's activity message.
fn activity_sender() -> Sender {
    Sender::Api("calls".into())
}

/// Writes what a call write may change (contact, status, call columns, the
/// report time). The one UPDATE of calls.
pub(crate) async fn update_rows(cw: &ClientWrapper, ws: &str, calls: &[&Call]) -> Result<()> {
    if calls.is_empty() {
        return Ok(());
    }
    let c = Columns::of(calls);
    execute(
        cw,
        "WITH changed AS (
           UPDATE conversations x SET contact_id = v.contact, status = v.status, updated_at = v.u, call_id = v.call,
                  rep_id = v.rep, started_at = v.s, ended_at = v.e, duration = v.dur, direction = v.dir,
                  vendor = v.ven, campaign = v.cam, summary = v.sum, attributes = v.attr::jsonb, at_ms = v.at
           FROM unnest($2::text[], $3::bigint[], $4::text[], $5::timestamptz[], $6::text[], $7::text[],
                       $8::timestamptz[], $9::timestamptz[], $10::float8[], $11::text[], $12::text[], $13::text[],
                       $14::text[], $15::text[], $16::bigint[])
                AS v(id, contact, status, u, call, rep, s, e, dur, dir, ven, cam, sum, attr, at)
           WHERE x.workspace_id = $1 AND x.id = v.id
           RETURNING x.seq, x.contact_id)
         -- The call's messages follow its contact (so the call shows in the new contact's timeline).
         UPDATE messages m SET contact_id = changed.contact_id FROM changed
         WHERE m.workspace_id = $1 AND m.conversation_seq = changed.seq
           AND m.contact_id IS DISTINCT FROM changed.contact_id",
        &[
            &ws,
            &c.ids,
            &c.contacts,
            &c.statuses,
            &c.updated,
            &c.call_ids,
            &c.reps,
            &c.started,
            &c.ended,
            &c.durations,
            &c.directions,
            &c.vendors,
            &c.campaigns,
            &c.summaries,
            &c.attributes,
            &c.at_ms,
        ],
    )
    .await?;
    Ok(())
}

impl Applier {
    /// Loads and locks, with one query, the calls of `ws` named by `ids`
    /// that this transaction has not seen yet; the others are remembered as
    /// missing.
    pub(crate) fn prefetch_calls(&mut self, ws: &str, ids: &[&str]) -> Result<()> {
        let known = self.calls.get(ws);
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
            "SELECT {} FROM conversations WHERE workspace_id = $1 AND call_id IS NOT NULL AND call_id = ANY($2)
             ORDER BY seq FOR UPDATE",
            call_columns()
        );
        let rows = block(&self.rt, query(self.tx.c(), &sql, &[&ws, &wanted]))?;
        let known = self.calls.entry(ws.to_string()).or_default();
        known.reserve(wanted.len());
        for id in wanted {
            known.insert(id.to_string(), None);
        }
        for row in &rows {
            let (_, call) = call_from_row(row)?;
            known.insert(call.details.call_id.clone(), pending::loaded(call));
        }
        Ok(())
    }

    /// Writes the new and changed calls of `ws`: inserts in creation order,
    /// then updates.
    pub(crate) fn flush_calls(&mut self, ws: &str) -> Result<()> {
        let Some(known) = self.calls.get_mut(ws) else { return Ok(()) };
        let (inserts, updates) = pending::writes(known);
        block(&self.rt, insert_rows(self.tx.c(), ws, &inserts))?;
        block(&self.rt, update_rows(self.tx.c(), ws, &updates))?;
        pending::mark_clean(known);
        Ok(())
    }
}

impl CallTx for Applier {
    fn find_call(&mut self, ws: &str, call_id: &str) -> Result<Option<Call>> {
        if !self.calls.get(ws).is_some_and(|m| m.contains_key(call_id)) {
            self.prefetch_calls(ws, &[call_id])?;
        }
        Ok(pending::get(self.calls.get(ws), call_id).cloned())
    }

    fn insert_call(&mut self, ws: &str, call: &Call) -> Result<()> {
        self.order += 1;
        // As stored: with its activity message.
        let mut call = call.clone();
        call.conversation.messages_count = 1;
        call.conversation.last_message_at = Some(call.details.started_at);
        let id = call.details.call_id.clone();
        pending::insert(self.calls.entry(ws.to_string()).or_default(), id, call, self.order);
        Ok(())
    }

    fn update_call(&mut self, ws: &str, call: &Call) -> Result<()> {
        pending::update(self.calls.entry(ws.to_string()).or_default(), call.details.call_id.clone(), call.clone());
        Ok(())
    }
}

/// Updates calls in one transaction with core's [`call::upsert_calls`]: the
/// calls, their reps and their contacts are prefetched (one query each),
/// writes flushed set-based; all or nothing.
pub(crate) async fn upsert(pool: &Pool, ws: &str, rows: Arc<Vec<CallWrite>>) -> Result<UpsertCounts> {
    call::check_rows(&rows)?;
    let ws = ws.to_string();
    with_applier(pool, move |applier| {
        let ids: Vec<&str> = rows.iter().map(|r| r.call_id.as_str()).collect();
        applier.prefetch_calls(&ws, &ids)?;
        let mut reps: Vec<String> = rows.iter().filter_map(|r| r.rep_id.clone().flatten()).collect();
        if let Some(known) = applier.calls.get(&ws) {
            reps.extend(known.values().flatten().filter_map(|c| c.value.details.rep_id.clone()));
        }
        let reps: Vec<&str> = reps.iter().map(String::as_str).collect();
        applier.prefetch_reps(&ws, &reps)?;
        let items: Vec<IngestItem> = rows
            .iter()
            .filter(|r| !r.contact.is_empty())
            .map(|r| IngestItem::Identify {
                lookups: r.contact.clone(),
                changes: ContactChanges::default(),
                message_id: None,
            })
            .collect();
        if !items.is_empty() {
            let job = QueuedJob { id: String::new(), workspace_id: ws.clone(), items, received_at: now() };
            applier.prefetch(&[(0, job)])?;
        }
        let counts = call::upsert_calls(applier, &ws, &rows, now())?;
        applier.flush().map_err(race)?;
        Ok(counts)
    })
    .await
}

/// One call.
pub(crate) async fn get_one(pool: &Pool, ws: &str, call_id: &str) -> Result<Call> {
    let c = conn(pool).await?;
    let sql = format!(
        "SELECT {} FROM conversations WHERE workspace_id = $1 AND call_id IS NOT NULL AND call_id = $2",
        call_columns()
    );
    let row = query_opt(&c, &sql, &[&ws, &call_id]).await?.ok_or(Error::NotFound { entity: "call" })?;
    call_from_row(&row).map(|(_, call)| call)
}

/// The smallest Unix millisecond at or after `t` (a half-open period in
/// milliseconds holds exactly the times of the period).
pub(crate) fn ceil_ms(t: &DateTime<Utc>) -> i64 {
    let ms = t.timestamp_millis();
    if t.timestamp_subsec_nanos().is_multiple_of(1_000_000) { ms } else { ms + 1 }
}

/// The WHERE clause of a call filter after `workspace_id = $1`, with its
/// parameters numbered from `first`.
fn filter_sql(filter: &CallFilter, first: usize) -> (String, Vec<Param>) {
    let mut sql = String::from(" AND call_id IS NOT NULL");
    let mut params: Vec<Param> = Vec::new();
    if let Some(from) = &filter.from {
        params.push(Box::new(ceil_ms(from)));
        sql.push_str(&format!(" AND at_ms >= ${}", first + params.len() - 1));
    }
    if let Some(to) = &filter.to {
        params.push(Box::new(ceil_ms(to)));
        sql.push_str(&format!(" AND at_ms < ${}", first + params.len() - 1));
    }
    if let Some(rep) = &filter.rep_id {
        params.push(Box::new(rep.clone()));
        sql.push_str(&format!(" AND rep_id = ${}", first + params.len() - 1));
    }
    (sql, params)
}

/// How many calls match.
pub(crate) async fn count(pool: &Pool, ws: &str, filter: &CallFilter) -> Result<u64> {
    let (where_sql, params) = filter_sql(filter, 2);
    let sql = format!("SELECT count(*) AS n FROM conversations WHERE workspace_id = $1{where_sql}");
    let mut all: Vec<&(dyn ToSql + Sync)> = vec![&ws];
    all.extend(params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)));
    let c = conn(pool).await?;
    let n: i64 = get(&query_one(&c, &sql, &all).await?, "n")?;
    Ok(n.max(0) as u64)
}

/// Calls `offset..offset + limit` by start time then creation, streamed.
pub(crate) fn stream(pool: &Pool, ws: &str, filter: &CallFilter, offset: u64, limit: u64) -> RowStream<Call> {
    let (where_sql, filter_params) = filter_sql(filter, 2);
    let n = filter_params.len();
    let mut params: Vec<Param> = vec![Box::new(ws.to_string())];
    params.extend(filter_params);
    params.push(Box::new(bigint(offset)));
    params.push(Box::new(bigint(limit)));
    let sql = format!(
        "SELECT {} FROM conversations WHERE workspace_id = $1{where_sql} ORDER BY at_ms, seq OFFSET ${} LIMIT ${}",
        call_columns(),
        n + 2,
        n + 3
    );
    stream::rows(pool.clone(), sql, params, |row| call_from_row(row).map(|(_, call)| call))
}
