//! The applier: reads inbox entries after the cursor, applies their items
//! with core's [`apply_item`] inside one transaction of the main database
//! (each item in its own savepoint), writes the jobs' results, the dedupe
//! records and the new cursor in that same transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use convene_core::batch::upsert_company;
use convene_core::company::CompanyChanges;
use convene_core::contact::{Contact, ContactState, SubscriptionChange};
use convene_core::event::NewEvent;
use convene_core::field::{Entity, FieldRegistry, FieldType};
use convene_core::identity::IdentityKind;
use convene_core::ids::now;
use convene_core::ingest::{ApplyReport, IngestTx, JobStatus, RowError, RowOutcome, apply_item};
use convene_core::merge::TraitOp;
use convene_core::{Error, Result};
use rusqlite::params;
use serde_json::{Map, Value};

use crate::conn::{WriteCtx, storage};
use crate::inbox::InboxEntry;
use crate::rows::{insert_inferred_fields, one, t};

/// core's view of the writer's transaction.
pub(crate) struct SqliteIngestTx<'a> {
    pub ctx: &'a mut WriteCtx,
    /// When kept (batch upserts), what a contact row holds beyond its
    /// state, recorded as contacts are loaded and written, so the batch can
    /// answer without reading each contact back.
    pub meta: Option<HashMap<i64, ContactMeta>>,
    /// The contact the last `find_contact` read, whole: `load_contact`
    /// usually asks for it next (one statement instead of two).
    found: Option<Contact>,
}

/// A contact's times and company as last loaded or written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ContactMeta {
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub company_id: Option<i64>,
}

impl<'a> SqliteIngestTx<'a> {
    /// For the ingest applier: no metadata kept.
    pub fn new(ctx: &'a mut WriteCtx) -> Self {
        SqliteIngestTx { ctx, meta: None, found: None }
    }

    /// For batch upserts: metadata kept.
    pub fn keeping_meta(ctx: &'a mut WriteCtx) -> Self {
        SqliteIngestTx { ctx, meta: Some(HashMap::new()), found: None }
    }

    fn note(&mut self, id: i64, f: impl FnOnce(Option<ContactMeta>) -> ContactMeta) {
        if let Some(meta) = &mut self.meta {
            let m = f(meta.get(&id).copied());
            meta.insert(id, m);
        }
    }
}

