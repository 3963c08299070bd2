//! Erasure and suppressions on SQLite (core's `erase` rules).
//!
//! The erasing closure runs on the writer, in its transaction, with
//! `secure_delete` on, so deleted and rewritten content is overwritten in
//! the pages; the store then truncates the WAL, so no earlier page version
//! survives in it. The contact's inbox entries are applied before (see
//! `SqliteStore::erase_contact`), so none waits in the inbox with its data.

use convene_core::erase::{self, ERASED, EraseTarget, Erasure};
use convene_core::identity::IdentityKind;
use convene_core::page::{Page, PageRequest};
use convene_core::{Error, Result, ids};
use rusqlite::{Connection, params};
use serde_json::json;

use crate::conn::storage;
use crate::rows::{t, time};

/// True when a suppression holds this identity hash.
pub(crate) fn is_suppressed(conn: &Connection, ws: &str, hash: &str) -> Result<bool> {
    let mut stmt = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM suppressions WHERE workspace_id = ?1 AND identity_hash = ?2)")
        .map_err(storage)?;
    stmt.query_row(params![ws, hash], |r| r.get(0)).map_err(storage)
}

fn contact_id(conn: &Connection, ws: &str, target: &EraseTarget) -> Result<i64> {
    let found: Option<i64> = match target {
        EraseTarget::Id(id) => crate::rows::one(conn.query_row(
            "SELECT id FROM contacts WHERE workspace_id = ?1 AND id = ?2",
            params![ws, id],
            |r| r.get(0),
        ))?,
        EraseTarget::Identity(kind, value) => crate::rows::one(conn.query_row(
            &format!("SELECT id FROM contacts WHERE workspace_id = ?1 AND {} = ?2", kind.field()),
            params![ws, value],
            |r| r.get(0),
        ))?,
    };
    found.ok_or(Error::NotFound { entity: "contact" })
}

