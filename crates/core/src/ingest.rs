//! The ingestion pipeline's domain: queued items (identify, track, alias,
//! group), jobs and their per-row results, and [`apply_item`] — the one
//! function every backend's appliers call to apply an item, through the
//! same trait merge as the native API.
//!
//! Requests are validated at the edge into [`IngestItem`]s (a bad item
//! refuses the whole request), appended durably to the inbox as one
//! [`QueuedJob`], then applied in arrival order. Message ids make retries
//! apply once: the dedupe record is written in the applying transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::contact::{ContactChanges, ContactState, SubscriptionChange};
use crate::error::{Error, Result};
use crate::event::NewEvent;
use crate::field::{Entity, FieldRegistry, FieldType};
use crate::identity::IdentityKind;
use crate::merge::TraitOp;

/// Most items in one ingest request.
pub const MAX_ITEMS_PER_REQUEST: usize = 10_000;
/// Longest message id.
pub const MAX_MESSAGE_ID_LEN: usize = 200;

/// An identity that finds (or creates) the contact, in priority order.
pub type Lookups = Vec<(IdentityKind, String)>;

/// One queued operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestItem {
    /// Create or update a contact.
    Identify {
        /// Identities that find the contact (first match wins); set on it when missing.
        lookups: Lookups,
        /// The write.
        changes: ContactChanges,
        /// Deduplication id.
        message_id: Option<String>,
    },
    /// Record an event on a contact (created when unknown).
    Track {
        /// Identities that find the contact.
        lookups: Lookups,
        /// The event.
        event: NewEvent,
    },
    /// Merge the profile known by `previous` into the one found by `lookups`.
    Alias {
        /// The earlier identity (e.g. an anonymous id), tried in order.
        previous: Lookups,
        /// The identities of the profile to keep.
        lookups: Lookups,
        /// Deduplication id.
        message_id: Option<String>,
    },
    /// Associate the contact with a company (created if needed, traits merged).
    Group {
        /// Identities that find the contact.
        lookups: Lookups,
        /// The company's external id.
        company: String,
        /// Company trait operations.
        traits: Map<String, Value>,
        /// Deduplication id.
        message_id: Option<String>,
    },
    /// A row refused before it was queued (a bad line of an import):
    /// applying it records its error in the job and writes nothing.
    Rejected {
        /// Why (its `row` is ignored: the item's index is the row).
        error: RowError,
    },
}

impl IngestItem {
    /// The item's deduplication id.
    pub fn message_id(&self) -> Option<&str> {
        match self {
            IngestItem::Identify { message_id, .. }
            | IngestItem::Alias { message_id, .. }
            | IngestItem::Group { message_id, .. } => message_id.as_deref(),
            IngestItem::Track { event, .. } => event.message_id.as_deref(),
            IngestItem::Rejected { .. } => None,
        }
    }

    /// Gives the item a message id when it has none (from an
    /// `Idempotency-Key`: `key#index`).
    pub fn default_message_id(&mut self, id: String) {
        let slot = match self {
            IngestItem::Identify { message_id, .. }
            | IngestItem::Alias { message_id, .. }
            | IngestItem::Group { message_id, .. } => message_id,
            IngestItem::Track { event, .. } => &mut event.message_id,
            IngestItem::Rejected { .. } => return,
        };
        if slot.is_none() {
            *slot = Some(id);
        }
    }
}

/// Checks a message id: 1 to 200 characters.
pub fn validate_message_id(id: &str) -> Result<String> {
    if id.is_empty() || id.len() > MAX_MESSAGE_ID_LEN {
        return Err(Error::validation("message_id", format!("a message id has 1 to {MAX_MESSAGE_ID_LEN} characters")));
    }
    Ok(id.to_string())
}

/// An accepted request on its way through the inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedJob {
    /// `job_…`
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// The items, in request order.
    pub items: Vec<IngestItem>,
    /// When it was accepted.
    pub received_at: DateTime<Utc>,
}

impl QueuedJob {
    /// A job of `items` accepted now, with a new time-ordered id (the job
    /// indexes then grow at their end instead of taking a random insert per job).
    pub fn new(workspace_id: &str, items: Vec<IngestItem>) -> Self {
        QueuedJob {
            id: crate::ids::new_sortable_id("job"),
            workspace_id: workspace_id.to_string(),
            items,
            received_at: crate::ids::now(),
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Durable, not yet applied.
    Queued,
    /// Every row applied (or was a duplicate of an applied one).
    Applied,
    /// At least one row failed; `errors` says which and why; the other rows applied.
    Failed,
}

impl JobStatus {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Applied => "applied",
            JobStatus::Failed => "failed",
        }
    }
}