impl IngestTx for SqliteIngestTx<'_> {
    fn message_seen(&mut self, ws: &str, message_id: &str) -> Result<bool> {
        let mut stmt = self
            .ctx
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM ingest_dedupe WHERE workspace_id = ?1 AND message_id = ?2)")
            .map_err(storage)?;
        stmt.query_row(params![ws, message_id], |r| r.get(0)).map_err(storage)
    }

    fn record_message(&mut self, ws: &str, message_id: &str) -> Result<()> {
        let mut stmt = self
            .ctx
            .conn
            .prepare_cached("INSERT INTO ingest_dedupe (workspace_id, message_id, seen_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
            .map_err(storage)?;
        stmt.execute(params![ws, message_id, t(&now())]).map_err(storage)?;
        Ok(())
    }

    fn find_contact(&mut self, ws: &str, kind: IdentityKind, value: &str) -> Result<Option<i64>> {
        let sql = match kind {
            IdentityKind::Email => "SELECT {C} FROM contacts WHERE workspace_id = ?1 AND email = ?2",
            IdentityKind::Mobile => "SELECT {C} FROM contacts WHERE workspace_id = ?1 AND mobile = ?2",
            IdentityKind::ExternalId => "SELECT {C} FROM contacts WHERE workspace_id = ?1 AND external_id = ?2",
            IdentityKind::AnonymousId => "SELECT {C} FROM contacts WHERE workspace_id = ?1 AND anonymous_id = ?2",
        };
        let mut stmt = self.ctx.conn.prepare_cached(&sql.replace("{C}", crate::contacts::COLUMNS)).map_err(storage)?;
        let found = one(stmt.query_row(params![ws, value], crate::contacts::contact_from_row))?;
        let id = found.as_ref().map(|c| c.id);
        self.found = found;
        Ok(id)
    }

    fn load_contact(&mut self, ws: &str, id: i64) -> Result<ContactState> {
        let c = match self.found.take() {
            Some(c) if c.id == id => c,
            _ => crate::contacts::get(&self.ctx.conn, ws, id)?,
        };
        self.note(id, |_| ContactMeta { created_at: c.created_at, updated_at: c.updated_at, company_id: c.company_id });
        Ok(c.state)
    }

    fn field_registry(&mut self, ws: &str, entity: Entity) -> Result<&mut FieldRegistry> {
        self.ctx.registry(ws, entity)
    }

    fn record_fields(&mut self, ws: &str, entity: Entity, fields: &[(String, FieldType)]) -> Result<()> {
        insert_inferred_fields(&self.ctx.conn, ws, entity, fields)
    }

    fn insert_contact(&mut self, ws: &str, state: &ContactState) -> Result<i64> {
        self.found = None;
        let at = now();
        let id = crate::contacts::insert_row(&self.ctx.conn, ws, state, &at)?;
        self.note(id, |_| ContactMeta { created_at: at, updated_at: at, company_id: None });
        Ok(id)
    }

    fn update_contact(&mut self, ws: &str, id: i64, state: &ContactState, identities_changed: bool) -> Result<()> {
        self.found = None;
        let at = now();
        crate::contacts::update_row(&self.ctx.conn, ws, id, state, identities_changed, &at)?;
        self.note(id, |m| ContactMeta {
            created_at: m.map_or(at, |m| m.created_at),
            updated_at: at,
            company_id: m.and_then(|m| m.company_id),
        });
        Ok(())
    }

    fn insert_event(&mut self, ws: &str, contact_id: i64, event: &NewEvent) -> Result<()> {
        let mut stmt = self
            .ctx
            .conn
            .prepare_cached(
                "INSERT INTO events (workspace_id, contact_id, name, kind, properties, description, timestamp, received_at, message_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(storage)?;
        stmt.execute(params![
            ws,
            contact_id,
            event.name,
            event.kind.as_str(),
            serde_json::to_string(&event.properties).unwrap_or_else(|_| "{}".into()),
            event.description,
            t(&event.timestamp),
            t(&event.received_at),
            event.message_id
        ])
        .map_err(storage)?;
        self.ctx
            .conn
            .prepare_cached(
                "UPDATE contacts SET last_seen_at = ?2 WHERE id = ?1 AND (last_seen_at IS NULL OR last_seen_at < ?2)",
            )
            .map_err(storage)?
            .execute(params![contact_id, t(&event.timestamp)])
            .map_err(storage)?;
        Ok(())
    }

    fn merge_contacts(&mut self, ws: &str, from: i64, into: i64) -> Result<()> {
        self.found = None;
        let conn = &self.ctx.conn;
        conn.execute(
            "UPDATE events SET contact_id = ?3 WHERE workspace_id = ?1 AND contact_id = ?2",
            params![ws, from, into],
        )
        .map_err(storage)?;
        conn.execute("DELETE FROM contacts WHERE workspace_id = ?1 AND id = ?2", params![ws, from]).map_err(storage)?;
        conn.execute(
            "INSERT INTO contact_merges (workspace_id, from_id, into_id, merged_at) VALUES (?1, ?2, ?3, ?4)",
            params![ws, from, into, t(&now())],
        )
        .map_err(storage)?;
        Ok(())
    }

    fn upsert_company(&mut self, ws: &str, external_id: &str, traits: &Map<String, Value>) -> Result<i64> {
        let changes = CompanyChanges { traits: TraitOp::parse_map(traits)?, ..Default::default() };
        let mut tx = crate::companies::SqliteCompanyTx { ctx: self.ctx };
        upsert_company(&mut tx, ws, external_id, &changes, now()).map(|(_, company)| company.id)
    }

    fn set_contact_company(&mut self, ws: &str, contact_id: i64, company_id: i64) -> Result<()> {
        self.found = None;
        self.ctx
            .conn
            .execute(
                "UPDATE contacts SET company_id = ?3, updated_at = ?4 WHERE workspace_id = ?1 AND id = ?2",
                params![ws, contact_id, company_id, t(&now())],
            )
            .map_err(storage)?;
        Ok(())
    }

    fn record_subscription(&mut self, ws: &str, contact_id: i64, change: &SubscriptionChange) -> Result<()> {
        crate::contacts::insert_subscription_change(&self.ctx.conn, ws, contact_id, change)
    }
}

fn control(conn: &rusqlite::Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(|_| ()).map_err(storage)
}

/// Applies `entries` in the current transaction; returns how many items
/// were processed. Writes each job's result and advances the cursor.
pub(crate) fn apply_entries(ctx: &mut WriteCtx, entries: &[InboxEntry]) -> Result<ApplyReport> {
    let cursor: i64 =
        ctx.conn.query_row("SELECT applied_seq FROM ingest_cursor WHERE id = 1", [], |r| r.get(0)).map_err(storage)?;
    let mut report = ApplyReport::default();
    let mut last = cursor;
    for entry in entries.iter().filter(|e| e.seq > cursor) {
        let job = &entry.job;
        let (mut applied, mut duplicates) = (0usize, 0usize);
        let mut errors: Vec<RowError> = Vec::new();
        for (row, item) in job.items.iter().enumerate() {
            // Savepoints are costly in a large transaction; identify and
            // track write only after all their checks, so they need none.
            let savepoint = item.needs_savepoint();
            if savepoint {
                control(&ctx.conn, "SAVEPOINT item")?;
            }
            let result = apply_item(&mut SqliteIngestTx::new(ctx), &job.workspace_id, item);
            match result {
                Ok(outcome) => {
                    if savepoint {
                        control(&ctx.conn, "RELEASE item")?;
                    }
                    match outcome {
                        RowOutcome::Applied => applied += 1,
                        RowOutcome::Duplicate => duplicates += 1,
                    }
                }
                Err(e) => {
                    if savepoint {
                        control(&ctx.conn, "ROLLBACK TO item")?;
                        control(&ctx.conn, "RELEASE item")?;
                    }
                    ctx.forget_registries();
                    if matches!(e, Error::Storage(_) | Error::Internal(_) | Error::Unavailable { .. }) {
                        // Not the row's fault: stop here; the whole step is retried.
                        return Err(e);
                    }
                    errors.push(RowError::of(row, &e));
                }
            }
        }
        let status = if errors.is_empty() { JobStatus::Applied } else { JobStatus::Failed };
        // Cached: single-event requests make one job row per item.
        ctx.conn
            .prepare_cached(
                "INSERT INTO jobs (workspace_id, id, status, total, applied, duplicates, failed, errors, received_at, finished_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    job.workspace_id,
                    job.id,
                    status.as_str(),
                    job.items.len() as i64,
                    applied as i64,
                    duplicates as i64,
                    errors.len() as i64,
                    serde_json::to_string(&errors).unwrap_or_else(|_| "[]".into()),
                    t(&job.received_at),
                    t(&now())
                ])
            })
            .map_err(storage)?;
        report.items += job.items.len();
        report.received_at.push(job.received_at);
        last = entry.seq;
    }
    ctx.conn.execute("UPDATE ingest_cursor SET applied_seq = ?1 WHERE id = 1", [last]).map_err(storage)?;
    Ok(report)
}