/// Rewrites `column` of the rows of `table` (key `key`) of the workspace
/// whose value contains an identity; returns how many.
fn redact_column(conn: &Connection, ws: &str, table: &str, key: &str, column: &str, values: &[String]) -> Result<u64> {
    let mut n = 0;
    for v in values {
        let sql = format!("SELECT {key}, {column} FROM {table} WHERE workspace_id = ?1 AND instr({column}, ?2) > 0");
        let rows: Vec<(String, String)> = conn
            .prepare(&sql)
            .and_then(|mut s| s.query_map(params![ws, v], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(storage)?;
        for (k, text) in rows {
            if let Some(clean) = erase::redact(&text, values) {
                conn.execute(
                    &format!("UPDATE {table} SET {column} = ?3 WHERE workspace_id = ?1 AND {key} = ?2"),
                    params![ws, k, clean],
                )
                .map_err(storage)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// The erasure itself, in the writer's transaction.
pub(crate) fn erase(conn: &Connection, ws: &str, target: &EraseTarget, actor: &str) -> Result<Erasure> {
    let id = contact_id(conn, ws, target)?;
    let contact = crate::contacts::get(conn, ws, id)?;
    let identities = erase::identities(&contact.state);
    let values: Vec<String> = identities.iter().map(|(_, v)| v.clone()).collect();
    conn.pragma_update(None, "secure_delete", "ON").map_err(storage)?;
    let result = (|| {
        let mut out = Erasure {
            id: ids::new_id("era"),
            contact_id: id,
            identities: identities.iter().map(|(k, v)| (*k, erase::identity_hash(ws, *k, v))).collect(),
            actor: actor.to_string(),
            erased_at: ids::now(),
            ..Default::default()
        };
        out.events = conn
            .execute("DELETE FROM events WHERE workspace_id = ?1 AND contact_id = ?2", params![ws, id])
            .map_err(storage)? as u64;
        conn.execute("DELETE FROM subscription_changes WHERE workspace_id = ?1 AND contact_id = ?2", params![ws, id])
            .map_err(storage)?;
        conn.execute(
            "DELETE FROM contact_merges WHERE workspace_id = ?1 AND (from_id = ?2 OR into_id = ?2)",
            params![ws, id],
        )
        .map_err(storage)?;
        out.messages = conn
            .execute(
                "UPDATE messages SET content = ?3, contact_id = NULL
                 WHERE conversation IN (SELECT seq FROM conversations WHERE workspace_id = ?1 AND contact_id = ?2)",
                params![ws, id, ERASED],
            )
            .map_err(storage)? as u64;
        out.conversations = conn
            .execute(
                "UPDATE conversations SET contact_id = NULL, subject = NULL, summary = NULL, attributes = NULL
                 WHERE workspace_id = ?1 AND contact_id = ?2",
                params![ws, id],
            )
            .map_err(storage)? as u64;
        out.jobs = redact_column(conn, ws, "jobs", "id", "errors", &values)?;
        for v in &values {
            out.dedupe += conn
                .execute(
                    "DELETE FROM ingest_dedupe WHERE workspace_id = ?1 AND instr(message_id, ?2) > 0",
                    params![ws, v],
                )
                .map_err(storage)? as u64;
        }
        conn.execute("DELETE FROM contacts WHERE workspace_id = ?1 AND id = ?2", params![ws, id]).map_err(storage)?;
        for (kind, hash) in &out.identities {
            conn.execute(
                "INSERT OR REPLACE INTO suppressions (workspace_id, identity_hash, kind, erasure_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![ws, hash, kind.field(), out.id, t(&out.erased_at)],
            )
            .map_err(storage)?;
        }
        let counts = json!({"events": out.events, "messages": out.messages, "conversations": out.conversations,
                            "jobs": out.jobs, "dedupe": out.dedupe});
        let hashed: Vec<[&str; 2]> = out.identities.iter().map(|(k, h)| [k.field(), h.as_str()]).collect();
        conn.execute(
            "INSERT INTO erasures (workspace_id, id, contact_id, identities, actor, erased_at, counts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![ws, out.id, id, json!(hashed).to_string(), out.actor, t(&out.erased_at), counts.to_string()],
        )
        .map_err(storage)?;
        Ok(out)
    })();
    conn.pragma_update(None, "secure_delete", "FAST").map_err(storage)?;
    result
}

pub(crate) fn lift(conn: &Connection, ws: &str, kind: IdentityKind, value: &str) -> Result<bool> {
    let hash = erase::identity_hash(ws, kind, value);
    let n = conn
        .execute("DELETE FROM suppressions WHERE workspace_id = ?1 AND identity_hash = ?2", params![ws, hash])
        .map_err(storage)?;
    Ok(n > 0)
}

fn kind_of(name: &str) -> IdentityKind {
    IdentityKind::ALL.into_iter().find(|k| k.field() == name).unwrap_or(IdentityKind::ExternalId)
}

pub(crate) fn list(conn: &Connection, ws: &str, page: &PageRequest) -> Result<Page<Erasure>> {
    let after = page.after.clone().unwrap_or_default();
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, contact_id, identities, actor, erased_at, counts FROM erasures
             WHERE workspace_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )
        .map_err(storage)?;
    let items = stmt
        .query_map(params![ws, after, page.limit as i64 + 1], |r| {
            let identities: String = r.get(2)?;
            let counts: String = r.get(5)?;
            let pairs: Vec<(String, String)> = serde_json::from_str(&identities).unwrap_or_default();
            let counts: serde_json::Value = serde_json::from_str(&counts).unwrap_or_default();
            let n = |k: &str| counts[k].as_u64().unwrap_or(0);
            Ok(Erasure {
                id: r.get(0)?,
                contact_id: r.get(1)?,
                identities: pairs.into_iter().map(|(k, h)| (kind_of(&k), h)).collect(),
                actor: r.get(3)?,
                erased_at: time(r, 4)?,
                events: n("events"),
                messages: n("messages"),
                conversations: n("conversations"),
                jobs: n("jobs"),
                dedupe: n("dedupe"),
            })
        })
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    Ok(Page::from_overfetch(items, page.limit, |e| e.id.clone()))
}