/// Why one row of a job failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RowError {
    /// 0-based item index in the request.
    pub row: usize,
    /// Stable error code (`conflict`, `invalid_value`, …).
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// The field concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl RowError {
    /// The row error of a core error.
    pub fn of(row: usize, e: &Error) -> Self {
        RowError {
            row,
            code: e.code().name().to_string(),
            message: e.public_message(),
            field: e.field().map(str::to_string),
        }
    }
}

impl RowError {
    /// The error this row error reports (same code, message and field):
    /// `invalid_value` stays a 422, anything else is a validation error.
    pub fn to_error(&self) -> Error {
        match (self.code.as_str(), &self.field) {
            ("invalid_value", Some(field)) => {
                Error::InvalidValue { field: field.clone(), message: self.message.clone(), row: None }
            }
            _ => Error::Validation { message: self.message.clone(), field: self.field.clone(), row: None },
        }
    }
}

/// A job as reported by `GET /v1/jobs/{id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// `job_…`
    pub id: String,
    /// Status.
    pub status: JobStatus,
    /// Items in the request.
    pub total: usize,
    /// Rows applied.
    pub applied: usize,
    /// Rows skipped as already applied (same message id).
    pub duplicates: usize,
    /// Rows that failed.
    pub failed: usize,
    /// Per-row errors.
    pub errors: Vec<RowError>,
    /// Accepted at.
    pub received_at: DateTime<Utc>,
    /// Applied at.
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    /// A job still in the inbox: nothing applied yet.
    pub fn queued(id: String, total: usize, received_at: DateTime<Utc>) -> Self {
        Job {
            id,
            status: JobStatus::Queued,
            total,
            applied: 0,
            duplicates: 0,
            failed: 0,
            errors: Vec::new(),
            received_at,
            finished_at: None,
        }
    }
}

/// What one applier step did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyReport {
    /// Items processed (applied, duplicate or failed).
    pub items: usize,
    /// When each job applied in the step was accepted (for the apply-lag metric).
    pub received_at: Vec<DateTime<Utc>>,
}

/// What applying one item did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOutcome {
    /// Applied.
    Applied,
    /// Skipped: its message id was applied before.
    Duplicate,
}

/// What [`apply_item`] needs from a backend's transaction. Every method
/// runs inside the transaction that applies the item.
pub trait IngestTx {
    /// True when `message_id` was applied before (within the dedupe window).
    fn message_seen(&mut self, ws: &str, message_id: &str) -> Result<bool>;
    /// Records that `message_id` was applied.
    fn record_message(&mut self, ws: &str, message_id: &str) -> Result<()>;
    /// The contact holding an identity.
    fn find_contact(&mut self, ws: &str, kind: IdentityKind, value: &str) -> Result<Option<i64>>;
    /// A contact's current state.
    fn load_contact(&mut self, ws: &str, id: i64) -> Result<ContactState>;
    /// The field registry of an entity (cached by the backend).
    fn field_registry(&mut self, ws: &str, entity: Entity) -> Result<&mut FieldRegistry>;
    /// Records fields created on the fly.
    fn record_fields(&mut self, ws: &str, entity: Entity, fields: &[(String, FieldType)]) -> Result<()>;
    /// Inserts a contact; returns its id.
    fn insert_contact(&mut self, ws: &str, state: &ContactState) -> Result<i64>;
    /// Writes a contact's new state; `identities_changed` is false when
    /// email, mobile, external id and anonymous id are as they were (so the
    /// backend need not touch their unique indexes).
    fn update_contact(&mut self, ws: &str, id: i64, state: &ContactState, identities_changed: bool) -> Result<()>;
    /// Records an event.
    fn insert_event(&mut self, ws: &str, contact_id: i64, event: &NewEvent) -> Result<()>;
    /// Moves `from`'s events to `into`, deletes `from`, records the merge.
    fn merge_contacts(&mut self, ws: &str, from: i64, into: i64) -> Result<()>;
    /// The company with this external id, created when missing; its traits
    /// merged with `ops`. Returns its id.
    fn upsert_company(&mut self, ws: &str, external_id: &str, traits: &Map<String, Value>) -> Result<i64>;
    /// Links a contact to a company.
    fn set_contact_company(&mut self, ws: &str, contact_id: i64, company_id: i64) -> Result<()>;
    /// Records a change of a contact's subscription status.
    fn record_subscription(&mut self, ws: &str, contact_id: i64, change: &SubscriptionChange) -> Result<()>;
}

impl IngestItem {
    /// False for identify and track: they check everything before their
    /// first write, so a row error leaves nothing written and needs no
    /// savepoint. Alias and group may fail after a write: the caller must
    /// run them in a savepoint and roll it back on error.
    pub fn needs_savepoint(&self) -> bool {
        matches!(self, IngestItem::Alias { .. } | IngestItem::Group { .. })
    }
}

