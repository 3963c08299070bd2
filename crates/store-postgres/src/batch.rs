//! Batch upserts of contacts and synchronous events.
//!
//! A contact batch runs core's [`convene_core::batch::upsert_contacts`]
//! against the applier's write-behind [`Applier`] (one prefetch query loads
//! and locks every contact the rows name; writes are set-based), then reads
//! the rows back and commits — or rolls back for a dry run or a failed
//! all-or-nothing batch.

use convene_core::batch::{self, BatchOptions, BatchOutcome, ContactUpsert, RowResult};
use convene_core::contact::Contact;
use convene_core::event::{Event, NewEvent};
use convene_core::identity::IdentityKind;
use convene_core::ids::now;
use convene_core::ingest::{IngestItem, QueuedJob};
use convene_core::{Error, Result};
use deadpool_postgres::Pool;
use tokio::runtime::Handle;

use crate::apply::{Applier, race};
use crate::contacts::{COLUMNS, contact_from_row, identity_column};
use crate::db::{Tx, query, query_one, query_opt};
use crate::rows::get;

pub(crate) async fn upsert_contacts(
    pool: &Pool,
    ws: &str,
    rows: Vec<ContactUpsert>,
    options: BatchOptions,
) -> Result<BatchOutcome<Contact>> {
    let tx = Tx::begin(pool).await?;
    let rt = Handle::current();
    let ws_owned = ws.to_string();
    let (tx, result) = tokio::task::spawn_blocking(move || {
        let mut applier = Applier::new(tx, rt);
        let result = (|| {
            let items = rows
                .iter()
                .map(|r| IngestItem::Identify {
                    lookups: r.lookups.clone(),
                    changes: r.changes.clone(),
                    message_id: None,
                })
                .collect();
            let job = QueuedJob { id: String::new(), workspace_id: ws_owned.clone(), items, received_at: now() };
            applier.prefetch(&[(0, job)])?;
            let results = batch::upsert_contacts(&mut applier, &ws_owned, &rows)?;
            applier.flush().map_err(race)?;
            Ok(results)
        })();
        (applier.into_tx(), result)
    })
    .await
    .map_err(|e| Error::Internal(format!("the batch panicked: {e}")))?;
    let results = match result {
        Ok(results) => results,
        Err(e) => {
            tx.rollback().await;
            return Err(e);
        }
    };
    let ids: Vec<i64> = results.iter().filter_map(|(_, r)| r.as_ref().ok().map(|(_, u)| u.id)).collect();
    let loaded = match query(
        tx.c(),
        &format!("SELECT {COLUMNS} FROM contacts WHERE workspace_id = $1 AND id = ANY($2)"),
        &[&ws, &ids],
    )
    .await
    {
        Ok(rows) => rows.iter().map(contact_from_row).collect::<Result<Vec<_>>>(),
        Err(e) => Err(e),
    };
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            tx.rollback().await;
            return Err(e);
        }
    };
    let by_id: std::collections::HashMap<i64, Contact> = loaded.into_iter().map(|c| (c.id, c)).collect();
    let mut out = Vec::with_capacity(results.len());
    for (row, outcome) in results {
        let outcome = match outcome {
            Ok((status, u)) => match by_id.get(&u.id) {
                Some(c) => Ok((status, c.clone())),
                None => Err(Error::Internal(format!("contact {} vanished during its batch", u.id))),
            },
            Err(e) => Err(e),
        };
        out.push(RowResult { row, outcome });
    }
    let mut outcome = BatchOutcome { rows: out, written: true };
    let keep = options.keeps(&outcome);
    if keep {
        tx.commit().await?;
    } else {
        tx.rollback().await;
    }
    outcome.written = keep;
    Ok(outcome)
}

/// Records an event on the contact holding `contact`'s identity.
pub(crate) async fn record_event(
    pool: &Pool,
    ws: &str,
    contact: &(IdentityKind, String),
    event: NewEvent,
) -> Result<Event> {
    let tx = Tx::begin(pool).await?;
    let result = async {
        let column = identity_column(contact.0);
        let found = query_opt(
            tx.c(),
            &format!("SELECT id FROM contacts WHERE workspace_id = $1 AND {column} IS NOT NULL AND {column} = $2"),
            &[&ws, &contact.1],
        )
        .await?
        .ok_or(Error::NotFound { entity: "contact" })?;
        let contact_id: i64 = get(&found, "id")?;
        let properties = serde_json::Value::Object(event.properties.clone());
        let row = query_one(
            tx.c(),
            "INSERT INTO events (workspace_id, contact_id, name, kind, properties, description, timestamp, received_at, message_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            &[
                &ws,
                &contact_id,
                &event.name,
                &event.kind.as_str(),
                &properties,
                &event.description,
                &event.timestamp,
                &event.received_at,
                &event.message_id,
            ],
        )
        .await?;
        crate::db::execute(
            tx.c(),
            "UPDATE contacts SET last_seen_at = $3 WHERE workspace_id = $1 AND id = $2
               AND (last_seen_at IS NULL OR last_seen_at < $3)",
            &[&ws, &contact_id, &event.timestamp],
        )
        .await?;
        Ok(Event { id: get(&row, "id")?, contact_id, event })
    }
    .await;
    tx.finish(result).await
}
