//! Batch upserts and synchronous events: core's functions run in the
//! writer's transaction inside a savepoint, rolled back for a dry run or a
//! failed all-or-nothing batch.

use convene_core::batch::{self, BatchOptions, BatchOutcome, CompanyUpsert, ContactUpsert, RowResult};
use convene_core::company::Company;
use convene_core::contact::Contact;
use convene_core::event::{Event, NewEvent};
use convene_core::identity::IdentityKind;
use convene_core::ids::now;
use convene_core::ingest::IngestTx;
use convene_core::{Error, Result};

use crate::apply::SqliteIngestTx;
use crate::companies::SqliteCompanyTx;
use crate::conn::{WriteCtx, storage};

fn control(ctx: &WriteCtx, sql: &str) -> Result<()> {
    ctx.conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(|_| ()).map_err(storage)
}

/// Runs `f` in a savepoint; keeps its writes only when `keep` says so.
fn in_savepoint<T>(
    ctx: &mut WriteCtx,
    f: impl FnOnce(&mut WriteCtx) -> Result<BatchOutcome<T>>,
    options: BatchOptions,
) -> Result<BatchOutcome<T>> {
    control(ctx, "SAVEPOINT batch")?;
    let result = f(ctx);
    let keep = match &result {
        Ok(outcome) => options.keeps(outcome),
        Err(_) => false,
    };
    if keep {
        control(ctx, "RELEASE batch")?;
    } else {
        control(ctx, "ROLLBACK TO batch")?;
        control(ctx, "RELEASE batch")?;
        // The registries may hold fields that were rolled back.
        ctx.forget_registries();
    }
    result.map(|mut outcome| {
        outcome.written = keep;
        outcome
    })
}

pub(crate) fn upsert_contacts(
    ctx: &mut WriteCtx,
    ws: &str,
    rows: &[ContactUpsert],
    options: BatchOptions,
) -> Result<BatchOutcome<Contact>> {
    in_savepoint(
        ctx,
        |ctx| {
            let mut tx = SqliteIngestTx::keeping_meta(ctx);
            let results = batch::upsert_contacts(&mut tx, ws, rows)?;
            let meta = tx.meta.take().unwrap_or_default();
            let mut out = Vec::with_capacity(results.len());
            for (row, outcome) in results {
                let outcome = match outcome {
                    // Answered from what was written; read back only if unknown.
                    Ok((status, u)) => match meta.get(&u.id) {
                        Some(m) => Ok((
                            status,
                            Contact {
                                id: u.id,
                                state: u.state,
                                company_id: m.company_id,
                                created_at: m.created_at,
                                updated_at: m.updated_at,
                            },
                        )),
                        None => Ok((status, crate::contacts::get(&ctx.conn, ws, u.id)?)),
                    },
                    Err(e) => Err(e),
                };
                out.push(RowResult { row, outcome });
            }
            Ok(BatchOutcome { rows: out, written: true })
        },
        options,
    )
}

pub(crate) fn upsert_companies(
    ctx: &mut WriteCtx,
    ws: &str,
    rows: &[CompanyUpsert],
    options: BatchOptions,
) -> Result<BatchOutcome<Company>> {
    in_savepoint(
        ctx,
        |ctx| {
            let rows = batch::upsert_companies(&mut SqliteCompanyTx { ctx }, ws, rows, now())?;
            Ok(BatchOutcome { rows, written: true })
        },
        options,
    )
}

/// Records an event on the contact holding `contact`'s identity.
pub(crate) fn record_event(
    ctx: &mut WriteCtx,
    ws: &str,
    contact: &(IdentityKind, String),
    event: NewEvent,
) -> Result<Event> {
    let mut tx = SqliteIngestTx::new(ctx);
    let contact_id = tx.find_contact(ws, contact.0, &contact.1)?.ok_or(Error::NotFound { entity: "contact" })?;
    tx.insert_event(ws, contact_id, &event)?;
    let id = ctx.conn.last_insert_rowid();
    Ok(Event { id, contact_id, event })
}
