//! Reps: the team's members as data (sales or support agents), keyed by a
//! `rep_id` string unique per workspace, with a name, an email, a
//! department, an active flag and typed attributes (the fields registry of
//! entity `rep`).
//!
//! A [`RepWrite`] names the values to set on one rep; `null` clears a value.
//! Which values a request leaves alone and which it clears is the caller's
//! reading of its wire format (Converz's columnar and row-wise forms differ
//! exactly there); applying the write is [`RepWrite::apply`], once.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::batch::{RowResult, RowStatus, is_storage_fault};
use crate::error::Error;
use crate::field::{Entity, FieldRegistry, validate_field_name};
use crate::identity::normalise_email;
use crate::ingest::IngestTx;
use crate::merge::{MergeOutcome, TraitOp, apply_traits};

/// Most rows one reps update takes (Converz's limit).
pub const MAX_REP_ROWS: usize = 100_000;
/// Longest `rep_id`.
pub const MAX_REP_ID_LEN: usize = 255;
/// Longest name or department.
pub const MAX_REP_TEXT_LEN: usize = 500;
/// The columns every rep has; every other key is an attribute.
pub const BUILTIN_KEYS: [&str; 5] = ["rep_id", "name", "email", "department", "active"];
/// Keys the server owns: accepted and ignored on input.
pub const READ_ONLY_KEYS: [&str; 2] = ["created_at", "updated_at"];

/// A rep as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Rep {
    /// The integrator's id, unique per workspace.
    pub rep_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Email, lower-cased.
    pub email: Option<String>,
    /// Department (`sales`, `support`, …).
    pub department: Option<String>,
    /// Whether the rep is active (new reps are).
    pub active: bool,
    /// Typed custom attributes.
    pub attributes: Map<String, Value>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Rep {
    /// A new, active rep with nothing else set.
    pub fn new(rep_id: String, at: DateTime<Utc>) -> Self {
        Rep {
            rep_id,
            name: None,
            email: None,
            department: None,
            active: true,
            attributes: Map::new(),
            created_at: at,
            updated_at: at,
        }
    }
}

/// A validated write to one rep: the values to set, in the order sent;
/// `Value::Null` clears one. Keys not named are left as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepWrite {
    /// Which rep.
    pub rep_id: String,
    /// `None` leaves the name, `Some(None)` clears it.
    pub name: Option<Option<String>>,
    /// `None` leaves the email, `Some(None)` clears it.
    pub email: Option<Option<String>>,
    /// `None` leaves the department, `Some(None)` clears it.
    pub department: Option<Option<String>>,
    /// `None` leaves the flag.
    pub active: Option<bool>,
    /// Attribute values (`Null` clears).
    pub attributes: Vec<(String, Value)>,
}

impl RepWrite {
    /// Reads one row: `rep_id` (unless `rep_id` is given, as in a path) and
    /// any other key. Built-in keys are checked here; attribute values are
    /// checked against the registry when applied. A `null` `active` leaves
    /// the flag as it is (a rep is active or not; there is no "unknown").
    pub fn from_row(mut row: Map<String, Value>, rep_id: Option<&str>) -> Result<Self, Error> {
        let rep_id = match (rep_id, row.remove("rep_id")) {
            (Some(id), _) => rep_id_of(&Value::String(id.to_string()))?,
            (None, Some(v)) => rep_id_of(&v)?,
            (None, None) => return Err(Error::validation("rep_id", "rep_id is required")),
        };
        let mut write = RepWrite { rep_id, ..Default::default() };
        for (key, value) in row {
            match key.as_str() {
                "name" => write.name = Some(text_of(&value, "name")?),
                "department" => write.department = Some(text_of(&value, "department")?),
                "email" => {
                    write.email = Some(match text_of(&value, "email")? {
                        None => None,
                        Some(raw) => Some(normalise_email(&raw)?),
                    })
                }
                "active" => write.active = active_of(&value)?,
                k if READ_ONLY_KEYS.contains(&k) => {}
                _ => {
                    validate_field_name(&key)?;
                    write.attributes.push((key, value));
                }
            }
        }
        Ok(write)
    }