/// Applies one item. An `Err` fails this row only: for items whose
/// [`IngestItem::needs_savepoint`] is false nothing was written; for the
/// others the caller rolls the row back. Storage errors are not the row's
/// fault: the caller abandons the whole step.
pub fn apply_item(tx: &mut dyn IngestTx, ws: &str, item: &IngestItem) -> Result<RowOutcome> {
    if let Some(id) = item.message_id()
        && tx.message_seen(ws, id)?
    {
        return Ok(RowOutcome::Duplicate);
    }
    match item {
        IngestItem::Identify { lookups, changes, .. } => {
            identify(tx, ws, lookups, changes)?;
        }
        IngestItem::Track { lookups, event } => {
            let contact = find_or_create(tx, ws, lookups)?;
            tx.insert_event(ws, contact, event)?;
        }
        IngestItem::Alias { previous, lookups, .. } => alias(tx, ws, previous, lookups)?,
        IngestItem::Group { lookups, company, traits, .. } => {
            let contact = find_or_create(tx, ws, lookups)?;
            let company = tx.upsert_company(ws, company, traits)?;
            tx.set_contact_company(ws, contact, company)?;
        }
        IngestItem::Rejected { error } => return Err(error.to_error()),
    }
    if let Some(id) = item.message_id() {
        tx.record_message(ws, id)?;
    }
    Ok(RowOutcome::Applied)
}

