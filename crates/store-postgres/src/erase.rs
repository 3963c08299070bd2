//! Erasure and suppressions on PostgreSQL (core's `erase` rules), in one
//! transaction: the contact row is locked first, so an applier step that
//! holds it finishes before, and one that comes after finds the
//! suppression. Pending inbox entries that name the contact stay queued:
//! when applied they are refused by the suppression, then deleted.

use std::collections::HashSet;

use convene_core::contact::ContactState;
use convene_core::erase::{self, ERASED, EraseTarget, Erasure};
use convene_core::identity::IdentityKind;
use convene_core::page::{Page, PageRequest};
use convene_core::{Error, Result, ids};
use deadpool_postgres::{ClientWrapper, Pool};
use serde_json::json;

use crate::contacts::identity_column;
use crate::db::{Tx, conn, execute, query, query_opt};
use crate::rows::get;

/// Refuses contact writes that would bring back an erased identity (one
/// query for all the rows).
pub(crate) async fn check_states(cw: &ClientWrapper, ws: &str, states: &[&ContactState]) -> Result<()> {
    let hashes: Vec<String> = states
        .iter()
        .flat_map(|s| erase::identities(s).into_iter().map(|(k, v)| erase::identity_hash(ws, k, &v)))
        .collect();
    if hashes.is_empty() {
        return Ok(());
    }
    let rows = query(
        cw,
        "SELECT identity_hash FROM suppressions WHERE workspace_id = $1 AND identity_hash = ANY($2)",
        &[&ws, &hashes],
    )
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let hit: HashSet<String> = rows.iter().map(|r| get::<String>(r, "identity_hash")).collect::<Result<_>>()?;
    for s in states {
        erase::check_not_suppressed(ws, s, |h| Ok(hit.contains(h)))?;
    }
    Ok(())
}

/// True when the workspace has any suppression (most have none: the
/// applier then skips the per-row checks).
pub(crate) async fn any(cw: &ClientWrapper, ws: &str) -> Result<bool> {
    let row = query_opt(cw, "SELECT 1 AS one FROM suppressions WHERE workspace_id = $1 LIMIT 1", &[&ws]).await?;
    Ok(row.is_some())
}