    /// Reads the native body (`{"rep_id"?, "name"?, "email"?, "department"?,
    /// "active"?, "attributes"?: {…}}`); unknown top-level keys are refused.
    pub fn from_native(mut body: Map<String, Value>, rep_id: Option<&str>) -> Result<Self, Error> {
        let attributes = match body.remove("attributes") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(Error::validation("attributes", "attributes must be an object")),
        };
        if let Some(k) =
            body.keys().find(|k| !BUILTIN_KEYS.contains(&k.as_str()) && !READ_ONLY_KEYS.contains(&k.as_str()))
        {
            return Err(Error::validation(
                k.as_str(),
                format!("unknown field '{k}'; a rep has rep_id, name, email, department, active and attributes"),
            ));
        }
        if let Some(k) = attributes.keys().find(|k| BUILTIN_KEYS.contains(&k.as_str())) {
            return Err(Error::validation(k.as_str(), format!("'{k}' is a rep's own field, not an attribute")));
        }
        body.extend(attributes);
        RepWrite::from_row(body, rep_id)
    }

    /// Applies the write to `rep`, all or nothing; attributes are typed by
    /// `registry` (entity `rep`), new ones inferred and reported. When
    /// anything changed, `updated_at` becomes `at`; when nothing did (the
    /// outcome's `changed` is false), the rep is as it was.
    pub fn apply(&self, rep: &mut Rep, registry: &mut FieldRegistry, at: DateTime<Utc>) -> Result<MergeOutcome, Error> {
        let ops: Vec<(String, TraitOp)> = self
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), if v.is_null() { TraitOp::Unset } else { TraitOp::Set(v.clone()) }))
            .collect();
        let mut outcome = apply_traits(&mut rep.attributes, &ops, registry)?;
        for (value, slot) in
            [(&self.name, &mut rep.name), (&self.email, &mut rep.email), (&self.department, &mut rep.department)]
        {
            if let Some(v) = value
                && *v != *slot
            {
                *slot = v.clone();
                outcome.changed = true;
            }
        }
        if let Some(v) = self.active
            && v != rep.active
        {
            rep.active = v;
            outcome.changed = true;
        }
        if outcome.changed {
            rep.updated_at = at;
        }
        Ok(outcome)
    }
}

/// Reads a `rep_id`: a non-empty string (a number is taken as its text).
pub fn rep_id_of(value: &Value) -> Result<String, Error> {
    let s = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => return Err(Error::validation("rep_id", "rep_id is required in every row")),
        _ => return Err(Error::validation("rep_id", "rep_id must be a string")),
    };
    if s.is_empty() || s.chars().count() > MAX_REP_ID_LEN || s.chars().any(char::is_control) {
        return Err(Error::validation("rep_id", format!("rep_id must have 1 to {MAX_REP_ID_LEN} characters")));
    }
    Ok(s)
}

fn text_of(value: &Value, field: &str) -> Result<Option<String>, Error> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() <= MAX_REP_TEXT_LEN => {
            Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty()))
        }
        Value::String(_) => {
            Err(Error::validation(field, format!("{field} must have at most {MAX_REP_TEXT_LEN} characters")))
        }
        _ => Err(Error::validation(field, format!("{field} must be a string or null"))),
    }
}

/// Reads `active`: `0`/`1`, `true`/`false` (also as strings); `null` is no change.
pub fn active_of(value: &Value) -> Result<Option<bool>, Error> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(Some(false)),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(Some(true)),
        Value::String(s) => match s.trim() {
            "0" | "false" => Ok(Some(false)),
            "1" | "true" => Ok(Some(true)),
            _ => Err(Error::validation("active", "active must be 0 or 1")),
        },
        _ => Err(Error::validation("active", "active must be 0 or 1")),
    }
}

