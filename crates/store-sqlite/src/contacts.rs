//! Contacts: load, apply the core merge, write; identity conflicts mapped
//! from the unique indexes.

use convene_core::contact::{
    Contact, ContactChanges, ContactFilter, ContactState, SubscriptionChange, SubscriptionStatus,
};
use convene_core::field::Entity;
use convene_core::identity::IdentityKind;
use convene_core::ids::now;
use convene_core::page::{Page, PageRequest};
use convene_core::{Error, Result};
use rusqlite::{Connection, Row, params};

use crate::conn::{WriteCtx, storage};
use crate::rows::{insert_inferred_fields, one, t, time};

/// Columns read by [`contact_from_row`].
pub(crate) const COLUMNS: &str =
    "id, email, mobile, external_id, traits, subscription_status, company_id, created_at, updated_at, anonymous_id";

pub(crate) fn contact_from_row(row: &Row) -> rusqlite::Result<Contact> {
    let traits: String = row.get(4)?;
    let status: String = row.get(5)?;
    Ok(Contact {
        id: row.get(0)?,
        state: ContactState {
            email: row.get(1)?,
            mobile: row.get(2)?,
            external_id: row.get(3)?,
            anonymous_id: row.get(9)?,
            traits: serde_json::from_str(&traits).unwrap_or_default(),
            subscription_status: SubscriptionStatus::parse(&status).unwrap_or_default(),
        },
        company_id: row.get(6)?,
        created_at: time(row, 7)?,
        updated_at: time(row, 8)?,
    })
}

/// Maps a unique-index violation to a conflict naming the identity.
pub(crate) fn write_error(e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, Some(message)) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
    {
        for kind in IdentityKind::ALL {
            if message.contains(&format!("contacts.{}", kind.field())) {
                return Error::Conflict { entity: "contact", field: kind.field().to_string(), row: None };
            }
        }
    }
    storage(e)
}

pub(crate) fn get(conn: &Connection, ws: &str, id: i64) -> Result<Contact> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM contacts WHERE workspace_id = ?1 AND id = ?2"))
        .map_err(storage)?;
    one(stmt.query_row(params![ws, id], contact_from_row))?.ok_or(Error::NotFound { entity: "contact" })
}

/// Inserts a contact row; returns its id. The one INSERT of contacts (the
/// native API and the ingest applier both use it).
pub(crate) fn insert_row(
    conn: &Connection,
    ws: &str,
    state: &ContactState,
    at: &chrono::DateTime<chrono::Utc>,
) -> Result<i64> {
    convene_core::erase::check_not_suppressed(ws, state, |h| crate::erase::is_suppressed(conn, ws, h))?;
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO contacts (workspace_id, email, mobile, external_id, anonymous_id, traits, subscription_status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        )
        .map_err(storage)?;
    stmt.execute(params![
        ws,
        state.email,
        state.mobile,
        state.external_id,
        state.anonymous_id,
        serde_json::to_string(&state.traits).unwrap_or_else(|_| "{}".into()),
        state.subscription_status.as_str(),
        t(at)
    ])
    .map_err(write_error)?;
    Ok(conn.last_insert_rowid())
}

/// Writes a contact's state. The identity columns are left out when they
/// keep their values: SQLite rewrites every index on a column named in SET,
/// changed or not, and the four unique identity indexes tripled the pages
/// (and WAL) written by a trait-only update.
pub(crate) fn update_row(
    conn: &Connection,
    ws: &str,
    id: i64,
    state: &ContactState,
    identities_changed: bool,
    at: &chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let traits = serde_json::to_string(&state.traits).unwrap_or_else(|_| "{}".into());
    if !identities_changed {
        let mut stmt = conn
            .prepare_cached(
                "UPDATE contacts SET traits = ?3, subscription_status = ?4, updated_at = ?5 WHERE workspace_id = ?1 AND id = ?2",
            )
            .map_err(storage)?;
        stmt.execute(params![ws, id, traits, state.subscription_status.as_str(), t(at)]).map_err(write_error)?;
        return Ok(());
    }
    convene_core::erase::check_not_suppressed(ws, state, |h| crate::erase::is_suppressed(conn, ws, h))?;
    let mut stmt = conn
        .prepare_cached(
            "UPDATE contacts SET email = ?3, mobile = ?4, external_id = ?5, anonymous_id = ?6, traits = ?7,
             subscription_status = ?8, updated_at = ?9 WHERE workspace_id = ?1 AND id = ?2",
        )
        .map_err(storage)?;
    stmt.execute(params![
        ws,
        id,
        state.email,
        state.mobile,
        state.external_id,
        state.anonymous_id,
        traits,
        state.subscription_status.as_str(),
        t(at)
    ])
    .map_err(write_error)?;
    Ok(())
}