async fn redact_jobs(cw: &ClientWrapper, ws: &str, values: &[String]) -> Result<u64> {
    let mut n = 0;
    for v in values {
        let rows = query(
            cw,
            "SELECT id, errors::text AS errors FROM jobs WHERE workspace_id = $1 AND strpos(errors::text, $2) > 0 FOR UPDATE",
            &[&ws, v],
        )
        .await?;
        for r in rows {
            let (id, text): (String, String) = (get(&r, "id")?, get(&r, "errors")?);
            if let Some(clean) = erase::redact(&text, values) {
                execute(
                    cw,
                    "UPDATE jobs SET errors = $3::text::jsonb WHERE workspace_id = $1 AND id = $2",
                    &[&ws, &id, &clean],
                )
                .await?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// The erasure, in one transaction.
pub(crate) async fn erase(pool: &Pool, ws: &str, target: &EraseTarget, actor: &str) -> Result<Erasure> {
    let tx = Tx::begin(pool).await?;
    let result = async {
        let c = tx.c();
        let row = match target {
            EraseTarget::Id(id) => {
                query_opt(c, "SELECT id FROM contacts WHERE workspace_id = $1 AND id = $2 FOR UPDATE", &[&ws, id])
                    .await?
            }
            EraseTarget::Identity(kind, value) => {
                let column = identity_column(*kind);
                let sql = format!("SELECT id FROM contacts WHERE workspace_id = $1 AND {column} = $2 FOR UPDATE");
                query_opt(c, &sql, &[&ws, value]).await?
            }
        };
        let id: i64 = match row {
            Some(r) => get(&r, "id")?,
            None => return Err(Error::NotFound { entity: "contact" }),
        };
        let contact = crate::contacts::load(c, ws, id, true).await?;
        let identities = erase::identities(&contact.state);
        let values: Vec<String> = identities.iter().map(|(_, v)| v.clone()).collect();
        let mut out = Erasure {
            id: ids::new_id("era"),
            contact_id: id,
            identities: identities.iter().map(|(k, v)| (*k, erase::identity_hash(ws, *k, v))).collect(),
            actor: actor.to_string(),
            erased_at: ids::now(),
            ..Default::default()
        };
        out.events = execute(c, "DELETE FROM events WHERE workspace_id = $1 AND contact_id = $2", &[&ws, &id]).await?;
        execute(c, "DELETE FROM subscription_changes WHERE workspace_id = $1 AND contact_id = $2", &[&ws, &id]).await?;
        execute(
            c,
            "DELETE FROM contact_merges WHERE workspace_id = $1 AND (from_id = $2 OR into_id = $2)",
            &[&ws, &id],
        )
        .await?;
        out.messages = execute(
            c,
            "UPDATE messages SET content = $3, contact_id = NULL WHERE workspace_id = $1 AND conversation_seq IN
               (SELECT seq FROM conversations WHERE workspace_id = $1 AND contact_id = $2)",
            &[&ws, &id, &ERASED],
        )
        .await?;
        out.conversations = execute(
            c,
            "UPDATE conversations SET contact_id = NULL, subject = NULL, summary = NULL, attributes = NULL
             WHERE workspace_id = $1 AND contact_id = $2",
            &[&ws, &id],
        )
        .await?;
        out.jobs = redact_jobs(c, ws, &values).await?;
        for v in &values {
            out.dedupe += execute(
                c,
                "DELETE FROM ingest_dedupe WHERE workspace_id = $1 AND strpos(message_id, $2) > 0",
                &[&ws, v],
            )
            .await?;
        }
        execute(c, "DELETE FROM contacts WHERE workspace_id = $1 AND id = $2", &[&ws, &id]).await?;
        for (kind, hash) in &out.identities {
            execute(
                c,
                "INSERT INTO suppressions (workspace_id, identity_hash, kind, erasure_id, created_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (workspace_id, identity_hash) DO UPDATE SET erasure_id = EXCLUDED.erasure_id",
                &[&ws, hash, &kind.field(), &out.id, &out.erased_at],
            )
            .await?;
        }
        let counts = json!({"events": out.events, "messages": out.messages, "conversations": out.conversations,
                            "jobs": out.jobs, "dedupe": out.dedupe});
        let hashed: Vec<[&str; 2]> = out.identities.iter().map(|(k, h)| [k.field(), h.as_str()]).collect();
        execute(
            c,
            "INSERT INTO erasures (workspace_id, id, contact_id, identities, actor, erased_at, counts)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&ws, &out.id, &id, &json!(hashed), &out.actor, &out.erased_at, &counts],
        )
        .await?;
        Ok(out)
    }
    .await;
    tx.finish(result).await
}

pub(crate) async fn lift(pool: &Pool, ws: &str, kind: IdentityKind, value: &str) -> Result<bool> {
    let c = conn(pool).await?;
    let hash = erase::identity_hash(ws, kind, value);
    Ok(execute(&c, "DELETE FROM suppressions WHERE workspace_id = $1 AND identity_hash = $2", &[&ws, &hash]).await? > 0)
}

pub(crate) async fn list(pool: &Pool, ws: &str, page: &PageRequest) -> Result<Page<Erasure>> {
    let c = conn(pool).await?;
    let after = page.after.clone().unwrap_or_default();
    let limit = page.limit as i64 + 1;
    let rows = query(
        &c,
        "SELECT id, contact_id, identities, actor, erased_at, counts FROM erasures
         WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        &[&ws, &after, &limit],
    )
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            let pairs: Vec<(String, String)> =
                serde_json::from_value(get::<serde_json::Value>(r, "identities")?).unwrap_or_default();
            let counts: serde_json::Value = get(r, "counts")?;
            let n = |k: &str| counts[k].as_u64().unwrap_or(0);
            Ok(Erasure {
                id: get(r, "id")?,
                contact_id: get(r, "contact_id")?,
                identities: pairs
                    .into_iter()
                    .map(|(k, h)| {
                        (IdentityKind::ALL.into_iter().find(|x| x.field() == k).unwrap_or(IdentityKind::ExternalId), h)
                    })
                    .collect(),
                actor: get(r, "actor")?,
                erased_at: get(r, "erased_at")?,
                events: n("events"),
                messages: n("messages"),
                conversations: n("conversations"),
                jobs: n("jobs"),
                dedupe: n("dedupe"),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |e| e.id.clone()))
}
