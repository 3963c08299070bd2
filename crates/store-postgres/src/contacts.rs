//! Contacts: the one INSERT and the one UPDATE of contact rows (set-based,
//! used by the native API with one row and by the applier with many), and
//! the native API's load → core merge → write transactions.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use convene_core::contact::{
    Contact, ContactChanges, ContactFilter, ContactState, SubscriptionChange, SubscriptionStatus,
};
use convene_core::field::Entity;
use convene_core::identity::IdentityKind;
use convene_core::ids::now;
use convene_core::page::{Page, PageRequest};
use convene_core::{Error, Result};
use deadpool_postgres::{ClientWrapper, Pool};
use tokio_postgres::Row;

use crate::db::{Tx, conn, execute, query, query_opt};
use crate::rows::{self, insert_inferred_fields, load_registry, object};

/// Columns read by [`contact_from_row`].
pub(crate) const COLUMNS: &str =
    "id, email, mobile, external_id, anonymous_id, traits, subscription_status, company_id, created_at, updated_at";

pub(crate) fn contact_from_row(row: &Row) -> Result<Contact> {
    let status: String = rows::get(row, "subscription_status")?;
    Ok(Contact {
        id: rows::get(row, "id")?,
        state: ContactState {
            email: rows::get(row, "email")?,
            mobile: rows::get(row, "mobile")?,
            external_id: rows::get(row, "external_id")?,
            anonymous_id: rows::get(row, "anonymous_id")?,
            traits: object(row, "traits")?,
            subscription_status: SubscriptionStatus::parse(&status).unwrap_or_default(),
        },
        company_id: rows::get(row, "company_id")?,
        created_at: rows::get(row, "created_at")?,
        updated_at: rows::get(row, "updated_at")?,
    })
}

/// A contact row to write: its id (reserved from the sequence for new
/// rows), state, and the latest event time seen in this transaction.
pub(crate) struct RowWrite<'a> {
    pub id: i64,
    pub state: &'a ContactState,
    pub last_seen: Option<DateTime<Utc>>,
}

/// Column arrays of a set of row writes, bound to `unnest`.
struct Columns<'a> {
    ids: Vec<i64>,
    emails: Vec<Option<&'a str>>,
    mobiles: Vec<Option<&'a str>>,
    external_ids: Vec<Option<&'a str>>,
    anonymous_ids: Vec<Option<&'a str>>,
    traits: Vec<String>,
    statuses: Vec<&'static str>,
    seen: Vec<Option<DateTime<Utc>>>,
}

impl<'a> Columns<'a> {
    fn of(rows: &[RowWrite<'a>]) -> Self {
        Columns {
            ids: rows.iter().map(|r| r.id).collect(),
            emails: rows.iter().map(|r| r.state.email.as_deref()).collect(),
            mobiles: rows.iter().map(|r| r.state.mobile.as_deref()).collect(),
            external_ids: rows.iter().map(|r| r.state.external_id.as_deref()).collect(),
            anonymous_ids: rows.iter().map(|r| r.state.anonymous_id.as_deref()).collect(),
            traits: rows
                .iter()
                .map(|r| serde_json::to_string(&r.state.traits).unwrap_or_else(|_| "{}".into()))
                .collect(),
            statuses: rows.iter().map(|r| r.state.subscription_status.as_str()).collect(),
            seen: rows.iter().map(|r| r.last_seen).collect(),
        }
    }
}

/// Inserts contact rows with their reserved ids. The one INSERT of contacts.
pub(crate) async fn insert_rows(cw: &ClientWrapper, ws: &str, rows: &[RowWrite<'_>], at: DateTime<Utc>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let states: Vec<&ContactState> = rows.iter().map(|r| r.state).collect();
    crate::erase::check_states(cw, ws, &states).await?;
    let c = Columns::of(rows);
    execute(
        cw,
        "INSERT INTO contacts (workspace_id, id, email, mobile, external_id, anonymous_id, traits, subscription_status,
                               last_seen_at, created_at, updated_at)
         SELECT $1, v.id, v.email, v.mobile, v.external_id, v.anonymous_id, v.traits::jsonb, v.status, v.seen, $10, $10
         FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])
              AS v(id, email, mobile, external_id, anonymous_id, traits, status, seen)",
        &[&ws, &c.ids, &c.emails, &c.mobiles, &c.external_ids, &c.anonymous_ids, &c.traits, &c.statuses, &c.seen, &at],
    )
    .await?;
    Ok(())
}