/// A rep as read from storage, borrowed, for rendering large pages without
/// building a [`Rep`] per row (its attributes stay the stored JSON text).
#[derive(Debug, Clone, Copy)]
pub struct RepView<'a> {
    /// The rep's id.
    pub rep_id: &'a str,
    /// Display name.
    pub name: Option<&'a str>,
    /// Email.
    pub email: Option<&'a str>,
    /// Department.
    pub department: Option<&'a str>,
    /// Whether the rep is active.
    pub active: bool,
    /// The attributes as stored: the text of a JSON object with none of
    /// [`BUILTIN_KEYS`].
    pub attributes_json: &'a str,
}

/// Writes one rep into a buffer (a dialect's wire form of a list row).
pub type RepRenderer = fn(&RepView<'_>, &mut Vec<u8>);

/// Filters of the rep list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepFilter {
    /// Only this department.
    pub department: Option<String>,
    /// Only this rep.
    pub rep_id: Option<String>,
    /// Only active (or inactive) reps.
    pub active: Option<bool>,
}

/// What a bulk update (reps, calls) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct UpsertCounts {
    /// Objects created.
    pub created: usize,
    /// Objects that existed and were updated.
    pub updated: usize,
    /// Objects that existed and that the write left as they were (nothing
    /// written, `updated_at` kept).
    pub unchanged: usize,
}

impl UpsertCounts {
    /// Counts one row's status.
    pub fn add(&mut self, status: RowStatus) {
        match status {
            RowStatus::Created => self.created += 1,
            RowStatus::Updated => self.updated += 1,
            RowStatus::Unchanged => self.unchanged += 1,
        }
    }
}

/// What the rep writes need from a store's transaction (the contact and
/// field-registry parts come from [`IngestTx`]).
pub trait RepTx: IngestTx {
    /// The rep with this id.
    fn find_rep(&mut self, ws: &str, rep_id: &str) -> Result<Option<Rep>, Error>;
    /// Inserts a new rep.
    fn insert_rep(&mut self, ws: &str, rep: &Rep) -> Result<(), Error>;
    /// Writes a rep's new state.
    fn update_rep(&mut self, ws: &str, rep: &Rep) -> Result<(), Error>;
}

/// Whether a single rep write may create, update, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Only a new rep (an existing one is a conflict).
    Create,
    /// Only an existing rep (a missing one is not found).
    Update,
    /// Either.
    Upsert,
}

/// Creates or changes one rep in the caller's transaction.
pub fn upsert_rep(
    tx: &mut dyn RepTx,
    ws: &str,
    write: &RepWrite,
    mode: WriteMode,
    at: DateTime<Utc>,
) -> Result<(RowStatus, Rep), Error> {
    let existing = tx.find_rep(ws, &write.rep_id)?;
    let created = existing.is_none();
    match (mode, created) {
        (WriteMode::Create, false) => return Err(Error::Conflict { entity: "rep", field: "rep_id".into(), row: None }),
        (WriteMode::Update, true) => return Err(Error::NotFound { entity: "rep" }),
        _ => {}
    }
    let mut rep = existing.unwrap_or_else(|| Rep::new(write.rep_id.clone(), at));
    let outcome = write.apply(&mut rep, tx.field_registry(ws, Entity::Rep)?, at)?;
    let status = if created {
        tx.insert_rep(ws, &rep)?;
        RowStatus::Created
    } else if outcome.changed {
        tx.update_rep(ws, &rep)?;
        RowStatus::Updated
    } else {
        RowStatus::Unchanged
    };
    tx.record_fields(ws, Entity::Rep, &outcome.new_fields)?;
    Ok((status, rep))
}