/// The four identities, to tell whether a write changed any.
fn identities(state: &ContactState) -> [Option<String>; 4] {
    [state.email.clone(), state.mobile.clone(), state.external_id.clone(), state.anonymous_id.clone()]
}

/// Checks the company a write links, if any.
fn check_company(conn: &Connection, ws: &str, changes: &ContactChanges) -> Result<()> {
    if let Some(Some(company)) = changes.company
        && !crate::companies::exists(conn, ws, company)?
    {
        return Err(Error::validation("company_id", format!("company {company} does not exist in this workspace")));
    }
    Ok(())
}

fn set_company(conn: &Connection, ws: &str, id: i64, company: Option<i64>) -> Result<()> {
    conn.prepare_cached("UPDATE contacts SET company_id = ?3 WHERE workspace_id = ?1 AND id = ?2")
        .and_then(|mut s| s.execute(params![ws, id, company]))
        .map_err(storage)?;
    Ok(())
}

pub(crate) fn create(ctx: &mut WriteCtx, ws: &str, changes: &ContactChanges) -> Result<Contact> {
    check_company(&ctx.conn, ws, changes)?;
    let mut state = ContactState::default();
    let outcome = changes.apply(&mut state, ctx.registry(ws, Entity::Contact)?)?;
    let at = now();
    let id = insert_row(&ctx.conn, ws, &state, &at)?;
    insert_inferred_fields(&ctx.conn, ws, Entity::Contact, &outcome.new_fields)?;
    let company_id = changes.company.flatten();
    if company_id.is_some() {
        set_company(&ctx.conn, ws, id, company_id)?;
    }
    if let Some(change) = changes.subscription_change(None, state.subscription_status, at) {
        insert_subscription_change(&ctx.conn, ws, id, &change)?;
    }
    Ok(Contact { id, state, company_id, created_at: at, updated_at: at })
}

/// Applies a write to a contact; one that leaves it as it was (core's
/// [`ContactChanges::apply_to`]) writes nothing and keeps `updated_at`.
pub(crate) fn update(ctx: &mut WriteCtx, ws: &str, id: i64, changes: &ContactChanges) -> Result<Contact> {
    let mut contact = get(&ctx.conn, ws, id)?;
    check_company(&ctx.conn, ws, changes)?;
    let before = identities(&contact.state);
    let status_before = contact.state.subscription_status;
    let outcome = changes.apply_to(&mut contact, ctx.registry(ws, Entity::Contact)?, now())?;
    if outcome.changed {
        let identities_changed = identities(&contact.state) != before;
        update_row(&ctx.conn, ws, id, &contact.state, identities_changed, &contact.updated_at)?;
        if changes.company.is_some() {
            set_company(&ctx.conn, ws, id, contact.company_id)?;
        }
    }
    insert_inferred_fields(&ctx.conn, ws, Entity::Contact, &outcome.new_fields)?;
    if let Some(change) =
        changes.subscription_change(Some(status_before), contact.state.subscription_status, contact.updated_at)
    {
        insert_subscription_change(&ctx.conn, ws, id, &change)?;
    }
    Ok(contact)
}

/// Records one subscription change.
pub(crate) fn insert_subscription_change(
    conn: &Connection,
    ws: &str,
    contact_id: i64,
    change: &SubscriptionChange,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO subscription_changes (workspace_id, contact_id, status, previous, source, changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            ws,
            contact_id,
            change.status.as_str(),
            change.previous.map(SubscriptionStatus::as_str),
            change.source,
            t(&change.changed_at)
        ])
    })
    .map_err(storage)?;
    Ok(())
}