fn resolve(tx: &mut dyn IngestTx, ws: &str, lookups: &Lookups) -> Result<Option<i64>> {
    for (kind, value) in lookups {
        if let Some(id) = tx.find_contact(ws, *kind, value)? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Finds the contact, or creates it with the lookup identities, then runs
/// `changes` on it (the same merge as the native API). Identities set on the
/// contact must not be held by another contact (a duplicate error).
fn identify(tx: &mut dyn IngestTx, ws: &str, lookups: &Lookups, changes: &ContactChanges) -> Result<i64> {
    upsert_contact(tx, ws, lookups, changes, true).map(|u| u.id)
}

/// What [`upsert_contact`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Upserted {
    /// The contact.
    pub id: i64,
    /// True when it was created.
    pub created: bool,
    /// False when an existing contact was left as it was: nothing was
    /// written and its `updated_at` is kept.
    pub changed: bool,
    /// Its state after the write (as written).
    pub state: ContactState,
}

/// Finds the contact by `lookups` (in order) and applies `changes` to it;
/// when none holds any lookup identity, creates it (or, when `create` is
/// false, fails as not found). Everything is checked before the first
/// write. A found contact that the write leaves as it was (traits,
/// identities, subscription status) is not written, so its `updated_at`
/// stays. Used by identify items and batch upserts alike.
pub fn upsert_contact(
    tx: &mut dyn IngestTx,
    ws: &str,
    lookups: &Lookups,
    changes: &ContactChanges,
    create: bool,
) -> Result<Upserted> {
    // Who holds each identity, asked once per item.
    let mut holders: Vec<(IdentityKind, String, Option<i64>)> = Vec::new();
    let mut holder = |tx: &mut dyn IngestTx, kind: IdentityKind, value: &str| -> Result<Option<i64>> {
        if let Some((_, _, h)) = holders.iter().find(|(k, v, _)| *k == kind && v == value) {
            return Ok(*h);
        }
        let h = tx.find_contact(ws, kind, value)?;
        holders.push((kind, value.to_string(), h));
        Ok(h)
    };
    let mut found = None;
    for (kind, value) in lookups {
        if let Some(id) = holder(tx, *kind, value)? {
            found = Some(id);
            break;
        }
    }
    let mut state = match found {
        Some(id) => tx.load_contact(ws, id)?,
        None if create => ContactState::default(),
        None => return Err(Error::NotFound { entity: "contact" }),
    };
    let status_before = found.map(|_| state.subscription_status);
    // Lookup identities the contact lacks and the write does not set are
    // added to it (kept apart: cloning the write per row costs).
    let mut added: Vec<(IdentityKind, &str)> = Vec::new();
    for (kind, value) in lookups {
        let set_by_write = changes.identities.iter().any(|(k, _)| k == kind);
        if state.identity(*kind).is_none() && !set_by_write && !added.iter().any(|(k, _)| k == kind) {
            // A lookup identity held by another profile stays there (an
            // alias merges profiles); only identities the write sets conflict.
            let h = holder(tx, *kind, value)?;
            if h.is_none() || h == found {
                added.push((*kind, value.as_str()));
            }
        }
    }
    for (kind, value) in changes.identities_set().chain(added.iter().copied()) {
        if state.identity(kind) == Some(value) {
            continue;
        }
        if let Some(h) = holder(tx, kind, value)?
            && Some(h) != found
        {
            return Err(Error::Conflict { entity: "contact", field: kind.field().to_string(), row: None });
        }
    }
    let identities_before: Vec<Option<String>> =
        IdentityKind::ALL.iter().map(|k| state.identity(*k).map(str::to_string)).collect();
    let outcome = changes.apply(&mut state, tx.field_registry(ws, Entity::Contact)?)?;
    for (kind, value) in &added {
        *state.identity_mut(*kind) = Some(value.to_string());
    }
    // Every check passed: only writes from here on.
    let (id, changed) = match found {
        Some(id) => {
            let identities_changed = IdentityKind::ALL
                .iter()
                .zip(&identities_before)
                .any(|(k, before)| state.identity(*k) != before.as_deref());
            let changed = outcome.changed || identities_changed;
            if changed {
                tx.update_contact(ws, id, &state, identities_changed)?;
            }
            (id, changed)
        }
        None => (tx.insert_contact(ws, &state)?, true),
    };
    tx.record_fields(ws, Entity::Contact, &outcome.new_fields)?;
    if let Some(change) = changes.subscription_change(status_before, state.subscription_status, crate::ids::now()) {
        tx.record_subscription(ws, id, &change)?;
    }
    Ok(Upserted { id, created: found.is_none(), changed, state })
}

fn find_or_create(tx: &mut dyn IngestTx, ws: &str, lookups: &Lookups) -> Result<i64> {
    match resolve(tx, ws, lookups)? {
        Some(id) => Ok(id),
        None => identify(tx, ws, lookups, &ContactChanges::default()),
    }
}

/// Merges the profile known by `previous` into the one `lookups` finds:
/// traits the kept profile lacks are copied, events re-pointed, the old
/// profile deleted and the merge recorded. Without a second profile, the
/// identities are simply joined on one contact.
fn alias(tx: &mut dyn IngestTx, ws: &str, previous: &Lookups, lookups: &Lookups) -> Result<()> {
    let old = resolve(tx, ws, previous)?;
    let kept = resolve(tx, ws, lookups)?;
    match (old, kept) {
        (Some(old), Some(kept)) if old != kept => {
            let old_state = tx.load_contact(ws, old)?;
            let mut state = tx.load_contact(ws, kept)?;
            for (name, value) in &old_state.traits {
                state.traits.entry(name.clone()).or_insert_with(|| value.clone());
            }
            for kind in IdentityKind::ALL {
                if state.identity(kind).is_none()
                    && let Some(v) = old_state.identity(kind)
                {
                    *state.identity_mut(kind) = Some(v.to_string());
                }
            }
            tx.merge_contacts(ws, old, kept)?;
            tx.update_contact(ws, kept, &state, true)
        }
        (Some(_), Some(_)) => Ok(()),
        (Some(old), None) => {
            // Only the identity that found the old profile: `previous` lists
            // guesses at what the id was (e.g. anonymous id, else external
            // id), and the others must not be written onto the contact.
            let mut found_by = Lookups::new();
            for (kind, value) in previous {
                if tx.find_contact(ws, *kind, value)? == Some(old) {
                    found_by.push((*kind, value.clone()));
                    break;
                }
            }
            let identities = lookups.iter().map(|(k, v)| (*k, Some(v.clone()))).collect();
            let changes = ContactChanges { identities, ..Default::default() };
            identify(tx, ws, &found_by, &changes).map(|_| ())
        }
        (None, _) => find_or_create(tx, ws, lookups).map(|_| ()),
    }
}

/// Builds an identify item from a traits object: identity keys in it
/// (`email`, `mobile`, `external_id`, `anonymous_id`) become identities, the
/// rest trait operations. Errors name the field.
pub fn identify_item(lookups: Lookups, traits: Map<String, Value>, message_id: Option<String>) -> Result<IngestItem> {
    let mut changes = ContactChanges::default();
    changes.add_traits(traits)?;
    Ok(IngestItem::Identify { lookups, changes, message_id })
}

/// Parses trait operations for a company (checked at the edge).
pub fn check_company_traits(traits: &Map<String, Value>) -> Result<()> {
    TraitOp::parse_map(traits).map(|_| ())
}

/// The identities that find a contact, in priority order: the first one
/// a write carries that matches a contact wins.
pub const LOOKUP_ORDER: [IdentityKind; 4] =
    [IdentityKind::ExternalId, IdentityKind::Email, IdentityKind::Mobile, IdentityKind::AnonymousId];

/// The lookups of a write: the identities it sets, in priority order
/// (external id, email, mobile, anonymous id).
pub fn lookups_of(changes: &ContactChanges) -> Lookups {
    let mut out: Lookups = Vec::new();
    for kind in LOOKUP_ORDER {
        if let Some((_, Some(v))) = changes.identities.iter().find(|(k, _)| *k == kind) {
            out.push((kind, v.clone()));
        }
    }
    out
}