/// Writes contacts' states (and moves `last_seen_at` forward). The one
/// UPDATE of contact rows.
pub(crate) async fn update_rows(cw: &ClientWrapper, ws: &str, rows: &[RowWrite<'_>], at: DateTime<Utc>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let states: Vec<&ContactState> = rows.iter().map(|r| r.state).collect();
    crate::erase::check_states(cw, ws, &states).await?;
    let c = Columns::of(rows);
    execute(
        cw,
        "UPDATE contacts c SET email = v.email, mobile = v.mobile, external_id = v.external_id,
                anonymous_id = v.anonymous_id, traits = v.traits::jsonb, subscription_status = v.status,
                last_seen_at = GREATEST(c.last_seen_at, v.seen), updated_at = $10
         FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])
              AS v(id, email, mobile, external_id, anonymous_id, traits, status, seen)
         WHERE c.workspace_id = $1 AND c.id = v.id",
        &[&ws, &c.ids, &c.emails, &c.mobiles, &c.external_ids, &c.anonymous_ids, &c.traits, &c.statuses, &c.seen, &at],
    )
    .await?;
    Ok(())
}

/// Moves `last_seen_at` forward on contacts whose state did not change.
pub(crate) async fn touch_seen(cw: &ClientWrapper, ws: &str, seen: &HashMap<i64, DateTime<Utc>>) -> Result<()> {
    if seen.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = seen.keys().copied().collect();
    let times: Vec<DateTime<Utc>> = ids.iter().filter_map(|id| seen.get(id).copied()).collect();
    execute(
        cw,
        "UPDATE contacts c SET last_seen_at = v.seen FROM unnest($2::bigint[], $3::timestamptz[]) AS v(id, seen)
         WHERE c.workspace_id = $1 AND c.id = v.id AND (c.last_seen_at IS NULL OR c.last_seen_at < v.seen)",
        &[&ws, &ids, &times],
    )
    .await?;
    Ok(())
}

/// Reserves `n` contact ids from the sequence.
pub(crate) async fn reserve_ids(cw: &ClientWrapper, n: usize) -> Result<Vec<i64>> {
    let rows = query(
        cw,
        "SELECT nextval(pg_get_serial_sequence('contacts', 'id')) FROM generate_series(1::bigint, $1::bigint)",
        &[&(n as i64)],
    )
    .await?;
    rows.iter().map(|r| r.try_get::<_, i64>(0).map_err(crate::error::db)).collect()
}