/// A contact's subscription changes, oldest first.
pub(crate) fn subscription_history(
    conn: &Connection,
    ws: &str,
    contact_id: i64,
    page: &PageRequest,
) -> Result<Page<SubscriptionChange>> {
    get(conn, ws, contact_id)?;
    let after = page.after_i64()?.unwrap_or(0);
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, status, previous, source, changed_at FROM subscription_changes
             WHERE workspace_id = ?1 AND contact_id = ?2 AND id > ?3 ORDER BY id LIMIT ?4",
        )
        .map_err(storage)?;
    let rows = stmt
        .query_map(params![ws, contact_id, after, page.limit as i64 + 1], |r| {
            let status: String = r.get(1)?;
            let previous: Option<String> = r.get(2)?;
            Ok((
                r.get::<_, i64>(0)?,
                SubscriptionChange {
                    status: SubscriptionStatus::parse(&status).unwrap_or_default(),
                    previous: previous.as_deref().and_then(SubscriptionStatus::parse),
                    source: r.get(3)?,
                    changed_at: time(r, 4)?,
                },
            ))
        })
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    let page = Page::from_overfetch(rows, page.limit, |(id, _)| id.to_string());
    Ok(page.map(|(_, change)| change))
}

pub(crate) fn delete(conn: &Connection, ws: &str, id: i64) -> Result<()> {
    let n =
        conn.execute("DELETE FROM contacts WHERE workspace_id = ?1 AND id = ?2", params![ws, id]).map_err(storage)?;
    if n == 0 {
        return Err(Error::NotFound { entity: "contact" });
    }
    Ok(())
}

pub(crate) fn list(conn: &Connection, ws: &str, filter: &ContactFilter, page: &PageRequest) -> Result<Page<Contact>> {
    let after = page.after_i64()?.unwrap_or(0);
    // Only the filters given appear in the SQL, so the planner picks the
    // identity's unique index or the company index.
    let mut args: Vec<rusqlite::types::Value> = vec![ws.to_string().into(), after.into()];
    let mut sql = match &filter.search {
        // The ids come from a range on each identity's unique index; the
        // rows are then read by id (`+workspace_id` keeps the planner from
        // scanning the workspace in id order instead). Emails are stored
        // lower-cased.
        Some(prefix) => {
            let lower = prefix.to_lowercase();
            for bound in [lower.clone(), format!("{lower}\u{10FFFF}"), prefix.clone(), format!("{prefix}\u{10FFFF}")] {
                args.push(bound.into());
            }
            format!(
                "SELECT {COLUMNS} FROM contacts WHERE +workspace_id = ?1 AND id > ?2 AND id IN (\
                 SELECT id FROM contacts WHERE workspace_id = ?1 AND email >= ?3 AND email < ?4 \
                 UNION SELECT id FROM contacts WHERE workspace_id = ?1 AND mobile >= ?5 AND mobile < ?6 \
                 UNION SELECT id FROM contacts WHERE workspace_id = ?1 AND external_id >= ?5 AND external_id < ?6)"
            )
        }
        None => format!("SELECT {COLUMNS} FROM contacts WHERE workspace_id = ?1 AND id > ?2"),
    };
    if let Some((kind, value)) = &filter.identity {
        args.push(value.clone().into());
        sql.push_str(&format!(" AND {} = ?{}", kind.field(), args.len()));
    }
    if let Some(company) = filter.company_id {
        args.push(company.into());
        sql.push_str(&format!(" AND company_id = ?{}", args.len()));
    }
    if let Some(tag) = &filter.tag {
        args.push(tag.clone().into());
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM json_each(contacts.traits, '$.tags') WHERE value = ?{})",
            args.len()
        ));
    }
    if let Some((name, value)) = &filter.field {
        args.push(name.clone().into());
        args.push(value.clone().into());
        let (k, v) = (args.len() - 1, args.len());
        // Any trait name (json_each needs no path syntax); JSON's text for
        // numbers and booleans, strings as they are.
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM json_each(contacts.traits) WHERE key = ?{k} AND \
             (CASE type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(atom AS TEXT) END) = ?{v})"
        ));
    }
    args.push((page.limit as i64 + 1).into());
    sql.push_str(&format!(" ORDER BY id LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql).map_err(storage)?;
    let items = stmt
        .query_map(rusqlite::params_from_iter(args), contact_from_row)
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    Ok(Page::from_overfetch(items, page.limit, |c| c.id.to_string()))
}
