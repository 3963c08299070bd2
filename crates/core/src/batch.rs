//! Batch upserts with per-row results: up to [`MAX_BATCH_ROWS`] contacts or
//! companies created or updated in one transaction, each row reported as
//! created, updated, unchanged (found, and left as it was: nothing
//! written) or failed with its reason.
//!
//! The decisions (find by identity or external id, create or update, which
//! failures are the row's) are made here, once, against the small
//! transaction traits each store implements ([`crate::ingest::IngestTx`] for
//! contacts — the same one the ingest applier uses — and [`CompanyTx`]).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::company::{Company, CompanyChanges};
use crate::contact::{Contact, ContactChanges};
use crate::error::{Error, Result};
use crate::field::{FieldRegistry, FieldType};
use crate::ingest::{IngestTx, Lookups, Upserted, upsert_contact};

/// Most rows one batch upsert takes.
pub const MAX_BATCH_ROWS: usize = 1000;

/// How a batch is run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOptions {
    /// Run everything, report, then roll back: nothing is written.
    pub dry_run: bool,
    /// One failed row rolls the whole batch back.
    pub all_or_nothing: bool,
}

impl BatchOptions {
    /// Whether a batch with this outcome is committed: not a dry run, and
    /// no failed row when the batch is all or nothing.
    pub fn keeps<T>(&self, outcome: &BatchOutcome<T>) -> bool {
        !(self.dry_run || self.all_or_nothing && outcome.failed() > 0)
    }
}

/// One contact row: find it by `lookups` (in order), create it when
/// missing (unless `create` is false: then the row fails as not found), and
/// apply `changes`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactUpsert {
    /// 0-based row in the request.
    pub row: usize,
    /// The identities that find the contact, in priority order.
    pub lookups: Lookups,
    /// The write.
    pub changes: ContactChanges,
    /// Whether a missing contact is created.
    pub create: bool,
}

/// One company row, found by its external id.
#[derive(Debug, Clone, PartialEq)]
pub struct CompanyUpsert {
    /// 0-based row in the request.
    pub row: usize,
    /// The integrator's id.
    pub external_id: String,
    /// The write (its `external_id` is ignored).
    pub changes: CompanyChanges,
}

/// What happened to a row that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RowStatus {
    /// A new object.
    Created,
    /// An existing object changed.
    Updated,
    /// An existing object the write left as it was: nothing was written
    /// (its `updated_at` is kept). Vendor dialects that know only created
    /// and updated report it as updated.
    Unchanged,
}

impl RowStatus {
    /// The native name: `created`, `updated` or `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Created => "created",
            RowStatus::Updated => "updated",
            RowStatus::Unchanged => "unchanged",
        }
    }

    /// The status of an upsert: created, else updated when `changed`, else unchanged.
    pub fn of(created: bool, changed: bool) -> Self {
        match (created, changed) {
            (true, _) => RowStatus::Created,
            (false, true) => RowStatus::Updated,
            (false, false) => RowStatus::Unchanged,
        }
    }
}

/// One row's result.
#[derive(Debug)]
pub struct RowResult<T> {
    /// 0-based row in the request.
    pub row: usize,
    /// Created or updated with the object after the write, or the reason it failed.
    pub outcome: Result<(RowStatus, T)>,
}

/// A batch's results, in row order.
#[derive(Debug)]
pub struct BatchOutcome<T> {
    /// One per row.
    pub rows: Vec<RowResult<T>>,
    /// False when nothing was kept (a dry run, or an all-or-nothing batch
    /// with a failed row).
    pub written: bool,
}

impl<T> BatchOutcome<T> {
    /// Rows with this status.
    pub fn count(&self, status: RowStatus) -> usize {
        self.rows.iter().filter(|r| matches!(&r.outcome, Ok((s, _)) if *s == status)).count()
    }

    /// Rows that failed.
    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|r| r.outcome.is_err()).count()
    }

    /// The first failed row, its error carrying the row index.
    pub fn into_first_failure(self) -> Option<Error> {
        self.rows.into_iter().find_map(|r| r.outcome.err().map(|e| e.at_row(r.row)))
    }

    /// Adds rows that failed before reaching the store (e.g. invalid input)
    /// and puts every row back in request order.
    pub fn with_failures(mut self, failures: Vec<(usize, Error)>) -> Self {
        self.rows.extend(failures.into_iter().map(|(row, e)| RowResult { row, outcome: Err(e) }));
        self.rows.sort_by_key(|r| r.row);
        self
    }
}

/// True for failures that are not a row's fault: the store abandons the
/// whole batch and reports the error.
pub fn is_storage_fault(e: &Error) -> bool {
    matches!(e, Error::Storage(_) | Error::Internal(_) | Error::Unavailable { .. })
}