pub(crate) async fn load(cw: &ClientWrapper, ws: &str, id: i64, lock: bool) -> Result<Contact> {
    let sql = format!(
        "SELECT {COLUMNS} FROM contacts WHERE workspace_id = $1 AND id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = query_opt(cw, &sql, &[&ws, &id]).await?;
    row.as_ref().map(contact_from_row).transpose()?.ok_or(Error::NotFound { entity: "contact" })
}

pub(crate) async fn get(pool: &Pool, ws: &str, id: i64) -> Result<Contact> {
    let c = conn(pool).await?;
    load(&c, ws, id, false).await
}

/// Checks (and locks against deletion) the company a write links, if any.
async fn check_company(cw: &ClientWrapper, ws: &str, changes: &ContactChanges) -> Result<()> {
    if let Some(Some(company)) = changes.company {
        let found =
            query_opt(cw, "SELECT 1 FROM companies WHERE workspace_id = $1 AND id = $2 FOR SHARE", &[&ws, &company])
                .await?;
        if found.is_none() {
            return Err(Error::validation("company_id", format!("company {company} does not exist in this workspace")));
        }
    }
    Ok(())
}

async fn set_company(cw: &ClientWrapper, ws: &str, id: i64, company: Option<i64>) -> Result<()> {
    execute(cw, "UPDATE contacts SET company_id = $3 WHERE workspace_id = $1 AND id = $2", &[&ws, &id, &company])
        .await?;
    Ok(())
}

pub(crate) async fn create(pool: &Pool, ws: &str, changes: &ContactChanges) -> Result<Contact> {
    let tx = Tx::begin(pool).await?;
    let result = async {
        check_company(tx.c(), ws, changes).await?;
        let mut registry = load_registry(tx.c(), ws, Entity::Contact).await?;
        let mut state = ContactState::default();
        let outcome = changes.apply(&mut state, &mut registry)?;
        let at = now();
        let id =
            reserve_ids(tx.c(), 1).await?.first().copied().ok_or_else(|| Error::Internal("no id reserved".into()))?;
        insert_rows(tx.c(), ws, &[RowWrite { id, state: &state, last_seen: None }], at).await?;
        insert_inferred_fields(tx.c(), ws, Entity::Contact, &outcome.new_fields).await?;
        let company_id = changes.company.flatten();
        if company_id.is_some() {
            set_company(tx.c(), ws, id, company_id).await?;
        }
        if let Some(change) = changes.subscription_change(None, state.subscription_status, at) {
            insert_subscription_changes(tx.c(), ws, &[(id, &change)]).await?;
        }
        Ok(Contact { id, state, company_id, created_at: at, updated_at: at })
    }
    .await;
    tx.finish(result).await
}

pub(crate) async fn update(pool: &Pool, ws: &str, id: i64, changes: &ContactChanges) -> Result<Contact> {
    let tx = Tx::begin(pool).await?;
    let result = async {
        let mut contact = load(tx.c(), ws, id, true).await?;
        check_company(tx.c(), ws, changes).await?;
        let status_before = contact.state.subscription_status;
        let mut registry = load_registry(tx.c(), ws, Entity::Contact).await?;
        // A write that leaves the contact as it was writes nothing (core decides).
        let outcome = changes.apply_to(&mut contact, &mut registry, now())?;
        if outcome.changed {
            let row = RowWrite { id, state: &contact.state, last_seen: None };
            update_rows(tx.c(), ws, &[row], contact.updated_at).await?;
            if changes.company.is_some() {
                set_company(tx.c(), ws, id, contact.company_id).await?;
            }
        }
        insert_inferred_fields(tx.c(), ws, Entity::Contact, &outcome.new_fields).await?;
        if let Some(change) =
            changes.subscription_change(Some(status_before), contact.state.subscription_status, contact.updated_at)
        {
            insert_subscription_changes(tx.c(), ws, &[(id, &change)]).await?;
        }
        Ok(contact)
    }
    .await;
    tx.finish(result).await
}

/// Records subscription changes of one workspace. The one INSERT of them.
pub(crate) async fn insert_subscription_changes(
    cw: &ClientWrapper,
    ws: &str,
    changes: &[(i64, &SubscriptionChange)],
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let contacts: Vec<i64> = changes.iter().map(|(c, _)| *c).collect();
    let statuses: Vec<&str> = changes.iter().map(|(_, s)| s.status.as_str()).collect();
    let previous: Vec<Option<&str>> = changes.iter().map(|(_, s)| s.previous.map(SubscriptionStatus::as_str)).collect();
    let sources: Vec<&str> = changes.iter().map(|(_, s)| s.source.as_str()).collect();
    let times: Vec<DateTime<Utc>> = changes.iter().map(|(_, s)| s.changed_at).collect();
    execute(
        cw,
        "INSERT INTO subscription_changes (workspace_id, contact_id, status, previous, source, changed_at)
         SELECT $1, v.c, v.s, v.p, v.src, v.t
         FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) WITH ORDINALITY
              AS v(c, s, p, src, t, o)
         ORDER BY v.o",
        &[&ws, &contacts, &statuses, &previous, &sources, &times],
    )
    .await?;
    Ok(())
}