/// Creates or changes every row, all or nothing: the first failing row's
/// error (carrying its index) is returned and the caller rolls back.
pub fn upsert_reps(tx: &mut dyn RepTx, ws: &str, rows: &[RepWrite], at: DateTime<Utc>) -> Result<UpsertCounts, Error> {
    check_rows(rows)?;
    let mut counts = UpsertCounts::default();
    for (i, row) in rows.iter().enumerate() {
        let (status, _) = upsert_rep(tx, ws, row, WriteMode::Upsert, at).map_err(|e| e.at_row(i))?;
        counts.add(status);
    }
    Ok(counts)
}

/// One rep row of an import, upserted by `rep_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct RepUpsert {
    /// 0-based row in the request.
    pub row: usize,
    /// The write.
    pub write: RepWrite,
}

/// Upserts rep rows in the caller's transaction, each with its own result
/// (unlike [`upsert_reps`], a failed row fails alone). Each row is checked
/// before its first write, so a failed row leaves nothing behind; rows
/// naming the same rep apply in order. A storage fault abandons the whole.
pub fn upsert_rep_rows(
    tx: &mut dyn RepTx,
    ws: &str,
    rows: &[RepUpsert],
    at: DateTime<Utc>,
) -> Result<Vec<RowResult<Rep>>, Error> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let outcome = match upsert_rep(tx, ws, &row.write, WriteMode::Upsert, at) {
            Err(e) if is_storage_fault(&e) => return Err(e),
            other => other,
        };
        out.push(RowResult { row: row.row, outcome });
    }
    Ok(out)
}

/// Checks a reps update before any write: at most [`MAX_REP_ROWS`] rows and
/// each `rep_id` once (a second row for the same rep would make the result
/// depend on order; it is refused naming the row).
pub fn check_rows(rows: &[RepWrite]) -> Result<(), Error> {
    crate::batch::check_bulk(rows.iter().map(|r| r.rep_id.as_str()), "rep_id", MAX_REP_ROWS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn rows_are_read_and_applied() {
        let w = RepWrite::from_row(
            obj(json!({"rep_id": " mila ", "name": "Mila", "email": "Mila@X.io", "active": 0, "gender": "f"})),
            None,
        )
        .unwrap();
        assert_eq!(w.rep_id, "mila");
        assert_eq!(w.email, Some(Some("mila@x.io".into())));
        let mut rep = Rep::new(w.rep_id.clone(), crate::ids::now());
        let mut reg = FieldRegistry::default();
        let out = w.apply(&mut rep, &mut reg, crate::ids::now()).unwrap();
        assert_eq!(out.new_fields.len(), 1);
        assert_eq!((rep.active, rep.attributes["gender"].clone()), (false, json!("f")));
        let clear = RepWrite::from_row(obj(json!({"rep_id": "mila", "gender": null, "name": null})), None).unwrap();
        clear.apply(&mut rep, &mut reg, crate::ids::now()).unwrap();
        assert!(rep.attributes.is_empty() && rep.name.is_none() && rep.email.is_some());
    }

    #[test]
    fn bad_values_name_their_field() {
        for (row, field) in [
            (json!({"name": "x"}), "rep_id"),
            (json!({"rep_id": ""}), "rep_id"),
            (json!({"rep_id": "a", "active": 2}), "active"),
            (json!({"rep_id": "a", "name": 5}), "name"),
            (json!({"rep_id": "a", "email": "nope"}), "email"),
        ] {
            assert_eq!(RepWrite::from_row(obj(row.clone()), None).unwrap_err().field(), Some(field), "{row}");
        }
        let err = RepWrite::from_native(obj(json!({"rep_id": "a", "gender": "f"})), None).unwrap_err();
        assert_eq!(err.field(), Some("gender"));
        let dup = [
            RepWrite { rep_id: "a".into(), ..Default::default() },
            RepWrite { rep_id: "a".into(), ..Default::default() },
        ];
        assert_eq!(check_rows(&dup).unwrap_err().row(), Some(1));
    }
}