/// Refuses a batch over [`MAX_BATCH_ROWS`] or empty, naming `field`.
pub fn check_batch_size(len: usize, field: &str) -> Result<()> {
    if len == 0 {
        return Err(Error::validation(field, format!("{field} must hold at least one row")));
    }
    if len > MAX_BATCH_ROWS {
        return Err(Error::validation(field, format!("{field} holds {len} rows; the limit is {MAX_BATCH_ROWS}")));
    }
    Ok(())
}

/// Per contact row: created or updated with the contact's id and state, or why it failed.
pub type ContactRowIds = Vec<(usize, Result<(RowStatus, Upserted)>)>;

/// Upserts contact rows in the caller's transaction. Each row is checked
/// before its first write, so a failed row leaves nothing behind. Returns
/// the contact's id and state per successful row.
pub fn upsert_contacts(tx: &mut dyn IngestTx, ws: &str, rows: &[ContactUpsert]) -> Result<ContactRowIds> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let outcome = match upsert_contact(tx, ws, &row.lookups, &row.changes, row.create) {
            Ok(u) => Ok((RowStatus::of(u.created, u.changed), u)),
            Err(e) if is_storage_fault(&e) => return Err(e),
            Err(e) => Err(e),
        };
        out.push((row.row, outcome));
    }
    Ok(out)
}

/// What [`upsert_companies`] and the company CRUD need from a store's transaction.
pub trait CompanyTx {
    /// The company with this external id.
    fn find_company(&mut self, ws: &str, external_id: &str) -> Result<Option<Company>>;
    /// The field registry of companies.
    fn company_registry(&mut self, ws: &str) -> Result<&mut FieldRegistry>;
    /// Records fields created on the fly.
    fn record_company_fields(&mut self, ws: &str, fields: &[(String, FieldType)]) -> Result<()>;
    /// Inserts a company (its `id` is ignored); returns its id.
    fn insert_company(&mut self, ws: &str, company: &Company) -> Result<i64>;
    /// Writes a company's new state.
    fn update_company(&mut self, ws: &str, company: &Company) -> Result<()>;
}

/// Creates a company, or changes the one with the same external id; one
/// the write leaves as it was is not written (status `Unchanged`, its
/// `updated_at` kept).
pub fn upsert_company(
    tx: &mut dyn CompanyTx,
    ws: &str,
    external_id: &str,
    changes: &CompanyChanges,
    at: DateTime<Utc>,
) -> Result<(RowStatus, Company)> {
    let existing = tx.find_company(ws, external_id)?;
    let created = existing.is_none();
    let mut company = existing.unwrap_or_else(|| Company {
        id: 0,
        external_id: external_id.to_string(),
        domain: None,
        traits: Default::default(),
        created_at: at,
        updated_at: at,
    });
    let changes = CompanyChanges { external_id: None, ..changes.clone() };
    let outcome = changes.apply(&mut company, tx.company_registry(ws)?)?;
    if created {
        company.id = tx.insert_company(ws, &company)?;
    } else if outcome.changed {
        company.updated_at = at;
        tx.update_company(ws, &company)?;
    }
    tx.record_company_fields(ws, &outcome.new_fields)?;
    Ok((RowStatus::of(created, outcome.changed), company))
}

/// Upserts company rows in the caller's transaction.
pub fn upsert_companies(
    tx: &mut dyn CompanyTx,
    ws: &str,
    rows: &[CompanyUpsert],
    at: DateTime<Utc>,
) -> Result<Vec<RowResult<Company>>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let outcome = match upsert_company(tx, ws, &row.external_id, &row.changes, at) {
            Err(e) if is_storage_fault(&e) => return Err(e),
            other => other,
        };
        out.push(RowResult { row: row.row, outcome });
    }
    Ok(out)
}

/// Finds the rows of a batch that name the same key twice: returns the
/// first repeated key with both rows.
pub fn first_duplicate<'a>(keys: impl IntoIterator<Item = (usize, &'a str)>) -> Option<(String, usize, usize)> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (row, key) in keys {
        if let Some(first) = seen.insert(key, row) {
            return Some((key.to_string(), first, row));
        }
    }
    None
}

/// Refuses a bulk update (reps, calls) of more than `limit` rows (413), or
/// one naming the same `field` value twice (the result would depend on the
/// order of the rows), naming the second row.
pub fn check_bulk<'a>(keys: impl ExactSizeIterator<Item = &'a str>, field: &str, limit: usize) -> Result<()> {
    if keys.len() > limit {
        return Err(Error::TooManyRows { limit, rows: keys.len() });
    }
    if let Some((key, first, row)) = first_duplicate(keys.enumerate()) {
        return Err(Error::Duplicate {
            field: field.into(),
            message: format!("{field} '{key}' appears in rows {first} and {row}"),
            row: Some(row),
        });
    }
    Ok(())
}