/// A contact's subscription changes, oldest first.
pub(crate) async fn subscription_history(
    pool: &Pool,
    ws: &str,
    contact_id: i64,
    page: &PageRequest,
) -> Result<Page<SubscriptionChange>> {
    let c = conn(pool).await?;
    load(&c, ws, contact_id, false).await?;
    let after = page.after_i64()?.unwrap_or(0);
    let rows = query(
        &c,
        "SELECT id, status, previous, source, changed_at FROM subscription_changes
         WHERE workspace_id = $1 AND contact_id = $2 AND id > $3 ORDER BY id LIMIT $4",
        &[&ws, &contact_id, &after, &(page.limit as i64 + 1)],
    )
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let status: String = rows::get(row, "status")?;
        let previous: Option<String> = rows::get(row, "previous")?;
        items.push((
            rows::get::<i64>(row, "id")?,
            SubscriptionChange {
                status: SubscriptionStatus::parse(&status).unwrap_or_default(),
                previous: previous.as_deref().and_then(SubscriptionStatus::parse),
                source: rows::get(row, "source")?,
                changed_at: rows::get(row, "changed_at")?,
            },
        ));
    }
    Ok(Page::from_overfetch(items, page.limit, |(id, _)| id.to_string()).map(|(_, change)| change))
}

pub(crate) async fn delete(pool: &Pool, ws: &str, id: i64) -> Result<()> {
    let c = conn(pool).await?;
    let n = execute(&c, "DELETE FROM contacts WHERE workspace_id = $1 AND id = $2", &[&ws, &id]).await?;
    if n == 0 {
        return Err(Error::NotFound { entity: "contact" });
    }
    Ok(())
}

pub(crate) async fn list(pool: &Pool, ws: &str, filter: &ContactFilter, page: &PageRequest) -> Result<Page<Contact>> {
    let after = page.after_i64()?.unwrap_or(0);
    let limit = page.limit as i64 + 1;
    let c = conn(pool).await?;
    // Only the filters given appear in the SQL, so the planner picks the
    // identity's unique index or the company index.
    let mut sql = format!("SELECT {COLUMNS} FROM contacts WHERE workspace_id = $1 AND id > $2");
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&ws, &after];
    if let Some((kind, value)) = &filter.identity {
        let column = identity_column(*kind);
        params.push(value);
        sql.push_str(&format!(" AND {column} IS NOT NULL AND {column} = ${}", params.len()));
    }
    if let Some(company) = &filter.company_id {
        params.push(company);
        sql.push_str(&format!(" AND company_id IS NOT NULL AND company_id = ${}", params.len()));
    }
    let prefixes = filter
        .search
        .as_ref()
        .map(|p| (format!("{}%", escape_like(&p.to_lowercase())), format!("{}%", escape_like(p))));
    if let Some((lower, exact)) = &prefixes {
        params.push(lower);
        params.push(exact);
        let (l, e) = (params.len() - 1, params.len());
        sql.push_str(&format!(" AND (email LIKE ${l} OR mobile LIKE ${e} OR external_id LIKE ${e})"));
    }
    if let Some(tag) = &filter.tag {
        params.push(tag);
        sql.push_str(&format!(" AND traits->'tags' ? ${}", params.len()));
    }
    if let Some((name, value)) = &filter.field {
        params.push(name);
        params.push(value);
        let (k, v) = (params.len() - 1, params.len());
        // JSON's text for numbers and booleans; strings as they are.
        sql.push_str(&format!(" AND traits->>${k} = ${v}"));
    }
    params.push(&limit);
    sql.push_str(&format!(" ORDER BY id LIMIT ${}", params.len()));
    let rows = query(&c, &sql, &params).await?;
    let items = rows.iter().map(contact_from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |c| c.id.to_string()))
}

/// `text` with LIKE's wildcards escaped (the default escape is `\`).
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// The column of an identity (a fixed name, never user input).
pub(crate) fn identity_column(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::Email => "email",
        IdentityKind::Mobile => "mobile",
        IdentityKind::ExternalId => "external_id",
        IdentityKind::AnonymousId => "anonymous_id",
    }
}