/// A contact row's result as the store reports it.
pub type ContactRow = RowResult<Contact>;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::Duration;
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::contact::{ContactState, SubscriptionChange};
    use crate::event::NewEvent;
    use crate::field::Entity;
    use crate::identity::IdentityKind;
    use crate::rep::{Rep, RepTx, RepWrite, WriteMode, upsert_rep};

    /// An in-memory transaction counting the writes core asks for.
    #[derive(Default)]
    struct Fake {
        contacts: HashMap<i64, ContactState>,
        companies: HashMap<String, Company>,
        reps: HashMap<String, Rep>,
        registries: HashMap<Entity, FieldRegistry>,
        company_registry: FieldRegistry,
        inserts: usize,
        updates: usize,
        subscriptions: Vec<SubscriptionChange>,
    }

    impl IngestTx for Fake {
        fn message_seen(&mut self, _: &str, _: &str) -> Result<bool> {
            Ok(false)
        }
        fn record_message(&mut self, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
        fn find_contact(&mut self, _: &str, kind: IdentityKind, value: &str) -> Result<Option<i64>> {
            Ok(self.contacts.iter().find(|(_, s)| s.identity(kind) == Some(value)).map(|(id, _)| *id))
        }
        fn load_contact(&mut self, _: &str, id: i64) -> Result<ContactState> {
            self.contacts.get(&id).cloned().ok_or(Error::NotFound { entity: "contact" })
        }
        fn field_registry(&mut self, _: &str, entity: Entity) -> Result<&mut FieldRegistry> {
            Ok(self.registries.entry(entity).or_default())
        }
        fn record_fields(&mut self, _: &str, _: Entity, _: &[(String, FieldType)]) -> Result<()> {
            Ok(())
        }
        fn insert_contact(&mut self, _: &str, state: &ContactState) -> Result<i64> {
            self.inserts += 1;
            let id = self.contacts.len() as i64 + 1;
            self.contacts.insert(id, state.clone());
            Ok(id)
        }
        fn update_contact(&mut self, _: &str, id: i64, state: &ContactState, _: bool) -> Result<()> {
            self.updates += 1;
            self.contacts.insert(id, state.clone());
            Ok(())
        }
        fn insert_event(&mut self, _: &str, _: i64, _: &NewEvent) -> Result<()> {
            Err(Error::Internal("not in this test".into()))
        }
        fn merge_contacts(&mut self, _: &str, _: i64, _: i64) -> Result<()> {
            Err(Error::Internal("not in this test".into()))
        }
        fn upsert_company(&mut self, _: &str, _: &str, _: &Map<String, Value>) -> Result<i64> {
            Err(Error::Internal("not in this test".into()))
        }
        fn set_contact_company(&mut self, _: &str, _: i64, _: i64) -> Result<()> {
            Err(Error::Internal("not in this test".into()))
        }
        fn record_subscription(&mut self, _: &str, _: i64, change: &SubscriptionChange) -> Result<()> {
            self.subscriptions.push(change.clone());
            Ok(())
        }
    }

    impl CompanyTx for Fake {
        fn find_company(&mut self, _: &str, external_id: &str) -> Result<Option<Company>> {
            Ok(self.companies.get(external_id).cloned())
        }
        fn company_registry(&mut self, _: &str) -> Result<&mut FieldRegistry> {
            Ok(&mut self.company_registry)
        }
        fn record_company_fields(&mut self, _: &str, _: &[(String, FieldType)]) -> Result<()> {
            Ok(())
        }
        fn insert_company(&mut self, _: &str, company: &Company) -> Result<i64> {
            self.inserts += 1;
            let id = self.companies.len() as i64 + 1;
            self.companies.insert(company.external_id.clone(), Company { id, ..company.clone() });
            Ok(id)
        }
        fn update_company(&mut self, _: &str, company: &Company) -> Result<()> {
            self.updates += 1;
            self.companies.insert(company.external_id.clone(), company.clone());
            Ok(())
        }
    }

    impl RepTx for Fake {
        fn find_rep(&mut self, _: &str, rep_id: &str) -> Result<Option<Rep>> {
            Ok(self.reps.get(rep_id).cloned())
        }
        fn insert_rep(&mut self, _: &str, rep: &Rep) -> Result<()> {
            self.inserts += 1;
            self.reps.insert(rep.rep_id.clone(), rep.clone());
            Ok(())
        }
        fn update_rep(&mut self, _: &str, rep: &Rep) -> Result<()> {
            self.updates += 1;
            self.reps.insert(rep.rep_id.clone(), rep.clone());
            Ok(())
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn an_unchanged_contact_is_not_written() {
        let mut tx = Fake::default();
        let changes = ContactChanges::from_json(obj(json!({
            "email": "A@x.io", "mobile": "+1 555 000 1111", "subscription_status": "PENDING",
            "traits": {"plan": "pro", "seats": 3, "tags": {"add": ["vip"]}}
        })))
        .unwrap();
        let row = ContactUpsert {
            row: 0,
            lookups: vec![(IdentityKind::Email, "a@x.io".into())],
            changes: changes.clone(),
            create: true,
        };
        let statuses = |out: ContactRowIds| -> Vec<RowStatus> {
            out.into_iter().map(|(_, r)| r.map(|(s, _)| s).expect("the row applies")).collect()
        };
        assert_eq!(statuses(upsert_contacts(&mut tx, "w", std::slice::from_ref(&row)).unwrap()), [RowStatus::Created]);
        assert_eq!((tx.inserts, tx.updates, tx.subscriptions.len()), (1, 0, 1));
        // The same row again, twice in one batch: nothing is written, no status change recorded.
        let again = upsert_contacts(&mut tx, "w", &[row.clone(), row.clone()]).unwrap();
        assert_eq!(statuses(again), [RowStatus::Unchanged, RowStatus::Unchanged]);
        assert_eq!((tx.inserts, tx.updates, tx.subscriptions.len()), (1, 0, 1));
        // One value differs: written.
        let mut changed = row.clone();
        changed.changes.traits = crate::merge::TraitOp::parse_map(&obj(json!({"seats": 4}))).unwrap();
        assert_eq!(statuses(upsert_contacts(&mut tx, "w", &[changed]).unwrap()), [RowStatus::Updated]);
        assert_eq!((tx.inserts, tx.updates), (1, 1));
        // A lookup identity the contact lacks is added: a change.
        let mut by_external = row;
        by_external.lookups.push((IdentityKind::ExternalId, "e-1".into()));
        by_external.changes.traits.clear();
        let out = upsert_contacts(&mut tx, "w", &[by_external]).unwrap();
        assert_eq!(statuses(out), [RowStatus::Updated]);
        assert_eq!(tx.updates, 2);
    }

    #[test]
    fn an_unchanged_company_keeps_its_updated_at() {
        let mut tx = Fake::default();
        let t0 = crate::ids::now();
        let changes =
            CompanyChanges::from_json(obj(json!({"domain": "Acme.com", "traits": {"size": "11-50", "n": 5}}))).unwrap();
        let (status, created) = upsert_company(&mut tx, "w", "acme", &changes, t0).unwrap();
        assert_eq!((status, tx.inserts), (RowStatus::Created, 1));
        let t1 = t0 + Duration::seconds(5);
        let (status, same) = upsert_company(&mut tx, "w", "acme", &changes, t1).unwrap();
        assert_eq!((status, tx.updates), (RowStatus::Unchanged, 0));
        assert_eq!(same, created, "the whole row, updated_at included, is as it was");
        let t2 = t0 + Duration::seconds(9);
        let other = CompanyChanges::from_json(obj(json!({"domain": "acme.io"}))).unwrap();
        let (status, changed) = upsert_company(&mut tx, "w", "acme", &other, t2).unwrap();
        assert_eq!((status, tx.updates, changed.updated_at), (RowStatus::Updated, 1, t2));
    }

    #[test]
    fn an_unchanged_rep_keeps_its_updated_at() {
        let mut tx = Fake::default();
        let t0 = crate::ids::now();
        let write = RepWrite::from_row(
            obj(json!({"rep_id": "mila", "name": "Mila", "email": "Mila@x.io", "active": 0, "level": 3})),
            None,
        )
        .unwrap();
        let (status, created) = upsert_rep(&mut tx, "w", &write, WriteMode::Upsert, t0).unwrap();
        assert_eq!((status, tx.inserts), (RowStatus::Created, 1));
        let t1 = t0 + Duration::seconds(5);
        let (status, same) = upsert_rep(&mut tx, "w", &write, WriteMode::Upsert, t1).unwrap();
        assert_eq!((status, tx.updates), (RowStatus::Unchanged, 0));
        assert_eq!(same, created);
        let (status, _) = upsert_rep(&mut tx, "w", &write, WriteMode::Update, t1).unwrap();
        let mut counts = crate::rep::UpsertCounts::default();
        counts.add(status);
        assert_eq!((counts.updated, counts.unchanged, tx.updates), (0, 1, 0));
        let other = RepWrite::from_row(obj(json!({"rep_id": "mila", "active": 1})), None).unwrap();
        let (status, changed) = upsert_rep(&mut tx, "w", &other, WriteMode::Upsert, t1).unwrap();
        assert_eq!((status, tx.updates, changed.updated_at, changed.active), (RowStatus::Updated, 1, t1, true));
    }
}
